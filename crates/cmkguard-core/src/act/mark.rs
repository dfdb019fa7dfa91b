//! The status mark (the record of what was reported), the rotation that finishes a move, and
//! the notification.

use crate::config::Action;
use crate::facts::SecretFacts;
use crate::ports::{AwsError, Ports, Scope};
use crate::record::{ActionRecord, Outcome, Record, Verdict};
use crate::tags::{
    MOVED_VERSION_TAG, PREVIOUS_KEY_TAG, REASON_TAG, ROTATION_REQUESTED_TAG, STATUS_TAG, Status,
};

use super::rotate::rotate;
use super::{Actor, Mark, Moved, Unfinished, finish, mark_tags, move_to_finish, notification};

/// Marks the secret (`cmkguard:status`), finishes a move's rotation, then notifies; each writes
/// only when the state is not already right (see [`remediate_if_due`] for why the mark comes
/// first).
pub(crate) async fn mark_and_notify<P: Ports>(
    actor: &Actor<'_, P>,
    scope: &Scope,
    facts: &SecretFacts,
    record: &mut Record,
    moved: Option<&Moved>,
) -> Result<(), Unfinished> {
    let mark = Mark::of(facts);
    let marked = write_mark(actor, scope, facts, &mark, record, moved).await?;

    // Before the notification, so that it says what became of the rotation.
    if let Some(version) = move_to_finish(&mark, record, facts, moved)
        && actor.config.acts(Action::Rotate)
    {
        let action = rotate(actor, scope, facts, &version).await;
        if action.is_err() && moved.is_some() {
            // The retry must finish the move's report (its notification): take the mark back.
            unmark(actor, scope, facts, true, mark.status, mark.reason).await;
        }
        finish(record, Action::Rotate, action)?;
    }

    // A failed remediation is notified too: `flagged` covers it, as only flagged secrets are remediated.
    if is_flagged(record) && actor.config.acts(Action::Notify) {
        let action = notify(actor, scope, facts, &mark, record, moved, marked).await;
        finish(record, Action::Notify, action)?;
    }
    Ok(())
}

fn is_flagged(record: &Record) -> bool {
    matches!(record.verdict, Verdict::NonCompliant | Verdict::Managed)
}

/// What the mark's writes are recorded as: `tag`, or (without `tag`) `notify` or `securityhub`,
/// which keep the mark too (it is how a redelivery knows the finding was reported); a move's own
/// mark (its version) is kept by `remediate` alone too. `None`: nothing keeps the mark.
fn mark_action<P: Ports>(
    actor: &Actor<'_, P>,
    mark: &Mark<'_>,
    moved: Option<&Moved>,
) -> Option<Action> {
    [Action::Tag, Action::Notify, Action::SecurityHub]
        .into_iter()
        .find(|a| actor.config.acts(*a))
        .or_else(|| {
            let move_mark = moved.is_some() || mark.move_open();
            (move_mark && actor.config.acts(Action::Remediate)).then_some(Action::Remediate)
        })
}

