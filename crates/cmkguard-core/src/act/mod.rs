//! Acting on a decision: the re-encryption (announced on the secret first), the finding's
//! import into Security Hub, the status mark, the notification. Each writes only when the state
//! on the secret says it is not done yet, so redeliveries, retries and sweeps do each thing once.

mod findings;
mod mark;
mod remediate;
mod rotate;

pub(crate) use findings::{finding_due, import_findings};
pub(crate) use mark::mark_and_notify;
pub(crate) use remediate::remediate_if_due;

use crate::cache::KeyCache;
use crate::config::{Action, Config};
use crate::facts::{KeyFacts, SecretFacts};
use crate::keypolicy::KeyReview;
use crate::ports::{AwsError, Notification, Ports, Scope};
use crate::reason::Reason;
use crate::record::{ActionRecord, Outcome, Record};

use crate::tags::{MOVED_VERSION_TAG, REASON_TAG, STATUS_TAG, Status};

/// Findings per `BatchImportFindings` request (Security Hub's limit).
pub const IMPORT_BATCH: usize = 100;

/// The status mark on a secret: what the guard already reported about it.
struct Mark<'f> {
    status: Option<Status>,
    reason: Option<&'f str>,
    /// `cmkguard:moved-version`: the version a re-encryption left readable through the previous key.
    moved_version: Option<&'f str>,
}

impl<'f> Mark<'f> {
    fn of(facts: &'f SecretFacts) -> Self {
        let tag = |name: &str| facts.tags.get(name).map(String::as_str);
        Mark {
            status: Status::of(&facts.tags),
            reason: tag(REASON_TAG),
            moved_version: tag(MOVED_VERSION_TAG),
        }
    }

    /// The status a flagged record's mark should have.
    fn wanted(moved: Option<&Moved>) -> Status {
        if moved.is_some() {
            Status::Remediated
        } else {
            Status::NonCompliant
        }
    }

    /// The guard moved this secret (this release or an earlier one): what is left of the move
    /// (`previous-key-decrypts`) was said by the move's own notification, or is said once when
    /// an earlier release's move is adopted.
    fn is_guard_move(&self, record: &Record, moved: Option<&Moved>) -> bool {
        moved.is_none()
            && record.reason == Reason::PreviousKeyDecrypts
            && self.status == Some(Status::Remediated)
    }

    /// The mark already reports this flagged record's finding.
    fn reports(&self, record: &Record, moved: Option<&Moved>) -> bool {
        if self.is_guard_move(record, moved) {
            return self.moved_version.is_some();
        }
        self.status == Some(Mark::wanted(moved))
            && self.reason == Some(record.reason.as_str())
            && moved.is_none_or(|m| m.version.as_deref() == self.moved_version)
    }

    /// A move by the guard waits for a new version (`cmkguard:moved-version` is set).
    fn move_open(&self) -> bool {
        self.status == Some(Status::Remediated) && self.moved_version.is_some()
    }

    /// A finding is open on the secret (reported, a re-encryption under way, or a move that
    /// waits for a new version).
    fn is_open(&self) -> bool {
        matches!(
            self.status,
            Some(Status::NonCompliant | Status::Remediating)
        ) || self.move_open()
    }
}

/// A re-encryption this delivery made or finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Moved {
    /// The version labelled `AWSCURRENT` at the move: readable through the previous key too
    /// until another version is current.
    pub(crate) version: Option<String>,
}

/// What [`Actor::remediate`] did, and the version it moved when it re-encrypted.
pub(crate) struct Remediation {
    action: ActionRecord,
    moved_version: Option<String>,
}

impl Remediation {
    fn of(action: ActionRecord) -> Result<Self, AwsError> {
        Ok(Remediation {
            action,
            moved_version: None,
        })
    }
}

