//! The guard: reads an input, describes the secret and its key through the ports, decides with
//! [`crate::policy`], acts, and returns one audit record per decision.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::audit;
use crate::cache::KeyCache;
use crate::config::{Action, Config};
use crate::event::{self, ApiCall, EventMeta, Input};
use crate::facts::{KeyState, SecretFacts};
use crate::finding::{Change, Finding, RecordState};
use crate::policy::{self, Decision, KeyFinding, is_foreign_key};
use crate::ports::{AwsError, Notification, Ports, Scope};
use crate::record::{ActionRecord, AuditRecord, Outcome, Verdict};

pub const STATUS_TAG: &str = "cmkguard:status";
pub const REASON_TAG: &str = "cmkguard:reason";
pub const NON_COMPLIANT: &str = "non-compliant";
pub const REMEDIATED: &str = "remediated";
/// Written before a re-encryption, with [`PREVIOUS_KEY_TAG`]; replaced by [`REMEDIATED`] once the
/// re-encryption is done and reported.
pub const REMEDIATING: &str = "remediating";
/// The key a secret was on before the guard re-encrypted it (kept as history).
pub const PREVIOUS_KEY_TAG: &str = "cmkguard:previous-key";
/// [`PREVIOUS_KEY_TAG`]'s value for a secret on the AWS managed default key.
pub const DEFAULT_KEY: &str = "aws/secretsmanager";

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

/// Findings per `BatchImportFindings` request (Security Hub's limit).
pub const IMPORT_BATCH: usize = 100;

/// A decision whose finding is still to be imported (see [`Guard::decide`]).
pub(crate) struct Decided {
    record: AuditRecord,
    facts: SecretFacts,
    remediated: bool,
    pub(crate) finding: Option<Finding>,
    /// Nothing more to do (the key could not be read): the record is final.
    finished: bool,
}

