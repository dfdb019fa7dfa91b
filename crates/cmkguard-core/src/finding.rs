//! The Security Hub finding (ASFF) for a decision: one per secret, with a stable id, so a later
//! decision updates the same finding. Pure: the AWS adapter turns a [`Finding`] into the SDK's
//! `AwsSecurityFinding`.

use std::time::SystemTime;

use crate::arn::{Arn, secret_name};
use crate::facts::SecretFacts;
use crate::reason::Reason;
use crate::record::{Record, Verdict};
use crate::tags::{DEFAULT_KEY, PREVIOUS_KEY_TAG};

/// `GeneratorId` of every finding, and the prefix of its `Id`.
pub const GENERATOR_ID: &str = "cmkguard/secret-kms-key";
/// The finding type, under `Software and Configuration Checks`.
pub const FINDING_TYPE: &str = "Software and Configuration Checks/AWS Security Best Practices/Secrets Manager customer managed key";
pub const PROVIDER_NAME: &str = "cmkguard";
pub const PROVIDER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// `Compliance.Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compliance {
    Failed,
    Passed,
}

impl Compliance {
    pub fn as_str(self) -> &'static str {
        match self {
            Compliance::Failed => "FAILED",
            Compliance::Passed => "PASSED",
        }
    }
}

/// `Severity.Label`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Informational => "INFORMATIONAL",
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }

    /// The severity of a non-compliant secret, by its reason. What decides it is what the
    /// finding puts at stake: a key that is going away or cannot decrypt loses the secret
    /// (availability); the AWS managed key leaves the secret readable by any principal allowed
    /// to read secret values, with no key policy of its own (confidentiality, no separation of
    /// duties); a customer key that is merely not on the allowed list is a policy deviation.
    /// Every reason is named (no wildcard): a new reason does not compile until it has one.
    pub fn of_reason(reason: Reason) -> Severity {
        match reason {
            Reason::KeyPendingDeletion => Severity::Critical,
            Reason::KeyDisabled | Reason::KeyNotFound | Reason::KeyUnusable => Severity::High,
            Reason::AwsManagedKey | Reason::ReplicaAwsManagedKey | Reason::ReplicaKeyProblem => {
                Severity::Medium
            }
            // Who can decrypt with the key: anyone at all, or another account, is a leak in
            // waiting; the account-wide shapes are the AWS managed key's exposure again.
            Reason::KeyPolicyPublic | Reason::KeyPolicyOtherAccount => Severity::High,
            Reason::KeyPolicyAccountWide
            | Reason::KeyPolicyAdminCanDecrypt
            | Reason::KeyPolicyDelegatedToIam
            | Reason::KeyGrantDecrypt => Severity::Medium,
            Reason::KeyPolicyUnreadable => Severity::Low,
            // The value is on the right key, and still readable through the previous one until
            // a new version is current.
            Reason::KeyNotAllowed | Reason::PreviousKeyDecrypts => Severity::Low,
            // Never the reason of a `FAILED` finding: compliant, exempt, deleted, ignored, or
            // an `error` record (no finding is made for those).
            Reason::CustomerManagedKey
            | Reason::CrossAccountKey
            | Reason::ExemptTag
            | Reason::SecretNotFound
            | Reason::FailedCall
            | Reason::UnsupportedEvent
            | Reason::UnsupportedEventName
            | Reason::ForeignAccount
            | Reason::MalformedEvent
            | Reason::AccessDenied
            | Reason::KeyAccessDenied
            | Reason::KeyLookupFailed
            | Reason::NotFound
            | Reason::TransientFailure
            | Reason::AwsError => Severity::Informational,
        }
    }
}

/// `RecordState`: an archived finding is no longer active (exempt secrets, deleted secrets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordState {
    Active,
    Archived,
}

impl RecordState {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordState::Active => "ACTIVE",
            RecordState::Archived => "ARCHIVED",
        }
    }
}

/// Why a finding is imported now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Non-compliant (or managed, on a wrong key): reported for the first time, or for a new reason.
    Failed,
    /// The guard re-encrypted the secret: `FAILED` at `LOW` (`previous-key-decrypts`) until a
    /// new version is current.
    Remediated,
    /// A new version is current after the guard's move: nothing is readable through the
    /// previous key any more.
    MoveFinished,
    /// Compliant again, fixed by someone other than the guard.
    FixedElsewhere,
    /// Exempt now: the finding is archived.
    Exempt,
    /// The secret no longer exists: the finding is archived.
    Deleted,
}

