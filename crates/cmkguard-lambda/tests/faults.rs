//! The Lambda binary under a lasting AWS fault: an invocation error (so Lambda retries the
//! event), the failed action in the logged audit record, and Lambda's retry of the same event
//! converging, with at most one `UpdateSecret` that lands.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use std::process::Command;
use std::time::Duration;

use cmkguard_testkit::world::SecretSpec;
use cmkguard_testkit::{Fault, FaultProxy, Moto, Outcome, Rule, RuntimeApi, When};
use serde_json::Value;

/// Attempts per AWS call in the function: a rule hitting the first two calls outlasts them.
const ATTEMPTS: usize = 2;

async fn lasting_fault_then_retry(operation: &str, fault: Fault, action: &str) {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.endpoint());
    let keys = moto.make_keys("123456789012", "us-east-1", true).await;
    let topic = moto.make_topic().await;
    let spec = SecretSpec {
        name: "cmkguard-test/lambda-faults".into(),
        account: "123456789012".into(),
        region: "us-east-1".into(),
        key: "default".into(),
        ..Default::default()
    };
    let made = moto.make_secret(&spec, &keys).await;
    let path =
        cmkguard_testkit::workspace_root().join("testdata/events/CreateSecret-default-key.json");
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let fixture_arn = fixture["detail"]["responseElements"]["arn"]
        .as_str()
        .unwrap();
    let event: Value =
        serde_json::from_str(&fixture.to_string().replace(fixture_arn, &made.arn)).unwrap();

    proxy.inject(Rule::new(operation, fault.clone(), When::First(ATTEMPTS)));
    let api = RuntimeApi::start(vec![event.clone(), event]);
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cmkguard-lambda"))
        .env_clear()
        .envs(proxy.env(moto.env()))
        .envs(api.env())
        .env("CMKGUARD_ACTIONS", "tag,notify,remediate")
        .env("CMKGUARD_REMEDIATE_ACCOUNTS", "123456789012")
        .env("CMKGUARD_SNS_TOPIC_ARN", &topic)
        .env("CMKGUARD_AWS_ATTEMPT_TIMEOUT_MS", "2000")
        .env("AWS_MAX_ATTEMPTS", ATTEMPTS.to_string())
        .env("CMKGUARD_RETRY_BUDGET_MS", "0")
        .env("AWS_LAMBDA_LOG_LEVEL", "trace")
        .stdout(std::fs::File::create(dir.path().join("stdout")).unwrap())
        .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let results = api.wait_for(2, Duration::from_secs(90));
    proxy.wait_idle(Duration::from_secs(10));
    let _ = child.kill();
    let _ = child.wait();
    let stdout = std::fs::read_to_string(dir.path().join("stdout")).unwrap();
    let stderr = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
    let what = format!("{operation} {fault:?}");
    assert_eq!(results.len(), 2, "{what}: {stdout}\n{stderr}");

    // The first invocation: an error Lambda retries, and the failed action in the record.
    let Outcome::Error(body) = &results[0].outcome else {
        panic!("{what}: not an error: {:?}", results[0])
    };
    assert!(
        body["errorMessage"].as_str().unwrap().contains("transient"),
        "{what}: {body}"
    );
    let records: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("verdict").is_some())
        .collect();
    assert_eq!(
        records.len(),
        2,
        "{what}: one record per delivery: {stdout}"
    );
    let failed = records[0]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["action"] == action && a["outcome"] == "failed");
    assert!(failed, "{what}: {}", records[0]);

    // Lambda's retry converges: on the designated key, every value intact.
    assert!(
        matches!(results[1].outcome, Outcome::Response(_)),
        "{what}: {:?}",
        results[1]
    );
    let state = moto
        .secret_state("123456789012", "us-east-1", &made.arn)
        .await;
    assert_eq!(
        state.kms_key_id.as_deref(),
        Some(keys.designated.as_str()),
        "{what}"
    );
    assert_eq!(state.current_value, made.current_value, "{what}");
    assert_eq!(
        state.previous_value.as_deref(),
        Some(made.previous_value.as_str())
    );
    let landed_updates = proxy
        .seen()
        .iter()
        .filter(|s| s.operation == "UpdateSecret" && s.fault.is_none())
        .count();
    assert_eq!(landed_updates, 1, "{what}: {:?}", proxy.seen());
    assert!(
        !stdout.contains("CANARY-") && !stderr.contains("CANARY-"),
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lasting_throttle_on_update_secret_is_retried_by_lambda() {
    lasting_fault_then_retry("UpdateSecret", Fault::Throttle, "remediate").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lasting_reset_on_describe_key_of_the_alias_is_retried_by_lambda() {
    lasting_fault_then_retry("DescribeKey", Fault::Reset, "remediate").await;
}
