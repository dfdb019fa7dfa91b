//! Acting on a decision: the re-encryption (announced on the secret first), the finding's
//! import into Security Hub, the status mark, the notification. Each writes only when the state
//! on the secret says it is not done yet, so redeliveries, retries and sweeps do each thing once.

use crate::cache::KeyCache;
use crate::config::{Action, Config};
use crate::facts::{KeyFacts, KeyState, SecretFacts};
use crate::finding::{Change, Finding, RecordState};
use crate::ports::{AwsError, Notification, Ports, Scope};
use crate::reason::Reason;
use crate::record::{ActionRecord, Outcome, Record, Verdict};

pub use crate::tags::{
    DEFAULT_KEY, MOVED_VERSION_TAG, NON_COMPLIANT, PREVIOUS_KEY_TAG, REASON_TAG, REMEDIATED,
    REMEDIATING, ROTATION_REQUESTED_TAG, STATUS_TAG,
};

/// How a dry run's action detail starts when the action could not be carried out.
pub const WOULD_FAIL: &str = "would fail: ";

/// Findings per `BatchImportFindings` request (Security Hub's limit).
pub const IMPORT_BATCH: usize = 100;

/// The status mark on a secret: what the guard already reported about it.
struct Mark<'f> {
    status: Option<&'f str>,
    reason: Option<&'f str>,
    /// `cmkguard:moved-version`: the version a re-encryption left readable through the previous key.
    moved_version: Option<&'f str>,
}

impl<'f> Mark<'f> {
    fn of(facts: &'f SecretFacts) -> Self {
        let tag = |name: &str| facts.tags.get(name).map(String::as_str);
        Mark {
            status: tag(STATUS_TAG),
            reason: tag(REASON_TAG),
            moved_version: tag(MOVED_VERSION_TAG),
        }
    }

    /// The status a flagged record's mark should have.
    fn wanted(moved: Option<&Moved>) -> &'static str {
        if moved.is_some() {
            REMEDIATED
        } else {
            NON_COMPLIANT
        }
    }

    /// The guard moved this secret (this release or an earlier one): what is left of the move
    /// (`previous-key-decrypts`) was said by the move's own notification, or is said once when
    /// an earlier release's move is adopted.
    fn is_guard_move(&self, record: &Record, moved: Option<&Moved>) -> bool {
        moved.is_none()
            && record.reason == Reason::PreviousKeyDecrypts
            && self.status == Some(REMEDIATED)
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
        self.status == Some(REMEDIATED) && self.moved_version.is_some()
    }

    /// A finding is open on the secret (reported, a re-encryption under way, or a move that
    /// waits for a new version).
    fn is_open(&self) -> bool {
        matches!(self.status, Some(NON_COMPLIANT | REMEDIATING)) || self.move_open()
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

/// A transient failure that stopped a decision part way; the caller attaches the record.
pub(crate) struct Unfinished(pub(crate) String);

/// What acting needs: the configuration, the ports, and the key cache (the designated key is
/// resolved once per warm process).
pub(crate) struct Actor<'a, P> {
    pub(crate) config: &'a Config,
    pub(crate) ports: &'a P,
    pub(crate) keys: &'a KeyCache,
}

