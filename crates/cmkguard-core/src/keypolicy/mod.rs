//! Who can decrypt with a customer managed key: its key policy and its grants, judged with IAM's
//! rules ([`review`]). Pure: the policy and grants come in as AWS returned them
//! (`GetKeyPolicy`, `ListGrants`), the finding words go out. The review simulates requests with
//! [`is_allowed`], public so that tests can ask it (and an independent IAM implementation) the
//! same questions.
//!
//! Files: `document` reads a policy, `matching` and `condition` are IAM's matching rules,
//! `request` evaluates one request, `probe` imagines callers and their requests, `eval` (and
//! `eval/judge`) turns the simulations into findings.

mod condition;
mod document;
mod eval;
mod matching;
mod probe;
mod request;

pub use condition::Context;
pub use eval::review;
pub use request::{Access, Request, is_allowed};

use serde::Serialize;

use crate::reason::Reason;

/// A key policy finding, most severe first (the order of the variants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyPolicyWord {
    /// A decrypting action allowed to `*` (or through `NotPrincipal`) with no condition that
    /// limits the caller to named accounts, organizations or principals.
    Public,
    /// A decrypting action allowed to a principal of another account.
    OtherAccount,
    /// A decrypting action allowed to every principal of the key's own account: the AWS managed
    /// key's own policy shape.
    AccountWide,
    /// One principal other than the account root allowed both to manage the key and to decrypt.
    AdminCanDecrypt,
    /// The account root allowed a decrypting action with no condition that binds it: every IAM
    /// policy of the account can grant direct decryption (AWS's default key policy).
    DelegatedToIam,
    /// A grant whose operations include `Decrypt` or `ReEncryptFrom`.
    GrantDecrypt,
    /// The policy or grants could not be read, or hold what the guard cannot judge.
    Unreadable,
}

impl KeyPolicyWord {
    pub const ALL: [KeyPolicyWord; 7] = [
        KeyPolicyWord::Public,
        KeyPolicyWord::OtherAccount,
        KeyPolicyWord::AccountWide,
        KeyPolicyWord::AdminCanDecrypt,
        KeyPolicyWord::DelegatedToIam,
        KeyPolicyWord::GrantDecrypt,
        KeyPolicyWord::Unreadable,
    ];

    /// The reason a secret on a key with this finding gets in enforce mode.
    pub fn reason(self) -> Reason {
        match self {
            KeyPolicyWord::Public => Reason::KeyPolicyPublic,
            KeyPolicyWord::OtherAccount => Reason::KeyPolicyOtherAccount,
            KeyPolicyWord::AccountWide => Reason::KeyPolicyAccountWide,
            KeyPolicyWord::AdminCanDecrypt => Reason::KeyPolicyAdminCanDecrypt,
            KeyPolicyWord::DelegatedToIam => Reason::KeyPolicyDelegatedToIam,
            KeyPolicyWord::GrantDecrypt => Reason::KeyGrantDecrypt,
            KeyPolicyWord::Unreadable => Reason::KeyPolicyUnreadable,
        }
    }

    /// The wire string: the reason's.
    pub fn as_str(self) -> &'static str {
        self.reason().as_str()
    }
}

/// Text from a policy or grant, capped for a detail: details are for people and never huge.
fn quote(s: &str) -> String {
    crate::text::shorten_to(s, 120)
}

impl std::fmt::Display for KeyPolicyWord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for KeyPolicyWord {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One grant as `ListGrants` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grant {
    pub id: String,
    pub grantee_principal: Option<String>,
    /// `Operations`, as AWS spells them (`Decrypt`, `ReEncryptFrom`, ...).
    pub operations: Vec<String>,
}

/// One finding, with the words that say where it comes from (the statement's `Sid`, or its
/// position, and the principal; the grant's id and grantee).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPolicyFinding {
    pub word: KeyPolicyWord,
    pub detail: String,
}

/// What the review of one key found: its findings, most severe first, one per word.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyReview {
    pub findings: Vec<KeyPolicyFinding>,
}

impl KeyReview {
    /// A key whose policy or grants could not be read, and why.
    pub fn unreadable(why: impl Into<String>) -> Self {
        KeyReview {
            findings: vec![KeyPolicyFinding {
                word: KeyPolicyWord::Unreadable,
                detail: why.into(),
            }],
        }
    }

    /// A review with these findings (word and detail), as a fake or a report's test writes one.
    pub fn of(findings: &[(KeyPolicyWord, &str)]) -> Self {
        KeyReview::from_findings(
            findings
                .iter()
                .map(|(word, detail)| KeyPolicyFinding {
                    word: *word,
                    detail: (*detail).to_owned(),
                })
                .collect(),
        )
    }

    /// Keeps the first finding of each word, most severe first.
    pub fn from_findings(mut findings: Vec<KeyPolicyFinding>) -> Self {
        findings.sort_by_key(|f| f.word);
        findings.dedup_by_key(|f| f.word);
        KeyReview { findings }
    }

    /// The finding words, most severe first (`[]` when none).
    pub fn words(&self) -> Vec<KeyPolicyWord> {
        self.findings.iter().map(|f| f.word).collect()
    }

    /// The most severe finding that enforce mode acts on (any but `key-policy-unreadable`).
    pub fn enforced(&self) -> Option<&KeyPolicyFinding> {
        self.findings
            .iter()
            .find(|f| f.word != KeyPolicyWord::Unreadable)
    }

    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}
