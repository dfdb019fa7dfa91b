//! The built `cmkguard-lambda` binary under a Lambda Runtime API emulator, against moto.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use std::path::Path;
use std::time::Duration;

use cmkguard_testkit::{FaultProxy, Moto, Outcome, Process, RuntimeApi};
use serde_json::Value;

fn start(moto: &Moto, api: &RuntimeApi, env: &[(&str, &str)]) -> Process {
    start_with(&moto.env(), api, env)
}

fn start_with(aws: &[(String, String)], api: &RuntimeApi, env: &[(&str, &str)]) -> Process {
    let env = aws
        .iter()
        .cloned()
        .chain(api.env())
        .chain(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Process::function(Path::new(env!("CARGO_BIN_EXE_cmkguard-lambda")), env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_binary_remediates_a_secret_through_the_runtime_api() {
    let moto = Moto::start();
    let (keys, made, event) = moto.default_key_secret("cmkguard-test/default-key").await;
    let topic = moto.make_topic().await;

    // The same event twice: the second delivery writes nothing.
    let api = RuntimeApi::start(vec![event.clone(), event]);
    let function = start(
        &moto,
        &api,
        &[
            ("CMKGUARD_ACTIONS", "tag,notify,remediate"),
            ("CMKGUARD_REMEDIATE_ACCOUNTS", "123456789012"),
            ("CMKGUARD_SNS_TOPIC_ARN", &topic),
            ("AWS_LAMBDA_LOG_LEVEL", "trace"),
        ],
    );
    let results = api.wait_for(2, Duration::from_secs(60));
    let (stdout, stderr) = function.stop();
    assert_eq!(results.len(), 2, "stdout: {stdout}\nstderr: {stderr}");
    // The first delivery re-encrypts; the second finds the secret on the right key, its current
    // version still readable through the previous key (`previous-key-decrypts`, said by the
    // first delivery's notification: nothing more is done).
    for (result, verdict) in results.iter().zip(["non_compliant", "non_compliant"]) {
        let Outcome::Response(body) = &result.outcome else {
            panic!("not a response: {result:?}\n{stderr}")
        };
        assert_eq!(body["verdicts"][verdict], 1, "{body}");
    }

    let records = cmkguard_testkit::audit_records(&stdout);
    assert_eq!(records.len(), 2, "one audit record per delivery: {stdout}");
    // Each record names the invocation that made it and the CloudTrail event it came from.
    for (record, result) in records.iter().zip(&results) {
        assert_eq!(
            record["request_id"].as_str(),
            Some(result.request_id.as_str())
        );
        assert_eq!(record["event_id"], "d0416816-e6c4-4289-a5bc-f269cdcff301");
    }
    // Metrics as EMF lines, one per invocation here, with no `verdict` field.
    let emf: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect();
    assert_eq!(emf.len(), 2, "{stdout}");
    assert_eq!(emf[0]["decisions.non_compliant"], 1);
    assert_eq!(emf[0]["actions.remediate.done"], 1);
    assert_eq!(emf[1]["decisions.non_compliant"], 1);
    assert_eq!(records[1]["reason"], "previous-key-decrypts", "{stdout}");
    assert!(
        emf.iter()
            .all(|l| l.get("verdict").is_none() && l["handling_time"].is_number())
    );
    let actions = |r: &Value| {
        r["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| format!("{}:{}", a["action"], a["outcome"]))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        actions(&records[0]),
        [
            r#""remediate":"done""#,
            r#""tag":"done""#,
            r#""notify":"done""#
        ]
    );
    assert!(
        actions(&records[1])
            .iter()
            .all(|a| !a.ends_with(r#""done""#)),
        "{:?}",
        records[1]
    );

    let state = moto
        .secret_state("123456789012", "us-east-1", &made.arn)
        .await;
    state.assert_reencrypted(&keys.designated, &made);
    assert_eq!(moto.sns_messages().len(), 1);
    // At the most verbose level, still no secret value in any output.
    for canary in [&made.current_value, &made.previous_value] {
        assert!(!stdout.contains(canary.as_str()) && !stderr.contains(canary.as_str()));
    }
}

#[test]
fn a_bad_configuration_fails_the_init_naming_the_variable() {
    let moto = Moto::start();
    let api = RuntimeApi::start(vec![]);
    let function = start(&moto, &api, &[("CMKGUARD_ACTIONS", "tag,explode")]);
    let results = api.wait_for(1, Duration::from_secs(30));
    let (stdout, stderr) = function.stop();
    assert_eq!(results.len(), 1, "stdout: {stdout}\nstderr: {stderr}");
    let Outcome::InitError(body) = &results[0].outcome else {
        panic!("not an init error: {:?}", results[0])
    };
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("CMKGUARD_ACTIONS"),
        "{body}"
    );
    assert!(
        body["errorMessage"].as_str().unwrap().contains("explode"),
        "{body}"
    );
}

/// Local emulators (`cargo lambda watch`) hand out `function-arn`: the account comes from STS,
/// asked once per warm process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_arn_without_an_account_asks_sts_once() {
    let moto = Moto::start();
    let (_, _, event) = moto
        .default_key_secret("cmkguard-test/no-account-arn")
        .await;

    let proxy = FaultProxy::start(&moto.endpoint());
    let api = RuntimeApi::start(vec![event.clone(), event]).with_function_arn("function-arn");
    let env = proxy.env(moto.env());
    let function = start_with(&env, &api, &[]);
    let results = api.wait_for(2, Duration::from_secs(60));
    let (stdout, stderr) = function.stop();
    assert_eq!(results.len(), 2, "stdout: {stdout}\nstderr: {stderr}");
    for result in &results {
        let Outcome::Response(body) = &result.outcome else {
            panic!("not a response: {result:?}\n{stderr}")
        };
        assert_eq!(body["verdicts"]["non_compliant"], 1, "{body}");
    }
    assert_eq!(proxy.count("GetCallerIdentity"), 1, "{:?}", proxy.counts());
    let records = cmkguard_testkit::audit_records(&stdout);
    assert_eq!(records.len(), 2, "{stdout}");
    assert!(
        records.iter().all(|r| r["account"] == "123456789012"),
        "{stdout}"
    );
}

/// `cargo lambda watch` does not answer `/runtime/init/error` for a restarted function: the
/// report is bounded, and the process exits non-zero either way.
#[test]
fn a_bad_configuration_exits_even_when_the_init_error_is_never_answered() {
    let moto = Moto::start();
    let api = RuntimeApi::start(vec![]).never_answering_init_error();
    let mut function = start(&moto, &api, &[("CMKGUARD_DRY_RUN", "maybe")]);
    let status = function.wait(Duration::from_secs(15));
    let results = api.wait_for(1, Duration::from_secs(1));
    let (stdout, stderr) = function.stop();
    let status = status.unwrap_or_else(|| panic!("still running after 15 s: {stdout}{stderr}"));
    assert!(!status.success(), "{status:?}");
    // The log line (JSON, on stdout as every log line) names the variable.
    assert!(stdout.contains("CMKGUARD_DRY_RUN"), "{stdout}{stderr}");
    assert_eq!(results.len(), 1, "the report was still sent: {results:?}");
}
