//! The Security Hub finding.

use crate::config::Action;
use crate::facts::SecretFacts;
use crate::finding::{Change, Finding, RecordState};
use crate::ports::{AwsError, Ports, Scope};
use crate::record::{ActionRecord, Outcome, Record, Verdict};

use super::{Actor, IMPORT_BATCH, Mark, Moved};

/// The finding to import now, if the secret's Security Hub finding changes with this
/// decision. The status mark on the secret is the record of what was reported (as for
/// notifications): a finding already marked is not imported again.
pub(crate) fn finding_due<P: Ports>(
    actor: &Actor<'_, P>,
    scope: &Scope,
    record: &Record,
    facts: &SecretFacts,
    moved: Option<&Moved>,
) -> Option<Finding> {
    if !actor.config.acts(Action::SecurityHub) {
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
        .then(|| actor.keys.get(scope, &actor.config.key_alias))
        .flatten()
        .map(|key| key.arn);
    Finding::new(change, record, Some(facts), now_on.as_deref())
}

/// Imports `findings` (all of `scope`), 100 per request; one action per finding, in order.
/// A transient failure comes back as the error (the decision stops before its mark, so the
/// retry imports again); anything else is a `failed` action and the other actions go on.
pub(crate) async fn import_findings<P: Ports>(
    actor: &Actor<'_, P>,
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
    if actor.config.dry_run {
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
        match actor.ports.import_findings(scope, batch).await {
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
