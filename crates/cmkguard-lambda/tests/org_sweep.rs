//! The scheduled sweep over the function's own account and two member accounts, through the
//! Lambda binary, the Runtime API and moto (member accounts through the assumed role): a sweep
//! cut by the deadline says how far it got and keeps a cursor in SSM; the next invocation
//! starts there and finishes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use std::path::Path;
use std::time::Duration;

use cmkguard_testkit::world::SecretSpec;
use cmkguard_testkit::{
    DEFAULT_ACCOUNT, Fault, FaultProxy, Moto, Outcome, Process, Rule, RuntimeApi, When, http,
};
use serde_json::Value;

const REGION: &str = "us-east-1";
const MEMBERS: [&str; 2] = ["111111111111", "222222222222"];

/// The sweep cursor as moto holds it in the own account and region.
fn cursor(moto: &Moto) -> Option<String> {
    let response = http::request(
        "POST",
        &format!("{}/", moto.endpoint()),
        &[
            ("Content-Type", "application/x-amz-json-1.1"),
            ("X-Amz-Target", "AmazonSSM.GetParameter"),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/ssm/aws4_request, SignedHeaders=host, Signature=x",
            ),
        ],
        br#"{"Name": "/cmkguard/sweep-cursor"}"#,
    )
    .unwrap();
    if response.status != 200 {
        return None;
    }
    let body: Value = response.json().unwrap();
    body["Parameter"]["Value"].as_str().map(str::to_owned)
}

fn sweep_event() -> Value {
    let path = cmkguard_testkit::workspace_root().join("testdata/events/ScheduledEvent-sweep.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn records_of(stdout: &str, request_id: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("verdict").is_some() && v["request_id"] == request_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_of_three_accounts_cut_by_the_deadline_is_finished_by_the_next() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.endpoint());
    for account in std::iter::once(DEFAULT_ACCOUNT).chain(MEMBERS) {
        let keys = moto.make_keys(account, REGION, false).await;
        let spec = SecretSpec {
            name: format!("org/{account}"),
            account: account.into(),
            region: REGION.into(),
            key: "default".into(),
            ..SecretSpec::default()
        };
        moto.make_secret(&spec, &keys).await;
    }
    // One account's listing outlasts the first invocation.
    proxy.inject(Rule::new(
        "ListSecrets",
        Fault::Delay(Duration::from_secs(12)),
        When::Nth(1),
    ));

    let api = RuntimeApi::start(vec![sweep_event()]).with_timeout(Duration::from_secs(6));
    let sweep_accounts = format!("{DEFAULT_ACCOUNT},{}", MEMBERS.join(","));
    let env = proxy.env(moto.env()).into_iter().chain(api.env()).chain(
        [
            ("CMKGUARD_SWEEP_ACCOUNTS", sweep_accounts.as_str()),
            ("CMKGUARD_ASSUME_ROLE_NAME", "cmkguard-member"),
            ("CMKGUARD_ACTIONS", "tag"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let function = Process::function(Path::new(env!("CARGO_BIN_EXE_cmkguard-lambda")), env);

    let first = api.wait_for(1, Duration::from_secs(60));
    let Outcome::Response(body) = &first[0].outcome else {
        panic!("{:?}: {:?}", first[0], function.output());
    };
    assert_eq!(body["sweep"]["complete"], false, "{body}");
    assert_eq!(body["sweep"]["accounts"]["total"], 3, "{body}");
    assert_eq!(body["sweep"]["accounts"]["done"], 2, "{body}");
    let (stdout, _) = function.output();
    let swept: Vec<String> = records_of(&stdout, &first[0].request_id)
        .iter()
        .map(|r| r["account"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(swept.len(), 2, "{stdout}");
    let all: Vec<&str> = std::iter::once(DEFAULT_ACCOUNT).chain(MEMBERS).collect();
    let missed: Vec<&str> = all
        .iter()
        .copied()
        .filter(|a| !swept.iter().any(|s| s == a))
        .collect();
    assert_eq!(missed.len(), 1);
    assert_eq!(cursor(&moto).as_deref(), Some(missed[0]));

    // The next sweep starts with the account the first did not finish, and finishes.
    api.push_event(sweep_event());
    let both = api.wait_for(2, Duration::from_secs(60));
    let Outcome::Response(body) = &both[1].outcome else {
        panic!("{:?}: {:?}", both[1], function.output());
    };
    assert_eq!(body["records"], 3, "{body}");
    assert!(body.get("sweep").is_none(), "{body}");
    assert_eq!(cursor(&moto).as_deref(), Some("-"));
    let (stdout, _) = function.stop();
    let second = records_of(&stdout, &both[1].request_id);
    assert!(
        second
            .iter()
            .all(|r| r["verdict"] == "non_compliant" && r["reason"] == "aws-managed-key"),
        "{second:?}"
    );
    // Member accounts were reached through the role, each once per warm process.
    assert_eq!(proxy.count("AssumeRole"), MEMBERS.len());
}

/// One listed account needs no role only when it is the function's own, which the function
/// knows from its ARN at the first invocation: another one fails it, naming the variable.
#[test]
fn one_other_account_without_the_role_fails_the_invocation_naming_the_variable() {
    let api = RuntimeApi::start(vec![sweep_event()]);
    let env = api.env().into_iter().chain(
        [
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
            ("AWS_ACCESS_KEY_ID", "x"),
            ("AWS_SECRET_ACCESS_KEY", "x"),
            ("CMKGUARD_SWEEP_ACCOUNTS", MEMBERS[0]),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let function = Process::function(Path::new(env!("CARGO_BIN_EXE_cmkguard-lambda")), env);
    let results = api.wait_for(1, Duration::from_secs(20));
    let _ = function.stop();
    let Outcome::Error(body) = &results[0].outcome else {
        panic!("{:?}", results[0]);
    };
    let message = body["errorMessage"].as_str().unwrap();
    assert!(message.contains("`CMKGUARD_SWEEP_ACCOUNTS`"), "{message}");
    assert!(message.contains("`CMKGUARD_ASSUME_ROLE_NAME`"), "{message}");
}
