//! The invocation deadline under the Runtime API emulator: with AWS answering slower than the
//! function's timeout (a delaying proxy in front of moto), the handler returns a retryable
//! error before Lambda would kill it, and the redelivered event converges.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use std::path::Path;
use std::time::Duration;

use cmkguard_testkit::{Fault, FaultProxy, Moto, Outcome, Process, Rule, RuntimeApi, When};

const TIMEOUT: Duration = Duration::from_secs(4);

async fn slow_call_meets_the_deadline(rule: Rule) {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.endpoint());
    let (keys, made, event) = moto.default_key_secret("cmkguard-test/slow").await;

    proxy.inject(rule.clone());
    // The same event twice: Lambda's retry of the failed invocation.
    let api = RuntimeApi::start(vec![event.clone(), event]).with_timeout(TIMEOUT);
    let env = proxy.env(moto.env()).into_iter().chain(api.env()).chain(
        [
            ("CMKGUARD_ACTIONS", "tag,remediate"),
            ("CMKGUARD_REMEDIATE_ACCOUNTS", "123456789012"),
            ("AWS_LAMBDA_LOG_LEVEL", "trace"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let function = Process::function(Path::new(env!("CARGO_BIN_EXE_cmkguard-lambda")), env);
    let results = api.wait_for(2, Duration::from_secs(60));
    let first_next = api.first_next_at().unwrap();
    proxy.wait_idle(Duration::from_secs(10));
    let (stdout, stderr) = function.stop();
    let output = format!("{stdout}\n{stderr}");
    let what = format!("{rule:?}");
    assert_eq!(results.len(), 2, "{what}: {output}");

    // The first invocation gives up before its deadline, with a retryable error.
    let Outcome::Error(body) = &results[0].outcome else {
        panic!("{what}: not an error: {:?}\n{output}", results[0])
    };
    assert!(
        body["errorMessage"].as_str().unwrap().contains("deadline"),
        "{what}: {body}"
    );
    let took = results[0].at.duration_since(first_next);
    assert!(took < TIMEOUT, "{what}: answered after {took:?}");
    assert!(proxy.seen().iter().any(|s| s.fault.is_some()), "{what}");

    // The redelivery converges: the secret is on the designated key, every value intact.
    let Outcome::Response(body) = &results[1].outcome else {
        panic!("{what}: the redelivery failed: {:?}\n{output}", results[1])
    };
    assert_eq!(body["records"], 1, "{what}: {body}");
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
    assert!(
        proxy.count("UpdateSecret") <= 2,
        "{what}: {:?}",
        proxy.counts()
    );
    // At the most verbose level, no value in any output.
    assert!(!output.contains(&made.current_value) && !output.contains(&made.previous_value));
    assert!(!output.contains("CANARY-"), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_describe_is_a_retryable_error_before_the_deadline() {
    slow_call_meets_the_deadline(Rule::new(
        "DescribeSecret",
        Fault::Delay(Duration::from_secs(20)),
        When::First(1),
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_update_is_a_retryable_error_and_lands_harmlessly() {
    slow_call_meets_the_deadline(Rule::new(
        "UpdateSecret",
        Fault::Delay(Duration::from_secs(3)),
        When::First(1),
    ))
    .await;
}
