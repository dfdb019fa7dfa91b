//! Builds a case's world in moto: the region's keys and alias, the secret (with two versions of a
//! canary value), the SNS topic; and reads the secret back afterwards.

use std::collections::BTreeMap;

use aws_sdk_kms::types::KeyUsageType;
use aws_sdk_secretsmanager::types::{ReplicaRegionType, Tag};

use crate::Moto;

pub use cmkguard_core::fake::cases::KEY_ALIAS;
pub const TOPIC_NAME: &str = "cmkguard";
pub const REGIONS: [&str; 2] = ["us-east-1", "us-west-2"];

use cmkguard_core::KeyState;
/// The keys made in one account and region (the key kinds of `testdata/cases.json` are declared
/// once, with them, in the engine's fakes).
pub use cmkguard_core::fake::cases::{KeyKind, Keys, standard_keys};
use cmkguard_core::fake::clean_policy;

/// A secret as a case describes it.
#[derive(Debug, Clone, Default)]
pub struct SecretSpec {
    pub name: String,
    pub account: String,
    pub region: String,
    /// `default`, `aws-alias`, `cmk`, `cmk-alias`, `cmk-disabled`, `cmk-pending-deletion`, `other-cmk`.
    pub key: String,
    pub tags: BTreeMap<String, String>,
    pub owning_service: Option<String>,
    pub replica_regions: Vec<String>,
}

impl SecretSpec {
    /// A secret named `name` on the key kind `key`, in the default account and `us-east-1`.
    pub fn new(name: &str, key: &str) -> SecretSpec {
        SecretSpec {
            name: name.to_owned(),
            account: crate::DEFAULT_ACCOUNT.to_owned(),
            region: "us-east-1".to_owned(),
            key: key.to_owned(),
            ..SecretSpec::default()
        }
    }
}

/// A made secret: its ARN and the values of its two versions.
#[derive(Debug, Clone)]
pub struct MadeSecret {
    pub arn: String,
    pub previous_value: String,
    pub current_value: String,
}

/// What a secret looks like after the guard ran.
#[derive(Debug, Clone)]
pub struct SecretState {
    pub kms_key_id: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub current_value: String,
    pub previous_value: Option<String>,
}

impl SecretState {
    /// Panics unless the secret is on `key`, marked `remediated`, and holds `made`'s values in
    /// both versions: re-encrypted, nothing lost.
    pub fn assert_reencrypted(&self, key: &str, made: &MadeSecret) {
        assert_eq!(self.kms_key_id.as_deref(), Some(key), "key after: {self:?}");
        assert_eq!(
            self.tags.get("cmkguard:status").map(String::as_str),
            Some("remediated"),
            "tags after: {:?}",
            self.tags
        );
        assert_eq!(self.current_value, made.current_value, "AWSCURRENT value");
        assert_eq!(
            self.previous_value.as_deref(),
            Some(made.previous_value.as_str()),
            "AWSPREVIOUS value"
        );
    }
}

/// A canary: a secret value that must never appear in any output.
pub fn canary(name: &str, version: &str) -> String {
    format!(
        "CANARY-{version}-{}-do-not-log",
        name.replace(['/', '!'], "_")
    )
}

/// A key with secrets on it (see [`Moto::secrets_on_a_key`]).
pub struct KeyWithSecrets {
    pub key_arn: String,
    /// The key's bare id (moto's key state calls take the id, not the ARN).
    pub key_id: String,
    /// The ARNs of the three secrets on the key (by key id, key ARN and alias), sorted.
    pub on_key: Vec<String>,
    pub kms: aws_sdk_kms::Client,
}

/// A key event's cause, done to the key in moto (by its bare id, as moto needs).
impl KeyWithSecrets {
    pub async fn disable(&self) {
        let done = self.kms.disable_key().key_id(&self.key_id).send().await;
        done.expect("kms disable_key on moto");
    }

    pub async fn enable(&self) {
        let done = self.kms.enable_key().key_id(&self.key_id).send().await;
        done.expect("kms enable_key on moto");
    }

    pub async fn cancel_deletion(&self) {
        let done = self
            .kms
            .cancel_key_deletion()
            .key_id(&self.key_id)
            .send()
            .await;
        done.expect("kms cancel_key_deletion on moto");
    }
}

