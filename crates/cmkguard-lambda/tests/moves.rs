//! Finishing a move through the Lambda binary and the Runtime API, against moto: `CreateSecret`
//! moves a secret off the default key and records the version left readable through it
//! (`cmkguard:moved-version`); the owner's `PutSecretValue` makes a new version, and its event
//! makes the secret compliant and removes the record. The CLI's tests of every step are
//! `crates/cmkguard-cli/tests/moves.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use std::path::Path;
use std::time::Duration;

use cmkguard_testkit::{DEFAULT_ACCOUNT, Moto, Outcome, Process, RuntimeApi, VersionEvent};

const REGION: &str = "us-east-1";
const MOVED_VERSION: &str = "cmkguard:moved-version";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_value_finishes_a_move_through_the_runtime_api() {
    let moto = Moto::start();
    let (keys, made, create) = moto.default_key_secret("cmkguard-test/lambda-move").await;
    let topic = moto.make_topic().await;
    let before = moto
        .current_version(DEFAULT_ACCOUNT, REGION, &made.arn)
        .await;
    let api = RuntimeApi::start(vec![create]);
    let env = moto.env().into_iter().chain(api.env()).chain(
        [
            ("CMKGUARD_ACTIONS", "tag,notify,remediate"),
            ("CMKGUARD_REMEDIATE_ACCOUNTS", "*"),
            ("CMKGUARD_SNS_TOPIC_ARN", topic.as_str()),
            ("AWS_LAMBDA_LOG_LEVEL", "trace"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let function = Process::function(Path::new(env!("CARGO_BIN_EXE_cmkguard-lambda")), env);

    // The move: on the designated key, the version that was current recorded.
    let moved = api.wait_for(1, Duration::from_secs(60));
    assert_eq!(moved.len(), 1, "{:?}", function.output());
    let after_move = moto.describe(DEFAULT_ACCOUNT, REGION, &made.arn).await;
    assert_eq!(
        after_move.kms_key_id.as_deref(),
        Some(keys.designated.as_str())
    );
    assert_eq!(
        after_move.tag(MOVED_VERSION),
        Some(before.as_str()),
        "{after_move:?}"
    );

    // The owner writes a new value; its event reaches the same warm function.
    let new = moto
        .put_value(
            DEFAULT_ACCOUNT,
            REGION,
            &made.arn,
            "CANARY-lambda-new-do-not-log",
            &[],
        )
        .await;
    api.push_event(VersionEvent::PutSecretValue.for_secret(&made.arn, &new));
    let results = api.wait_for(2, Duration::from_secs(60));
    let (stdout, stderr) = function.stop();
    assert_eq!(results.len(), 2, "stdout: {stdout}\nstderr: {stderr}");
    for (result, verdict) in results.iter().zip(["non_compliant", "compliant"]) {
        let Outcome::Response(body) = &result.outcome else {
            panic!("not a response: {result:?}\n{stderr}")
        };
        assert_eq!(body["verdicts"][verdict], 1, "{body}");
    }

    let records = cmkguard_testkit::audit_records(&stdout);
    assert_eq!(records.len(), 2, "{stdout}");
    assert_eq!(records[0]["reason"], "aws-managed-key", "{}", records[0]);
    assert_eq!(records[1]["event_name"], "PutSecretValue", "{}", records[1]);
    assert_eq!(records[1]["verdict"], "compliant", "{}", records[1]);

    let finished = moto.describe(DEFAULT_ACCOUNT, REGION, &made.arn).await;
    assert_eq!(finished.labelled("AWSCURRENT"), Some(new.as_str()));
    assert!(!finished.tags.contains_key(MOVED_VERSION), "{finished:?}");
    assert_eq!(
        finished.tag("cmkguard:status"),
        Some("remediated"),
        "{finished:?}"
    );
    assert_eq!(moto.sns_messages().len(), 1, "the move's message only");
    assert!(
        !stdout.contains("CANARY") && !stderr.contains("CANARY"),
        "a value was logged"
    );
}
