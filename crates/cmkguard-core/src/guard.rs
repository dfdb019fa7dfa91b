//! The guard: reads an input, describes the secret and its key through the ports, decides with
//! [`crate::policy`], acts, and returns one audit record per decision.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::audit;
use crate::cache::KeyCache;
use crate::config::{Action, Config};
use crate::event::{self, ApiCall, EventMeta, Input};
use crate::facts::{KeyState, SecretFacts};
use crate::policy::{self, Decision, KeyFinding, is_foreign_key};
use crate::ports::{AwsError, Notification, Ports, Scope};
use crate::record::{ActionRecord, AuditRecord, Outcome, Verdict};

pub const STATUS_TAG: &str = "cmkguard:status";
pub const REASON_TAG: &str = "cmkguard:reason";
pub const NON_COMPLIANT: &str = "non-compliant";
pub const REMEDIATED: &str = "remediated";

/// How a dry run's action detail starts when the action could not be carried out.
pub const WOULD_FAIL: &str = "would fail: ";

/// A sweep stops this long before the invocation deadline, so it can report how far it got.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(3);

/// What the caller knows about where the guard runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// The guard's own account (from the function ARN, or STS for the CLI).
    pub own_account: String,
    /// The region a sweep covers.
    pub region: String,
    pub deadline: Option<Instant>,
    /// The Lambda request id, carried into every record (none for the CLI).
    pub request_id: Option<String>,
}

/// A secret to check by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    pub secret_id: String,
    pub account: String,
    pub region: String,
}

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error(transparent)]
    Event(#[from] event::EventError),
    /// A transient AWS failure outlasted the SDK's retries: retry the event. The records made so
    /// far (with the failed action in them) come along so they can still be logged.
    #[error("transient aws failure: {message}")]
    Transient {
        message: String,
        records: Vec<AuditRecord>,
    },
    /// A sweep stopped before the invocation deadline. Not a failure: the next sweep covers the
    /// rest, and what this one wrote is not written again, so each sweep gets further.
    #[error(
        "the sweep stopped before the invocation deadline after {} secrets ({} pages); the next sweep covers the rest",
        progress.secrets,
        progress.pages
    )]
    Stopped {
        progress: audit::Progress,
        records: Vec<AuditRecord>,
    },
}

impl GuardError {
    pub fn records(&self) -> &[AuditRecord] {
        match self {
            GuardError::Transient { records, .. } | GuardError::Stopped { records, .. } => records,
            GuardError::Event(_) => &[],
        }
    }
}

/// A transient failure inside one decision; the record is attached on the way out.
pub(crate) struct Transient(pub(crate) String);

pub struct Guard<P> {
    config: Config,
    ports: P,
    keys: KeyCache,
}