impl Decided {
    fn finished(record: AuditRecord, facts: SecretFacts) -> Self {
        Decided {
            record,
            facts,
            remediated: false,
            finding: None,
            finished: true,
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
                let mut record = self.bare(
                    &meta,
                    id_arn,
                    Verdict::NotFound,
                    "secret-not-found",
                    Some(detail),
                );
                if let Err(Transient(message)) = self.archive_deleted(&scope, &mut record).await {
                    return Err(GuardError::Transient {
                        message,
                        records: vec![record],
                    });
                }
                return Ok(record);
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

    /// A deleted secret's finding is archived (the ARN is known when the event named it).
    async fn archive_deleted(
        &self,
        scope: &Scope,
        record: &mut AuditRecord,
    ) -> Result<(), Transient> {
        if !self.config.acts(Action::SecurityHub) {
            return Ok(());
        }
        let Some(finding) = Finding::new(Change::Deleted, record, None, None) else {
            return Ok(());
        };
        if let Some(imported) = self.import_findings(scope, &[finding]).await.pop() {
            finish(record, Action::SecurityHub, imported)?;
        }
        Ok(())
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
        let decided = self.decide(scope, facts, meta).await?;
        let imported = match &decided.finding {
            Some(finding) => self
                .import_findings(scope, std::slice::from_ref(finding))
                .await
                .pop(),
            None => None,
        };
        self.report(scope, decided, imported).await
    }

    /// The first half of [`Self::evaluate`]: the verdict, and the re-encryption when one is due.
    /// A sweep runs it for a whole page, imports the page's findings in one batch, then runs
    /// [`Self::report`] for each secret.
    pub(crate) async fn decide(
        &self,
        scope: &Scope,
        facts: SecretFacts,
        meta: &EventMeta,
    ) -> Result<Decided, (Transient, AuditRecord)> {
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
                return Ok(Decided::finished(record, facts));
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
        let remediated = self
            .remediate_if_due(scope, &facts, &mut record)
            .await
            .map_err(|t| (t, record.clone()))?;
        let finding = self.finding_due(&record, &facts, remediated);
        Ok(Decided {
            record,
            facts,
            remediated,
            finding,
            finished: false,
        })
    }

    /// The second half of [`Self::evaluate`]: the outcome of the finding's import (when one was
    /// due), then the mark and the notification.
    pub(crate) async fn report(
        &self,
        scope: &Scope,
        decided: Decided,
        imported: Option<Result<ActionRecord, AwsError>>,
    ) -> Result<AuditRecord, (Transient, AuditRecord)> {
        let Decided {
            mut record,
            facts,
            remediated,
            finished,
            ..
        } = decided;
        if finished {
            return Ok(record);
        }
        if let Some(imported) = imported {
            finish(&mut record, Action::SecurityHub, imported).map_err(|t| (t, record.clone()))?;
        }
        self.mark_and_notify(scope, &facts, &mut record, remediated)
            .await
            .map_err(|t| (t, record.clone()))?;
        Ok(record)
    }

    /// The finding to import now, if the secret's Security Hub finding changes with this
    /// decision. The status mark on the secret is the record of what was reported (as for
    /// notifications): a finding already marked is not imported again.
    fn finding_due(
        &self,
        record: &AuditRecord,
        facts: &SecretFacts,
        remediated: bool,
    ) -> Option<Finding> {
        if !self.config.acts(Action::SecurityHub) {
            return None;
        }
        let status_now = facts.tags.get(STATUS_TAG).map(String::as_str);
        let reason_now = facts.tags.get(REASON_TAG).map(String::as_str);
        let change = match record.verdict {
            Verdict::NonCompliant | Verdict::Managed => {
                let wanted = if remediated {
                    REMEDIATED
                } else {
                    NON_COMPLIANT
                };
                if status_now == Some(wanted) && reason_now == Some(record.reason.as_str()) {
                    return None;
                }
                if remediated {
                    Change::Remediated
                } else {
                    Change::Failed
                }
            }
            Verdict::Compliant if matches!(status_now, Some(NON_COMPLIANT | REMEDIATING)) => {
                Change::FixedElsewhere
            }
            Verdict::Exempt if matches!(status_now, Some(NON_COMPLIANT | REMEDIATING)) => {
                Change::Exempt
            }
            _ => return None,
        };
        // The key the secret is on now, when the guard just re-encrypted it (the designated
        // key, resolved and cached by the re-encryption).
        let scope = Scope::new(
            record.account.clone().unwrap_or_default(),
            record.region.clone().unwrap_or_default(),
        );
        let now_on = (change == Change::Remediated)
            .then(|| self.keys.get(&scope, &self.config.key_alias))
            .flatten()
            .map(|key| key.arn);
        Finding::new(change, record, Some(facts), now_on.as_deref())
    }

    /// Imports `findings` (all of `scope`), 100 per request; one action per finding, in order.
    /// A transient failure comes back as the error (the decision stops before its mark, so the
    /// retry imports again); anything else is a `failed` action and the other actions go on.
    pub(crate) async fn import_findings(
        &self,
        scope: &Scope,
        findings: &[Finding],
    ) -> Vec<Result<ActionRecord, AwsError>> {
        let described = |f: &Finding| {
            format!(
                "`{}` ({}, {}{})",
                f.id,
                f.compliance.as_str(),
                f.severity.as_str(),
                match f.record_state {
                    RecordState::Archived => ", archived",
                    RecordState::Active => "",
                }
            )
        };
        if self.config.dry_run {
            return findings
                .iter()
                .map(|f| {
                    Ok(ActionRecord::new(
                        Action::SecurityHub,
                        Outcome::DryRun,
                        format!("would import finding {}", described(f)),
                    ))
                })
                .collect();
        }
        let mut out = Vec::with_capacity(findings.len());
        for batch in findings.chunks(IMPORT_BATCH) {
            match self.ports.import_findings(scope, batch).await {
                Ok(refused) => out.extend(batch.iter().map(|f| {
                    Ok(match refused.iter().find(|r| r.id == f.id) {
                        Some(r) => ActionRecord::new(
                            Action::SecurityHub,
                            Outcome::Failed,
                            format!(
                                "Security Hub refused finding `{}`: {}: {}",
                                f.id, r.code, r.message
                            ),
                        ),
                        None => ActionRecord::new(
                            Action::SecurityHub,
                            Outcome::Done,
                            format!("imported finding {}", described(f)),
                        ),
                    })
                })),
                Err(e @ AwsError::Transient(_)) => out.extend(batch.iter().map(|_| Err(e.clone()))),
                Err(e) => out.extend(batch.iter().map(|_| {
                    Ok(ActionRecord::new(
                        Action::SecurityHub,
                        Outcome::Failed,
                        format!("`BatchImportFindings` failed: {e}"),
                    ))
                })),
            }
        }
        out
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

    /// Remediate (then, in [`Self::mark_and_notify`], mark and notify); each writes only when
    /// the state is not already right. Returns whether the secret is now re-encrypted.
    ///
    /// The status mark on the secret (`cmkguard:status` + `cmkguard:reason`) is the record of
    /// what was reported, so each finding is notified at most once whatever the deliveries: it
    /// is written before the notification (by `tag`, or by `notify` alone), a delivery that finds
    /// it skips the notification, and a notification that fails transiently puts the mark back so
    /// the retry sends it. A re-encryption is announced on the secret first
    /// (`cmkguard:status=remediating`), so a delivery after a partial failure finishes it.
    async fn remediate_if_due(
        &self,
        scope: &Scope,
        facts: &SecretFacts,
        record: &mut AuditRecord,
    ) -> Result<bool, Transient> {
        let status_now = facts.tags.get(STATUS_TAG).map(String::as_str);
        let reason_now = facts.tags.get(REASON_TAG).map(String::as_str);
        let mut remediated = false;

        if status_now == Some(REMEDIATING) && record.verdict == Verdict::Compliant {
            match self.designated_key(scope).await {
                Ok(Some(target)) if facts.kms_key_id.as_deref() == Some(target.arn.as_str()) => {
                    // An earlier delivery re-encrypted the secret and stopped before its mark
                    // and notification: the finding is that delivery's, and this one finishes it.
                    record.verdict = Verdict::NonCompliant;
                    record.reason = reason_now.unwrap_or("aws-managed-key").to_owned();
                    record.actions.push(ActionRecord::new(
                        Action::Remediate,
                        Outcome::Done,
                        format!(
                            "re-encrypted with `{}` by an earlier delivery; finishing its mark and notification",
                            target.arn
                        ),
                    ));
                    remediated = true;
                }
                Ok(_) => {}
                Err(e @ AwsError::Transient(_)) => {
                    return finish(record, Action::Remediate, Err(e)).map(|_| false);
                }
                // Without the designated key the intent cannot be confirmed: the secret is
                // compliant, and the intent mark is removed below.
                Err(_) => {}
            }
        }

        let flagged = matches!(record.verdict, Verdict::NonCompliant | Verdict::Managed);
        if flagged && !remediated && self.config.acts(Action::Remediate) {
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

        Ok(remediated)
    }

    /// Marks the secret (`cmkguard:status`), then notifies; each writes only when the state is
    /// not already right (see [`Self::remediate_if_due`] for why the mark comes first).
    async fn mark_and_notify(
        &self,
        scope: &Scope,
        facts: &SecretFacts,
        record: &mut AuditRecord,
        remediated: bool,
    ) -> Result<(), Transient> {
        let status_now = facts.tags.get(STATUS_TAG).map(String::as_str);
        let reason_now = facts.tags.get(REASON_TAG).map(String::as_str);
        let flagged = matches!(record.verdict, Verdict::NonCompliant | Verdict::Managed);
        // `notify` and `securityhub` keep the mark too: it is how a redelivery knows the
        // finding was reported.
        let marks = [Action::Tag, Action::Notify, Action::SecurityHub]
            .into_iter()
            .any(|a| self.config.acts(a));
        // The mark's writes are `tag` actions, or (without `tag`) `notify` or `securityhub` ones.
        let mark_action = [Action::Tag, Action::Notify, Action::SecurityHub]
            .into_iter()
            .find(|a| self.config.acts(*a))
            .unwrap_or(Action::Tag);
        let wanted_status = if remediated {
            REMEDIATED
        } else {
            NON_COMPLIANT
        };
        let already_reported =
            status_now == Some(wanted_status) && reason_now == Some(&record.reason);

        let mut marked = already_reported;
        if flagged && marks {
            let action = if already_reported {
                Ok(ActionRecord::new(
                    mark_action,
                    Outcome::Skipped,
                    format!("already tagged `{STATUS_TAG}={wanted_status}`"),
                ))
            } else {
                let tags = [
                    (STATUS_TAG.to_owned(), wanted_status.to_owned()),
                    (REASON_TAG.to_owned(), record.reason.clone()),
                ];
                self.write(
                    mark_action,
                    format!("tagged `{STATUS_TAG}={wanted_status}`"),
                    || self.ports.tag_secret(scope, &facts.arn, &tags),
                )
                .await
            };
            let action = match action {
                Ok(action) if mark_action != Action::Tag && action.outcome != Outcome::Failed => {
                    // Without `tag`, `notify`'s (or `securityhub`'s) own action says what was done.
                    action
                }
                action => finish(record, mark_action, action)?,
            };
            marked = matches!(action.outcome, Outcome::Done | Outcome::DryRun) || already_reported;
        } else if !flagged && marks && matches!(status_now, Some(NON_COMPLIANT | REMEDIATING)) {
            // Compliant now: the finding is over (a `remediated` mark stays as history), and an
            // intent that did not come to pass (someone else fixed the secret) is withdrawn.
            let mut keys = vec![STATUS_TAG.to_owned(), REASON_TAG.to_owned()];
            if status_now == Some(REMEDIATING) {
                keys.push(PREVIOUS_KEY_TAG.to_owned());
            }
            let was = status_now.unwrap_or_default();
            let action = self
                .write(mark_action, format!("removed `{STATUS_TAG}={was}`"), || {
                    self.ports.untag_secret(scope, &facts.arn, &keys)
                })
                .await;
            finish(record, mark_action, action)?;
        }

        // A failed remediation is notified too: `flagged` covers it, as only flagged secrets are remediated.
        if flagged && self.config.acts(Action::Notify) {
            let action = match &self.config.sns_topic_arn {
                _ if already_reported => Ok(ActionRecord::new(
                    Action::Notify,
                    Outcome::Skipped,
                    format!(
                        "already reported (the secret is marked `{STATUS_TAG}={wanted_status}`)"
                    ),
                )),
                _ if !marked => Ok(ActionRecord::new(
                    Action::Notify,
                    Outcome::Failed,
                    "not published: the secret could not be marked, and the mark is what keeps a finding from being notified twice",
                )),
                Some(topic) => {
                    let notification = notification(topic, record);
                    let sent = self
                        .write(Action::Notify, format!("published to `{topic}`"), || {
                            self.ports.publish(&notification)
                        })
                        .await;
                    if sent.is_err() {
                        // The retry must send it: take the mark back (best effort).
                        self.unmark(scope, facts, remediated, status_now, reason_now)
                            .await;
                    }
                    sent
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

    /// Puts the mark back as it was before this delivery (a re-encryption back to `remediating`,
    /// so the retry finishes it), after a notification that failed transiently.
    async fn unmark(
        &self,
        scope: &Scope,
        facts: &SecretFacts,
        remediated: bool,
        status_before: Option<&str>,
        reason_before: Option<&str>,
    ) {
        let result = match (remediated, status_before) {
            (true, _) => {
                let tags = [(STATUS_TAG.to_owned(), REMEDIATING.to_owned())];
                self.ports.tag_secret(scope, &facts.arn, &tags).await
            }
            (false, Some(status)) => {
                let tags = [
                    (STATUS_TAG.to_owned(), status.to_owned()),
                    (
                        REASON_TAG.to_owned(),
                        reason_before.unwrap_or_default().to_owned(),
                    ),
                ];
                self.ports.tag_secret(scope, &facts.arn, &tags).await
            }
            (false, None) => {
                let keys = [STATUS_TAG.to_owned(), REASON_TAG.to_owned()];
                self.ports.untag_secret(scope, &facts.arn, &keys).await
            }
        };
        if let Err(e) = result {
            tracing::warn!(secret_arn = %facts.arn, "could not take the mark back after a failed notification; the retry will not notify again: {e}");
        }
    }

    /// The designated key of `scope`'s region (cached like any key's state); `None` without the alias.
    async fn designated_key(
        &self,
        scope: &Scope,
    ) -> Result<Option<crate::facts::KeyFacts>, AwsError> {
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
        let target = match self.designated_key(scope).await {
            Ok(Some(target)) => target,
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
        // Write-ahead: the intent goes on the secret first, so that a delivery after a failure
        // past this point finds it and finishes the job (the mark, the notification).
        if facts.tags.get(STATUS_TAG).map(String::as_str) != Some(REMEDIATING) {
            let previous = facts.kms_key_id.as_deref().unwrap_or(DEFAULT_KEY);
            let intent = [
                (STATUS_TAG.to_owned(), REMEDIATING.to_owned()),
                (REASON_TAG.to_owned(), record.reason.clone()),
                (PREVIOUS_KEY_TAG.to_owned(), previous.to_owned()),
            ];
            match self.ports.tag_secret(scope, &facts.arn, &intent).await {
                Ok(()) => {}
                Err(e @ AwsError::Transient(_)) => return Err(e),
                Err(e) => {
                    return failed(format!(
                        "not re-encrypted: cannot mark the intent `{STATUS_TAG}={REMEDIATING}` first: {e}"
                    ));
                }
            }
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