// Long: the worlds the tests build in moto, each a few calls, kept together.
impl Moto {
    /// In `account` and `region`: the designated key, a key `alias/app` with three secrets on it
    /// (by key id, key ARN and alias), a secret on another key, one on the default key, and
    /// `others` more on the other key.
    pub async fn secrets_on_a_key(
        &self,
        account: &str,
        region: &str,
        others: usize,
    ) -> KeyWithSecrets {
        let keys = self.make_keys(account, region, true).await;
        let kms = self.kms_client(account, region).await;
        let key_arn = kms
            .create_key()
            .description("the key of the app")
            .send()
            .await
            .expect("kms create_key on moto")
            .key_metadata()
            .and_then(|m| m.arn())
            .expect("a key ARN")
            .to_owned();
        kms.create_alias()
            .alias_name("alias/app")
            .target_key_id(&key_arn)
            .send()
            .await
            .expect("kms create_alias on moto");
        let key_id = key_arn.rsplit('/').next().unwrap_or_default().to_owned();
        let secrets = self.secrets_client(account, region).await;
        let make = |name: String, key: Option<String>| {
            let secrets = secrets.clone();
            async move {
                secrets
                    .create_secret()
                    .name(name)
                    .secret_string(canary("key-events", "current"))
                    .set_kms_key_id(key)
                    .send()
                    .await
                    .expect("create_secret on moto")
                    .arn()
                    .expect("a secret ARN")
                    .to_owned()
            }
        };
        let mut on_key = vec![
            make("on/id".into(), Some(key_id)).await,
            make("on/arn".into(), Some(key_arn.clone())).await,
            make("on/alias".into(), Some("alias/app".into())).await,
        ];
        on_key.sort();
        make("off/other".into(), Some(keys.arn("other").to_owned())).await;
        make("off/default".into(), None).await;
        for i in 0..others {
            make(format!("off/{i:03}"), Some(keys.arn("other").to_owned())).await;
        }
        KeyWithSecrets {
            key_id: key_arn.rsplit('/').next().unwrap_or_default().to_owned(),
            key_arn,
            on_key,
            kms,
        }
    }

