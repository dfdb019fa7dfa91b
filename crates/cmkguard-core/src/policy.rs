//! The policy: from the facts about a secret and its key to a verdict and a reason. Pure.

use crate::arn::Arn;
use crate::config::{Config, KeyPolicyMode};
use crate::facts::{DEFAULT_ENCRYPTION_KEY, KeyFacts, KeyManager, KeyState, SecretFacts};
use crate::keypolicy::KeyReview;
use crate::reason::Reason;
use crate::record::Verdict;
use crate::tags::{DEFAULT_KEY, MOVED_VERSION_TAG, PREVIOUS_KEY_TAG, REASON_TAG, Status};

/// What the guard found out about the key of a secret (or of one of its replicas).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyFinding {
    /// No `KmsKeyId`: the default key, `aws/secretsmanager`.
    DefaultKey,
    /// An `alias/aws/...` id: AWS managed by definition, no `DescribeKey` needed.
    AwsAlias,
    Described(KeyFacts),
    /// A key ARN in another account whose `DescribeKey` was denied: AWS managed keys cannot be
    /// used across accounts, so it is customer managed by definition.
    ForeignKeyUndescribed {
        arn: String,
    },
    NotFound,
}

impl KeyFinding {
    /// The key's ARN, when it was described (or is a key ARN of another account).
    pub fn arn(&self) -> Option<&str> {
        match self {
            KeyFinding::Described(key) => Some(&key.arn),
            KeyFinding::ForeignKeyUndescribed { arn } => Some(arn),
            KeyFinding::DefaultKey | KeyFinding::AwsAlias | KeyFinding::NotFound => None,
        }
    }

    pub fn manager(&self) -> Option<KeyManager> {
        match self {
            KeyFinding::DefaultKey | KeyFinding::AwsAlias => Some(KeyManager::Aws),
            KeyFinding::Described(key) => Some(key.manager),
            KeyFinding::ForeignKeyUndescribed { .. } => Some(KeyManager::Customer),
            KeyFinding::NotFound => None,
        }
    }

    /// The reason this key makes a secret non-compliant, if it does.
    pub fn problem(&self, config: &Config) -> Option<Reason> {
        let arn = match self {
            KeyFinding::DefaultKey | KeyFinding::AwsAlias => return Some(Reason::AwsManagedKey),
            KeyFinding::NotFound => return Some(Reason::KeyNotFound),
            KeyFinding::Described(key) => match (&key.manager, &key.state) {
                (KeyManager::Aws, _) => return Some(Reason::AwsManagedKey),
                (KeyManager::Customer, KeyState::Disabled) => return Some(Reason::KeyDisabled),
                (KeyManager::Customer, KeyState::PendingDeletion) => {
                    return Some(Reason::KeyPendingDeletion);
                }
                (KeyManager::Customer, KeyState::Other(_)) => return Some(Reason::KeyUnusable),
                (KeyManager::Customer, KeyState::Enabled) => key.arn.as_str(),
            },
            KeyFinding::ForeignKeyUndescribed { arn } => arn.as_str(),
        };
        match &config.allowed_key_arns {
            Some(allowed) if !allowed.contains(arn) => Some(Reason::KeyNotAllowed),
            _ => None,
        }
    }
}

/// The verdict on a secret that exists and could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    pub reason: Reason,
    pub detail: Option<String>,
}

