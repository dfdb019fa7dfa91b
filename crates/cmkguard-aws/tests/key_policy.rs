//! The `ReadKeyPolicy` port at the wire: `GetKeyPolicy` (policy `default`), every page of
//! `ListGrants`, and a denied read that becomes the finding `key-policy-unreadable`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

mod support;

use aws_smithy_mocks::{Rule, mock};
use cmkguard_core::config::KeyPolicyMode;
use cmkguard_core::fake::cases::ctx;
use cmkguard_core::keypolicy::KeyPolicyWord;
use cmkguard_core::ports::ReadKeyPolicy;
use cmkguard_core::{AwsError, Config, Guard, Scope, Verdict};
use serde_json::json;

const ACCOUNT: &str = "123456789012";
const KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/1111bbbb-1111-4111-8111-111111111111";
const SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-AbCdEf";

fn scope() -> Scope {
    Scope::new(ACCOUNT, "us-east-1")
}

/// AWS's default key policy: the account root gets `kms:*`.
fn default_policy() -> String {
    json!({"Version": "2012-10-17", "Id": "key-default-1", "Statement": [{
        "Sid": "Enable IAM User Permissions", "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")},
        "Action": "kms:*", "Resource": "*"}]})
    .to_string()
}

fn policy_rule() -> Rule {
    mock!(aws_sdk_kms::Client::get_key_policy)
        .match_requests(|r| r.policy_name() == Some("default") && r.key_id() == Some(KEY))
        .then_output(|| {
            aws_sdk_kms::operation::get_key_policy::GetKeyPolicyOutput::builder()
                .policy(default_policy())
                .policy_name("default")
                .build()
        })
}

fn grant(
    id: &str,
    operation: aws_sdk_kms::types::GrantOperation,
) -> aws_sdk_kms::types::GrantListEntry {
    aws_sdk_kms::types::GrantListEntry::builder()
        .grant_id(id)
        .grantee_principal("arn:aws:iam::123456789012:role/Contractor")
        .operations(operation)
        .build()
}

/// Two pages: the second is asked with the first's marker.
fn grants_rules() -> (Rule, Rule) {
    use aws_sdk_kms::operation::list_grants::ListGrantsOutput;
    use aws_sdk_kms::types::GrantOperation;
    let first = mock!(aws_sdk_kms::Client::list_grants)
        .match_requests(|r| r.marker().is_none())
        .then_output(|| {
            ListGrantsOutput::builder()
                .grants(grant("g-encrypt", GrantOperation::Encrypt))
                .truncated(true)
                .next_marker("page-2")
                .build()
        });
    let second = mock!(aws_sdk_kms::Client::list_grants)
        .match_requests(|r| r.marker() == Some("page-2"))
        .then_output(|| {
            ListGrantsOutput::builder()
                .grants(grant("g-decrypt", GrantOperation::Decrypt))
                .truncated(false)
                .build()
        });
    (first, second)
}

fn describe_rules() -> (Rule, Rule) {
    let secret = mock!(aws_sdk_secretsmanager::Client::describe_secret).then_http_response(|| {
        let body = json!({"ARN": SECRET, "Name": "app/db", "KmsKeyId": KEY, "Tags": []});
        http_ok(body)
    });
    let key = mock!(aws_sdk_kms::Client::describe_key).then_http_response(|| {
        http_ok(json!({"KeyMetadata": {"KeyId": "1111bbbb-1111-4111-8111-111111111111", "Arn": KEY,
            "KeyManager": "CUSTOMER", "KeyState": "Enabled", "Enabled": true, "AWSAccountId": ACCOUNT}}))
    });
    (secret, key)
}

fn http_ok(body: serde_json::Value) -> aws_smithy_runtime_api::http::Response {
    aws_smithy_runtime_api::http::Response::new(
        aws_smithy_runtime_api::http::StatusCode::try_from(200).unwrap(),
        aws_smithy_types::body::SdkBody::from(body.to_string()),
    )
}

fn event() -> serde_json::Value {
    json!({"detail-type": "AWS API Call via CloudTrail", "source": "aws.secretsmanager", "account": ACCOUNT,
           "detail": {"eventName": "UpdateSecret", "awsRegion": "us-east-1", "eventID": "e1",
                      "requestParameters": {"secretId": SECRET}}})
}

fn guard(mode: KeyPolicyMode, ports: cmkguard_aws::AwsPorts) -> Guard<cmkguard_aws::AwsPorts> {
    let config = Config {
        actions: Default::default(),
        key_policy: mode,
        ..Config::default()
    };
    Guard::new(config, ports)
}

#[tokio::test]
async fn the_policy_and_every_page_of_grants_are_read_and_judged() {
    let policy = policy_rule();
    let (first, second) = grants_rules();
    let (secret, key) = describe_rules();
    let ports = support::mocked_ports(&scope(), &[&secret], &[&key, &policy, &first, &second], &[]);

    assert_eq!(
        ports.key_policy(&scope(), KEY).await.unwrap(),
        default_policy()
    );
    let grants = ports.key_grants(&scope(), KEY).await.unwrap();
    let ids: Vec<&str> = grants.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(ids, ["g-encrypt", "g-decrypt"]);
    assert_eq!(grants[1].operations, ["Decrypt"]);

    // Report mode: the verdict stands, the record carries the words.
    let records = guard(KeyPolicyMode::Report, ports)
        .handle(&event(), &ctx())
        .await
        .unwrap();
    assert_eq!(records[0].verdict, Verdict::Compliant);
    let words = records[0].key_policy.as_ref().unwrap().words();
    assert_eq!(
        words,
        [KeyPolicyWord::DelegatedToIam, KeyPolicyWord::GrantDecrypt]
    );
    let line: serde_json::Value = serde_json::from_str(&records[0].to_json_line()).unwrap();
    assert_eq!(
        line["key_policy"],
        json!(["key-policy-delegated-to-iam", "key-grant-decrypt"])
    );
    assert_eq!(
        policy.num_calls(),
        2,
        "the port's own read, then the guard's one read"
    );
}

#[tokio::test]
async fn a_denied_read_is_unreadable_never_a_pass_and_never_enforced() {
    let denied = mock!(aws_sdk_kms::Client::get_key_policy).then_http_response(|| {
        aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(400).unwrap(),
            aws_smithy_types::body::SdkBody::from(
                json!({"__type": "AccessDeniedException", "message": "not authorized to perform kms:GetKeyPolicy"}).to_string(),
            ),
        )
    });
    let (secret, key) = describe_rules();
    // Both are asked at once; the grants alone do not make the key readable.
    let (first, second) = grants_rules();
    let ports = support::mocked_ports(&scope(), &[&secret], &[&key, &denied, &first, &second], &[]);
    assert!(matches!(
        ports.key_policy(&scope(), KEY).await,
        Err(AwsError::AccessDenied(_))
    ));
    let records = guard(KeyPolicyMode::Enforce, ports)
        .handle(&event(), &ctx())
        .await
        .unwrap();
    assert_eq!(
        records[0].verdict,
        Verdict::Compliant,
        "unreadable is not enforced"
    );
    let review = records[0].key_policy.as_ref().unwrap();
    assert_eq!(review.words(), [KeyPolicyWord::Unreadable]);
    assert!(
        review.findings[0].detail.contains("GetKeyPolicy"),
        "{review:?}"
    );
}
