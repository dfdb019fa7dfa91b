//! The `securityhub` action at the wire, for what moto cannot produce: a finding refused in
//! `FailedFindings` (`InvalidAccess`, where Security Hub is not enabled) and throttling.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

mod support;

use aws_sdk_securityhub::operation::batch_import_findings::BatchImportFindingsOutput;
use aws_sdk_securityhub::types::ImportFindingsError;
use aws_smithy_mocks::{Rule, mock};
use cmkguard_aws::AwsPorts;
use cmkguard_core::config::{AccountSet, Action};
use cmkguard_core::fake::cases::ctx;
use cmkguard_core::{Config, Guard, GuardError, Outcome, Scope, Verdict};
use serde_json::json;

const ACCOUNT: &str = "123456789012";
const SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-AbCdEf";

fn event() -> serde_json::Value {
    json!({"detail-type": "AWS API Call via CloudTrail", "source": "aws.secretsmanager", "account": ACCOUNT,
           "detail": {"eventName": "CreateSecret", "awsRegion": "us-east-1", "eventID": "e1",
                      "responseElements": {"arn": SECRET}}})
}

/// A guard with `tag,securityhub` whose secret is on the default key, and the rules it hit.
fn guard(hub: Rule) -> (Guard<AwsPorts>, Rule, Rule, Rule) {
    let describe = mock!(aws_sdk_secretsmanager::Client::describe_secret)
        .sequence()
        .http_status(
            200,
            Some(json!({"ARN": SECRET, "Name": "app/db", "Tags": []}).to_string()),
        )
        .repeatedly()
        .build();
    let tag = mock!(aws_sdk_secretsmanager::Client::tag_resource).then_output(|| {
        aws_sdk_secretsmanager::operation::tag_resource::TagResourceOutput::builder().build()
    });
    let ports = support::mocked_ports(
        &Scope::new(ACCOUNT, "us-east-1"),
        &[&describe, &tag],
        &[],
        &[&hub],
    );
    let config = Config {
        actions: [Action::Tag, Action::SecurityHub].into(),
        remediate_accounts: AccountSet::None,
        ..Config::default()
    };
    (Guard::new(config, ports), describe, tag, hub)
}

#[tokio::test]
async fn a_refused_finding_is_a_failed_action_and_the_others_still_run() {
    let refused = mock!(aws_sdk_securityhub::Client::batch_import_findings).then_output(|| {
        BatchImportFindingsOutput::builder()
            .failed_count(1)
            .success_count(0)
            .failed_findings(
                ImportFindingsError::builder()
                    .id(cmkguard_core::finding::id_of(SECRET))
                    .error_code("InvalidAccess")
                    .error_message("Account 123456789012 is not subscribed to AWS Security Hub")
                    .build(),
            )
            .build()
    });
    let (guard, _, tag, hub) = guard(refused);
    let records = guard.handle(&event(), &ctx()).await.unwrap();
    let record = &records[0];
    assert_eq!(record.verdict, Verdict::NonCompliant);
    let hub_action = record
        .actions
        .iter()
        .find(|a| a.action == Action::SecurityHub)
        .unwrap();
    assert_eq!(hub_action.outcome, Outcome::Failed, "{record:?}");
    assert!(
        hub_action.detail.contains("InvalidAccess"),
        "{hub_action:?}"
    );
    assert!(
        hub_action.detail.contains("not subscribed"),
        "{hub_action:?}"
    );
    // The tag (the mark) still went on: a redelivery does not import again (no retry loop).
    let tag_action = record
        .actions
        .iter()
        .find(|a| a.action == Action::Tag)
        .unwrap();
    assert_eq!(tag_action.outcome, Outcome::Done, "{record:?}");
    assert_eq!(tag.num_calls(), 1);
    assert_eq!(hub.num_calls(), 1, "a refused finding is not retried");
}

#[tokio::test]
async fn throttled_imports_are_retried_then_the_event_is_retried_without_a_mark() {
    let throttled = mock!(aws_sdk_securityhub::Client::batch_import_findings)
        .sequence()
        .http_status(
            429,
            Some(
                json!({"__type": "TooManyRequestsException", "Message": "Rate exceeded"})
                    .to_string(),
            ),
        )
        .repeatedly()
        .build();
    let (guard, _, tag, hub) = guard(throttled);
    let err = guard.handle(&event(), &ctx()).await.unwrap_err();
    let GuardError::Transient { message, records } = &err else {
        panic!("{err:?}")
    };
    assert!(message.contains("TooManyRequestsException"), "{message}");
    assert_eq!(hub.num_calls(), 3, "the SDK retried before giving up");
    let hub_action = records[0]
        .actions
        .iter()
        .find(|a| a.action == Action::SecurityHub)
        .unwrap();
    assert_eq!(hub_action.outcome, Outcome::Failed);
    // No mark: the retried event imports the finding again.
    assert_eq!(tag.num_calls(), 0);
}