    pub async fn secrets_client(
        &self,
        account: &str,
        region: &str,
    ) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.config_for(account, region).await)
    }

    pub async fn kms_client(&self, account: &str, region: &str) -> aws_sdk_kms::Client {
        aws_sdk_kms::Client::new(&self.config_for(account, region).await)
    }

    /// Replaces the key policy of `key_arn` (a key of `account` and `region`), as its owner's
    /// `PutKeyPolicy` does.
    pub async fn put_key_policy(&self, account: &str, region: &str, key_arn: &str, policy: &str) {
        // moto 5.2.5 answers 500 to some key calls given an ARN: use the bare key id.
        let key_id = key_arn.rsplit('/').next().unwrap_or(key_arn);
        self.kms_client(account, region)
            .await
            .put_key_policy()
            .key_id(key_id)
            .policy_name("default")
            .policy(policy)
            .send()
            .await
            .expect("kms put_key_policy on moto");
    }

    async fn config_for(&self, account: &str, region: &str) -> aws_config::SdkConfig {
        if account == crate::DEFAULT_ACCOUNT {
            self.sdk_config(region).await
        } else {
            self.sdk_config_for_account(account, region).await
        }
    }

    /// The designated key (with `alias/cmkguard/secrets` unless `alias` is false) and three more:
    /// the case table's [`standard_keys`].
    pub async fn make_keys(&self, account: &str, region: &str, alias: bool) -> Keys {
        self.make_keys_of(account, region, alias, &standard_keys())
            .await
    }

    /// The keys `kinds` (each with its state and its key policy: the row's, else one with no
    /// finding), and
    /// `alias/cmkguard/secrets` on the designated one unless `alias` is false.
    pub async fn make_keys_of(
        &self,
        account: &str,
        region: &str,
        alias: bool,
        kinds: &[KeyKind],
    ) -> Keys {
        let kms = self.kms_client(account, region).await;
        // moto 5.2.5 answers 500 to state changes given an ARN: use the bare key id.
        let id = |arn: &str| arn.rsplit('/').next().unwrap_or(arn).to_owned();
        let mut by_name = std::collections::BTreeMap::new();
        for kind in kinds {
            let out = kms
                .create_key()
                .description(format!("cmkguard test key `{}`", kind.name))
                .key_usage(KeyUsageType::EncryptDecrypt)
                // A key with no policy of its own in the row gets the one the project's key
                // template writes (the review finds nothing in it), as in a deployment; moto
                // would give AWS's default policy.
                .policy(match &kind.policy {
                    Some(policy) => policy.to_string(),
                    None => clean_policy(&format!("arn:aws:kms:{region}:{account}:key/new")),
                })
                .send()
                .await
                .expect("kms create_key on moto");
            let arn = out
                .key_metadata()
                .and_then(|m| m.arn())
                .expect("a key ARN")
                .to_owned();
            match kind.key_state() {
                KeyState::Enabled => {}
                KeyState::Disabled => {
                    kms.disable_key()
                        .key_id(id(&arn))
                        .send()
                        .await
                        .expect("disable_key");
                }
                KeyState::PendingDeletion => {
                    kms.schedule_key_deletion()
                        .key_id(id(&arn))
                        .pending_window_in_days(7)
                        .send()
                        .await
                        .expect("schedule_key_deletion");
                }
                KeyState::Other(state) => panic!("moto cannot make a key `{state}`"),
            }
            by_name.insert(kind.name.clone(), arn);
        }
        let keys = Keys::new(by_name);
        if alias {
            kms.create_alias()
                .alias_name(KEY_ALIAS)
                .target_key_id(&keys.designated)
                .send()
                .await
                .expect("create_alias");
        }
        keys
    }

    /// The `KmsKeyId` a key kind stands for.
    pub fn key_id_for(keys: &Keys, kind: &str) -> Option<String> {
        keys.key_id(kind)
    }

    /// The most common world of a Lambda test: the designated key and its alias in the default
    /// account and `us-east-1`, a secret `name` there on the default key, and the
    /// `CreateSecret-default-key.json` fixture naming it.
    pub async fn default_key_secret(&self, name: &str) -> (Keys, MadeSecret, serde_json::Value) {
        let keys = self
            .make_keys(crate::DEFAULT_ACCOUNT, "us-east-1", true)
            .await;
        let made = self
            .make_secret(&SecretSpec::new(name, "default"), &keys)
            .await;
        let event = crate::event_for("CreateSecret-default-key.json", &made.arn);
        (keys, made, event)
    }

    /// Creates the secret with two versions (AWSPREVIOUS and AWSCURRENT) of canary values.
    pub async fn make_secret(&self, spec: &SecretSpec, keys: &Keys) -> MadeSecret {
        let client = self.secrets_client(&spec.account, &spec.region).await;
        let previous_value = canary(&spec.name, "previous");
        let current_value = canary(&spec.name, "current");
        let mut tags: Vec<Tag> = spec
            .tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        if let Some(service) = &spec.owning_service {
            // How moto makes a managed secret (see MOTO.md).
            tags.push(
                Tag::builder()
                    .key("aws:secretsmanager:owningService")
                    .value(service)
                    .build(),
            );
        }
        let replicas: Vec<ReplicaRegionType> = spec
            .replica_regions
            .iter()
            .map(|r| ReplicaRegionType::builder().region(r).build())
            .collect();
        let out = client
            .create_secret()
            .name(&spec.name)
            .secret_string(&previous_value)
            .set_kms_key_id(Self::key_id_for(keys, &spec.key))
            .set_tags((!tags.is_empty()).then_some(tags))
            .set_add_replica_regions((!replicas.is_empty()).then_some(replicas))
            .send()
            .await
            .expect("create_secret on moto");
        let arn = out.arn().expect("a secret ARN").to_owned();
        client
            .put_secret_value()
            .secret_id(&arn)
            .secret_string(&current_value)
            .send()
            .await
            .expect("put_secret_value");
        MadeSecret {
            arn,
            previous_value,
            current_value,
        }
    }

    /// The secret's key, tags and the values of its AWSCURRENT and AWSPREVIOUS versions.
    ///
    /// The harness reads the values (in moto, with the canary values it wrote) to prove that a
    /// re-encryption left them unchanged; the guard never does (`GetSecretValue` is in no product
    /// crate and no template: `crates/cmkguard-cli/tests/secrets_stay_secret.rs`,
    /// `cloudformation/tests`).
    pub async fn secret_state(&self, account: &str, region: &str, arn: &str) -> SecretState {
        let client = self.secrets_client(account, region).await;
        let described = client
            .describe_secret()
            .secret_id(arn)
            .send()
            .await
            .expect("describe_secret");
        let value = |stage: &'static str| {
            let client = client.clone();
            async move {
                client
                    .get_secret_value()
                    .secret_id(arn)
                    .version_stage(stage)
                    .send()
                    .await
                    .ok()
                    .and_then(|v| v.secret_string().map(str::to_owned))
            }
        };
        SecretState {
            kms_key_id: described.kms_key_id().map(str::to_owned),
            tags: described
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
                .collect(),
            current_value: value("AWSCURRENT").await.expect("the AWSCURRENT value"),
            previous_value: value("AWSPREVIOUS").await,
        }
    }

    /// The guard's SNS topic in the default account, `us-east-1`.
    pub async fn make_topic(&self) -> String {
        let sns = aws_sdk_sns::Client::new(&self.sdk_config("us-east-1").await);
        let out = sns
            .create_topic()
            .name(TOPIC_NAME)
            .send()
            .await
            .expect("create_topic");
        out.topic_arn().expect("a topic ARN").to_owned()
    }

    /// Every Security Hub finding of `account` and `region`, as ASFF JSON (`GetFindings`; moto
    /// ignores filters). Plain HTTP: the SDK's deserializer for these types needs more stack
    /// than a test thread has in a debug build.
    pub fn findings(&self, account: &str, region: &str) -> Vec<serde_json::Value> {
        let authorization = unsigned_authorization("securityhub", region);
        let mut findings = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut body = serde_json::json!({"MaxResults": 100});
            if let Some(token) = &token {
                body["NextToken"] = token.clone().into();
            }
            let response = crate::http::request(
                "POST",
                &format!("{}/findings", self.endpoint()),
                &[
                    ("Content-Type", "application/json"),
                    ("Authorization", &authorization),
                    ("x-moto-account-id", account),
                ],
                body.to_string().as_bytes(),
            )
            .expect("GetFindings on moto");
            assert_eq!(response.status, 200, "GetFindings: {}", response.text());
            let page = response.json().expect("GetFindings answers JSON");
            findings.extend(page["Findings"].as_array().cloned().unwrap_or_default());
            token = page["NextToken"]
                .as_str()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if token.is_none() {
                return findings;
            }
        }
    }

    /// An SQS queue subscribed to `topic`, so a test counts messages as a subscriber receives
    /// them. SQS is driven with its query protocol over plain HTTP (moto does not check
    /// signatures): one SDK crate fewer to build for a test-only reader.
    pub async fn subscribe_queue(&self, topic: &str, name: &str) -> Queue {
        let account = topic
            .split(':')
            .nth(4)
            .expect("a topic ARN names its account");
        let region = topic
            .split(':')
            .nth(3)
            .expect("a topic ARN names its region");
        let created = self.sqs(region, &[("Action", "CreateQueue"), ("QueueName", name)]);
        let url = between(&created, "<QueueUrl>", "</QueueUrl>")
            .unwrap_or_else(|| panic!("CreateQueue answered no QueueUrl: {created}"))
            .to_owned();
        let arn = format!("arn:aws:sqs:{region}:{account}:{name}");
        let sns = aws_sdk_sns::Client::new(&self.sdk_config(region).await);
        sns.subscribe()
            .topic_arn(topic)
            .protocol("sqs")
            .endpoint(&arn)
            .send()
            .await
            .expect("subscribe the queue to the topic");
        Queue {
            url,
            region: region.to_owned(),
        }
    }

    /// Every message on `queue` not received before (each SNS envelope's body, as SQS holds it).
    pub fn receive_all(&self, queue: &Queue) -> Vec<String> {
        let mut bodies = Vec::new();
        loop {
            let answer = self.sqs(
                &queue.region,
                &[
                    ("Action", "ReceiveMessage"),
                    ("QueueUrl", &queue.url),
                    ("MaxNumberOfMessages", "10"),
                    ("VisibilityTimeout", "600"),
                ],
            );
            let before = bodies.len();
            let mut rest = answer.as_str();
            while let Some(body) = between(rest, "<Body>", "</Body>") {
                bodies.push(body.to_owned());
                rest = &rest[rest.find("</Body>").map_or(rest.len(), |i| i + 7)..];
            }
            if bodies.len() == before {
                return bodies;
            }
        }
    }

    /// One SQS query-protocol call; the XML answer.
    fn sqs(&self, region: &str, params: &[(&str, &str)]) -> String {
        let mut form = String::from("Version=2012-11-05");
        for (name, value) in params {
            form.push_str(&format!("&{name}={}", url_encode(value)));
        }
        let authorization = unsigned_authorization("sqs", region);
        let response = crate::http::request(
            "POST",
            &format!("{}/", self.endpoint()),
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Authorization", &authorization),
            ],
            form.as_bytes(),
        )
        .expect("an SQS call to moto");
        let text = response.text();
        assert_eq!(response.status, 200, "SQS {params:?}: {text}");
        text
    }
}

/// An SQS queue in moto (see [`Moto::subscribe_queue`]).
#[derive(Debug, Clone)]
pub struct Queue {
    pub url: String,
    pub region: String,
}

/// An `Authorization` header that names `service` and `region` (how moto routes a request); moto
/// does not check the signature.
fn unsigned_authorization(service: &str, region: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=testing/20260101/{region}/{service}/aws4_request, SignedHeaders=host, Signature=0"
    )
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let end = start + text[start..].find(close)?;
    Some(&text[start..end])
}

fn url_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
