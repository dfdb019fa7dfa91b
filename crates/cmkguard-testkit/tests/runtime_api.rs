//! The Runtime API emulator, driven by a raw HTTP client and by the `lambda_runtime` crate.

// Tests: a step that fails should panic right there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cmkguard_testkit::{DEFAULT_FUNCTION_ARN, Outcome, RuntimeApi, http};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

fn next(api: &RuntimeApi) -> http::Response {
    http::get(&format!(
        "http://{}/2018-06-01/runtime/invocation/next",
        api.addr()
    ))
    .unwrap()
}

fn epoch_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

#[test]
fn serves_events_in_order_and_records_responses() {
    let api = RuntimeApi::start(vec![json!({"n": 1}), json!({"n": 2})]);
    assert!(api.addr().starts_with("127.0.0.1:"));
    assert!(api.first_next_at().is_none());

    let first = next(&api);
    assert_eq!(first.status, 200);
    assert_eq!(first.json().unwrap(), json!({"n": 1}));
    assert!(api.first_next_at().is_some_and(|t| t >= api.started_at()));
    let id = first
        .header("lambda-runtime-aws-request-id")
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(
        first.header("Lambda-Runtime-Invoked-Function-Arn"),
        Some(DEFAULT_FUNCTION_ARN)
    );
    assert!(
        first
            .header("Lambda-Runtime-Trace-Id")
            .unwrap()
            .starts_with("Root=1-")
    );
    let deadline: u128 = first
        .header("Lambda-Runtime-Deadline-Ms")
        .unwrap()
        .parse()
        .unwrap();
    let in_ms = deadline.saturating_sub(epoch_ms());
    assert!((25_000..=30_000).contains(&in_ms), "deadline in {in_ms} ms");

    let url = format!(
        "http://{}/2018-06-01/runtime/invocation/{id}/response",
        api.addr()
    );
    let posted = http::post(&url, br#"{"ok":true}"#).unwrap();
    assert_eq!(posted.status, 202);

    let second = next(&api);
    let id2 = second
        .header("Lambda-Runtime-Aws-Request-Id")
        .unwrap()
        .to_owned();
    assert_ne!(id, id2);
    assert_eq!(second.json().unwrap(), json!({"n": 2}));
    let url = format!(
        "http://{}/2018-06-01/runtime/invocation/{id2}/error",
        api.addr()
    );
    let posted = http::request(
        "POST",
        &url,
        &[("Lambda-Runtime-Function-Error-Type", "Handler.Boom")],
        br#"{"errorType":"Boom","errorMessage":"it broke"}"#,
    )
    .unwrap();
    assert_eq!(posted.status, 202);

    let got = api.wait_for(2, WAIT);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].request_id, id);
    assert_eq!(got[0].event, Some(json!({"n": 1})));
    assert_eq!(got[0].outcome, Outcome::Response(json!({"ok": true})));
    assert_eq!(got[1].request_id, id2);
    assert_eq!(got[1].event, Some(json!({"n": 2})));
    assert!(matches!(&got[1].outcome, Outcome::Error(body) if body["errorMessage"] == "it broke"));
    assert_eq!(got[1].error_type(), Some("Handler.Boom"));
    assert_eq!(api.next_requests(), 2);
    assert_eq!(api.pending_events(), 0);
}

#[test]
fn records_init_errors_and_refuses_unknown_routes() {
    let api = RuntimeApi::start(vec![]);
    let url = format!("http://{}/2018-06-01/runtime/init/error", api.addr());
    let posted = http::request(
        "POST",
        &url,
        &[("Lambda-Runtime-Function-Error-Type", "Runtime.ConfigError")],
        br#"{"errorMessage":"missing `TOPIC_ARN`"}"#,
    )
    .unwrap();
    assert_eq!(posted.status, 202);
    let got = api.wait_for(1, WAIT);
    assert_eq!(got.len(), 1);
    assert!(matches!(got[0].outcome, Outcome::InitError(_)));
    assert_eq!(got[0].outcome.body()["errorMessage"], "missing `TOPIC_ARN`");
    assert_eq!(got[0].error_type(), Some("Runtime.ConfigError"));
    assert_eq!(got[0].event, None);

    let missing = http::get(&format!("http://{}/2018-06-01/nope", api.addr())).unwrap();
    assert_eq!(missing.status, 404);
}

