//! The review: who may decrypt with the key, judged statement by statement by simulating the
//! requests of imagined callers (`probe`) on the whole policy (`request::decide`), so that an
//! explicit `Deny` anywhere cancels what it covers.
//!
//! For each `Allow` statement and each principal it names, from the most severe finding down:
//! - `*` (or `NotPrincipal`): a stranger (an account no statement mentions, in no organization)
//!   → `Public`; a caller of an account or organization the conditions name → `OtherAccount`;
//!   any principal of the key's own account → `AccountWide`.
//! - the key's own account (root or id): any of its principals, calling KMS directly (no
//!   `kms:ViaService`) → `DelegatedToIam`.
//! - another account, or a principal of one → `OtherAccount`.
//! - every principal named by ARN: both a management and a decrypting action → `AdminCanDecrypt`.
//! - service principals are AWS services acting for a resource; they are not judged here.
//!
//! `kms:ViaService` never limits *who* calls. AWS, "AWS KMS condition keys": it "limits use of a
//! KMS key to requests from specified AWS services" — and anyone, of any account, who may call
//! Secrets Manager can have it call KMS for them. Some scanners count a `kms:ViaService` condition
//! among those that make `*` non-public; here `*` with `kms:ViaService` alone is `Public`.

mod judge;

use super::document::{self, Effect, PrincipalKind, Statement};
use super::matching::{account_of_root, has_variable};
use super::probe::{self, Caller, Key};
use super::{Grant, KeyPolicyFinding, KeyPolicyWord, KeyReview, quote};
use crate::arn::Arn;

/// Actions that decrypt or hand out decryption. `kms:CreateGrant` makes a grant whose grantee may
/// decrypt; not when the allow is bound by `kms:GrantIsForAWSResource`, which "Allows principals
/// to call CreateGrant, ListGrants, or RevokeGrant only when an AWS service that is integrated
/// with AWS KMS sends the request on the principal's behalf" (AWS, "Controlling access to
/// grants"): `probe` asks for a grant that is not for an AWS resource.
const DECRYPTING: [&str; 3] = ["kms:Decrypt", "kms:ReEncryptFrom", "kms:CreateGrant"];

/// Actions that change who may use the key or whether it exists: its policy, its grants, its
/// state, its deletion, its key material and its copies. (Aliases, tags and descriptions change
/// neither; `CreateGrant` is decrypting above.)
const MANAGING: [&str; 12] = [
    "kms:PutKeyPolicy",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:DisableKey",
    "kms:EnableKey",
    "kms:DeleteImportedKeyMaterial",
    "kms:ImportKeyMaterial",
    "kms:RevokeGrant",
    "kms:UpdatePrimaryRegion",
    "kms:ReplicateKey",
    "kms:DisableKeyRotation",
    "kms:EnableKeyRotation",
];

/// Reviews the key `key_arn`'s policy document (JSON, as `GetKeyPolicy` returns it) and grants.
pub fn review(key_arn: &str, policy: &str, grants: &[Grant]) -> KeyReview {
    let Some(arn) = Arn::kms_key(key_arn) else {
        return KeyReview::unreadable(format!("`{}` is not a KMS key ARN", quote(key_arn)));
    };
    let mut findings = grant_findings(grants);
    match document::parse(policy) {
        Err(why) => findings.push(finding(KeyPolicyWord::Unreadable, why)),
        Ok(statements) => {
            let key = Key {
                arn: key_arn,
                partition: arn.partition,
                region: arn.region,
                account: arn.account,
            };
            let review = Review::new(&key, policy, &statements);
            findings.extend(review.findings());
        }
    }
    KeyReview::from_findings(findings)
}

fn finding(word: KeyPolicyWord, detail: String) -> KeyPolicyFinding {
    KeyPolicyFinding { word, detail }
}

