//! The tags the guard writes on secrets (the contract's "Tags written on secrets"): their keys
//! and the values of `cmkguard:status`, in one place for the policy, the actions and the outputs.

/// What the guard reported about the secret: a [`Status`].
pub const STATUS_TAG: &str = "cmkguard:status";
/// The reason word of the finding the status reports.
pub const REASON_TAG: &str = "cmkguard:reason";
/// The key a secret was on before the guard re-encrypted it (kept as history).
pub const PREVIOUS_KEY_TAG: &str = "cmkguard:previous-key";
/// The version labelled `AWSCURRENT` when the guard re-encrypted the secret: until another
/// version is current, that value is still readable through the previous key.
pub const MOVED_VERSION_TAG: &str = "cmkguard:moved-version";
/// The moved version for which the guard called `RotateSecret` (action `rotate`), written
/// before the call: one rotation per move, whatever the deliveries.
pub const ROTATION_REQUESTED_TAG: &str = "cmkguard:rotation-requested";

/// The values of [`STATUS_TAG`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The finding was reported.
    NonCompliant,
    /// Written before a re-encryption, with [`PREVIOUS_KEY_TAG`]; replaced by `Remediated` once
    /// the re-encryption is done and reported.
    Remediating,
    /// The guard re-encrypted the secret and reported it (kept as history).
    Remediated,
}

impl Status {
    pub const ALL: [Status; 3] = [
        Status::NonCompliant,
        Status::Remediating,
        Status::Remediated,
    ];

    /// The tag's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::NonCompliant => "non-compliant",
            Status::Remediating => "remediating",
            Status::Remediated => "remediated",
        }
    }

    /// The status with this tag value; `None` for anything else (a tag someone edited).
    pub fn parse(value: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == value)
    }

    /// The status a secret's tags carry.
    pub fn of(tags: &std::collections::BTreeMap<String, String>) -> Option<Status> {
        tags.get(STATUS_TAG).and_then(|v| Status::parse(v))
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// [`PREVIOUS_KEY_TAG`]'s value for a secret on the AWS managed default key, and how records
/// name that key.
pub const DEFAULT_KEY: &str = "aws/secretsmanager";