/// Precedence: exempt, then managed, then the key checks: the secret's own key (its state, the
/// allow list, then, with `CMKGUARD_KEY_POLICY=enforce`, its policy review `review`), then its
/// replicas' keys, then whether the previous key still reads it.
pub fn decide(
    secret: &SecretFacts,
    key: &KeyFinding,
    review: Option<&KeyReview>,
    replicas: &[(String, KeyFinding)],
    config: &Config,
) -> Decision {
    if secret
        .tags
        .get(&config.exempt_tag)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    {
        return Decision {
            verdict: Verdict::Exempt,
            reason: Reason::ExemptTag,
            detail: Some(format!("tag `{}` is `true`", config.exempt_tag)),
        };
    }
    let problem = key
        .problem(config)
        .map(|reason| (reason, key_state_detail(key)))
        .or_else(|| {
            let finding = review.filter(|_| config.key_policy == KeyPolicyMode::Enforce)?;
            let finding = finding.enforced()?;
            Some((finding.word.reason(), Some(finding.detail.clone())))
        })
        .or_else(|| {
            replicas.iter().find_map(|(region, finding)| {
                let reason = match finding.problem(config)? {
                    Reason::AwsManagedKey => Reason::ReplicaAwsManagedKey,
                    _ => Reason::ReplicaKeyProblem,
                };
                Some((
                    reason,
                    Some(format!(
                        "the replica in `{region}`: {finding_words}",
                        finding_words = words(finding)
                    )),
                ))
            })
        })
        .or_else(|| {
            previous_key_decrypts(secret, key)
                .map(|detail| (Reason::PreviousKeyDecrypts, Some(detail)))
        });
    match (problem, &secret.owning_service) {
        (Some((reason, detail)), Some(service)) => Decision {
            verdict: Verdict::Managed,
            reason,
            detail: Some(join(
                detail,
                format!("managed by `{service}`: never re-encrypted by the guard"),
            )),
        },
        (Some((reason, detail)), None) => Decision {
            verdict: Verdict::NonCompliant,
            reason,
            detail,
        },
        (None, _) => match key {
            KeyFinding::ForeignKeyUndescribed { arn } => Decision {
                verdict: Verdict::Compliant,
                reason: Reason::CrossAccountKey,
                detail: Some(format!(
                    "`DescribeKey` on `{arn}` was denied; a key in another account is customer managed by definition"
                )),
            },
            _ => Decision {
                verdict: Verdict::Compliant,
                reason: Reason::CustomerManagedKey,
                detail: None,
            },
        },
    }
}

/// Whether a version labelled `AWSCURRENT` or `AWSPENDING` is still readable through the key the
/// secret was on before it was moved; the detail says which and why. AWS, "Change the
/// encryption key for an AWS Secrets Manager secret" (Secrets Manager User Guide):
///
/// > When you change the encryption key, Secrets Manager re-encrypts `AWSCURRENT`, `AWSPENDING`,
/// > and `AWSPREVIOUS` versions with the new key. To avoid locking you out of the secret,
/// > Secrets Manager keeps all existing versions encrypted with the previous key. That means you
/// > can decrypt `AWSCURRENT`, `AWSPENDING`, and `AWSPREVIOUS` versions with the previous key or
/// > the new key.
/// >
/// > To make it so `AWSCURRENT` can only be decrypted by the new encryption key, create a new
/// > version of the secret with the new key.
///
/// Three ways to know: the guard's own record of the move (`cmkguard:moved-version`), a move by
/// an earlier release (marked `remediated` with a previous key, but no version recorded), and,
/// with `CMKGUARD_CHECK_VERSIONS`, each version's `KmsKeyIds`.
fn previous_key_decrypts(secret: &SecretFacts, key: &KeyFinding) -> Option<String> {
    let tag = |name: &str| secret.tags.get(name).map(String::as_str);
    // A secret with no value yet has nothing to read through any key.
    let current = secret.current_version.as_deref()?;
    let previous = tag(PREVIOUS_KEY_TAG).unwrap_or(DEFAULT_KEY);
    let rotate = "it stays readable through that key until a new version is current: rotate the secret (or write a new value)";
    if let Some(moved) = tag(MOVED_VERSION_TAG) {
        let stage = if current == moved {
            "AWSCURRENT"
        } else if secret.pending_version.as_deref() == Some(moved) {
            "AWSPENDING"
        } else if predates(secret, current, moved) {
            // Every version that existed at the key change is under the previous key too: a
            // label moved back to one (a rollback) does not finish the move.
            return Some(format!(
                "`AWSCURRENT` is version `{current}`, which predates cmkguard's move (of version `{moved}`) and is still encrypted under the previous key `{previous}` too: {rotate}"
            ));
        } else {
            return None;
        };
        return Some(format!(
            "version `{moved}` ({stage}) was re-encrypted by cmkguard and is still encrypted under the previous key `{previous}` too: {rotate}"
        ));
    }
    if let Some(versions) = &secret.versions {
        let own = |id: &str| crate::arn::same_key(id, secret.kms_key_id.as_deref(), key.arn());
        return versions
            .iter()
            .filter_map(|v| {
                let stage = ["AWSCURRENT", "AWSPENDING"]
                    .into_iter()
                    .find(|s| v.stages.iter().any(|l| l == s))?;
                let other = v.kms_key_ids.iter().find(|id| !own(id))?;
                let other = if other == DEFAULT_ENCRYPTION_KEY {
                    format!("`{DEFAULT_ENCRYPTION_KEY}` (the AWS managed key `{DEFAULT_KEY}`)")
                } else {
                    format!("`{other}`")
                };
                Some(format!(
                    "version `{}` ({stage}) is also encrypted under {other}, not only the secret's key: {rotate}",
                    v.id
                ))
            })
            .next();
    }
    // An earlier release's move: marked and reasoned, but no version recorded. (A move this
    // release finished has its reason and version removed, and stays `remediated` as history.)
    let earlier_release = Status::of(&secret.tags) == Some(Status::Remediated)
        && tag(PREVIOUS_KEY_TAG).is_some()
        && tag(REASON_TAG).is_some();
    if earlier_release {
        return Some(format!(
            "re-encrypted from `{previous}` by an earlier release of cmkguard, which did not record the version it moved; cmkguard takes the current version `{current}` as that one (set `CMKGUARD_CHECK_VERSIONS=true` to read each version's keys instead): {rotate}"
        ));
    }
    None
}

