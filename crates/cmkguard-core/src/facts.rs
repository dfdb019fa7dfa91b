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
    /// Versions whose staging labels are all custom (none of `AWSCURRENT`, `AWSPREVIOUS`,
    /// `AWSPENDING`), by version id: AWS does not re-encrypt them when the secret's key changes.
    pub custom_label_versions: BTreeMap<String, Vec<String>>,
    /// When the secret was created (`CreatedDate`), if known.
    pub created: Option<std::time::SystemTime>,
    /// The version labelled `AWSCURRENT`, if known.
    pub current_version: Option<String>,
    /// The version labelled `AWSPENDING`, if any (a rotation under way, or one that failed).
    pub pending_version: Option<String>,
    /// `RotationEnabled`: the secret has a rotation configured.
    pub rotation_enabled: bool,
    /// Every version with its keys and creation time (`ListSecretVersionIds`), read only with
    /// `CMKGUARD_CHECK_VERSIONS`, or to tell whether a new current version postdates a move;
    /// `None` when not read.
    pub versions: Option<Vec<SecretVersion>>,
}

/// One version of a secret as `ListSecretVersionIds` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecretVersion {
    pub id: String,
    pub stages: Vec<String>,
    /// The keys the version is encrypted under (`KmsKeyIds`): key ARNs or ids, and
    /// `DefaultEncryptionKey` for the AWS managed key. Empty when AWS (or moto) does not say.
    pub kms_key_ids: Vec<String>,
    /// `CreatedDate`: a version made after a move is under the new key alone.
    pub created: Option<std::time::SystemTime>,
}

/// `KmsKeyIds`' name for the AWS managed key `aws/secretsmanager`.
pub const DEFAULT_ENCRYPTION_KEY: &str = "DefaultEncryptionKey";

/// The staging labels whose versions AWS re-encrypts when a secret's key changes.
pub const AWS_STAGING_LABELS: [&str; 3] = ["AWSCURRENT", "AWSPREVIOUS", "AWSPENDING"];

/// The reason word for versions that keep the previous key after a re-encryption.
pub const CUSTOM_LABEL_VERSIONS: &str = "custom-label-versions";

impl SecretFacts {
    /// Reads `VersionIdsToStages` (`DescribeSecret`) or `SecretVersionsToStages`
    /// (`ListSecrets`): the current and pending versions, and those with only custom labels.
    pub fn set_version_stages<'a>(
        &mut self,
        versions: impl IntoIterator<Item = (&'a str, &'a [String])> + Clone,
    ) {
        let labelled = |stage: &str| {
            versions
                .clone()
                .into_iter()
                .find(|(_, labels)| labels.iter().any(|l| l == stage))
                .map(|(id, _)| id.to_owned())
        };
        self.current_version = labelled("AWSCURRENT");
        self.pending_version = labelled("AWSPENDING");
        self.set_custom_label_versions(versions);
    }

    /// Keeps, of `versions` (version id to staging labels), those that carry only custom labels.
    pub fn set_custom_label_versions<'a>(
        &mut self,
        versions: impl IntoIterator<Item = (&'a str, &'a [String])>,
    ) {
        self.custom_label_versions = versions
            .into_iter()
            .filter(|(_, labels)| {
                !labels.is_empty()
                    && !labels
                        .iter()
                        .any(|l| AWS_STAGING_LABELS.contains(&l.as_str()))
            })
            .map(|(id, labels)| (id.to_owned(), labels.to_vec()))
            .collect();
    }

    /// What a re-encryption leaves behind, when versions carry only custom labels.
    pub fn custom_label_note(&self) -> Option<String> {
        const SHOWN: usize = 5;
        if self.custom_label_versions.is_empty() {
            return None;
        }
        let mut listed: Vec<String> = self
            .custom_label_versions
            .iter()
            .take(SHOWN)
            .map(|(id, labels)| {
                let labels: Vec<String> = labels
                    .iter()
                    .take(SHOWN)
                    .map(|l| format!("`{}`", crate::text::shorten(l)))
                    .collect();
                format!("`{}` ({})", crate::text::shorten(id), labels.join(", "))
            })
            .collect();
        let more = self.custom_label_versions.len().saturating_sub(SHOWN);
        if more > 0 {
            listed.push(format!("{more} more"));
        }
        Some(format!(
            "{CUSTOM_LABEL_VERSIONS}: {} version(s) with only custom staging labels keep the previous key, as AWS re-encrypts only the AWSCURRENT, AWSPREVIOUS and AWSPENDING versions: {}",
            self.custom_label_versions.len(),
            listed.join(", ")
        ))
    }
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
    /// When a key pending deletion is deleted (`DeletionDate`).
    pub deletion_date: Option<std::time::SystemTime>,
}

impl KeyFacts {
    /// A customer managed key in `state`.
    pub fn customer(arn: impl Into<String>, state: KeyState) -> Self {
        KeyFacts {
            arn: arn.into(),
            manager: KeyManager::Customer,
            state,
            deletion_date: None,
        }
    }

    /// An AWS managed key (always enabled).
    pub fn aws(arn: impl Into<String>) -> Self {
        KeyFacts {
            arn: arn.into(),
            manager: KeyManager::Aws,
            state: KeyState::Enabled,
            deletion_date: None,
        }
    }

    /// The same key, to be deleted at `date`.
    pub fn deleted_at(mut self, date: Option<std::time::SystemTime>) -> Self {
        self.deletion_date = date;
        self
    }
}
