//! The tags the guard writes on secrets (the contract's "Tags written on secrets"): their keys
//! and the values of `cmkguard:status`, in one place for the policy, the actions and the outputs.

/// What the guard reported about the secret: [`NON_COMPLIANT`], [`REMEDIATING`] or [`REMEDIATED`].
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

pub const NON_COMPLIANT: &str = "non-compliant";
/// Written before a re-encryption, with [`PREVIOUS_KEY_TAG`]; replaced by [`REMEDIATED`] once the
/// re-encryption is done and reported.
pub const REMEDIATING: &str = "remediating";
pub const REMEDIATED: &str = "remediated";

/// [`PREVIOUS_KEY_TAG`]'s value for a secret on the AWS managed default key, and how records
/// name that key.
pub const DEFAULT_KEY: &str = "aws/secretsmanager";