/// What a finding is about (ASFF `Resources`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// `AwsSecretsManagerSecret`: one finding per secret.
    Secret {
        arn: String,
        name: String,
        /// The key the secret is on now; `None` for the default key.
        kms_key_id: Option<String>,
    },
    /// `AwsKmsKey`: one finding per key and key policy finding word, naming the secrets on the
    /// key (the first [`crate::keyfindings::SECRETS_NAMED`]; `secret_count` in all).
    Key {
        arn: String,
        secrets: Vec<String>,
        secret_count: usize,
    },
}

/// One ASFF finding, as much of it as cmkguard fills in. Never a secret's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub id: String,
    pub partition: String,
    pub account: String,
    pub region: String,
    pub subject: Subject,
    pub compliance: Compliance,
    pub severity: Severity,
    pub record_state: RecordState,
    pub title: String,
    pub description: String,
    pub verdict: Verdict,
    pub reason: Reason,
    /// What to do (`Remediation.Recommendation.Text`): the reason's row of [`crate::advice`].
    pub recommendation: String,
    /// The secret's creation time: the same on every import of the finding, so its `CreatedAt`
    /// stays the first one without the guard keeping state. `None`: the time of the import.
    pub created_at: Option<SystemTime>,
}

impl Finding {
    /// The finding of `record` about the secret `facts` (absent for a deleted secret);
    /// `re_encrypted_with` is the key the guard just put the secret on, if it did.
    pub fn new(
        change: Change,
        record: &Record,
        facts: Option<&SecretFacts>,
        re_encrypted_with: Option<&str>,
    ) -> Option<Self> {
        let secret_arn = record.secret_arn.clone()?;
        let arn = Arn::parse(&secret_arn)?;
        let secret_name = facts.map_or_else(|| secret_name(&secret_arn), |f| f.name.clone());
        let (compliance, severity, record_state, title, description) =
            wording(change, record, facts, &secret_name, re_encrypted_with);
        let reason = match change {
            Change::Remediated => Reason::PreviousKeyDecrypts,
            _ => record.reason,
        };
        Some(
            Finding {
                id: id_of(&secret_arn),
                partition: arn.partition.to_owned(),
                account: arn.account.to_owned(),
                region: arn.region.to_owned(),
                subject: Subject::Secret {
                    arn: secret_arn.clone(),
                    name: secret_name,
                    kms_key_id: re_encrypted_with
                        .map(str::to_owned)
                        .or_else(|| record.key_id.clone()),
                },
                compliance,
                severity,
                record_state,
                title,
                description,
                verdict: record.verdict,
                reason,
                recommendation: crate::advice::of(reason).to_do.to_owned(),
                created_at: facts.and_then(|f| f.created),
            }
            .within_asff_limits(),
        )
    }

    /// The finding with its texts cut to ASFF's limits (title 256 characters, description
    /// 1,024, recommendation 512): a long ARN or detail must not get the finding refused.
    pub(crate) fn within_asff_limits(mut self) -> Self {
        let cut = |text: &mut String, max: usize| {
            if let Some((end, _)) = text.char_indices().nth(max) {
                text.truncate(end);
            }
        };
        cut(&mut self.title, 256);
        cut(&mut self.description, 1024);
        cut(&mut self.recommendation, 512);
        self
    }

    /// `arn:PARTITION:securityhub:REGION:ACCOUNT:product/ACCOUNT/default`: findings about an
    /// account's own resources.
    pub fn product_arn(&self) -> String {
        format!(
            "arn:{}:securityhub:{}:{}:product/{}/default",
            self.partition, self.region, self.account, self.account
        )
    }
}