/// Writes the mark the record calls for, or takes an open one away; returns whether the finding
/// is marked (so that it may be notified).
async fn write_mark<P: Ports>(
    actor: &Actor<'_, P>,
    scope: &Scope,
    facts: &SecretFacts,
    mark: &Mark<'_>,
    record: &mut Record,
    moved: Option<&Moved>,
) -> Result<bool, Unfinished> {
    let already_reported = mark.reports(record, moved);
    let Some(mark_action) = mark_action(actor, mark, moved) else {
        return Ok(already_reported);
    };
    if is_flagged(record) {
        let (tags, said) = mark_tags(mark, record, facts, moved);
        let action = if already_reported {
            Ok(ActionRecord::new(
                mark_action,
                Outcome::Skipped,
                format!("already tagged {said}"),
            ))
        } else {
            actor
                .write(mark_action, format!("tagged {said}"), || {
                    actor.ports.tag_secret(scope, &facts.arn, &tags)
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
        return Ok(matches!(action.outcome, Outcome::Done | Outcome::DryRun) || already_reported);
    }
    let (keys, was) = if mark.move_open() {
        // A new version is current: the move is finished (`remediated` and the previous key
        // stay as history; without the reason, the mark reads as a finished move).
        let keys = vec![
            MOVED_VERSION_TAG.to_owned(),
            ROTATION_REQUESTED_TAG.to_owned(),
            REASON_TAG.to_owned(),
        ];
        let was = format!(
            "`{MOVED_VERSION_TAG}={}`: a new version is current",
            mark.moved_version.unwrap_or_default()
        );
        (keys, was)
    } else if mark.is_open() {
        // Compliant now: the finding is over (a `remediated` mark stays as history), and an
        // intent that did not come to pass (someone else fixed the secret) is withdrawn.
        let mut keys = vec![STATUS_TAG.to_owned(), REASON_TAG.to_owned()];
        if mark.status == Some(Status::Remediating) {
            keys.push(PREVIOUS_KEY_TAG.to_owned());
        }
        let was = format!("`{STATUS_TAG}={}`", mark.status.map_or("", Status::as_str));
        (keys, was)
    } else {
        return Ok(already_reported);
    };
    let action = actor
        .write(mark_action, format!("removed {was}"), || {
            actor.ports.untag_secret(scope, &facts.arn, &keys)
        })
        .await;
    finish(record, mark_action, action)?;
    Ok(already_reported)
}

/// Publishes the record's notification, unless the mark says it was sent (or could not be
/// written); a failed publish takes the mark back, so the retry sends it.
async fn notify<P: Ports>(
    actor: &Actor<'_, P>,
    scope: &Scope,
    facts: &SecretFacts,
    mark: &Mark<'_>,
    record: &Record,
    moved: Option<&Moved>,
    marked: bool,
) -> Result<ActionRecord, AwsError> {
    if mark.reports(record, moved) {
        return Ok(ActionRecord::new(
            Action::Notify,
            Outcome::Skipped,
            format!(
                "already reported (the secret is marked `{STATUS_TAG}={}`)",
                mark.status.map_or("", Status::as_str)
            ),
        ));
    }
    if !marked {
        return Ok(ActionRecord::new(
            Action::Notify,
            Outcome::Failed,
            "not published: the secret could not be marked, and the mark is what keeps a finding from being notified twice",
        ));
    }
    let Some(topic) = &actor.config.sns_topic_arn else {
        return Ok(ActionRecord::new(
            Action::Notify,
            Outcome::Failed,
            "no topic configured",
        ));
    };
    let notification = notification(topic, record, actor.config);
    let sent = actor
        .write(Action::Notify, format!("published to `{topic}`"), || {
            actor.ports.publish(&notification)
        })
        .await;
    if sent.is_err() {
        // The retry must send it: take the mark back (best effort).
        unmark(
            actor,
            scope,
            facts,
            moved.is_some(),
            mark.status,
            mark.reason,
        )
        .await;
    }
    sent
}

/// Puts the mark back as it was before this delivery (a re-encryption back to `remediating`,
/// so the retry finishes it), after a notification that failed transiently.
pub(crate) async fn unmark<P: Ports>(
    actor: &Actor<'_, P>,
    scope: &Scope,
    facts: &SecretFacts,
    remediated: bool,
    status_before: Option<Status>,
    reason_before: Option<&str>,
) {
    let result = match (remediated, status_before) {
        (true, _) => {
            let tags = [(STATUS_TAG.to_owned(), Status::Remediating.to_string())];
            actor.ports.tag_secret(scope, &facts.arn, &tags).await
        }
        (false, Some(status)) => {
            let tags = [
                (STATUS_TAG.to_owned(), status.to_string()),
                (
                    REASON_TAG.to_owned(),
                    reason_before.unwrap_or_default().to_owned(),
                ),
            ];
            actor.ports.tag_secret(scope, &facts.arn, &tags).await
        }
        (false, None) => {
            let keys = [STATUS_TAG.to_owned(), REASON_TAG.to_owned()];
            actor.ports.untag_secret(scope, &facts.arn, &keys).await
        }
    };
    if let Err(e) = result {
        tracing::warn!(secret_arn = %facts.arn, "could not take the mark back after a failed notification; the retry will not notify again: {e}");
    }
}