/// `GetKeyPolicy` and `ListGrants`, judged: what could not be read (other than transiently) is
/// the finding `key-policy-unreadable`.
async fn read_review<P: Ports>(
    ports: &P,
    scope: &Scope,
    key_arn: &str,
) -> Result<KeyReview, AwsError> {
    let unreadable = |call: &str, e: AwsError| match e {
        AwsError::Transient(_) => Err(e),
        e => Ok(KeyReview::unreadable(format!(
            "`{call}` on `{key_arn}` failed: {e}"
        ))),
    };
    // Both at once: a sweep waits for the review before it decides.
    let (policy, grants) = futures_util::future::join(
        ports.key_policy(scope, key_arn),
        ports.key_grants(scope, key_arn),
    )
    .await;
    let policy = match policy {
        Ok(policy) => policy,
        Err(e) => return unreadable("GetKeyPolicy", e),
    };
    let grants = match grants {
        Ok(grants) => grants,
        Err(e) => return unreadable("ListGrants", e),
    };
    Ok(crate::keypolicy::review(key_arn, &policy, &grants))
}

/// A transient failure that stopped a decision part way; the caller attaches the record.
pub(crate) struct Unfinished(pub(crate) String);

/// What acting needs: the configuration, the ports, and the key caches (the designated key is
/// resolved, and keys' policies reviewed, once per warm process and a few minutes).
pub(crate) struct Actor<'a, P> {
    pub(crate) config: &'a Config,
    pub(crate) ports: &'a P,
    pub(crate) keys: &'a KeyCache,
    pub(crate) reviews: &'a KeyCache<KeyReview>,
}

impl<P: Ports> Actor<'_, P> {
    /// The designated key of `scope`'s region (cached like any key's state); `None` without the alias.
    pub(crate) async fn designated_key(&self, scope: &Scope) -> Result<Option<KeyFacts>, AwsError> {
        let alias = &self.config.key_alias;
        if let Some(cached) = self.keys.get(scope, alias) {
            return Ok(Some(cached));
        }
        let resolved = self.ports.resolve_alias(scope, alias).await?;
        if let Some(target) = &resolved {
            self.keys.put(scope, alias, target);
        }
        Ok(resolved)
    }

    /// The review of the key `key_arn`'s policy and grants (cached), read in the key's own
    /// account and region: another account's key through the role the guard assumes there, or,
    /// without one, `key-policy-unreadable`. Only a transient failure is an error; any other
    /// failure to read is the finding `key-policy-unreadable` (never a pass).
    pub(crate) async fn review_key(
        &self,
        scope: &Scope,
        key_arn: &str,
    ) -> Result<KeyReview, AwsError> {
        let Some(arn) = crate::arn::Arn::kms_key(key_arn) else {
            return Ok(KeyReview::unreadable(format!(
                "`{}` is not a key ARN",
                crate::text::shorten(key_arn)
            )));
        };
        if arn.account != scope.account && self.config.assume_role_name.is_none() {
            return Ok(KeyReview::unreadable(format!(
                "key `{key_arn}` is in account `{}`, which the guard cannot read without `CMKGUARD_ASSUME_ROLE_NAME`",
                arn.account
            )));
        }
        let key_scope = Scope::new(arn.account, arn.region);
        self.reviews
            .get_or_describe(&key_scope, key_arn, || {
                read_review(self.ports, &key_scope, key_arn)
            })
            .await
    }

    /// Reads the key's policy and grants again (a key event: they may have just changed).
    pub(crate) async fn review_key_fresh(
        &self,
        scope: &Scope,
        key_arn: &str,
    ) -> Result<KeyReview, AwsError> {
        if let Some(arn) = crate::arn::Arn::kms_key(key_arn) {
            self.reviews
                .forget(&Scope::new(arn.account, arn.region), key_arn);
        }
        self.review_key(scope, key_arn).await
    }

    /// Runs a write, or says what it would do in a dry run.
    pub(crate) async fn write<F, Fut>(
        &self,
        action: Action,
        done: String,
        op: F,
    ) -> Result<ActionRecord, AwsError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(), AwsError>>,
    {
        if self.config.dry_run {
            return Ok(ActionRecord::new(
                action,
                Outcome::DryRun,
                format!("would have {done}"),
            ));
        }
        match op().await {
            Ok(()) => Ok(ActionRecord::new(action, Outcome::Done, done)),
            Err(e @ AwsError::Transient(_)) => Err(e),
            Err(e) => Ok(ActionRecord::new(action, Outcome::Failed, e.to_string())),
        }
    }
}

