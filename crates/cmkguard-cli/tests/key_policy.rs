//! The key policy review against moto (which returns key policies and grants as written, and
//! AWS's default policy for a key created without one), through the `cmkguard` binary: each
//! finding word on a key built for it, in report and in enforce mode, one `GetKeyPolicy` and one
//! `ListGrants` per distinct key (counted at the proxy); the refused move onto a designated key
//! whose policy drifted; and a `PutKeyPolicy` event re-checking the secrets on the key.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use std::collections::BTreeMap;

use cmkguard_core::fake::cases::KeyKind;
use cmkguard_core::fake::clean_policy;
use cmkguard_testkit::world::SecretSpec;
use cmkguard_testkit::{DEFAULT_ACCOUNT, FaultProxy, Moto, key_event_for};
use serde_json::{Value, json};

mod support;

use support::cmkguard;

const REGION: &str = "us-east-1";
const ROOT: &str = "arn:aws:iam::123456789012:root";

fn statement(sid: &str, principal: Value, actions: &[&str]) -> Value {
    json!({"Sid": sid, "Effect": "Allow", "Principal": principal, "Action": actions, "Resource": "*"})
}

fn policy(statements: Vec<Value>) -> Value {
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// The root keeps the key's administration, as every policy here does.
fn admin() -> Value {
    statement(
        "Admin",
        json!({"AWS": ROOT}),
        &[
            "kms:Describe*",
            "kms:Get*",
            "kms:List*",
            "kms:Put*",
            "kms:ScheduleKeyDeletion",
        ],
    )
}

/// A key per finding word (and a clean one): name, policy (`None`: moto's default, AWS's), the
/// words expected.
fn kinds() -> Vec<(&'static str, Option<Value>, Vec<&'static str>)> {
    let clean: Value = serde_json::from_str(&clean_policy(&format!(
        "arn:aws:kms:{REGION}:{DEFAULT_ACCOUNT}:key/x"
    )))
    .unwrap();
    vec![
        ("clean", Some(clean.clone()), vec![]),
        ("aws-default", None, vec!["key-policy-delegated-to-iam"]),
        (
            "public",
            Some(policy(vec![
                admin(),
                statement("Everyone", json!("*"), &["kms:Decrypt"]),
            ])),
            vec!["key-policy-public"],
        ),
        (
            "other-account",
            Some(policy(vec![
                admin(),
                statement(
                    "Partner",
                    json!({"AWS": "arn:aws:iam::999988887777:root"}),
                    &["kms:Decrypt"],
                ),
            ])),
            vec!["key-policy-other-account"],
        ),
        (
            "account-wide",
            Some(policy(vec![
                admin(),
                json!({
                    "Sid": "CopyOfTheAwsManagedKey", "Effect": "Allow", "Principal": {"AWS": "*"},
                    "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:CreateGrant", "kms:DescribeKey"],
                    "Resource": "*",
                    "Condition": {"StringEquals": {"kms:CallerAccount": DEFAULT_ACCOUNT, "kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}}
                }),
            ])),
            vec!["key-policy-account-wide"],
        ),
        (
            "admin-can-decrypt",
            Some(policy(vec![
                admin(),
                statement(
                    "KeyAdmin",
                    json!({"AWS": "arn:aws:iam::123456789012:role/KeyAdmin"}),
                    &["kms:PutKeyPolicy", "kms:Decrypt"],
                ),
            ])),
            vec!["key-policy-admin-can-decrypt"],
        ),
        ("granted", Some(clean), vec!["key-grant-decrypt"]),
    ]
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// `cmkguard ARGS` whose output is text for people.
fn text(moto: &Moto, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cmkguard"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(moto.env())
        .output()
        .expect("run cmkguard")
}

/// The record's `remediate` action.
fn remediate_action(record: &Value) -> &Value {
    record["actions"]
        .as_array()
        .and_then(|actions| actions.iter().find(|a| a["action"] == "remediate"))
        .unwrap_or_else(|| panic!("no remediate action: {record}"))
}

/// The secret's record in `records`, by the secret's name.
fn by_name<'r>(records: &'r [Value], name: &str) -> &'r Value {
    records
        .iter()
        .find(|r| {
            r["secret_arn"]
                .as_str()
                .is_some_and(|a| a.contains(&format!(":secret:{name}-")))
        })
        .unwrap_or_else(|| panic!("no record of `{name}`: {records:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_word_on_a_key_built_for_it_in_report_and_enforce_mode() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.endpoint());
    let made: Vec<KeyKind> = kinds()
        .into_iter()
        .map(|(name, policy, _)| {
            serde_json::from_value(json!({"name": name, "policy": policy})).unwrap()
        })
        .collect();
    let keys = moto
        .make_keys_of(DEFAULT_ACCOUNT, REGION, false, &made)
        .await;
    // moto gives a key created without a policy AWS's default one; `make_keys_of` gives the
    // project's clean one: put AWS's back on its key.
    let kms = moto.kms_client(DEFAULT_ACCOUNT, REGION).await;
    let default_policy = policy(vec![statement(
        "Enable IAM User Permissions",
        json!({"AWS": ROOT}),
        &["kms:*"],
    )]);
    moto.put_key_policy(
        DEFAULT_ACCOUNT,
        REGION,
        keys.arn("aws-default"),
        &default_policy.to_string(),
    )
    .await;
    kms.create_grant()
        .key_id(keys.arn("granted"))
        .grantee_principal("arn:aws:iam::123456789012:role/Contractor")
        .operations("Decrypt".into())
        .send()
        .await
        .unwrap();
    for (name, _, _) in kinds() {
        let spec = SecretSpec::new(&format!("on/{name}"), &format!("key:{name}"));
        moto.make_secret(&spec, &keys).await;
        // Two secrets on each key: still one read per key.
        let spec = SecretSpec::new(&format!("also/{name}"), &format!("key:{name}"));
        moto.make_secret(&spec, &keys).await;
    }

    proxy.reset_counts();
    let report = cmkguard(
        &moto,
        Some(&proxy),
        &["audit", "--format", "json"],
        &env(&[]),
        b"",
    );
    assert_eq!(
        report.code,
        Some(0),
        "report mode changes no verdict: {}",
        report.stderr
    );
    for (name, _, words) in kinds() {
        for prefix in ["on", "also"] {
            let record = by_name(&report.records, &format!("{prefix}/{name}"));
            assert_eq!(record["verdict"], "compliant", "{record}");
            assert_eq!(record["key_policy"], json!(words), "{name}: {record}");
        }
    }
    // One read of each per distinct key: seven keys with secrets on them.
    assert_eq!(proxy.count("GetKeyPolicy"), kinds().len());
    assert_eq!(proxy.count("ListGrants"), kinds().len());

    let enforce = cmkguard(
        &moto,
        None,
        &["audit", "--format", "json", "--key-policy", "enforce"],
        &env(&[]),
        b"",
    );
    assert_eq!(enforce.code, Some(1), "{}", enforce.stderr);
    for (name, _, words) in kinds() {
        let record = by_name(&enforce.records, &format!("on/{name}"));
        match words.first() {
            None => assert_eq!(
                (record["verdict"].as_str(), record["reason"].as_str()),
                (Some("compliant"), Some("customer-managed-key"))
            ),
            Some(word) => {
                assert_eq!(record["verdict"], "non_compliant", "{record}");
                assert_eq!(record["reason"], *word, "{record}");
            }
        }
    }
    // The table says so too (its keys block), and a bad mode names its flag's variable.
    let table = text(&moto, &["audit", "--key-policy", "enforce"]);
    assert!(table.status.code() == Some(1), "{table:?}");
    let stdout = String::from_utf8_lossy(&table.stdout);
    assert!(stdout.contains("Keys with policy findings"), "{stdout}");
    assert!(stdout.contains("key-policy-public"), "{stdout}");
    let bad = text(&moto, &["audit", "--key-policy", "strict"]);
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("CMKGUARD_KEY_POLICY"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_move_onto_a_designated_key_whose_policy_drifted() {
    let moto = Moto::start();
    let (keys, made, event) = moto.default_key_secret("app/drift").await;
    // Someone edits the designated key's policy after deployment.
    let drifted = policy(vec![
        admin(),
        statement("Everyone", json!("*"), &["kms:Decrypt"]),
    ]);
    moto.put_key_policy(
        DEFAULT_ACCOUNT,
        REGION,
        &keys.designated,
        &drifted.to_string(),
    )
    .await;
    let remediate = [
        ("CMKGUARD_ACTIONS", "tag,remediate"),
        ("CMKGUARD_REMEDIATE_ACCOUNTS", "*"),
    ];
    let mut enforce = env(&remediate);
    enforce.insert("CMKGUARD_KEY_POLICY".into(), "enforce".into());
    let run = cmkguard(
        &moto,
        None,
        &["handle-event", "-"],
        &enforce,
        event.to_string().as_bytes(),
    );
    assert_eq!(run.code, Some(1), "a failed action: {}", run.stderr);
    let record = &run.records[0];
    assert_eq!(record["reason"], "aws-managed-key");
    let action = remediate_action(record);
    assert_eq!(action["outcome"], "failed", "{action}");
    assert!(
        action["detail"]
            .as_str()
            .unwrap()
            .contains("key-policy-public"),
        "{action}"
    );
    let state = moto.secret_state(DEFAULT_ACCOUNT, REGION, &made.arn).await;
    assert_eq!(state.kms_key_id, None, "still on the default key");

    // Report mode: the move goes ahead, and its record names the finding.
    let run = cmkguard(
        &moto,
        None,
        &["handle-event", "-"],
        &env(&remediate),
        event.to_string().as_bytes(),
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let action = remediate_action(&run.records[0]);
    assert_eq!(action["outcome"], "done", "{action}");
    assert!(
        action["detail"]
            .as_str()
            .unwrap()
            .contains("key-policy-public"),
        "{action}"
    );
    let state = moto.secret_state(DEFAULT_ACCOUNT, REGION, &made.arn).await;
    assert_eq!(state.kms_key_id.as_deref(), Some(keys.designated.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_key_policy_event_rechecks_the_secrets_on_the_key() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.endpoint());
    // The app's key was created without a policy: moto gives it AWS's default one.
    let world = moto.secrets_on_a_key(DEFAULT_ACCOUNT, REGION, 0).await;
    let enforce = env(&[
        ("CMKGUARD_ACTIONS", "tag"),
        ("CMKGUARD_KEY_POLICY", "enforce"),
    ]);
    let deliver = |proxy: &FaultProxy| {
        let event = key_event_for("PutKeyPolicy-key-arn.json", &world.key_arn, DEFAULT_ACCOUNT);
        let run = cmkguard(
            &moto,
            Some(proxy),
            &["handle-event", "-"],
            &enforce,
            event.to_string().as_bytes(),
        );
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        run.records
    };
    let flagged = deliver(&proxy);
    assert_eq!(
        flagged.len(),
        3,
        "the three secrets on the key, and only those"
    );
    assert!(
        flagged
            .iter()
            .all(|r| r["reason"] == "key-policy-delegated-to-iam"),
        "{flagged:?}"
    );
    for arn in &world.on_key {
        let state = moto.secret_state(DEFAULT_ACCOUNT, REGION, arn).await;
        assert_eq!(
            state.tags.get("cmkguard:reason").map(String::as_str),
            Some("key-policy-delegated-to-iam")
        );
    }

    // The policy is fixed: the event reads it fresh, and the marks go.
    let clean = clean_policy(&world.key_arn);
    moto.put_key_policy(DEFAULT_ACCOUNT, REGION, &world.key_arn, &clean)
        .await;
    proxy.reset_counts();
    let fixed = deliver(&proxy);
    assert!(
        fixed
            .iter()
            .all(|r| r["verdict"] == "compliant" && r["key_policy"] == json!([])),
        "{fixed:?}"
    );
    assert_eq!(proxy.count("GetKeyPolicy"), 1, "read fresh, once");
    for arn in &world.on_key {
        let state = moto.secret_state(DEFAULT_ACCOUNT, REGION, arn).await;
        assert!(
            !state.tags.contains_key("cmkguard:status"),
            "{:?}",
            state.tags
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_hub_gets_the_keys_finding_naming_its_secrets() {
    let moto = Moto::start();
    // The app's key has AWS's default policy (moto's, for a key created without one).
    let world = moto.secrets_on_a_key(DEFAULT_ACCOUNT, REGION, 0).await;
    let event = key_event_for("PutKeyPolicy-key-arn.json", &world.key_arn, DEFAULT_ACCOUNT);
    let run = cmkguard(
        &moto,
        None,
        &["handle-event", "-"],
        &env(&[("CMKGUARD_ACTIONS", "securityhub")]),
        event.to_string().as_bytes(),
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let findings = moto.findings(DEFAULT_ACCOUNT, REGION);
    let on_key: Vec<&Value> = findings
        .iter()
        .filter(|f| {
            f["Resources"][0]["Type"] == "AwsKmsKey"
                && f["Resources"][0]["Id"] == world.key_arn.as_str()
        })
        .collect();
    // One per word: the word the key has `FAILED`, the others `PASSED` and archived.
    assert_eq!(on_key.len(), 7, "{on_key:?}");
    let failed: Vec<&&Value> = on_key
        .iter()
        .filter(|f| f["Compliance"]["Status"] == "FAILED")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    let finding = failed[0];
    assert_eq!(
        finding["Id"],
        format!(
            "cmkguard/key-policy/{}/key-policy-delegated-to-iam",
            world.key_arn
        )
    );
    assert_eq!(finding["Resources"][0]["Id"], world.key_arn.as_str());
    assert_eq!(finding["Severity"]["Label"], "MEDIUM");
    let mut named: Vec<String> = finding["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .map(|r| r["Id"].as_str().unwrap().to_owned())
        .collect();
    named.sort();
    assert_eq!(
        named, world.on_key,
        "the secrets on the key, and only those"
    );
    assert!(
        finding["Description"]
            .as_str()
            .unwrap()
            .contains("3 secrets depend on it"),
        "{finding}"
    );
    assert!(
        on_key
            .iter()
            .filter(|f| f["Compliance"]["Status"] == "PASSED")
            .all(|f| f["RecordState"] == "ARCHIVED")
    );
}