// The re-encryption, announced on the secret before it is made.
impl<P: Ports> Actor<'_, P> {
    /// Remediate (then, in [`Self::mark_and_notify`], mark and notify); each writes only when
    /// the state is not already right. Returns whether the secret is now re-encrypted.
    ///
    /// The status mark on the secret (`cmkguard:status` + `cmkguard:reason`) is the record of
    /// what was reported, so each finding is notified at most once whatever the deliveries: it
    /// is written before the notification (by `tag`, or by `notify` alone), a delivery that finds
    /// it skips the notification, and a notification that fails transiently puts the mark back so
    /// the retry sends it. A re-encryption is announced on the secret first
    /// (`cmkguard:status=remediating`), so a delivery after a partial failure finishes it.
    pub(crate) async fn remediate_if_due(
        &self,
        scope: &Scope,
        facts: &SecretFacts,
        record: &mut Record,
    ) -> Result<Option<Moved>, Unfinished> {
        let mark = Mark::of(facts);
        let mut moved = None;

        // On the designated key, the secret is compliant, or waits for the new version of the
        // move this mark announced (a retry after the move's report failed half way).
        let on_good_key =
            record.verdict == Verdict::Compliant || record.reason == Reason::PreviousKeyDecrypts;
        if mark.status == Some(REMEDIATING) && on_good_key {
            match self.designated_key(scope).await {
                Ok(Some(target)) if facts.kms_key_id.as_deref() == Some(target.arn.as_str()) => {
                    // An earlier delivery re-encrypted the secret and stopped before its mark
                    // and notification: the finding is that delivery's, and this one finishes it.
                    record.verdict = Verdict::NonCompliant;
                    record.reason = mark
                        .reason
                        .and_then(Reason::parse)
                        .unwrap_or(Reason::AwsManagedKey);
                    record.actions.push(ActionRecord::new(
                        Action::Remediate,
                        Outcome::Done,
                        format!(
                            "re-encrypted with `{}` by an earlier delivery; finishing its mark and notification",
                            target.arn
                        ),
                    ));
                    moved = Some(Moved {
                        version: mark
                            .moved_version
                            .map(str::to_owned)
                            .or_else(|| facts.current_version.clone()),
                    });
                }
                Ok(_) => {}
                Err(e @ AwsError::Transient(_)) => {
                    return finish(record, Action::Remediate, Err(e)).map(|_| None);
                }
                // Without the designated key the intent cannot be confirmed: the secret is
                // compliant, and the intent mark is removed below.
                Err(_) => {}
            }
        }

        let flagged = matches!(record.verdict, Verdict::NonCompliant | Verdict::Managed);
        // A move that waits for its new version: re-encrypting again cannot help.
        let due = flagged && moved.is_none() && record.reason != Reason::PreviousKeyDecrypts;
        if due && self.config.acts(Action::Remediate) {
            let (action, version) = match self.remediate(scope, facts, record).await {
                Ok(done) => (Ok(done.action), done.moved_version),
                Err(e) => (Err(e), None),
            };
            let action = finish(record, Action::Remediate, action)?;
            if action.outcome == Outcome::Done {
                moved = Some(Moved { version });
            }
            if matches!(action.outcome, Outcome::Done | Outcome::DryRun)
                && let Some(note) = facts.custom_label_note()
            {
                record.detail = Some(match record.detail.take() {
                    Some(detail) => format!("{detail}; {note}"),
                    None => note,
                });
            }
        }

        Ok(moved)
    }

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
}