/// The tags of a flagged record's mark, and how the action names them: a move's own (status
/// `remediated` and the version it moved), an earlier release's move adopted (the current
/// version taken as the moved one), or a finding (`non-compliant` and its reason).
fn mark_tags(
    mark: &Mark<'_>,
    record: &Record,
    facts: &SecretFacts,
    moved: Option<&Moved>,
) -> (Vec<(String, String)>, String) {
    let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    if mark.is_guard_move(record, moved) {
        let version = mark
            .moved_version
            .or(facts.current_version.as_deref())
            .unwrap_or_default();
        return (
            vec![pair(MOVED_VERSION_TAG, version)],
            format!("`{MOVED_VERSION_TAG}={version}`"),
        );
    }
    let status = Mark::wanted(moved);
    let mut tags = vec![
        pair(STATUS_TAG, status.as_str()),
        pair(REASON_TAG, record.reason.as_str()),
    ];
    if let Some(version) = moved.and_then(|m| m.version.as_deref()) {
        tags.push(pair(MOVED_VERSION_TAG, version));
        return (
            tags,
            format!("`{STATUS_TAG}={status}`, `{MOVED_VERSION_TAG}={version}`"),
        );
    }
    (tags, format!("`{STATUS_TAG}={status}`"))
}

/// The version a move by the guard left readable through the previous key, when the record is
/// about that move: made by this delivery, or waiting for its new version.
fn move_to_finish(
    mark: &Mark<'_>,
    record: &Record,
    facts: &SecretFacts,
    moved: Option<&Moved>,
) -> Option<String> {
    match moved {
        Some(moved) => moved.version.clone(),
        None if mark.is_guard_move(record, None) => mark
            .moved_version
            .map(str::to_owned)
            .or_else(|| facts.current_version.clone()),
        None => None,
    }
}

/// Records an action; a transient failure is recorded as `failed` and stops the decision.
pub(crate) fn finish(
    record: &mut Record,
    kind: Action,
    result: Result<ActionRecord, AwsError>,
) -> Result<ActionRecord, Unfinished> {
    match result {
        Ok(action) => {
            record.actions.push(action.clone());
            Ok(action)
        }
        Err(e) => {
            record
                .actions
                .push(ActionRecord::new(kind, Outcome::Failed, e.to_string()));
            Err(Unfinished(e.to_string()))
        }
    }
}

/// A remediation's detail, with the versions it leaves on the previous key.
fn with_note(detail: String, facts: &SecretFacts) -> String {
    match facts.custom_label_note() {
        Some(note) => format!("{detail}; {note}"),
        None => detail,
    }
}

/// The SNS message for a record: a readable subject, the record as the body (and in plain words
/// for e-mail), attributes to filter on.
pub fn notification(topic_arn: &str, record: &Record, config: &Config) -> Notification {
    let name = record
        .secret_arn
        .as_deref()
        .and_then(|a| a.rsplit(":secret:").next())
        .unwrap_or("?");
    let subject = format!(
        "cmkguard: {} secret {} ({})",
        record.verdict.as_str(),
        name,
        record.reason
    );
    // SNS subjects are ASCII without line breaks, at most 100 characters.
    let subject: String = subject
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(100)
        .collect();
    Notification {
        topic_arn: topic_arn.to_owned(),
        subject,
        message: record.to_json_line(),
        email: crate::email::text(record, config),
        attributes: vec![
            ("verdict".into(), record.verdict.as_str().into()),
            ("account".into(), record.account.clone().unwrap_or_default()),
            ("region".into(), record.region.clone().unwrap_or_default()),
        ],
    }
}