/// What a finding says for `change`: its compliance, severity, state, title and description.
fn wording(
    change: Change,
    record: &Record,
    facts: Option<&SecretFacts>,
    secret_name: &str,
    re_encrypted_with: Option<&str>,
) -> (Compliance, Severity, RecordState, String, String) {
    let key = || record.key_id.clone().unwrap_or_else(|| DEFAULT_KEY.into());
    let previous = || {
        facts
            .and_then(|f| f.tags.get(PREVIOUS_KEY_TAG))
            .cloned()
            .unwrap_or_else(|| DEFAULT_KEY.into())
    };
    match change {
        Change::Failed
            if matches!(
                record.reason,
                Reason::KeyDisabled | Reason::KeyPendingDeletion
            ) =>
        {
            (
                Compliance::Failed,
                Severity::of_reason(record.reason),
                RecordState::Active,
                format!("Secret `{secret_name}` is on a KMS key that cannot decrypt it"),
                format!(
                    "cmkguard found secret `{secret_name}` on customer managed key `{}` (reason `{}`): {}. Re-encryption cannot help: Secrets Manager must decrypt with this key first, and KMS refuses a key that is disabled or pending deletion.",
                    key(),
                    record.reason,
                    record.detail.as_deref().unwrap_or("the key cannot be used")
                ),
            )
        }
        Change::Failed if record.reason == Reason::PreviousKeyDecrypts => (
            Compliance::Failed,
            Severity::of_reason(record.reason),
            RecordState::Active,
            format!("Secret `{secret_name}` is still readable through its previous KMS key"),
            format!(
                "Secret `{secret_name}` is on key `{}`, but {}. Rotate the secret (or write a new value) so that its current version is under the new key alone.",
                key(),
                record.detail.as_deref().unwrap_or(
                    "a current or pending version is still encrypted under its previous key"
                )
            ),
        ),
        Change::Failed => (
            Compliance::Failed,
            Severity::of_reason(record.reason),
            RecordState::Active,
            format!(
                "Secret `{secret_name}` is not encrypted with an allowed customer managed KMS key"
            ),
            format!(
                "cmkguard found secret `{secret_name}` {} (reason `{}`, key `{}`). Re-encrypt it with the account's designated customer managed key, or tag it `cmkguard:exempt=true` if it must stay.",
                match record.verdict {
                    Verdict::Managed => "managed by another service and on a wrong key",
                    _ => "on a wrong key",
                },
                record.reason,
                key()
            ),
        ),
        Change::Remediated => (
            Compliance::Failed,
            Severity::of_reason(Reason::PreviousKeyDecrypts),
            RecordState::Active,
            format!(
                "Secret `{secret_name}` was re-encrypted by cmkguard; its current version is still readable through the previous key"
            ),
            format!(
                "cmkguard re-encrypted secret `{secret_name}` with the designated customer managed key `{}` (it was on `{}`: `{}`). No secret value was read or changed. AWS keeps the existing versions encrypted under the previous key too, so the current value stays readable through `{}` until a new version is current (`{}`): rotate the secret, or write a new value.",
                re_encrypted_with.unwrap_or("?"),
                key(),
                record.reason,
                key(),
                Reason::PreviousKeyDecrypts
            ),
        ),
        Change::MoveFinished => (
            Compliance::Passed,
            Severity::Informational,
            RecordState::Active,
            format!("Secret `{secret_name}` is encrypted with a customer managed KMS key only"),
            format!(
                "A new version of secret `{secret_name}` is current: no current or pending version is readable through its previous key `{}` any more. cmkguard's move to `{}` is finished.",
                previous(),
                key()
            ),
        ),
        Change::FixedElsewhere => (
            Compliance::Passed,
            Severity::Informational,
            RecordState::Active,
            format!("Secret `{secret_name}` is encrypted with a customer managed KMS key"),
            format!(
                "Secret `{secret_name}` is now on customer managed key `{}`: fixed outside cmkguard.",
                key()
            ),
        ),
        Change::Exempt => (
            Compliance::Passed,
            Severity::Informational,
            RecordState::Archived,
            format!("Secret `{secret_name}` is exempt from cmkguard"),
            format!(
                "Secret `{secret_name}` carries the exemption tag: cmkguard archived its finding."
            ),
        ),
        Change::Deleted => (
            Compliance::Passed,
            Severity::Informational,
            RecordState::Archived,
            format!("Secret `{secret_name}` no longer exists"),
            format!("Secret `{secret_name}` was deleted: cmkguard archived its finding."),
        ),
    }
}

/// The finding `Id` of a secret: stable, so every decision about it updates one finding.
pub fn id_of(secret_arn: &str) -> String {
    format!("{GENERATOR_ID}/{secret_arn}")
}

/// A finding Security Hub refused (`FailedFindings`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedFinding {
    pub id: String,
    pub code: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_follows_what_is_at_stake() {
        assert_eq!(
            Severity::of_reason(Reason::KeyPendingDeletion),
            Severity::Critical
        );
        assert_eq!(Severity::of_reason(Reason::KeyDisabled), Severity::High);
        assert_eq!(Severity::of_reason(Reason::AwsManagedKey), Severity::Medium);
        assert_eq!(Severity::of_reason(Reason::KeyNotAllowed), Severity::Low);
    }
}