/// Whether another current version than the moved one was there before the move: created no
/// later than the moved version (`ListSecretVersionIds`' `CreatedDate`). Without the versions
/// read (the caller reads them for this case), or without the moved version among them, the
/// current one is taken as new.
fn predates(secret: &SecretFacts, current: &str, moved: &str) -> bool {
    let created = |id: &str| {
        secret
            .versions
            .iter()
            .flatten()
            .find(|v| v.id == id)
            .and_then(|v| v.created)
    };
    match (created(current), created(moved)) {
        // Strictly older: moto (and a quick test) gives whole seconds; a tie is taken as new.
        (Some(current), Some(moved)) => current < moved,
        _ => false,
    }
}

/// Whether a move by the guard waits on a version that is no longer current or pending, so
/// that only the versions' creation times tell whether it is finished.
pub fn needs_version_dates(secret: &SecretFacts) -> bool {
    let moved = secret.tags.get(MOVED_VERSION_TAG).map(String::as_str);
    secret.versions.is_none()
        && moved.is_some()
        && secret
            .current_version
            .as_deref()
            .is_some_and(|c| Some(c) != moved)
        && secret.pending_version.as_deref() != moved
}

/// What a person must do about a customer managed key that cannot decrypt, when that is the
/// problem: the secret's own event, a sweep and the key's own event all say it the same way.
fn key_state_detail(key: &KeyFinding) -> Option<String> {
    let KeyFinding::Described(key) = key else {
        return None;
    };
    match (&key.manager, &key.state) {
        (KeyManager::Customer, KeyState::Disabled) => Some(format!(
            "key `{}` is disabled: the secret cannot be read until the key is enabled again (`EnableKey`)",
            key.arn
        )),
        (KeyManager::Customer, KeyState::PendingDeletion) => Some(format!(
            "key `{}` is pending deletion{}: the secret becomes unreadable for good when the key is deleted; run `CancelKeyDeletion`, then `EnableKey`, on the key before that date",
            key.arn,
            key.deletion_date
                .map(|d| format!(" on {}", crate::text::utc(d)))
                .unwrap_or_default()
        )),
        _ => None,
    }
}

fn words(finding: &KeyFinding) -> String {
    match finding {
        KeyFinding::DefaultKey | KeyFinding::AwsAlias => "on the AWS managed key".into(),
        KeyFinding::Described(key) => {
            format!("key `{}` is {:?}, {:?}", key.arn, key.manager, key.state)
        }
        KeyFinding::ForeignKeyUndescribed { arn } => format!("key `{arn}` in another account"),
        KeyFinding::NotFound => "its key does not exist".into(),
    }
}

fn join(first: Option<String>, second: String) -> String {
    match first {
        Some(first) => format!("{first}; {second}"),
        None => second,
    }
}

