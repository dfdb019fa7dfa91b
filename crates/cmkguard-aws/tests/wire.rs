//! The adapter at the wire, for what the emulator cannot produce: a key whose `DescribeKey` says
//! `KeyManager: AWS`, `AccessDeniedException` on another account's key, throttling and 5xx.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

mod support;

use aws_smithy_mocks::{Rule, mock};
use cmkguard_aws::AwsPorts;
use cmkguard_core::fake::cases::ctx;
use cmkguard_core::ports::{DescribeKey, DescribeSecret};
use cmkguard_core::{AwsError, Config, Guard, GuardError, KeyManager, KeyState, Scope, Verdict};
use serde_json::json;

const ACCOUNT: &str = "123456789012";
const SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-AbCdEf";

fn scope() -> Scope {
    Scope::new(ACCOUNT, "us-east-1")
}

fn secret_body(key: &str) -> String {
    json!({"ARN": SECRET, "Name": "app/db", "KmsKeyId": key, "Tags": []}).to_string()
}

fn key_body(arn: &str, manager: &str, state: &str) -> String {
    json!({"KeyMetadata": {"KeyId": arn.rsplit('/').next().unwrap(), "Arn": arn, "KeyManager": manager,
                           "KeyState": state, "Enabled": state == "Enabled", "AWSAccountId": ACCOUNT}})
    .to_string()
}

fn error_body(code: &str) -> Option<String> {
    Some(json!({"__type": code, "message": format!("{code} from the wire test")}).to_string())
}

fn secrets_rule(status: u16, body: Option<String>) -> Rule {
    mock!(aws_sdk_secretsmanager::Client::describe_secret)
        .sequence()
        .http_status(status, body)
        .repeatedly()
        .build()
}

fn key_rule(status: u16, body: Option<String>) -> Rule {
    mock!(aws_sdk_kms::Client::describe_key)
        .sequence()
        .http_status(status, body)
        .repeatedly()
        .build()
}

/// Ports whose clients for [`scope`] answer from the rules (see [`support::mocked_ports`]).
fn ports(secrets: &Rule, kms: &Rule) -> AwsPorts {
    support::mocked_ports(&scope(), &[secrets], &[kms], &[])
}

fn event() -> serde_json::Value {
    json!({"detail-type": "AWS API Call via CloudTrail", "source": "aws.secretsmanager", "account": ACCOUNT,
           "detail": {"eventName": "UpdateSecret", "awsRegion": "us-east-1", "eventID": "e1",
                      "requestParameters": {"secretId": SECRET}}})
}

/// A guard that decides and acts on nothing, so only the describe calls reach the wire (the
/// key policy review has its own wire test, tests/key_policy.rs).
fn deciding_only(ports: AwsPorts) -> Guard<AwsPorts> {
    Guard::new(
        Config {
            actions: Default::default(),
            key_policy: cmkguard_core::config::KeyPolicyMode::Off,
            ..Config::default()
        },
        ports,
    )
}

#[tokio::test]
async fn a_key_that_says_key_manager_aws_is_non_compliant() {
    let key = "arn:aws:kms:us-east-1:123456789012:key/0000aaaa-aws-managed";
    let secrets = secrets_rule(200, Some(secret_body(key)));
    let kms = key_rule(200, Some(key_body(key, "AWS", "Enabled")));
    let ports = ports(&secrets, &kms);

    let facts = ports.describe_key(&scope(), key).await.unwrap();
    assert_eq!(
        (facts.manager, facts.state),
        (KeyManager::Aws, KeyState::Enabled)
    );

    let guard = deciding_only(ports);
    let records = guard.handle(&event(), &ctx()).await.unwrap();
    assert_eq!(
        (records[0].verdict, records[0].reason.as_str()),
        (Verdict::NonCompliant, "aws-managed-key")
    );
    assert_eq!(records[0].key_manager, Some(KeyManager::Aws));
    assert_eq!(records[0].key_id.as_deref(), Some(key));
}

