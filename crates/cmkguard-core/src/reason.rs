//! Why a record has its verdict: a closed set, each with its kebab-case wire string (the
//! `reason` field, the `cmkguard:reason` tag). The README's verdict table lists every one; a
//! test checks the two against each other.

use serde::Serialize;

macro_rules! reasons {
    ($($(#[$doc:meta])* $variant:ident = $wire:literal,)+) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Reason {
            $($(#[$doc])* $variant,)+
        }

        impl Reason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)+];

            /// The wire string.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$variant => $wire,)+
                }
            }
        }
    };
}

reasons! {
    // non_compliant (and managed): the key of the secret or of a replica
    /// The AWS managed key: no `KmsKeyId`, an `alias/aws/...` key, or `KeyManager: AWS`.
    AwsManagedKey = "aws-managed-key",
    KeyDisabled = "key-disabled",
    KeyPendingDeletion = "key-pending-deletion",
    KeyNotFound = "key-not-found",
    /// A customer managed key in a state other than enabled, disabled or pending deletion.
    KeyUnusable = "key-unusable",
    /// A customer managed key outside `CMKGUARD_ALLOWED_KEY_ARNS`.
    KeyNotAllowed = "key-not-allowed",
    ReplicaAwsManagedKey = "replica-aws-managed-key",
    /// A replica's key has any other problem (the detail names it).
    ReplicaKeyProblem = "replica-key-problem",
    /// On an acceptable key, but a version labelled `AWSCURRENT` or `AWSPENDING` is still
    /// encrypted under the key the secret was on before (a move not yet finished by a new version).
    PreviousKeyDecrypts = "previous-key-decrypts",
    // non_compliant in `CMKGUARD_KEY_POLICY=enforce`: the key's policy or grants (most severe
    // first; see `keypolicy::KeyPolicyWord`)
    KeyPolicyPublic = "key-policy-public",
    KeyPolicyOtherAccount = "key-policy-other-account",
    KeyPolicyAccountWide = "key-policy-account-wide",
    KeyPolicyAdminCanDecrypt = "key-policy-admin-can-decrypt",
    KeyPolicyDelegatedToIam = "key-policy-delegated-to-iam",
    KeyGrantDecrypt = "key-grant-decrypt",
    /// The key's policy or grants could not be read or judged: reported, never enforced.
    KeyPolicyUnreadable = "key-policy-unreadable",
    // compliant
    CustomerManagedKey = "customer-managed-key",
    /// A key ARN in another account whose `DescribeKey` was denied: customer managed by definition.
    CrossAccountKey = "cross-account-key",
    // exempt
    ExemptTag = "exempt-tag",
    // not_found
    SecretNotFound = "secret-not-found",
    // ignored
    FailedCall = "failed-call",
    UnsupportedEvent = "unsupported-event",
    UnsupportedEventName = "unsupported-event-name",
    // error
    ForeignAccount = "foreign-account",
    MalformedEvent = "malformed-event",
    AccessDenied = "access-denied",
    KeyAccessDenied = "key-access-denied",
    KeyLookupFailed = "key-lookup-failed",
    NotFound = "not-found",
    TransientFailure = "transient-failure",
    AwsError = "aws-error",
}

impl Reason {
    /// The reason with this wire string (as read back from a `cmkguard:reason` tag).
    pub fn parse(wire: &str) -> Option<Reason> {
        Reason::ALL.iter().copied().find(|r| r.as_str() == wire)
    }

    /// A finding about a replica, not the secret's own key (replicas are not re-encrypted).
    pub fn is_replica(self) -> bool {
        matches!(
            self,
            Reason::ReplicaAwsManagedKey | Reason::ReplicaKeyProblem
        )
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_strings_are_kebab_case_unique_and_parse_back() {
        let mut seen = std::collections::BTreeSet::new();
        for reason in Reason::ALL {
            let wire = reason.as_str();
            assert!(
                wire.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{wire}"
            );
            assert!(seen.insert(wire), "{wire} twice");
            assert_eq!(Reason::parse(wire), Some(*reason));
        }
        assert_eq!(Reason::parse("no-such-reason"), None);
    }
}
