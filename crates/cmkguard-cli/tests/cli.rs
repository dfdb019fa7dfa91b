//! The command line's contract: exit codes, errors for people on stderr, records on stdout.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use std::process::{Command, Output};

use cmkguard_testkit::world::SecretSpec;
use cmkguard_testkit::{Moto, run_with_input};

fn run(env: &[(String, String)], args: &[&str], stdin: &[u8]) -> Output {
    run_with_input(
        Command::new(env!("CARGO_BIN_EXE_cmkguard"))
            .args(args)
            .env_clear()
            .envs(env.iter().cloned()),
        stdin,
    )
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn unreadable_input_exits_2_with_one_line_that_says_why() {
    // No AWS at all: bad input stops before any call.
    for (input, words) in [
        (&b"{\"detail\": "[..], "unreadable event"),
        (&b"[1, 2]"[..], "expected a JSON object, found an array"),
        (&b""[..], "unreadable event"),
        (&b"\xff\xfe"[..], "unreadable event"),
    ] {
        let output = run(&[], &["handle-event", "-"], input);
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        let err = stderr(&output);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(words), "{err}");
        assert!(output.stdout.is_empty());
    }
    let output = run(&[], &["handle-event", "/nonexistent/event.json"], b"");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("cannot read `/nonexistent/event.json`"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_bad_configuration_exits_2_naming_the_variable() {
    for (variable, value) in [
        ("CMKGUARD_ACTIONS", "tag,explode"),
        ("CMKGUARD_REMEDIATE_ACCOUNTS", "12345"),
        ("CMKGUARD_KEY_ALIAS", "cmkguard/secrets"),
        ("CMKGUARD_ALLOWED_KEY_ARNS", "arn:aws:s3:::bucket"),
        ("CMKGUARD_DRY_RUN", "yes"),
        ("CMKGUARD_SNS_TOPIC_ARN", "topic"),
    ] {
        let output = run(
            &[(variable.into(), value.into())],
            &["handle-event", "-"],
            b"{}",
        );
        assert_eq!(
            output.status.code(),
            Some(2),
            "{variable}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(variable),
            "{variable}: {}",
            stderr(&output)
        );
    }
    // A flag overrides the environment, and is validated the same way.
    let output = run(&[], &["--actions", "notify", "handle-event", "-"], b"{}");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("CMKGUARD_SNS_TOPIC_ARN"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_exits_0_compliant_1_finding_2_not_found() {
    let moto = Moto::start();
    let env = moto.env();
    let keys = moto.make_keys("123456789012", "us-east-1", true).await;
    let spec = |name: &str, key: &str| SecretSpec {
        name: name.into(),
        account: "123456789012".into(),
        region: "us-east-1".into(),
        key: key.into(),
        ..Default::default()
    };
    let good = moto.make_secret(&spec("check/good", "cmk"), &keys).await;
    moto.make_secret(&spec("check/bad", "default"), &keys).await;

    let output = run(&env, &["check", &good.arn], b"");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let record: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(record["verdict"], "compliant");

    let output = run(
        &env,
        &[
            "--actions",
            "none",
            "check",
            "check/bad",
            "--region",
            "us-east-1",
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let record: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (record["verdict"].as_str(), record["reason"].as_str()),
        (Some("non_compliant"), Some("aws-managed-key"))
    );
    assert_eq!(record["actions"], serde_json::json!([]));

    let output = run(&env, &["check", "check/missing"], b"");
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("secret-not-found"),
        "{}",
        stderr(&output)
    );

    let output = run(&env, &["check", "arn:aws:s3:::bucket"], b"");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("not a Secrets Manager secret ARN"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn an_unreachable_aws_stops_handle_event_with_exit_1() {
    // A closed port: the SDK cannot connect, retries, and gives up.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = vec![
        (
            "AWS_ENDPOINT_URL".to_owned(),
            format!("http://127.0.0.1:{port}"),
        ),
        ("AWS_ACCESS_KEY_ID".to_owned(), "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), "testing".to_owned()),
        ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
        ("AWS_EC2_METADATA_DISABLED".to_owned(), "true".to_owned()),
        ("AWS_MAX_ATTEMPTS".to_owned(), "1".to_owned()),
        ("CMKGUARD_RETRY_BUDGET_MS".to_owned(), "0".to_owned()),
    ];
    let event = std::fs::read(
        cmkguard_testkit::workspace_root().join("testdata/events/CreateSecret-default-key.json"),
    )
    .unwrap();
    let output = run(&env, &["handle-event", "-"], &event);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).starts_with("cmkguard: "),
        "{}",
        stderr(&output)
    );
}
