//! The shared table of cases, `testdata/cases.json`, run through the engine, the CLI and the
//! Lambda alike.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::{FakeAws, customer_key};
use crate::{Config, Context, KeyState, Replica, Scope, SecretFacts};
use serde_json::Value;

pub const OWN_ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";
pub const KEY_ALIAS: &str = "alias/cmkguard/secrets";

#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    pub case: String,
    pub event: String,
    pub secret: Option<CaseSecret>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub expect: Expect,
    /// The layers the case runs through; every one unless the row names some.
    #[serde(default = "Layer::all")]
    pub layers: Vec<Layer>,
    /// Keys of the row's own, besides the [`standard_keys`].
    #[serde(default)]
    pub keys: Vec<KeyKind>,
}

/// Where a case runs: the engine with fakes, the CLI against moto, the Lambda handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    Engine,
    Cli,
    Lambda,
}

impl Layer {
    pub fn all() -> Vec<Layer> {
        vec![Layer::Engine, Layer::Cli, Layer::Lambda]
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct CaseSecret {
    pub name: String,
    #[serde(default = "own_account")]
    pub account: String,
    #[serde(default = "region")]
    pub region: String,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub owning_service: Option<String>,
    #[serde(default)]
    pub replica_regions: Vec<String>,
    #[serde(default = "yes")]
    pub exists: bool,
    #[serde(default)]
    pub no_alias: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Expect {
    pub verdict: String,
    pub reason: String,
    pub key_manager: Option<String>,
    /// The record's `key_policy` words, when the row says (absent: not checked).
    #[serde(default)]
    pub key_policy: Option<Vec<String>>,
    pub actions: Vec<(String, String)>,
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub key_after: Option<String>,
    #[serde(default)]
    pub notified: Option<bool>,
}

fn own_account() -> String {
    OWN_ACCOUNT.into()
}
fn region() -> String {
    REGION.into()
}
fn yes() -> bool {
    true
}

pub fn testdata() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata"))
}

/// Every case of the table.
pub fn load() -> Vec<Case> {
    let path = testdata().join("cases.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read `{}`: {e}", path.display()));
    parse(&text).unwrap_or_else(|e| panic!("`{}`: {e}", path.display()))
}

/// The cases that run through `layer`.
pub fn load_for(layer: Layer) -> Vec<Case> {
    load()
        .into_iter()
        .filter(|case| case.layers.contains(&layer))
        .collect()
}

/// Reads a case table (`{"cases": [...]}`).
pub fn parse(text: &str) -> serde_json::Result<Vec<Case>> {
    let mut table: Value = serde_json::from_str(text)?;
    serde_json::from_value(table["cases"].take())
}

/// An event fixture, parsed.
pub fn event(file: &str) -> Value {
    let path = testdata().join("events").join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read `{}`: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("`{}`: {e}", path.display()))
}

/// The secret ARN an event fixture carries in `responseElements` (or, for a service event, in
/// `additionalEventData.SecretId`), if any.
pub fn fixture_arn(event: &Value) -> Option<String> {
    let response = &event["detail"]["responseElements"];
    response["arn"]
        .as_str()
        .or(response["aRN"].as_str())
        .or(event["detail"]["additionalEventData"]["SecretId"].as_str())
        .map(str::to_owned)
}

/// Substitutes `${CMK_ARN}` in configuration values.
pub fn expand(value: &str, cmk_arn: &str) -> String {
    value.replace("${CMK_ARN}", cmk_arn)
}

impl Case {
    /// A one-line description for assertion messages.
    pub fn label(&self) -> String {
        format!("case `{}` ({})", self.case, self.event)
    }
}

