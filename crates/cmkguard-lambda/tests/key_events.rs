//! `DisableKey` through the Lambda binary and the Runtime API, against moto: exactly the three
//! secrets on the key (named by key id, key ARN and alias) are flagged.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use std::path::Path;
use std::time::Duration;

use cmkguard_testkit::{DEFAULT_ACCOUNT, Moto, Outcome, Process, RuntimeApi, key_event_for};
use serde_json::Value;

fn arns(records: &[Value]) -> Vec<String> {
    let mut arns: Vec<String> = records
        .iter()
        .map(|r| r["secret_arn"].as_str().unwrap().to_owned())
        .collect();
    arns.sort();
    arns
}

/// `event` through the Lambda binary (with `env` over moto's) and the Runtime API: a response,
/// and the audit records it logged.
fn deliver(moto: &Moto, event: Value, env: &[(&str, &str)]) -> Vec<Value> {
    let api = RuntimeApi::start(vec![event]);
    let env = moto
        .env()
        .into_iter()
        .chain(api.env())
        .chain(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let function = Process::function(Path::new(env!("CARGO_BIN_EXE_cmkguard-lambda")), env);
    let results = api.wait_for(1, Duration::from_secs(60));
    let (stdout, stderr) = function.stop();
    assert!(
        matches!(results[0].outcome, Outcome::Response(_)),
        "{:?}: {stderr}",
        results[0]
    );
    cmkguard_testkit::audit_records(&stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_key_through_the_lambda_binary() {
    let moto = Moto::start();
    let world = moto.secrets_on_a_key(DEFAULT_ACCOUNT, "us-east-1", 0).await;
    world.disable().await;
    // The fixture names the key by its bare id only.
    let event = key_event_for(
        "DisableKey-key-id-only.json",
        &world.key_arn,
        DEFAULT_ACCOUNT,
    );
    let records = deliver(&moto, event, &[]);
    assert_eq!(arns(&records), world.on_key);
    assert!(records.iter().all(|r| r["reason"] == "key-disabled"));
}

/// A grant to a contractor, then its `CreateGrant` event through the Lambda binary: the secrets
/// on the key are re-checked with the grants read fresh, and, in enforce mode, flagged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_grant_through_the_lambda_binary() {
    let moto = Moto::start();
    let world = moto.secrets_on_a_key(DEFAULT_ACCOUNT, "us-east-1", 0).await;
    // The app's key gets the project's clean policy, then a grant of `Decrypt`.
    let clean = cmkguard_core::fake::clean_policy(&world.key_arn);
    moto.put_key_policy(DEFAULT_ACCOUNT, "us-east-1", &world.key_arn, &clean)
        .await;
    world
        .kms
        .create_grant()
        .key_id(&world.key_id)
        .grantee_principal("arn:aws:iam::123456789012:role/Contractor")
        .operations("Decrypt".into())
        .send()
        .await
        .unwrap();
    let event = key_event_for("CreateGrant-key-arn.json", &world.key_arn, DEFAULT_ACCOUNT);
    let records = deliver(&moto, event, &[("CMKGUARD_KEY_POLICY", "enforce")]);
    assert_eq!(arns(&records), world.on_key);
    for record in &records {
        assert_eq!(record["verdict"], "non_compliant", "{record}");
        assert_eq!(record["reason"], "key-grant-decrypt", "{record}");
        assert_eq!(
            record["key_policy"],
            serde_json::json!(["key-grant-decrypt"])
        );
    }
}
