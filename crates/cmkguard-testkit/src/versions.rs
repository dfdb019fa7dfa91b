//! A secret's versions, for the tests of finishing a move (the contract's "Finishing a move"):
//! which version is `AWSCURRENT`, a new one made the ways a secret's owner makes them (a new
//! value, a rotation, a label moved), and the events that say so (the fixtures, pointed at the
//! secret).
//!
//! The harness writes values here, as a secret's owner would; the guard never does
//! (`crates/cmkguard-cli/tests/secrets_stay_secret.rs`).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::Moto;

/// What `DescribeSecret` says of a secret, without its values (a version moto's own rotation
/// made has none).
#[derive(Debug, Clone)]
pub struct Described {
    pub kms_key_id: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// Version id -> its labels.
    pub versions: BTreeMap<String, Vec<String>>,
    pub rotation_enabled: bool,
}

impl Described {
    /// The id of the version labelled `stage` (`AWSCURRENT`, `AWSPREVIOUS`, ...), if any.
    pub fn labelled(&self, stage: &str) -> Option<&str> {
        self.versions
            .iter()
            .find(|(_, labels)| labels.iter().any(|l| l == stage))
            .map(|(id, _)| id.as_str())
    }

    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.get(key).map(String::as_str)
    }
}

/// Versions read and made, in moto.
impl Moto {
    pub async fn describe(&self, account: &str, region: &str, arn: &str) -> Described {
        let out = self
            .secrets_client(account, region)
            .await
            .describe_secret()
            .secret_id(arn)
            .send()
            .await
            .expect("describe_secret on moto");
        Described {
            kms_key_id: out.kms_key_id().map(str::to_owned),
            tags: out
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
                .collect(),
            versions: out
                .version_ids_to_stages()
                .into_iter()
                .flatten()
                .map(|(id, labels)| (id.clone(), labels.clone()))
                .collect(),
            rotation_enabled: out.rotation_enabled() == Some(true),
        }
    }

    /// The id of the version labelled `AWSCURRENT`.
    pub async fn current_version(&self, account: &str, region: &str, arn: &str) -> String {
        self.describe(account, region, arn)
            .await
            .labelled("AWSCURRENT")
            .unwrap_or_else(|| panic!("`{arn}` has no AWSCURRENT version"))
            .to_owned()
    }

    /// `PutSecretValue` with `value` and `labels` (none: `AWSCURRENT`, as AWS defaults); the new
    /// version's id.
    pub async fn put_value(
        &self,
        account: &str,
        region: &str,
        arn: &str,
        value: &str,
        labels: &[&str],
    ) -> String {
        self.secrets_client(account, region)
            .await
            .put_secret_value()
            .secret_id(arn)
            .secret_string(value)
            .set_version_stages(
                (!labels.is_empty()).then(|| labels.iter().map(|l| (*l).to_owned()).collect()),
            )
            .send()
            .await
            .expect("put_secret_value on moto")
            .version_id()
            .expect("a version id")
            .to_owned()
    }

    /// Turns rotation on (`RotateSecret` with `RotationRules` every `days` days, no function):
    /// moto 5.2.5 labels a new version `AWSCURRENT` at once (see `shared/MOTO.md`). The new
    /// current version's id.
    pub async fn enable_rotation(
        &self,
        account: &str,
        region: &str,
        arn: &str,
        days: i64,
    ) -> String {
        let before = self.current_version(account, region, arn).await;
        self.secrets_client(account, region)
            .await
            .rotate_secret()
            .secret_id(arn)
            .rotation_rules(
                aws_sdk_secretsmanager::types::RotationRulesType::builder()
                    .automatically_after_days(days)
                    .build(),
            )
            .send()
            .await
            .expect("rotate_secret on moto");
        let after = self.describe(account, region, arn).await;
        assert!(after.rotation_enabled, "moto turned rotation on: {after:?}");
        let current = after.labelled("AWSCURRENT").unwrap_or_default().to_owned();
        assert_ne!(
            current, before,
            "moto's RotateSecret made a new AWSCURRENT version"
        );
        current
    }

    /// `UpdateSecretVersionStage`: `stage` onto `version` (from wherever it was).
    pub async fn move_label(
        &self,
        account: &str,
        region: &str,
        arn: &str,
        stage: &str,
        version: &str,
    ) {
        let from = self
            .describe(account, region, arn)
            .await
            .labelled(stage)
            .map(str::to_owned);
        self.secrets_client(account, region)
            .await
            .update_secret_version_stage()
            .secret_id(arn)
            .version_stage(stage)
            .move_to_version_id(version)
            .set_remove_from_version_id(from)
            .send()
            .await
            .expect("update_secret_version_stage on moto");
    }
}

/// The events that give a secret a new `AWSCURRENT` version, as EventBridge delivers them: the
/// fixtures `testdata/events/<event>-*.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionEvent {
    /// `PutSecretValue` (CloudTrail API call).
    PutSecretValue,
    /// `RotateSecret` (CloudTrail API call).
    RotateSecret,
    /// `UpdateSecretVersionStage` moving `AWSCURRENT` (CloudTrail API call).
    UpdateSecretVersionStage,
    /// `RotationSucceeded`, the service event Secrets Manager records when a rotation finished.
    RotationSucceeded,
}

impl VersionEvent {
    pub fn fixture(self) -> &'static str {
        match self {
            VersionEvent::PutSecretValue => "PutSecretValue-new-version.json",
            VersionEvent::RotateSecret => "RotateSecret-immediately.json",
            VersionEvent::UpdateSecretVersionStage => "UpdateSecretVersionStage-move-current.json",
            VersionEvent::RotationSucceeded => "RotationSucceeded-service-event.json",
        }
    }

    /// The fixture about the secret `arn` instead of its own: the ARN, the secret's name and
    /// account, and the version the call made or labelled `AWSCURRENT` (`version`) replaced.
    /// An API call names the secret in `responseElements.arn`, the service event only in
    /// `additionalEventData.SecretId`.
    pub fn for_secret(self, arn: &str, version: &str) -> Value {
        let path = crate::workspace_root()
            .join("testdata/events")
            .join(self.fixture());
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read `{}`: {e}", path.display()));
        let fixture: Value = serde_json::from_str(&text).expect("a fixture is JSON");
        let detail = &fixture["detail"];
        let fixture_arn = detail["responseElements"]["arn"]
            .as_str()
            .or(detail["additionalEventData"]["SecretId"].as_str())
            .expect("the fixture names its secret");
        let mut text = text.replace(fixture_arn, arn);
        let fixture_version = detail["responseElements"]["versionId"]
            .as_str()
            .or(detail["requestParameters"]["moveToVersionId"].as_str());
        if let Some(fixture_version) = fixture_version {
            text = text.replace(fixture_version, version);
        }
        let name = |arn: &str| cmkguard_core::arn::secret_name(arn);
        let account = |arn: &str| arn.split(':').nth(4).unwrap_or_default().to_owned();
        let text = text
            .replace(
                &format!("\"{}\"", name(fixture_arn)),
                &format!("\"{}\"", name(arn)),
            )
            .replace(&account(fixture_arn), &account(arn));
        serde_json::from_str(&text).expect("still JSON")
    }
}
