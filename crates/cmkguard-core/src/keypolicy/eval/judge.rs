//! Judging a statement: simulating the imagined callers' requests on the whole policy.

use std::collections::BTreeMap;

use super::super::document::{Effect, PrincipalKind, Statement};
use super::super::matching::{Tri, account_of_root, action_matches};
use super::super::probe::Caller;
use super::super::request::{Access, applies, decide};
use super::super::{KeyPolicyFinding, KeyPolicyWord, quote};
use super::{DECRYPTING, MANAGING, Review, Tier, finding};

/// What one simulation found: the first action allowed, or the first that could not be judged.
enum Outcome {
    /// The action, and whom the allowed caller stands for.
    Allowed(&'static str, String),
    Unknown(&'static str),
    NotAllowed,
}

/// Judging: simulating the imagined callers' requests.
impl Review<'_> {
    /// The most severe tier whose callers `s` lets decrypt becomes a finding; an unknown answer
    /// on the way is `Unreadable`.
    pub(super) fn judge(&self, s: &Statement, tiers: &[Tier], out: &mut Vec<KeyPolicyFinding>) {
        let decrypting = self.actions_of(s, &DECRYPTING);
        if decrypting.is_empty() {
            return;
        }
        for tier in tiers {
            if tier.word == KeyPolicyWord::Unreadable {
                out.push(finding(
                    tier.word,
                    format!("{} allows {}", s.label(), tier.whom),
                ));
                return;
            }
            match self.simulate(s, &tier.callers, &decrypting) {
                Outcome::Allowed(action, caller) => {
                    let mut detail = format!("{} allows `{action}` to {}", s.label(), tier.whom);
                    if tier.name_caller {
                        detail.push_str(&format!(" ({caller})"));
                    }
                    if tier.word == KeyPolicyWord::AccountWide && through_secrets_manager(s) {
                        detail.push_str(
                            " through Secrets Manager: no better than the AWS managed key \
                             `aws/secretsmanager`",
                        );
                    }
                    out.push(finding(tier.word, detail));
                    return;
                }
                Outcome::Unknown(action) => out.push(finding(
                    KeyPolicyWord::Unreadable,
                    format!(
                        "{}: cannot judge whether it allows `{action}` to {} (a policy variable or a \
                         condition operator the review does not evaluate)",
                        s.label(),
                        tier.whom
                    ),
                )),
                Outcome::NotAllowed => {}
            }
        }
    }

    /// The actions of `candidates` that `s` names or may name.
    fn actions_of(&self, s: &Statement, candidates: &[&'static str]) -> Vec<&'static str> {
        candidates
            .iter()
            .copied()
            .filter(|a| {
                let named = Tri::any(s.actions.items.iter().map(|p| action_matches(p, a)));
                (if s.actions.not { named.not() } else { named }) != Tri::No
            })
            .collect()
    }

    /// Whether one of `callers` may take one of `actions` through `s`, the whole policy considered.
    fn simulate(&self, s: &Statement, callers: &[Caller], actions: &[&'static str]) -> Outcome {
        let mut unknown = None;
        for &action in actions {
            for caller in callers {
                for request in caller.requests(self.key, s, self.statements, action) {
                    match (applies(s, &request), decide(self.statements, &request)) {
                        (Tri::Yes, Access::Allowed) => {
                            return Outcome::Allowed(action, caller.describe());
                        }
                        (Tri::No, _) | (_, Access::NotAllowed) => {}
                        _ => unknown = unknown.or(Some(action)),
                    }
                }
            }
        }
        unknown.map_or(Outcome::NotAllowed, Outcome::Unknown)
    }

    /// Principals named by ARN (not an account root) allowed both to manage and to decrypt,
    /// across statements.
    pub(super) fn admins_who_decrypt(&self) -> Vec<KeyPolicyFinding> {
        // Lower-cased ARN -> (as written, where it may manage, where it may decrypt).
        let mut seen: BTreeMap<String, (String, Option<String>, Option<String>)> = BTreeMap::new();
        let mut out = Vec::new();
        for s in self
            .statements
            .iter()
            .filter(|s| s.effect == Effect::Allow && !s.principals.not)
        {
            for p in &s.principals.items {
                let named = p.kind == PrincipalKind::Aws && account_of_root(&p.id).is_none();
                let Some(caller) = Caller::named(&p.id, None).filter(|_| named) else {
                    continue;
                };
                let entry =
                    seen.entry(p.id.to_ascii_lowercase())
                        .or_insert((p.id.clone(), None, None));
                for (actions, slot) in [(&MANAGING[..], 1), (&DECRYPTING[..], 2)] {
                    let actions = self.actions_of(s, actions);
                    let found = match self.simulate(s, std::slice::from_ref(&caller), &actions) {
                        Outcome::Allowed(a, _) => format!("{}: `{a}`", s.label()),
                        Outcome::Unknown(a) => {
                            out.push(finding(
                                KeyPolicyWord::Unreadable,
                                format!(
                                    "{}: cannot judge whether it allows `{a}` to `{}`",
                                    s.label(),
                                    quote(&p.id)
                                ),
                            ));
                            continue;
                        }
                        Outcome::NotAllowed => continue,
                    };
                    let slot = if slot == 1 {
                        &mut entry.1
                    } else {
                        &mut entry.2
                    };
                    slot.get_or_insert(found);
                }
            }
        }
        out.extend(seen.into_values().filter_map(|(arn, manage, decrypt)| {
            Some(finding(
                KeyPolicyWord::AdminCanDecrypt,
                format!(
                    "`{}` may both manage the key ({}) and decrypt ({})",
                    quote(&arn),
                    manage?,
                    decrypt?
                ),
            ))
        }));
        out
    }
}

/// Whether an allow is bound to Secrets Manager through `kms:ViaService`: the shape of the AWS
/// managed key's own policy.
fn through_secrets_manager(s: &Statement) -> bool {
    s.conditions.iter().any(|c| {
        c.key == "kms:viaservice"
            && c.operator.requires_match()
            && c.values.iter().any(|v| v.starts_with("secretsmanager."))
    })
}