#[test]
fn timeout_and_function_arn_are_configurable() {
    let arn = "arn:aws:lambda:eu-west-1:111122223333:function:other";
    let api = RuntimeApi::start(vec![json!({})])
        .with_timeout(Duration::from_secs(3))
        .with_function_arn(arn);
    let response = next(&api);
    assert_eq!(
        response.header("Lambda-Runtime-Invoked-Function-Arn"),
        Some(arn)
    );
    let deadline: u128 = response
        .header("Lambda-Runtime-Deadline-Ms")
        .unwrap()
        .parse()
        .unwrap();
    let in_ms = deadline.saturating_sub(epoch_ms());
    assert!((1_000..=3_000).contains(&in_ms), "deadline in {in_ms} ms");
    let env: std::collections::HashMap<_, _> = api.env().into_iter().collect();
    assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "other");
    assert_eq!(env["AWS_LAMBDA_RUNTIME_API"], api.addr());
}

#[test]
fn next_waits_for_an_event_when_none_remain() {
    let api = RuntimeApi::start(vec![]);
    let url = format!("http://{}/2018-06-01/runtime/invocation/next", api.addr());
    let (tx, rx) = mpsc::channel();
    let poller = std::thread::spawn(move || tx.send(http::get(&url).unwrap()).unwrap());

    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "next answered with no event"
    );
    assert_eq!(api.next_requests(), 1);
    api.push_event(json!({"late": true}));
    let response = rx.recv_timeout(WAIT).unwrap();
    assert_eq!(response.json().unwrap(), json!({"late": true}));
    poller.join().unwrap();
}

#[test]
fn dropping_the_emulator_ends_a_waiting_next() {
    let api = RuntimeApi::start(vec![]);
    let url = format!("http://{}/2018-06-01/runtime/invocation/next", api.addr());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(http::get(&url).map(|r| r.status)));
    let waiting_since = Instant::now();
    while api.next_requests() == 0 && waiting_since.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(5));
    }
    let dropped = Instant::now();
    drop(api);
    assert!(dropped.elapsed() < Duration::from_secs(2), "drop hung");
    let result = rx.recv_timeout(WAIT).unwrap();
    assert!(result.is_err(), "a waiting next got an answer: {result:?}");
}

#[test]
fn lambda_runtime_client_round_trip() {
    let api = RuntimeApi::start(vec![
        json!({"n": 1}),
        json!({"fail": "on purpose"}),
        json!({"n": 3, "padding": "x".repeat(100_000)}),
    ]);
    // The function is a process of its own (src/bin/echo-function.rs): the `lambda_runtime`
    // crate takes its endpoint from the environment, which a test may not set on itself.
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_echo-function"))
        .envs(api.env())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    let got = api.wait_for(3, Duration::from_secs(30));
    let first_next = api.first_next_at();
    // The runtime keeps polling; the emulator going away ends it.
    let started = api.started_at();
    drop(api);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);

    assert_eq!(got.len(), 3, "{got:#?}\n--- function stderr ---\n{stderr}");
    let Outcome::Response(first) = &got[0].outcome else {
        panic!("{:?}", got[0]);
    };
    assert_eq!(first["echo"], json!({"n": 1}));
    assert_eq!(first["request_id"], got[0].request_id);
    assert_eq!(first["function_arn"], DEFAULT_FUNCTION_ARN);
    assert!(first["deadline_ms"].as_u64().unwrap() > 0);
    assert!(
        matches!(&got[1].outcome, Outcome::Error(body) if body["errorMessage"] == "on purpose")
    );
    assert!(got[1].error_type().is_some(), "{:?}", got[1].headers);
    assert_eq!(got[2].outcome.body()["echo"]["n"], 3);
    assert_eq!(
        got[2].outcome.body()["echo"]["padding"]
            .as_str()
            .map(str::len),
        Some(100_000)
    );
    let init = first_next.unwrap().duration_since(started);
    eprintln!("function process reached its first `next` {init:?} after the emulator started");
    assert!(
        // Cut mid-request (`IncompleteMessage`) or, when the client was between requests as the
        // emulator went away, refused or reset on reconnecting (a connection the closing listener
        // had queued): each is "the Runtime API is gone".
        !output.status.success()
            && ["IncompleteMessage", "ConnectionRefused", "ConnectionReset"]
                .iter()
                .any(|gone| stderr.contains(gone)),
        "the function fails once the Runtime API is gone: {stderr}"
    );
}
