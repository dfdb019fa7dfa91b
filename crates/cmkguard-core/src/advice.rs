//! What each reason means and what to do about it: one row per reason, the one table the
//! e-mail, the reports and Security Hub read. Every reason is named (no wildcard): a new reason
//! does not compile until it has its row.

use crate::reason::Reason;

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advice {
    /// What was found, as words after "the secret": "it is encrypted with ...".
    pub what: &'static str,
    /// Why it matters.
    pub why: &'static str,
    /// What a person should do (nothing, for a reason that is not a finding).
    pub to_do: &'static str,
}

const fn row(what: &'static str, why: &'static str, to_do: &'static str) -> Advice {
    Advice { what, why, to_do }
}

/// The row of `reason`.
pub fn of(reason: Reason) -> Advice {
    const NOTHING_DECIDED: &str = "Nothing about the secret was decided from this event.";
    const NOT_CHECKED: &str =
        "The guard could not check the secret, so a problem may go unnoticed.";
    match reason {
        Reason::AwsManagedKey => row(
            "it is encrypted with the AWS managed key, not a customer managed key",
            "The AWS managed key has no key policy of its own: any principal that IAM allows to read the secret's value can read it, and access cannot be limited or separated through the key.",
            "Move the secret to the designated key (`--apply` with `remediate`, or `UpdateSecret` with `KmsKeyId`), or exempt it if the AWS managed key is accepted.",
        ),
        Reason::KeyDisabled => row(
            "its customer managed key is disabled",
            "KMS refuses to decrypt with a disabled key: nobody can read the secret now, so the applications that use it fail.",
            "Enable the key again (`EnableKey`) if it was disabled by mistake; re-encryption cannot help until then, as Secrets Manager must decrypt with the current key first.",
        ),
        Reason::KeyPendingDeletion => row(
            "its customer managed key is scheduled for deletion",
            "Nobody can read the secret now, and when the key is deleted the secret becomes unreadable for good: nobody, AWS included, can recover it.",
            "Before the deletion date, cancel the deletion, then enable the key (`CancelKeyDeletion`, then `EnableKey`), or the secret is lost for good; re-encryption cannot help until then.",
        ),
        Reason::KeyNotFound => row(
            "its KMS key does not exist",
            "Without its key the secret cannot be decrypted: nobody can read it.",
            "Check the key the secret names. If the key is gone, the value is lost: store a new value from its source on the designated key, and update what uses it.",
        ),
        Reason::KeyUnusable => row(
            "its customer managed key is in a state that cannot be used",
            "KMS may refuse to decrypt with a key in this state (see the details), so the secret may not be readable.",
            "Bring the key back to Enabled (for example import its key material again, or reconnect its custom key store); then, if it is not the designated key, move the secret to that one.",
        ),
        Reason::KeyNotAllowed => row(
            "its customer managed key is not one of the allowed keys",
            "The key is customer managed, but not one of the keys the organization allows (CMKGUARD_ALLOWED_KEY_ARNS): a deviation from policy, with the key's own policy deciding who can read the secret.",
            "Move the secret to an allowed key, or add this key to `CMKGUARD_ALLOWED_KEY_ARNS` if it should be allowed.",
        ),
        Reason::ReplicaAwsManagedKey => row(
            "a replica of it is encrypted with the AWS managed key",
            "The replica holds the same value as the secret, and the AWS managed key has no key policy of its own: in the replica's region any principal that IAM allows to read the value can read it.",
            "Put the replica on a customer managed key of its region (edit the replica's encryption key, or replicate the secret again with `KmsKeyId`): the guard never re-encrypts replicas.",
        ),
        Reason::ReplicaKeyProblem => row(
            "a replica of it has a problem with its KMS key",
            "The replica holds the same value as the secret; its key has the problem in the details, so the replica may be unreadable or less protected than the secret.",
            "Fix the replica's key (the details name it), or replicate the secret again on a usable customer managed key.",
        ),
        Reason::PreviousKeyDecrypts => row(
            "it is on a customer managed key, but its current value is still readable through the key it was on before",
            "When a secret's key changes, AWS keeps its existing versions encrypted under the previous key as well, so the current value can still be decrypted through that key (for the AWS managed key: by anyone in the account allowed to read secret values) until a new version is current. Only a value written after the move is under the new key alone.",
            "Rotate the secret (`RotateSecret`), or write a new value: until a new version is current, AWS keeps the current one readable through the previous key too. The same value written again is a new version, not a new secret: whoever read it through the previous key still knows it, so change the credential where you can.",
        ),
        Reason::KeyPolicyPublic => row(
            "its customer managed key's policy lets anyone decrypt",
            "A key policy statement allows a decrypting action (`kms:Decrypt`, `kms:ReEncryptFrom`, `kms:CreateGrant` or a wildcard) to `*` with no condition that limits the caller to named accounts or principals: any AWS principal, in any account, may decrypt with the key.",
            "Narrow the statement the details name: name the principals (or add `aws:PrincipalOrgID` or `kms:CallerAccount` with `kms:ViaService` for Secrets Manager); the guard never changes a key policy.",
        ),
        Reason::KeyPolicyOtherAccount => row(
            "its customer managed key's policy lets another account decrypt",
            "A key policy statement allows a decrypting action to a principal of another account: that account's IAM policies decide who there can decrypt the secret.",
            "Remove the other account from the statement the details name, or bind it to Secrets Manager (`kms:ViaService`) if the sharing is meant; the guard never changes a key policy.",
        ),
        Reason::KeyPolicyAccountWide => row(
            "its customer managed key's policy lets every principal of the account decrypt",
            "A key policy statement allows a decrypting action to `*` limited only by the account (`kms:CallerAccount`, `aws:PrincipalAccount`): the shape of the AWS managed key's policy, so anyone allowed to read the secret's value reads it, as on `aws/secretsmanager`.",
            "Replace `*` in the statement the details name with the roles that read the secret, bound to Secrets Manager (`kms:ViaService`); the guard never changes a key policy.",
        ),
        Reason::KeyPolicyAdminCanDecrypt => row(
            "one principal may both administer its customer managed key and decrypt with it",
            "Separation of duties is gone: whoever manages the key (its policy, its deletion) can also read what it protects, and can widen its policy to cover the trace.",
            "Take the decrypting actions away from the administrator in the statement the details name, or the administrative ones from the reader; the guard never changes a key policy.",
        ),
        Reason::KeyPolicyDelegatedToIam => row(
            "its customer managed key's policy lets any IAM policy of the account decrypt directly",
            "The account root is allowed a decrypting action with no condition (AWS's default key policy): every IAM policy of the account (`AdministratorAccess`, `PowerUserAccess`, any `kms:*`) can then decrypt directly, outside Secrets Manager.",
            "In the statement the details name, keep the root's administrative actions (AWS warns that removing them can leave the key unmanageable) and bind its cryptographic use to Secrets Manager (`kms:ViaService` for `secretsmanager.REGION.amazonaws.com` with `kms:CallerAccount`); the guard never changes a key policy.",
        ),
        Reason::KeyGrantDecrypt => row(
            "a grant on its customer managed key allows decryption",
            "A grant allows `Decrypt` or `ReEncryptFrom` to its grantee, outside the key policy (Secrets Manager itself uses no grants).",
            "Review the grant the details name and retire or revoke it if it is not needed (`RevokeGrant`); the guard never changes a grant.",
        ),
        Reason::KeyPolicyUnreadable => row(
            "the guard could not review its customer managed key's policy and grants",
            "Who can decrypt with the key is unknown: it is never counted as a pass.",
            "Allow the guard `kms:GetKeyPolicy` and `kms:ListGrants` on the key (key policy or IAM), or review the policy by hand if it uses what the guard cannot judge (policy variables).",
        ),
        Reason::CustomerManagedKey => row(
            "it is on a customer managed key",
            "Nothing is at stake: the secret is on a customer managed key.",
            "Nothing: the secret is on a customer managed key.",
        ),
        Reason::CrossAccountKey => row(
            "it is on a key in another account",
            "Nothing is at stake: the secret is on a customer managed key.",
            "Nothing: the secret is on a customer managed key.",
        ),
        Reason::ExemptTag => row(
            "it carries the exempt tag",
            "Nothing: the secret is exempt from the guard.",
            "Nothing: the secret is exempt; review the exemption now and then.",
        ),
        Reason::SecretNotFound => row(
            "the secret no longer exists",
            "Nothing: there is no secret left to protect.",
            "Nothing: the secret no longer exists.",
        ),
        Reason::FailedCall => row(
            "the API call in the event failed",
            NOTHING_DECIDED,
            "Nothing: not an event the guard acts on.",
        ),
        Reason::UnsupportedEvent | Reason::UnsupportedEventName => row(
            "the event is not one the guard reads",
            NOTHING_DECIDED,
            "Nothing: not an event the guard acts on.",
        ),
        Reason::ForeignAccount => row(
            "the event is from an account the guard does not watch",
            NOTHING_DECIDED,
            "Audit the account through `--assume-role-name` (or set `CMKGUARD_ASSUME_ROLE_NAME`), or from the account itself.",
        ),
        Reason::MalformedEvent => row(
            "the event could not be read",
            NOTHING_DECIDED,
            "Check what sends the event: the guard could not read it.",
        ),
        Reason::AccessDenied => row(
            "the guard was denied access",
            NOT_CHECKED,
            "Grant the guard's role the Secrets Manager permissions it needs in this account (the README's IAM list), then check again.",
        ),
        Reason::KeyAccessDenied => row(
            "the guard was denied access to the key",
            NOT_CHECKED,
            "Allow the guard `kms:DescribeKey` on the key (key policy or IAM), then check again.",
        ),
        Reason::KeyLookupFailed => row(
            "the guard could not look up the key",
            NOT_CHECKED,
            "Check again; if it stays, check the key and the guard's KMS permissions.",
        ),
        Reason::NotFound => row(
            "something the guard looked up was not found",
            NOT_CHECKED,
            "Check again: something went away while it was being read.",
        ),
        Reason::TransientFailure => row(
            "AWS failed transiently",
            NOT_CHECKED,
            "Check again: AWS failed for longer than the retries (the next sweep checks the secret again).",
        ),
        Reason::AwsError => row(
            "AWS answered with an error",
            NOT_CHECKED,
            "Read the details, fix what they name, then check again.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every reason has a row, with words in each column, ending as sentences do.
    #[test]
    fn every_reason_has_a_row() {
        for reason in Reason::ALL {
            let advice = of(*reason);
            assert!(!advice.what.is_empty(), "{reason}");
            for text in [advice.why, advice.to_do] {
                assert!(text.ends_with('.'), "{reason}: {text}");
                // A Markdown table cell and an e-mail line take it as it is.
                assert!(!text.contains(['|', '\n']), "{reason}: {text}");
                assert_eq!(text.matches('`').count() % 2, 0, "{reason}: {text}");
            }
        }
    }
}