fn grant_findings(grants: &[Grant]) -> Vec<KeyPolicyFinding> {
    grants
        .iter()
        .filter_map(|g| {
            let op = g.operations.iter().find(|o| {
                o.eq_ignore_ascii_case("Decrypt") || o.eq_ignore_ascii_case("ReEncryptFrom")
            })?;
            let grantee = g.grantee_principal.as_deref().unwrap_or("(no grantee)");
            Some(finding(
                KeyPolicyWord::GrantDecrypt,
                format!(
                    "grant `{}` lets `{}` call `{}`",
                    quote(&g.id),
                    quote(grantee),
                    quote(op)
                ),
            ))
        })
        .collect()
}

/// A group of imagined callers and the finding their access means.
struct Tier {
    word: KeyPolicyWord,
    callers: Vec<Caller>,
    whom: String,
    /// Whether the detail names the caller found (several stand for the tier).
    name_caller: bool,
}

struct Review<'a> {
    key: &'a Key<'a>,
    statements: &'a [Statement],
    stranger: Caller,
    /// Callers of other accounts and organizations the conditions name.
    others: Vec<Caller>,
    /// Any principal of the key's own account, in each organization the conditions name.
    own: Vec<Caller>,
}

impl<'a> Review<'a> {
    fn new(key: &'a Key<'a>, policy: &str, statements: &'a [Statement]) -> Self {
        let stranger_account = probe::stranger_account(policy);
        let orgs = probe::orgs(statements);
        let in_orgs = |account: &str, direct: bool| {
            std::iter::once(None)
                .chain(orgs.iter().cloned().map(Some))
                .map(|org| Caller::anyone_in(key, account, org, direct))
                .collect::<Vec<_>>()
        };
        let mut others = probe::named_callers(key, statements);
        others.extend(in_orgs(&stranger_account, false).into_iter().skip(1));
        Review {
            key,
            statements,
            stranger: Caller::anyone_in(key, &stranger_account, None, false),
            others,
            own: in_orgs(key.account, false),
        }
    }

    fn findings(&self) -> Vec<KeyPolicyFinding> {
        let mut out = Vec::new();
        for s in self.statements.iter().filter(|s| s.effect == Effect::Allow) {
            for tiers in self.tiers(s) {
                self.judge(s, &tiers, &mut out);
            }
        }
        out.extend(self.admins_who_decrypt());
        out
    }

    /// For each principal of an allow, the findings its access would mean, most severe first.
    fn tiers(&self, s: &Statement) -> Vec<Vec<Tier>> {
        if s.principals.not {
            // AWS, "NotPrincipal": "Using it with "Effect":"Allow" is not supported"; where a
            // policy still holds it, it allows every principal but those named.
            return vec![self.anyone_tiers("every principal but those of `NotPrincipal`")];
        }
        let mut out = Vec::new();
        for p in &s.principals.items {
            let id = quote(&p.id);
            match p.kind {
                PrincipalKind::Anyone => out.push(self.anyone_tiers("`*`")),
                PrincipalKind::Aws if p.id == "*" => out.push(self.anyone_tiers("`*`")),
                PrincipalKind::Aws if has_variable(&p.id) => out.push(vec![self.unjudged(&id)]),
                PrincipalKind::Aws => match account_of_root(&p.id) {
                    // AWS, "Default key policy": the root statement "gives the AWS account that
                    // owns the KMS key permission to use IAM policies to allow access to all AWS
                    // KMS operations on the KMS key", which, the same page says, "Reduces the
                    // risk of the KMS key becoming unmanageable": the review never asks for its
                    // removal, only that decryption through it be bound.
                    Some(a) if a == self.key.account => out.push(vec![Tier {
                        word: KeyPolicyWord::DelegatedToIam,
                        callers: self.own.iter().map(|c| Caller { direct: true, ..c.clone() }).collect(),
                        whom: format!(
                            "the account root `{id}` with no condition that binds it to Secrets Manager \
                             (`kms:ViaService`) or to named principals: any IAM policy of the account \
                             can grant direct decryption"
                        ),
                        name_caller: false,
                    }]),
                    Some(a) => out.push(vec![Tier {
                        word: KeyPolicyWord::OtherAccount,
                        callers: vec![Caller::anyone_in(self.key, a, None, false)],
                        whom: format!("`{id}`, another account"),
                        name_caller: false,
                    }]),
                    None => match Caller::named(&p.id, None) {
                        Some(c) if c.account != self.key.account => out.push(vec![Tier {
                            word: KeyPolicyWord::OtherAccount,
                            callers: vec![c],
                            whom: format!("`{id}`, of another account"),
                            name_caller: false,
                        }]),
                        // Own principals: see `admins_who_decrypt`; ids that are not ARNs are
                        // principals deleted since (KMS shows their unique id): nobody.
                        _ => {}
                    },
                },
                PrincipalKind::Service => {}
                PrincipalKind::Other => out.push(vec![self.unjudged(&id)]),
            }
        }
        out
    }