impl<P: Ports> Guard<P> {
    pub fn new(config: Config, ports: P) -> Self {
        Guard {
            config,
            ports,
            keys: KeyCache::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn ports(&self) -> &P {
        &self.ports
    }

    /// Handles one delivered event (EventBridge JSON).
    pub async fn handle(
        &self,
        event: &Value,
        ctx: &Context,
    ) -> Result<Vec<AuditRecord>, GuardError> {
        let input = event::read(event)?;
        let input = input.with_request_id(ctx.request_id.clone());
        match input {
            Input::ApiCall(call) => Ok(vec![self.check_call(&call, ctx).await?]),
            Input::Scheduled(meta) => {
                self.sweep(&Scope::new(&ctx.own_account, &ctx.region), &meta, ctx)
                    .await
            }
            Input::Ignored { meta, reason } => {
                Ok(vec![self.bare(&meta, None, Verdict::Ignored, reason, None)])
            }
            Input::Malformed {
                meta,
                reason,
                detail,
            } => Ok(vec![self.bare(
                &meta,
                None,
                Verdict::Error,
                reason,
                Some(detail),
            )]),
        }
    }

    /// Checks one secret named by hand.
    pub async fn check(
        &self,
        target: &SecretRef,
        ctx: &Context,
    ) -> Result<AuditRecord, GuardError> {
        let call = ApiCall {
            meta: EventMeta {
                event_name: Some("Check".into()),
                account: Some(target.account.clone()),
                region: Some(target.region.clone()),
                request_id: ctx.request_id.clone(),
                ..EventMeta::default()
            },
            secret_id: target.secret_id.clone(),
            account: target.account.clone(),
            region: target.region.clone(),
        };
        self.check_call(&call, ctx).await
    }

    /// Every secret of one account and region, from `ListSecrets` pages alone (see
    /// [`crate::audit`]). Near the deadline it stops and says how far it got.
    pub async fn sweep(
        &self,
        scope: &Scope,
        meta: &EventMeta,
        ctx: &Context,
    ) -> Result<Vec<AuditRecord>, GuardError> {
        let mut records = Vec::new();
        let report = audit::sweep_scope(
            self,
            scope,
            meta,
            ctx,
            audit::Limits::default().secrets,
            &mut |record| records.push(record),
        )
        .await;
        match report.end {
            audit::End::Complete | audit::End::Refused => Ok(records),
            audit::End::Transient(message) => Err(GuardError::Transient { message, records }),
            audit::End::Deadline => Err(GuardError::Stopped {
                progress: report.progress,
                records,
            }),
        }
    }

    async fn check_call(&self, call: &ApiCall, ctx: &Context) -> Result<AuditRecord, GuardError> {
        let scope = Scope::new(&call.account, &call.region);
        let meta = EventMeta {
            account: Some(call.account.clone()),
            region: Some(call.region.clone()),
            ..call.meta.clone()
        };
        let id_arn = crate::arn::Arn::secret(&call.secret_id).map(|_| call.secret_id.clone());
        if let Some(record) = self.foreign_account_error(&scope, &meta, id_arn.clone(), ctx) {
            return Ok(record);
        }
        let facts = match self.ports.describe_secret(&scope, &call.secret_id).await {
            Ok(facts) => facts,
            Err(AwsError::NotFound(_)) => {
                let detail = format!(
                    "no secret `{}` in `{}`",
                    event::shorten(&call.secret_id),
                    call.region
                );
                return Ok(self.bare(
                    &meta,
                    id_arn,
                    Verdict::NotFound,
                    "secret-not-found",
                    Some(detail),
                ));
            }
            Err(AwsError::Transient(message)) => {
                let record = self.bare(
                    &meta,
                    id_arn,
                    Verdict::Error,
                    "transient-failure",
                    Some(message.clone()),
                );
                return Err(GuardError::Transient {
                    message,
                    records: vec![record],
                });
            }
            Err(e) => {
                return Ok(self.bare(
                    &meta,
                    id_arn,
                    Verdict::Error,
                    error_reason(&e),
                    Some(e.to_string()),
                ));
            }
        };
        self.evaluate(&scope, facts, &meta)
            .await
            .map_err(|(Transient(message), record)| GuardError::Transient {
                message,
                records: vec![record],
            })
    }

    /// A secret in another account can only be reached through `CMKGUARD_ASSUME_ROLE_NAME`.
    pub(crate) fn foreign_account_error(
        &self,
        scope: &Scope,
        meta: &EventMeta,
        secret_arn: Option<String>,
        ctx: &Context,
    ) -> Option<AuditRecord> {
        (scope.account != ctx.own_account && self.config.assume_role_name.is_none()).then(|| {
            let detail = format!(
                "the secret is in account `{}`, not the guard's `{}`; set `CMKGUARD_ASSUME_ROLE_NAME` to a role the guard may assume there",
                scope.account, ctx.own_account
            );
            self.bare(meta, secret_arn, Verdict::Error, "foreign-account", Some(detail))
        })
    }

    /// Decides on a described secret and acts on the decision.
    pub(crate) async fn evaluate(
        &self,
        scope: &Scope,
        facts: SecretFacts,
        meta: &EventMeta,
    ) -> Result<AuditRecord, (Transient, AuditRecord)> {
        let mut record = self.bare(meta, Some(facts.arn.clone()), Verdict::Error, "", None);
        record.key_id = facts.kms_key_id.clone();

        let key = match self.find_key(scope, facts.kms_key_id.as_deref()).await {
            Ok(key) => key,
            Err(KeyLookupError::Transient(message)) => {
                record.reason = "transient-failure".into();
                record.detail = Some(message.clone());
                return Err((Transient(message), record));
            }
            Err(KeyLookupError::Permanent(e)) => {
                record.reason = match e {
                    AwsError::AccessDenied(_) => "key-access-denied".into(),
                    _ => "key-lookup-failed".into(),
                };
                record.detail = Some(e.to_string());
                return Ok(record);
            }
        };
        record.key_manager = key.manager();
        let mut replicas = Vec::new();
        for replica in &facts.replicas {
            let replica_scope = Scope::new(&scope.account, &replica.region);
            match self
                .find_key(&replica_scope, replica.kms_key_id.as_deref())
                .await
            {
                Ok(finding) => replicas.push((replica.region.clone(), finding)),
                Err(KeyLookupError::Transient(message)) => {
                    record.reason = "transient-failure".into();
                    record.detail = Some(message.clone());
                    return Err((Transient(message), record));
                }
                // An unreadable replica key is not a finding on its own; the primary decides.
                Err(KeyLookupError::Permanent(_)) => {}
            }
        }

        let Decision {
            verdict,
            reason,
            detail,
        } = policy::decide(&facts, &key, &replicas, &self.config);
        record.verdict = verdict;
        record.reason = reason.into();
        record.detail = detail;
        self.act(scope, &facts, &mut record)
            .await
            .map_err(|t| (t, record.clone()))?;
        Ok(record)
    }

    async fn find_key(
        &self,
        scope: &Scope,
        key_id: Option<&str>,
    ) -> Result<KeyFinding, KeyLookupError> {
        let Some(key_id) = key_id else {
            return Ok(KeyFinding::DefaultKey);
        };
        if crate::arn::is_aws_managed_alias(key_id) {
            return Ok(KeyFinding::AwsAlias);
        }
        let described = self
            .keys
            .get_or_describe(scope, key_id, || self.ports.describe_key(scope, key_id))
            .await;
        match described {
            Ok(facts) => Ok(KeyFinding::Described(facts)),
            Err(AwsError::NotFound(_)) => Ok(KeyFinding::NotFound),
            Err(AwsError::AccessDenied(_)) if is_foreign_key(key_id, &scope.account) => {
                Ok(KeyFinding::ForeignKeyUndescribed {
                    arn: key_id.to_owned(),
                })
            }
            Err(AwsError::Transient(message)) => Err(KeyLookupError::Transient(message)),
            Err(e) => Err(KeyLookupError::Permanent(e)),
        }
    }

    /// Remediate, then tag, then notify; each writes only when the state is not already right.
    async fn act(
        &self,
        scope: &Scope,
        facts: &SecretFacts,
        record: &mut AuditRecord,
    ) -> Result<(), Transient> {
        let flagged = matches!(record.verdict, Verdict::NonCompliant | Verdict::Managed);
        let mut remediated = false;

        if flagged && self.config.acts(Action::Remediate) {
            let action = self.remediate(scope, facts, record).await;
            let action = finish(record, Action::Remediate, action)?;
            remediated = action.outcome == Outcome::Done;
            if matches!(action.outcome, Outcome::Done | Outcome::DryRun)
                && let Some(note) = facts.custom_label_note()
            {
                record.detail = Some(match record.detail.take() {
                    Some(detail) => format!("{detail}; {note}"),
                    None => note,
                });
            }
        }

        let status_now = facts.tags.get(STATUS_TAG).map(String::as_str);
        let reason_now = facts.tags.get(REASON_TAG).map(String::as_str);
        let wanted_status = if remediated {
            REMEDIATED
        } else {
            NON_COMPLIANT
        };
        let already_reported = self.config.acts(Action::Tag)
            && status_now == Some(wanted_status)
            && reason_now == Some(&record.reason);

        if self.config.acts(Action::Tag) {
            if flagged {
                let action = if already_reported {
                    Ok(ActionRecord::new(
                        Action::Tag,
                        Outcome::Skipped,
                        format!("already tagged `{STATUS_TAG}={wanted_status}`"),
                    ))
                } else {
                    let tags = [
                        (STATUS_TAG.to_owned(), wanted_status.to_owned()),
                        (REASON_TAG.to_owned(), record.reason.clone()),
                    ];
                    self.write(
                        Action::Tag,
                        format!("tagged `{STATUS_TAG}={wanted_status}`"),
                        || self.ports.tag_secret(scope, &facts.arn, &tags),
                    )
                    .await
                };
                finish(record, Action::Tag, action)?;
            } else if record.verdict == Verdict::Compliant && status_now == Some(NON_COMPLIANT) {
                let keys = [STATUS_TAG.to_owned(), REASON_TAG.to_owned()];
                let action = self
                    .write(
                        Action::Tag,
                        format!("removed `{STATUS_TAG}={NON_COMPLIANT}`"),
                        || self.ports.untag_secret(scope, &facts.arn, &keys),
                    )
                    .await;
                finish(record, Action::Tag, action)?;
            }
        }

        // A failed remediation is notified too: `flagged` covers it, as only flagged secrets are remediated.
        if flagged && self.config.acts(Action::Notify) {
            let action = match &self.config.sns_topic_arn {
                _ if already_reported => Ok(ActionRecord::new(
                    Action::Notify,
                    Outcome::Skipped,
                    "already reported (the secret was tagged before)",
                )),
                Some(topic) => {
                    let notification = notification(topic, record);
                    self.write(Action::Notify, format!("published to `{topic}`"), || {
                        self.ports.publish(&notification)
                    })
                    .await
                }
                None => Ok(ActionRecord::new(
                    Action::Notify,
                    Outcome::Failed,
                    "no topic configured",
                )),
            };
            finish(record, Action::Notify, action)?;
        }
        Ok(())
    }

    async fn remediate(
        &self,
        scope: &Scope,
        facts: &SecretFacts,
        record: &AuditRecord,
    ) -> Result<ActionRecord, AwsError> {
        let skipped = |detail: String| {
            Ok(ActionRecord::new(
                Action::Remediate,
                Outcome::Skipped,
                detail,
            ))
        };
        // `failed` means an attempted write failed: a dry run attempts none, so it says why the
        // re-encryption would not go through instead.
        let failed = |detail: String| {
            Ok(if self.config.dry_run {
                ActionRecord::new(
                    Action::Remediate,
                    Outcome::DryRun,
                    format!("{WOULD_FAIL}{detail}"),
                )
            } else {
                ActionRecord::new(Action::Remediate, Outcome::Failed, detail)
            })
        };
        if !self.config.remediate_accounts.contains(&scope.account) {
            return skipped(format!(
                "account `{}` is not in `CMKGUARD_REMEDIATE_ACCOUNTS`",
                scope.account
            ));
        }
        if let Some(service) = &facts.owning_service {
            return skipped(format!("managed by `{service}`: never re-encrypted"));
        }
        if record.reason.starts_with("replica-") {
            return skipped("replicas are not re-encrypted; the primary's key is right".into());
        }
        let alias = &self.config.key_alias;
        // The designated key shares the key cache (same lifetime as any key's state).
        let resolved = match self.keys.get(scope, alias) {
            Some(cached) => Ok(Some(cached)),
            None => self.ports.resolve_alias(scope, alias).await,
        };
        let target = match resolved {
            Ok(Some(target)) => {
                self.keys.put(scope, alias, &target);
                target
            }
            Ok(None) => return failed(format!("alias `{alias}` not found in `{}`", scope.region)),
            Err(e @ AwsError::Transient(_)) => return Err(e),
            Err(e) => {
                return failed(format!(
                    "cannot resolve alias `{alias}` in `{}`: {e}",
                    scope.region
                ));
            }
        };
        if target.manager != crate::facts::KeyManager::Customer || target.state != KeyState::Enabled
        {
            return failed(format!(
                "alias `{alias}` points to `{}`, which is not an enabled customer managed key",
                target.arn
            ));
        }
        if facts.kms_key_id.as_deref() == Some(target.arn.as_str()) {
            return failed(format!(
                "the secret is already on `{}`, the key of `{alias}`, and that key is the problem",
                target.arn
            ));
        }
        if self.config.dry_run {
            return Ok(ActionRecord::new(
                Action::Remediate,
                Outcome::DryRun,
                with_note(format!("would re-encrypt with `{}`", target.arn), facts),
            ));
        }
        match self
            .ports
            .set_secret_key(scope, &facts.arn, &target.arn)
            .await
        {
            Ok(()) => {}
            Err(e @ AwsError::Transient(_)) => return Err(e),
            Err(e) => return failed(format!("`UpdateSecret` refused: {e}")),
        }
        let after = match self.ports.describe_secret(scope, &facts.arn).await {
            Ok(after) => after,
            Err(e @ AwsError::Transient(_)) => return Err(e),
            Err(e) => return failed(format!("updated, but could not verify: {e}")),
        };
        if after.kms_key_id.as_deref() != Some(target.arn.as_str()) {
            return failed(format!(
                "updated, but the secret reports key `{}` instead of `{}`",
                after.kms_key_id.as_deref().unwrap_or("aws/secretsmanager"),
                target.arn
            ));
        }
        Ok(ActionRecord::new(
            Action::Remediate,
            Outcome::Done,
            with_note(format!("re-encrypted with `{}`", target.arn), facts),
        ))
    }

    /// Runs a write, or says what it would do in a dry run.
    async fn write<F, Fut>(
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

    pub(crate) fn bare(
        &self,
        meta: &EventMeta,
        secret_arn: Option<String>,
        verdict: Verdict,
        reason: &str,
        detail: Option<String>,
    ) -> AuditRecord {
        AuditRecord {
            event_id: meta.event_id.clone(),
            request_id: meta.request_id.clone(),
            event_name: meta.event_name.clone(),
            account: meta.account.clone(),
            region: meta.region.clone(),
            secret_arn,
            actor: meta.actor.clone(),
            key_id: None,
            key_manager: None,
            verdict,
            reason: reason.to_owned(),
            detail,
            dry_run: self.config.dry_run,
            actions: Vec::new(),
        }
    }
}

enum KeyLookupError {
    Transient(String),
    Permanent(AwsError),
}

/// Records an action; a transient failure is recorded as `failed` and stops the decision.
fn finish(
    record: &mut AuditRecord,
    kind: Action,
    result: Result<ActionRecord, AwsError>,
) -> Result<ActionRecord, Transient> {
    match result {
        Ok(action) => {
            record.actions.push(action.clone());
            Ok(action)
        }
        Err(e) => {
            record
                .actions
                .push(ActionRecord::new(kind, Outcome::Failed, e.to_string()));
            Err(Transient(e.to_string()))
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

pub(crate) fn error_reason(e: &AwsError) -> &'static str {
    match e {
        AwsError::AccessDenied(_) => "access-denied",
        AwsError::NotFound(_) => "not-found",
        AwsError::Transient(_) => "transient-failure",
        AwsError::Other(_) => "aws-error",
    }
}

/// The SNS message for a record: a readable subject, the record as the body, attributes to filter on.
pub fn notification(topic_arn: &str, record: &AuditRecord) -> Notification {
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
        attributes: vec![
            ("verdict".into(), record.verdict.as_str().into()),
            ("account".into(), record.account.clone().unwrap_or_default()),
            ("region".into(), record.region.clone().unwrap_or_default()),
        ],
    }
}