/// `(action, outcome)` pairs of a record (as JSON).
pub fn actions(record: &Value) -> Vec<(String, String)> {
    record["actions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    (
                        x["action"].as_str().unwrap_or("?").to_owned(),
                        x["outcome"].as_str().unwrap_or("?").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Checks a record (as JSON) against a case's expectations; returns what differs.
pub fn check_record(case: &Case, record: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let want = &case.expect;
    if record["verdict"] != want.verdict.as_str() {
        problems.push(format!("verdict {} != {}", record["verdict"], want.verdict));
    }
    if record["reason"] != want.reason.as_str() {
        problems.push(format!("reason {} != {}", record["reason"], want.reason));
    }
    let manager = record["key_manager"].as_str().map(str::to_owned);
    if manager != want.key_manager {
        problems.push(format!("key_manager {manager:?} != {:?}", want.key_manager));
    }
    if let Some(words) = &want.key_policy
        && record["key_policy"] != serde_json::json!(words)
    {
        problems.push(format!("key_policy {} != {words:?}", record["key_policy"]));
    }
    let actions = actions(record);
    if actions != want.actions {
        problems.push(format!(
            "actions {actions:?} != {:?} (record: {record})",
            want.actions
        ));
    }
    problems
}

/// The `cmkguard:*` tags of a tag map; a key ARN in `cmkguard:previous-key` reads `<key-arn>`
/// (ARNs differ between the fake and moto).
pub fn guard_tags(tags: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    tags.iter()
        .filter(|(k, _)| k.starts_with("cmkguard:") && *k != "cmkguard:exempt")
        .map(|(k, v)| {
            let v = if k == crate::tags::PREVIOUS_KEY_TAG && v.starts_with("arn:") {
                "<key-arn>".to_owned()
            } else if k == crate::tags::MOVED_VERSION_TAG
                || k == crate::tags::ROTATION_REQUESTED_TAG
            {
                // Version ids differ between the fake and moto.
                "<version>".to_owned()
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect()
}

// The case's world in the in-memory fake.

pub fn key_arn(scope: &Scope, id: &str) -> String {
    crate::arn::kms_key_arn(&scope.region, &scope.account, id)
}

/// A customer managed key every world of a case has in each account and region: its name, its
/// state, and its key policy (`None`: one the review finds nothing in, as the project's key
/// template writes it: [`crate::fake::clean_policy`]). The four
/// every case has are [`standard_keys`]; a row adds its own under `keys`, and names them in
/// `secret.key` as `key:NAME`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct KeyKind {
    pub name: String,
    /// `Enabled`, `Disabled` or `PendingDeletion`.
    #[serde(default = "enabled")]
    pub state: String,
    #[serde(default)]
    pub policy: Option<Value>,
}

fn enabled() -> String {
    "Enabled".into()
}

impl KeyKind {
    fn new(name: &str, state: &str) -> Self {
        KeyKind {
            name: name.into(),
            state: state.into(),
            policy: None,
        }
    }

    pub fn key_state(&self) -> KeyState {
        match self.state.as_str() {
            "Enabled" => KeyState::Enabled,
            "Disabled" => KeyState::Disabled,
            "PendingDeletion" => KeyState::PendingDeletion,
            other => panic!("key `{}`: unknown state `{other}`", self.name),
        }
    }
}

/// The keys every case's world has: the designated key (`alias/cmkguard/secrets` points to it),
/// another enabled one, a disabled one and one pending deletion.
pub fn standard_keys() -> Vec<KeyKind> {
    vec![
        KeyKind::new(DESIGNATED, "Enabled"),
        KeyKind::new("other", "Enabled"),
        KeyKind::new("disabled", "Disabled"),
        KeyKind::new("pending-deletion", "PendingDeletion"),
    ]
}

/// The name of the designated key among the [`KeyKind`]s.
pub const DESIGNATED: &str = "designated";

impl Case {
    /// Every key of the case's world: the standard ones, then the row's own.
    pub fn key_kinds(&self) -> Vec<KeyKind> {
        let mut kinds = standard_keys();
        kinds.extend(self.keys.iter().cloned());
        kinds
    }
}

/// The keys of one account and region, by [`KeyKind`] name (made in the fake here, in moto by
/// the testkit).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    /// The designated key (`alias/cmkguard/secrets` points to it).
    pub designated: String,
    /// Every key by its name, the designated one included.
    pub by_name: BTreeMap<String, String>,
}

impl Keys {
    /// The keys named `names`, with ARNs from `arn`.
    pub fn new(by_name: BTreeMap<String, String>) -> Keys {
        Keys {
            designated: by_name.get(DESIGNATED).cloned().unwrap_or_default(),
            by_name,
        }
    }

    /// The ARN of the key named `name`.
    pub fn arn(&self, name: &str) -> &str {
        self.by_name
            .get(name)
            .unwrap_or_else(|| panic!("no key `{name}` in this world"))
    }

    /// The `KmsKeyId` a key kind of the table stands for (the one list of the kinds):
    /// `default`, `aws-alias`, `cmk`, `cmk-alias`, `cmk-disabled`, `cmk-pending-deletion`,
    /// `other-cmk`, and `key:NAME` for a key of the row's own.
    pub fn key_id(&self, kind: &str) -> Option<String> {
        let named = |name: &str| Some(self.arn(name).to_owned());
        match kind {
            "default" => None,
            "aws-alias" => Some("alias/aws/secretsmanager".into()),
            "cmk" => named(DESIGNATED),
            "cmk-alias" => Some(KEY_ALIAS.into()),
            "cmk-disabled" => named("disabled"),
            "cmk-pending-deletion" => named("pending-deletion"),
            "other-cmk" => named("other"),
            other => match other.strip_prefix("key:") {
                Some(name) => named(name),
                None => panic!("unknown key kind `{other}`"),
            },
        }
    }

    /// The fake's keys of `scope`.
    pub fn in_fake(scope: &Scope, kinds: &[KeyKind]) -> Keys {
        Keys::new(
            kinds
                .iter()
                .map(|k| (k.name.clone(), key_arn(scope, &k.name)))
                .collect(),
        )
    }
}

/// Builds the case's world; returns the secret's scope and ARN.
pub fn world(case: &Case, fake: &FakeAws) -> Option<(Scope, String)> {
    let event = event(&case.event);
    let secret = case.secret.as_ref()?;
    let scope = Scope::new(&secret.account, &secret.region);
    let kinds = case.key_kinds();
    for region in ["us-east-1", "us-west-2"] {
        let s = Scope::new(&secret.account, region);
        // A key's policy: the row's, else the fake's clean one (as the testkit gives moto).
        for kind in &kinds {
            fake.put_key(&s, customer_key(&s, &kind.name, kind.key_state()));
            if let Some(policy) = &kind.policy {
                fake.put_key_policy(&key_arn(&s, &kind.name), &policy.to_string());
            }
        }
        if !(secret.no_alias && region == secret.region) {
            fake.put_alias(&s, KEY_ALIAS, &key_arn(&s, DESIGNATED));
        }
    }
    let keys = Keys::in_fake(&scope, &kinds);
    let arn = fixture_arn(&event).unwrap_or_else(|| {
        format!(
            "arn:aws:secretsmanager:{}:{}:secret:{}-AbCdEf",
            secret.region, secret.account, secret.name
        )
    });
    if secret.exists {
        fake.put_secret(
            &scope,
            SecretFacts {
                arn: arn.clone(),
                name: secret.name.clone(),
                kms_key_id: keys.key_id(secret.key.as_deref().unwrap_or("default")),
                tags: secret.tags.clone(),
                owning_service: secret.owning_service.clone(),
                replicas: secret
                    .replica_regions
                    .iter()
                    .map(|r| Replica {
                        region: r.clone(),
                        kms_key_id: None,
                    })
                    .collect(),
                current_version: Some(format!("{}-v1", secret.name)),
                ..SecretFacts::default()
            },
        );
    }
    Some((scope, arn))
}

pub fn config(case: &Case) -> Config {
    let cmk = key_arn(&Scope::new(OWN_ACCOUNT, "us-east-1"), "designated");
    let env: BTreeMap<String, String> = case
        .env
        .iter()
        .map(|(k, v)| (k.clone(), expand(v, &cmk)))
        .collect();
    Config::from_lookup(|name| env.get(name).cloned())
        .unwrap_or_else(|e| panic!("{}: {e}", case.label()))
}

pub fn ctx() -> Context {
    Context {
        own_account: OWN_ACCOUNT.into(),
        region: "us-east-1".into(),
        deadline: None,
        request_id: None,
    }
}