/// Whether a key id (as a secret reports it) names a key ARN in an account other than `account`.
pub fn is_foreign_key(key_id: &str, account: &str) -> bool {
    Arn::kms_key(key_id).is_some_and(|a| a.account != account)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    const CMK: &str = "arn:aws:kms:us-east-1:123456789012:key/cmk";

    fn customer(state: KeyState) -> KeyFinding {
        KeyFinding::Described(KeyFacts::customer(CMK, state))
    }

    fn secret(tags: &[(&str, &str)], owning_service: Option<&str>) -> SecretFacts {
        SecretFacts {
            arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:s-AbCdEf".into(),
            name: "s".into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            owning_service: owning_service.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn key_findings_give_their_reasons() {
        let config = Config::default();
        let cases = [
            (
                KeyFinding::DefaultKey,
                Verdict::NonCompliant,
                Reason::AwsManagedKey,
            ),
            (
                KeyFinding::AwsAlias,
                Verdict::NonCompliant,
                Reason::AwsManagedKey,
            ),
            (
                KeyFinding::Described(KeyFacts::aws(CMK)),
                Verdict::NonCompliant,
                Reason::AwsManagedKey,
            ),
            (
                customer(KeyState::Disabled),
                Verdict::NonCompliant,
                Reason::KeyDisabled,
            ),
            (
                customer(KeyState::PendingDeletion),
                Verdict::NonCompliant,
                Reason::KeyPendingDeletion,
            ),
            (
                customer(KeyState::Other("PendingImport".into())),
                Verdict::NonCompliant,
                Reason::KeyUnusable,
            ),
            (
                KeyFinding::NotFound,
                Verdict::NonCompliant,
                Reason::KeyNotFound,
            ),
            (
                customer(KeyState::Enabled),
                Verdict::Compliant,
                Reason::CustomerManagedKey,
            ),
            (
                KeyFinding::ForeignKeyUndescribed { arn: CMK.into() },
                Verdict::Compliant,
                Reason::CrossAccountKey,
            ),
        ];
        for (finding, verdict, reason) in cases {
            let decision = decide(&secret(&[], None), &finding, None, &[], &config);
            assert_eq!(
                (decision.verdict, decision.reason),
                (verdict, reason),
                "{finding:?}"
            );
        }
    }

    #[test]
    fn exempt_then_managed_then_key_checks() {
        let config = Config::default();
        let exempt = secret(&[("cmkguard:exempt", "true")], Some("rds"));
        assert_eq!(
            decide(&exempt, &KeyFinding::DefaultKey, None, &[], &config).verdict,
            Verdict::Exempt
        );
        let not_exempt = secret(&[("cmkguard:exempt", "false")], None);
        assert_eq!(
            decide(&not_exempt, &KeyFinding::DefaultKey, None, &[], &config).verdict,
            Verdict::NonCompliant
        );
        let managed = secret(&[], Some("rds"));
        let decision = decide(&managed, &KeyFinding::DefaultKey, None, &[], &config);
        assert_eq!(
            (decision.verdict, decision.reason),
            (Verdict::Managed, Reason::AwsManagedKey)
        );
        // A managed secret on a good key is simply compliant.
        assert_eq!(
            decide(&managed, &customer(KeyState::Enabled), None, &[], &config).verdict,
            Verdict::Compliant
        );
    }

    #[test]
    fn the_allow_list_binds_customer_keys() {
        let config = Config {
            allowed_key_arns: Some(BTreeSet::from([
                "arn:aws:kms:us-east-1:123456789012:key/other".to_string(),
            ])),
            ..Config::default()
        };
        let decision = decide(
            &secret(&[], None),
            &customer(KeyState::Enabled),
            None,
            &[],
            &config,
        );
        assert_eq!(decision.reason, Reason::KeyNotAllowed);
        let foreign = KeyFinding::ForeignKeyUndescribed { arn: CMK.into() };
        assert_eq!(
            decide(&secret(&[], None), &foreign, None, &[], &config).reason,
            Reason::KeyNotAllowed
        );
    }

    #[test]
    fn replicas_on_the_default_key_are_reported_on_the_primary() {
        let replicas = [("us-west-2".to_string(), KeyFinding::DefaultKey)];
        let decision = decide(
            &secret(&[], None),
            &customer(KeyState::Enabled),
            None,
            &replicas,
            &Config::default(),
        );
        assert_eq!(
            (decision.verdict, decision.reason),
            (Verdict::NonCompliant, Reason::ReplicaAwsManagedKey)
        );
        assert!(decision.detail.unwrap().contains("us-west-2"));
    }

    #[test]
    fn foreign_keys_are_told_apart() {
        assert!(is_foreign_key(
            "arn:aws:kms:us-east-1:111122223333:key/x",
            "123456789012"
        ));
        assert!(!is_foreign_key(CMK, "123456789012"));
        assert!(!is_foreign_key("alias/x", "123456789012"));
    }
}