    fn anyone_tiers(&self, whom: &str) -> Vec<Tier> {
        vec![
            Tier {
                word: KeyPolicyWord::Public,
                callers: vec![self.stranger.clone()],
                whom: format!(
                    "{whom} with no condition that limits the caller to named accounts, \
                     organizations or principals"
                ),
                name_caller: false,
            },
            Tier {
                word: KeyPolicyWord::OtherAccount,
                callers: self.others.clone(),
                whom: format!("{whom}, limited to accounts or organizations beyond this account"),
                name_caller: true,
            },
            Tier {
                word: KeyPolicyWord::AccountWide,
                callers: self.own.clone(),
                whom: format!(
                    "{whom}, limited to every principal of account {}",
                    self.key.account
                ),
                name_caller: false,
            },
        ]
    }

    /// A principal the review cannot judge: if the statement decrypts at all, unreadable.
    fn unjudged(&self, id: &str) -> Tier {
        Tier {
            word: KeyPolicyWord::Unreadable,
            callers: Vec::new(),
            whom: format!("`{id}`, a principal the review cannot judge"),
            name_caller: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/k";
    const CLEAN: &str = r#"{"Statement": {"Effect": "Allow", "Principal": {"AWS": "111122223333"},
        "Action": "kms:Describe*", "Resource": "*"}}"#;

    fn grant(operations: &[&str]) -> Grant {
        Grant {
            id: "g1".into(),
            grantee_principal: Some("arn:aws:iam::111122223333:role/Batch".into()),
            operations: operations.iter().map(|o| o.to_string()).collect(),
        }
    }

    #[test]
    fn grants_that_decrypt_are_found_whatever_the_case() {
        for ops in [
            &["Decrypt"][..],
            &["reencryptfrom"],
            &["Encrypt", "DECRYPT"],
        ] {
            let review = review(KEY, CLEAN, &[grant(ops)]);
            assert_eq!(review.words(), [KeyPolicyWord::GrantDecrypt], "{ops:?}");
            assert!(review.findings[0].detail.contains("`g1`"));
            assert!(review.findings[0].detail.contains("role/Batch"));
        }
        for ops in [&["Encrypt"][..], &["GenerateDataKey", "ReEncryptTo"], &[]] {
            assert!(review(KEY, CLEAN, &[grant(ops)]).is_clean(), "{ops:?}");
        }
    }

    #[test]
    fn a_key_arn_that_is_not_one_is_unreadable() {
        let review = review("alias/x", CLEAN, &[]);
        assert_eq!(review.words(), [KeyPolicyWord::Unreadable]);
    }

    #[test]
    fn details_stay_short_whatever_the_policy_holds() {
        let sid = "S".repeat(10_000);
        let policy = format!(
            r#"{{"Statement": {{"Sid": "{sid}", "Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"}}}}"#
        );
        let review = review(KEY, &policy, &[]);
        assert_eq!(review.words(), [KeyPolicyWord::Public]);
        assert!(review.findings[0].detail.len() < 400);
    }

    #[test]
    fn a_statement_without_sid_is_named_by_position() {
        let policy = r#"{"Statement": [{"Effect": "Allow", "Principal": {"AWS": "111122223333"},
            "Action": "kms:*", "Resource": "*"}]}"#;
        let review = review(KEY, policy, &[]);
        assert!(
            review.findings[0].detail.starts_with("statement #1 allows"),
            "{:?}",
            review.findings
        );
    }
}