impl<P: Ports> Actor<'_, P> {
    pub(crate) async fn remediate(
        &self,
        scope: &Scope,
        facts: &SecretFacts,
        record: &Record,
    ) -> Result<Remediation, AwsError> {
        let skipped = |detail: String| {
            Remediation::of(ActionRecord::new(
                Action::Remediate,
                Outcome::Skipped,
                detail,
            ))
        };
        // `failed` means an attempted write failed: a dry run attempts none, so it says why the
        // re-encryption would not go through instead.
        let failed = |detail: String| {
            Remediation::of(if self.config.dry_run {
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
        if record.reason.is_replica() {
            return skipped("replicas are not re-encrypted; the primary's key is right".into());
        }
        if matches!(
            record.reason,
            Reason::KeyDisabled | Reason::KeyPendingDeletion
        ) {
            return skipped(
                "not attempted: re-encryption needs Secrets Manager to decrypt with the current key, and KMS refuses a key that is disabled or pending deletion; enable the key instead (`CancelKeyDeletion`, then `EnableKey`)".into(),
            );
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
            return Remediation::of(ActionRecord::new(
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
                (REASON_TAG.to_owned(), record.reason.to_string()),
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
                after.kms_key_id.as_deref().unwrap_or(DEFAULT_KEY),
                target.arn
            ));
        }
        Ok(Remediation {
            action: ActionRecord::new(
                Action::Remediate,
                Outcome::Done,
                with_note(format!("re-encrypted with `{}`", target.arn), facts),
            ),
            // No new version is made by a key change: the current one is what is left behind.
            moved_version: after.current_version.or_else(|| facts.current_version.clone()),
        })
    }
}

// The status mark (the record of what was reported) and the notification.
impl<P: Ports> Actor<'_, P> {
    /// Marks the secret (`cmkguard:status`), then notifies; each writes only when the state is
    /// not already right (see [`Self::remediate_if_due`] for why the mark comes first).
    pub(crate) async fn mark_and_notify(
        &self,
        scope: &Scope,
        facts: &SecretFacts,
        record: &mut Record,
        moved: Option<&Moved>,
    ) -> Result<(), Unfinished> {
        let mark = Mark::of(facts);
        let (status_now, reason_now) = (mark.status, mark.reason);
        let flagged = matches!(record.verdict, Verdict::NonCompliant | Verdict::Managed);
        // `notify` and `securityhub` keep the mark too: it is how a redelivery knows the
        // finding was reported. Its writes are `tag` actions, or (without `tag`) `notify` or
        // `securityhub` ones; a move's own mark (its version) is kept by `remediate` alone too.
        let mark_action = [Action::Tag, Action::Notify, Action::SecurityHub]
            .into_iter()
            .find(|a| self.config.acts(*a))
            .or_else(|| {
                let move_mark = moved.is_some() || mark.move_open();
                (move_mark && self.config.acts(Action::Remediate)).then_some(Action::Remediate)
            });
        let marks = mark_action.is_some();
        let mark_action = mark_action.unwrap_or(Action::Tag);
        let already_reported = mark.reports(record, moved);

        let mut marked = already_reported;
        if flagged && marks {
            let (tags, said) = mark_tags(&mark, record, facts, moved);
            let action = if already_reported {
                Ok(ActionRecord::new(
                    mark_action,
                    Outcome::Skipped,
                    format!("already tagged {said}"),
                ))
            } else {
                self.write(mark_action, format!("tagged {said}"), || {
                    self.ports.tag_secret(scope, &facts.arn, &tags)
                })
                .await
            };
            let action = match action {
                Ok(action)
                    if !matches!(mark_action, Action::Tag | Action::Remediate)
                        && action.outcome != Outcome::Failed =>
                {
                    // Without `tag`, `notify`'s (or `securityhub`'s) own action says what was done.
                    action
                }
                action => finish(record, mark_action, action)?,
            };
            marked = matches!(action.outcome, Outcome::Done | Outcome::DryRun) || already_reported;
        } else if !flagged && marks && mark.move_open() {
            // A new version is current: the move is finished (`remediated` stays as history).
            let keys = [
                MOVED_VERSION_TAG.to_owned(),
                ROTATION_REQUESTED_TAG.to_owned(),
            ];
            let was = mark.moved_version.unwrap_or_default();
            let action = self
                .write(
                    mark_action,
                    format!("removed `{MOVED_VERSION_TAG}={was}`: a new version is current"),
                    || self.ports.untag_secret(scope, &facts.arn, &keys),
                )
                .await;
            finish(record, mark_action, action)?;
        } else if !flagged && marks && mark.is_open() {
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

        // Before the notification, so that it says what became of the rotation.
        if let Some(version) = move_to_finish(&mark, record, facts, moved)
            && self.config.acts(Action::Rotate)
        {
            let action = self.rotate(scope, facts, &version).await;
            if action.is_err() && moved.is_some() {
                // The retry must finish the move's report (its notification): take the mark back.
                self.unmark(scope, facts, true, status_now, reason_now)
                    .await;
            }
            finish(record, Action::Rotate, action)?;
        }

        // A failed remediation is notified too: `flagged` covers it, as only flagged secrets are remediated.
        if flagged && self.config.acts(Action::Notify) {
            let action = match &self.config.sns_topic_arn {
                _ if already_reported => Ok(ActionRecord::new(
                    Action::Notify,
                    Outcome::Skipped,
                    format!(
                        "already reported (the secret is marked `{STATUS_TAG}={}`)",
                        mark.status.unwrap_or_default()
                    ),
                )),
                _ if !marked => Ok(ActionRecord::new(
                    Action::Notify,
                    Outcome::Failed,
                    "not published: the secret could not be marked, and the mark is what keeps a finding from being notified twice",
                )),
                Some(topic) => {
                    let notification = notification(topic, record, self.config);
                    let sent = self
                        .write(Action::Notify, format!("published to `{topic}`"), || {
                            self.ports.publish(&notification)
                        })
                        .await;
                    if sent.is_err() {
                        // The retry must send it: take the mark back (best effort).
                        self.unmark(scope, facts, moved.is_some(), status_now, reason_now)
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
    pub(crate) async fn unmark(
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
}

// Finishing a move: the secret's own rotation, once.
impl<P: Ports> Actor<'_, P> {
    /// `RotateSecret` for the move that left `version` readable through the previous key: only
    /// in the remediation accounts, only with the secret's own rotation, once per move (the
    /// request is marked on the secret first), not while a rotation is under way. A transient
    /// failure takes the request mark back, so the retry asks again.
    pub(crate) async fn rotate(
        &self,
        scope: &Scope,
        facts: &SecretFacts,
        version: &str,
    ) -> Result<ActionRecord, AwsError> {
        let skipped = |detail: String| Ok(ActionRecord::new(Action::Rotate, Outcome::Skipped, detail));
        if !self.config.remediate_accounts.contains(&scope.account) {
            return skipped(format!(
                "account `{}` is not in `CMKGUARD_REMEDIATE_ACCOUNTS`",
                scope.account
            ));
        }
        if !facts.rotation_enabled {
            return skipped(
                "rotation is not enabled for the secret, and the guard never rotates a secret without its own rotation: its owner must write a new version".into(),
            );
        }
        if facts.tags.get(ROTATION_REQUESTED_TAG).map(String::as_str) == Some(version) {
            return skipped(format!(
                "`RotateSecret` was already called for version `{version}` (`{ROTATION_REQUESTED_TAG}`)"
            ));
        }
        if let Some(pending) = &facts.pending_version
            && facts.current_version.as_ref() != Some(pending)
        {
            return skipped(format!(
                "a rotation is under way (`AWSPENDING` is on version `{pending}`)"
            ));
        }
        if facts.current_version.as_deref() != Some(version) {
            return skipped(format!("`AWSCURRENT` is no longer version `{version}`"));
        }
        if self.config.dry_run {
            return Ok(ActionRecord::new(
                Action::Rotate,
                Outcome::DryRun,
                "would call `RotateSecret` (the secret's own rotation, now)",
            ));
        }
        let request = [(ROTATION_REQUESTED_TAG.to_owned(), version.to_owned())];
        match self.ports.tag_secret(scope, &facts.arn, &request).await {
            Ok(()) => {}
            Err(e @ AwsError::Transient(_)) => return Err(e),
            Err(e) => {
                return Ok(ActionRecord::new(
                    Action::Rotate,
                    Outcome::Failed,
                    format!("not called: cannot mark the request `{ROTATION_REQUESTED_TAG}` first: {e}"),
                ));
            }
        }
        match self.ports.rotate_secret(scope, &facts.arn).await {
            Ok(()) => Ok(ActionRecord::new(
                Action::Rotate,
                Outcome::Done,
                format!("called `RotateSecret`: the secret's rotation makes a new version, under the new key alone, in place of version `{version}`"),
            )),
            Err(e @ AwsError::Transient(_)) => {
                let keys = [ROTATION_REQUESTED_TAG.to_owned()];
                if let Err(untag) = self.ports.untag_secret(scope, &facts.arn, &keys).await {
                    tracing::warn!(secret_arn = %facts.arn, "could not take back `{ROTATION_REQUESTED_TAG}` after a failed `RotateSecret`; the retry will not rotate: {untag}");
                }
                Err(e)
            }
            Err(e) => Ok(ActionRecord::new(
                Action::Rotate,
                Outcome::Failed,
                format!("`RotateSecret` refused: {e}; the finding stays until a new version is current"),
            )),
        }
    }
}

impl<P: Ports> Actor<'_, P> {
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

// The Security Hub finding.
impl<P: Ports> Actor<'_, P> {
    /// The finding to import now, if the secret's Security Hub finding changes with this
    /// decision. The status mark on the secret is the record of what was reported (as for
    /// notifications): a finding already marked is not imported again.
    pub(crate) fn finding_due(
        &self,
        scope: &Scope,
        record: &Record,
        facts: &SecretFacts,
        moved: Option<&Moved>,
    ) -> Option<Finding> {
        if !self.config.acts(Action::SecurityHub) {
            return None;
        }
        let mark = Mark::of(facts);
        let change = match record.verdict {
            Verdict::NonCompliant | Verdict::Managed if mark.reports(record, moved) => {
                return None;
            }
            Verdict::NonCompliant | Verdict::Managed if moved.is_some() => Change::Remediated,
            Verdict::NonCompliant | Verdict::Managed => Change::Failed,
            Verdict::Compliant if mark.move_open() => Change::MoveFinished,
            Verdict::Compliant if mark.is_open() => Change::FixedElsewhere,
            Verdict::Exempt if mark.is_open() => Change::Exempt,
            _ => return None,
        };
        // The key the secret is on now, when the guard just re-encrypted it (the designated
        // key, resolved and cached by the re-encryption).
        let now_on = (change == Change::Remediated)
            .then(|| self.keys.get(scope, &self.config.key_alias))
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
        pair(STATUS_TAG, status),
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
