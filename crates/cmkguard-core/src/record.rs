//! The audit record: one JSON object per decision.

use serde::Serialize;

use crate::config::Action;
use crate::facts::KeyManager;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Done,
    DryRun,
    Skipped,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionRecord {
    pub action: Action,
    pub outcome: Outcome,
    pub detail: String,
}

impl ActionRecord {
    pub fn new(action: Action, outcome: Outcome, detail: impl Into<String>) -> Self {
        ActionRecord {
            action,
            outcome,
            detail: detail.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    pub event_id: Option<String>,
    /// The Lambda request id (null outside Lambda).
    pub request_id: Option<String>,
    pub event_name: Option<String>,
    pub account: Option<String>,
    pub region: Option<String>,
    pub secret_arn: Option<String>,
    pub actor: Option<String>,
    pub key_id: Option<String>,
    pub key_manager: Option<KeyManager>,
    pub verdict: Verdict,
    pub reason: String,
    /// More words on the reason, when it needs them (never a secret value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub dry_run: bool,
    pub actions: Vec<ActionRecord>,
}

impl AuditRecord {
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
