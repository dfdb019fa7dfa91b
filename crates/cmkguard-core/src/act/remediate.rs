//! The re-encryption, announced on the secret before it is made.

use crate::config::{Action, KeyPolicyMode};
use crate::facts::{KeyFacts, KeyState, SecretFacts};
use crate::ports::{AwsError, Ports, Scope};
use crate::reason::Reason;
use crate::record::{ActionRecord, Outcome, Record, Verdict};
use crate::tags::{DEFAULT_KEY, PREVIOUS_KEY_TAG, REASON_TAG, STATUS_TAG, Status};

use super::{Actor, Mark, Moved, Remediation, Unfinished, finish, with_note};

/// Remediate (then, in [`mark_and_notify`], mark and notify); each writes only when
/// the state is not already right. Returns whether the secret is now re-encrypted.
///
/// The status mark on the secret (`cmkguard:status` + `cmkguard:reason`) is the record of
/// what was reported, so each finding is notified at most once whatever the deliveries: it
/// is written before the notification (by `tag`, or by `notify` alone), a delivery that finds
/// it skips the notification, and a notification that fails transiently puts the mark back so
/// the retry sends it. A re-encryption is announced on the secret first
/// (`cmkguard:status=remediating`), so a delivery after a partial failure finishes it.
pub(crate) async fn remediate_if_due<P: Ports>(
    actor: &Actor<'_, P>,
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
    if mark.status == Some(Status::Remediating) && on_good_key {
        match actor.designated_key(scope).await {
            Ok(Some(target)) if record.is_on_key(&target.arn) => {
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
    if due && actor.config.acts(Action::Remediate) {
        let (action, version) = match remediate(actor, scope, facts, record).await {
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

/// Re-encrypts the secret with the designated key of its region, when it may and can be: the
/// intent marked on the secret first, the change verified after.
pub(crate) async fn remediate<P: Ports>(
    actor: &Actor<'_, P>,
    scope: &Scope,
    facts: &SecretFacts,
    record: &Record,
) -> Result<Remediation, AwsError> {
    let (target, key_note) = match designated_target(actor, scope, facts, record).await? {
        Ok(target) => target,
        Err(why_not) => return Remediation::of(why_not),
    };
    let with_note = |text: String, facts: &SecretFacts| match &key_note {
        Some(note) => with_note(format!("{text}; {note}"), facts),
        None => with_note(text, facts),
    };
    // `failed` means an attempted write failed: a dry run attempts none, so it says why the
    // re-encryption would not go through instead.
    let failed = |detail: String| Remediation::of(failed(actor, detail));
    if actor.config.dry_run {
        return Remediation::of(ActionRecord::new(
            Action::Remediate,
            Outcome::DryRun,
            with_note(format!("would re-encrypt with `{}`", target.arn), facts),
        ));
    }
    // Write-ahead: the intent goes on the secret first, so that a delivery after a failure
    // past this point finds it and finishes the job (the mark, the notification).
    if Status::of(&facts.tags) != Some(Status::Remediating) {
        let previous = facts.kms_key_id.as_deref().unwrap_or(DEFAULT_KEY);
        let intent = [
            (STATUS_TAG.to_owned(), Status::Remediating.to_string()),
            (REASON_TAG.to_owned(), record.reason.to_string()),
            (PREVIOUS_KEY_TAG.to_owned(), previous.to_owned()),
        ];
        match actor.ports.tag_secret(scope, &facts.arn, &intent).await {
            Ok(()) => {}
            Err(e @ AwsError::Transient(_)) => return Err(e),
            Err(e) => {
                return failed(format!(
                    "not re-encrypted: cannot mark the intent `{STATUS_TAG}={}` first: {e}",
                    Status::Remediating
                ));
            }
        }
    }
    match actor
        .ports
        .set_secret_key(scope, &facts.arn, &target.arn)
        .await
    {
        Ok(()) => {}
        Err(e @ AwsError::Transient(_)) => return Err(e),
        Err(e) => return failed(format!("`UpdateSecret` refused: {e}")),
    }
    let after = match actor.ports.describe_secret(scope, &facts.arn).await {
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
        moved_version: after
            .current_version
            .or_else(|| facts.current_version.clone()),
    })
}

/// A remediation that could not go through: `failed`, or in a dry run (which attempts nothing)
/// the planned action with why it would not.
fn failed<P: Ports>(actor: &Actor<'_, P>, detail: String) -> ActionRecord {
    if actor.config.dry_run {
        ActionRecord::would_fail(Action::Remediate, detail)
    } else {
        ActionRecord::new(Action::Remediate, Outcome::Failed, detail)
    }
}

/// The key to move the secret to (with a note when its own policy review has findings, in
/// report mode), or the action that says why there is none: the account has not opted in, the
/// secret is managed or the finding is a replica's, the key cannot decrypt (nothing can be
/// re-encrypted from it), the designated key is missing, unusable, the one the secret is on, or
/// (in enforce mode) has a key policy finding itself.
async fn designated_target<P: Ports>(
    actor: &Actor<'_, P>,
    scope: &Scope,
    facts: &SecretFacts,
    record: &Record,
) -> Result<Result<(KeyFacts, Option<String>), ActionRecord>, AwsError> {
    let skipped = |detail: String| {
        Ok(Err(ActionRecord::new(
            Action::Remediate,
            Outcome::Skipped,
            detail,
        )))
    };
    let failed = |detail: String| Ok(Err(failed(actor, detail)));
    if !actor.config.remediate_accounts.contains(&scope.account) {
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
    let alias = &actor.config.key_alias;
    let target = match actor.designated_key(scope).await {
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
    if target.manager != crate::facts::KeyManager::Customer || target.state != KeyState::Enabled {
        return failed(format!(
            "alias `{alias}` points to `{}`, which is not an enabled customer managed key",
            target.arn
        ));
    }
    if record.is_on_key(&target.arn) {
        return failed(format!(
            "the secret is already on `{}`, the key of `{alias}`, and that key is the problem",
            target.arn
        ));
    }
    let mode = actor.config.key_policy;
    if mode == KeyPolicyMode::Off {
        return Ok(Ok((target, None)));
    }
    let review = actor.review_key(scope, &target.arn).await?;
    let Some(worst) = review.findings.first() else {
        return Ok(Ok((target, None)));
    };
    let findings = format!(
        "the designated key `{}` has key policy finding(s) {}: {}",
        target.arn,
        review
            .words()
            .iter()
            .map(|w| format!("`{w}`"))
            .collect::<Vec<_>>()
            .join(", "),
        worst.detail
    );
    if mode == KeyPolicyMode::Enforce {
        return failed(format!(
            "not re-encrypted: {findings}; with `CMKGUARD_KEY_POLICY=enforce` no secret is moved onto it"
        ));
    }
    Ok(Ok((target, Some(findings))))
}
