//! Finishing a move: the secret's own rotation, once.

use crate::config::Action;
use crate::facts::SecretFacts;
use crate::ports::{AwsError, Ports, Scope};
use crate::record::{ActionRecord, Outcome};
use crate::tags::ROTATION_REQUESTED_TAG;

use super::Actor;

/// `RotateSecret` for the move that left `version` readable through the previous key: only
/// in the remediation accounts, only with the secret's own rotation, once per move (the
/// request is marked on the secret first), not while a rotation is under way. A transient
/// failure takes the request mark back, so the retry asks again.
pub(crate) async fn rotate<P: Ports>(
    actor: &Actor<'_, P>,
    scope: &Scope,
    facts: &SecretFacts,
    version: &str,
) -> Result<ActionRecord, AwsError> {
    let skipped = |detail: String| Ok(ActionRecord::new(Action::Rotate, Outcome::Skipped, detail));
    if !actor.config.remediate_accounts.contains(&scope.account) {
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
    if actor.config.dry_run {
        return Ok(ActionRecord::new(
            Action::Rotate,
            Outcome::DryRun,
            "would call `RotateSecret` (the secret's own rotation, now)",
        ));
    }
    let request = [(ROTATION_REQUESTED_TAG.to_owned(), version.to_owned())];
    match actor.ports.tag_secret(scope, &facts.arn, &request).await {
        Ok(()) => {}
        Err(e @ AwsError::Transient(_)) => return Err(e),
        Err(e) => {
            return Ok(ActionRecord::new(
                Action::Rotate,
                Outcome::Failed,
                format!(
                    "not called: cannot mark the request `{ROTATION_REQUESTED_TAG}` first: {e}"
                ),
            ));
        }
    }
    match actor.ports.rotate_secret(scope, &facts.arn).await {
        Ok(()) => Ok(ActionRecord::new(
            Action::Rotate,
            Outcome::Done,
            format!(
                "called `RotateSecret`: the secret's rotation makes a new version, under the new key alone, in place of version `{version}`"
            ),
        )),
        Err(e @ AwsError::Transient(_)) => {
            let keys = [ROTATION_REQUESTED_TAG.to_owned()];
            if let Err(untag) = actor.ports.untag_secret(scope, &facts.arn, &keys).await {
                tracing::warn!(secret_arn = %facts.arn, "could not take back `{ROTATION_REQUESTED_TAG}` after a failed `RotateSecret`; the retry will not rotate: {untag}");
            }
            Err(e)
        }
        Err(e) => Ok(ActionRecord::new(
            Action::Rotate,
            Outcome::Failed,
            format!(
                "`RotateSecret` refused: {e}; the finding stays until a new version is current"
            ),
        )),
    }
}