#[tokio::test]
async fn key_states_map_to_their_reasons() {
    let key = "arn:aws:kms:us-east-1:123456789012:key/1111bbbb";
    for (state, reason) in [
        ("Disabled", "key-disabled"),
        ("PendingDeletion", "key-pending-deletion"),
        ("PendingImport", "key-unusable"),
    ] {
        let secrets = secrets_rule(200, Some(secret_body(key)));
        let kms = key_rule(200, Some(key_body(key, "CUSTOMER", state)));
        let guard = deciding_only(ports(&secrets, &kms));
        let records = guard.handle(&event(), &ctx()).await.unwrap();
        assert_eq!(records[0].reason.as_str(), reason, "{state}");
    }
}

#[tokio::test]
async fn access_denied_on_another_accounts_key_is_not_a_violation() {
    let key = "arn:aws:kms:us-east-1:999988887777:key/2222cccc";
    let secrets = secrets_rule(200, Some(secret_body(key)));
    let kms = key_rule(400, error_body("AccessDeniedException"));
    let ports = ports(&secrets, &kms);
    assert!(matches!(
        ports.describe_key(&scope(), key).await,
        Err(AwsError::AccessDenied(_))
    ));

    let guard = deciding_only(ports);
    let records = guard.handle(&event(), &ctx()).await.unwrap();
    assert_eq!(
        (records[0].verdict, records[0].reason.as_str()),
        (Verdict::Compliant, "cross-account-key")
    );
    assert_eq!(records[0].key_manager, Some(KeyManager::Customer));
}

#[tokio::test]
async fn throttling_is_retried_then_surfaces_as_transient() {
    let secrets = secrets_rule(400, error_body("ThrottlingException"));
    let kms = key_rule(200, None);
    // No budget beyond the SDK's own attempts.
    let ports = ports(&secrets, &kms).with_retry_budget(std::time::Duration::ZERO);
    let err = ports.describe_secret(&scope(), SECRET).await.unwrap_err();
    assert!(
        matches!(err, AwsError::Transient(ref m) if m.contains("ThrottlingException")),
        "{err:?}"
    );
    assert_eq!(secrets.num_calls(), 3, "the SDK retried before giving up");

    // With a budget, the port keeps trying (after jittered pauses) until the budget is spent.
    let lasting = secrets_rule(400, error_body("ThrottlingException"));
    let budgeted =
        self::ports(&lasting, &kms).with_retry_budget(std::time::Duration::from_millis(1500));
    let started = std::time::Instant::now();
    let err = budgeted
        .describe_secret(&scope(), SECRET)
        .await
        .unwrap_err();
    assert!(
        matches!(err, AwsError::Transient(ref m) if m.contains("still failing")),
        "{err:?}"
    );
    assert!(lasting.num_calls() >= 9, "{} calls", lasting.num_calls());
    assert!(started.elapsed() < std::time::Duration::from_millis(2500));

    // Through the guard: an error for Lambda to retry, not a verdict.
    let guard = Guard::new(Config::default(), ports);
    assert!(matches!(
        guard.handle(&event(), &ctx()).await,
        Err(GuardError::Transient { .. })
    ));
}

#[tokio::test]
async fn server_errors_are_transient_and_not_found_is_a_verdict() {
    let secrets = secrets_rule(503, error_body("ServiceUnavailable"));
    let kms = key_rule(200, None);
    let ports = ports(&secrets, &kms);
    assert!(matches!(
        ports.describe_secret(&scope(), SECRET).await,
        Err(AwsError::Transient(_))
    ));

    let secrets = secrets_rule(400, error_body("ResourceNotFoundException"));
    let guard = Guard::new(Config::default(), ports_with(&secrets));
    let records = guard.handle(&event(), &ctx()).await.unwrap();
    assert_eq!(
        (records[0].verdict, records[0].reason.as_str()),
        (Verdict::NotFound, "secret-not-found")
    );
    assert_eq!(secrets.num_calls(), 1, "not found is not retried");
}

#[tokio::test]
async fn an_unknown_key_is_key_not_found() {
    let key = "arn:aws:kms:us-east-1:123456789012:key/3333dddd";
    let secrets = secrets_rule(200, Some(secret_body(key)));
    let kms = key_rule(400, error_body("NotFoundException"));
    let guard = deciding_only(ports(&secrets, &kms));
    let records = guard.handle(&event(), &ctx()).await.unwrap();
    assert_eq!(
        (records[0].verdict, records[0].reason.as_str()),
        (Verdict::NonCompliant, "key-not-found")
    );
}

fn ports_with(secrets: &Rule) -> AwsPorts {
    ports(secrets, &key_rule(200, None))
}
