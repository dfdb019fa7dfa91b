//! What the guard knows about a secret and its key, as AWS reported it.

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecretFacts {
    pub arn: String,
    pub name: String,
    /// `None`: the secret is on the default key, `aws/secretsmanager`.
    pub kms_key_id: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// Set when another service (RDS, Redshift, ...) manages the secret.
    pub owning_service: Option<String>,
    /// Regions this secret is replicated to.
    pub replicas: Vec<Replica>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Replica {
    pub region: String,
    /// `None` or an `alias/aws/...` id: the replica is on its region's default key.
    pub kms_key_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum KeyManager {
    #[serde(rename = "AWS")]
    Aws,
    #[serde(rename = "CUSTOMER")]
    Customer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    Enabled,
    Disabled,
    PendingDeletion,
    /// Any other state (`PendingImport`, `Unavailable`, ...), as AWS spells it.
    Other(String),
}

/// What `DescribeKey` says about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFacts {
    pub arn: String,
    pub manager: KeyManager,
    pub state: KeyState,
}
