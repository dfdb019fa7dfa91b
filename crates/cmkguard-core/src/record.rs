//! The record of a decision (the contract's "audit record"): one JSON object per decision, one
//! line in the logs.

use serde::Serialize;

use crate::config::Action;
use crate::event::EventMeta;
use crate::facts::KeyManager;
use crate::keypolicy::KeyReview;
use crate::reason::Reason;

/// Serialized as its `as_str`: each wire string is written once.
macro_rules! serialize_as_str {
    ($($name:ident),+) => {$(
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    )+};
}

serialize_as_str!(Verdict, Outcome);

/// A review as its finding words, most severe first.
fn review_words<S: serde::Serializer>(
    review: &Option<KeyReview>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let words = review.as_ref().map(KeyReview::words);
    words.serialize(serializer)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    Compliant,
    NonCompliant,
    Exempt,
    Managed,
    NotFound,
    Ignored,
    Error,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Compliant => "compliant",
            Verdict::NonCompliant => "non_compliant",
            Verdict::Exempt => "exempt",
            Verdict::Managed => "managed",
            Verdict::NotFound => "not_found",
            Verdict::Ignored => "ignored",
            Verdict::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    DryRun,
    Skipped,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::DryRun => "dry_run",
            Outcome::Skipped => "skipped",
            Outcome::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionRecord {
    pub action: Action,
    pub outcome: Outcome,
    pub detail: String,
    /// A dry run's planned action that could not be carried out: why (also in `detail`, after
    /// [`WOULD_FAIL`]).
    #[serde(skip)]
    pub would_fail: Option<String>,
}

/// How a dry run's action detail starts when the action could not be carried out.
pub const WOULD_FAIL: &str = "would fail: ";

impl ActionRecord {
    pub fn new(action: Action, outcome: Outcome, detail: impl Into<String>) -> Self {
        ActionRecord {
            action,
            outcome,
            detail: detail.into(),
            would_fail: None,
        }
    }

    /// A dry run's planned action that would not go through, and `why`.
    pub fn would_fail(action: Action, why: impl Into<String>) -> Self {
        let why = why.into();
        ActionRecord {
            action,
            outcome: Outcome::DryRun,
            detail: format!("{WOULD_FAIL}{why}"),
            would_fail: Some(why),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    pub event_id: Option<String>,
    /// The Lambda request id (null outside Lambda).
    pub request_id: Option<String>,
    pub event_name: Option<String>,
    pub account: Option<String>,
    pub region: Option<String>,
    pub secret_arn: Option<String>,
    pub actor: Option<String>,
    pub key_id: Option<String>,
    /// The ARN `key_id` resolves to (`DescribeKey`), when known: keys are compared by it.
    #[serde(skip)]
    pub key_arn: Option<String>,
    pub key_manager: Option<KeyManager>,
    /// The review of the key's policy and grants, when it ran: its finding words (`[]` when
    /// none) on the wire, the details for the reports.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "review_words"
    )]
    pub key_policy: Option<KeyReview>,
    /// When the key pending deletion is deleted (`DeletionDate`), when that is the finding.
    #[serde(skip)]
    pub deletion_date: Option<std::time::SystemTime>,
    pub verdict: Verdict,
    pub reason: Reason,
    /// More words on the reason, when it needs them (never a secret value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub dry_run: bool,
    pub actions: Vec<ActionRecord>,
}

impl Record {
    /// A record of `meta`'s event, with no key and no action yet.
    pub fn new(
        meta: &EventMeta,
        secret_arn: Option<String>,
        verdict: Verdict,
        reason: Reason,
        detail: Option<String>,
        dry_run: bool,
    ) -> Self {
        Record {
            event_id: meta.event_id.clone(),
            request_id: meta.request_id.clone(),
            event_name: meta.event_name.clone(),
            account: meta.account.clone(),
            region: meta.region.clone(),
            secret_arn,
            actor: meta.actor.clone(),
            key_id: None,
            key_arn: None,
            key_manager: None,
            key_policy: None,
            deletion_date: None,
            verdict,
            reason,
            detail,
            dry_run,
            actions: Vec::new(),
        }
    }

    /// Whether the secret is on the key `arn`, however the secret names its key (key id, key
    /// ARN or alias): compared by the ARN its key resolved to, the one place keys are compared.
    pub fn is_on_key(&self, arn: &str) -> bool {
        crate::arn::same_key(arn, self.key_id.as_deref(), self.key_arn.as_deref())
    }

    /// The record as one line of JSON.
    pub fn to_json_line(&self) -> String {
        // Serializing plain strings, enums and vectors cannot fail.
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!(r#"{{"error":"unserializable record: {e}"}}"#))
    }

    /// True when the run that made it should exit with 1 (an error, or a failed action).
    pub fn is_failure(&self) -> bool {
        self.verdict == Verdict::Error || self.actions.iter().any(|a| a.outcome == Outcome::Failed)
    }
}
