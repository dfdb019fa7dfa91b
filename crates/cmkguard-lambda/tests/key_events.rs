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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_key_through_the_lambda_binary() {
    let moto = Moto::start();
    let world = moto.secrets_on_a_key(DEFAULT_ACCOUNT, "us-east-1", 0).await;
    world
        .kms
        .disable_key()
        .key_id(&world.key_id)
        .send()
        .await
        .unwrap();
    // The fixture names the key by its bare id only.
    let event = key_event_for(
        "DisableKey-key-id-only.json",
        &world.key_arn,
        DEFAULT_ACCOUNT,
    );
    let api = RuntimeApi::start(vec![event]);
    let env = moto.env().into_iter().chain(api.env());
    let function = Process::function(Path::new(env!("CARGO_BIN_EXE_cmkguard-lambda")), env);
    let results = api.wait_for(1, Duration::from_secs(60));
    let (stdout, stderr) = function.stop();
    assert!(
        matches!(results[0].outcome, Outcome::Response(_)),
        "{:?}: {stderr}",
        results[0]
    );
    let records = cmkguard_testkit::audit_records(&stdout);
    assert_eq!(arns(&records), world.on_key, "{stdout}");
    assert!(records.iter().all(|r| r["reason"] == "key-disabled"));
}
