//! `Publish` at the wire: SNS message structure, the record unchanged as `default` (what SQS,
//! Lambda and HTTPS subscribers get) and the plain-words text as `email`; the subject and the
//! attributes as before.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use std::sync::{Arc, Mutex};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sns::operation::publish::{PublishInput, PublishOutput};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use cmkguard_aws::AwsPorts;
use cmkguard_core::config::Action;
use cmkguard_core::event::EventMeta;
use cmkguard_core::ports::Publish;
use cmkguard_core::{ActionRecord, Config, Outcome, Reason, Record, Verdict};
use serde_json::Value;

const ACCOUNT: &str = "123456789012";
const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:cmkguard";
const SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-AbCdEf";

fn record() -> Record {
    let meta = EventMeta {
        event_id: Some("e1".into()),
        event_name: Some("CreateSecret".into()),
        account: Some(ACCOUNT.into()),
        region: Some("us-east-1".into()),
        ..Default::default()
    };
    let mut record = Record::new(
        &meta,
        Some(SECRET.into()),
        Verdict::NonCompliant,
        Reason::AwsManagedKey,
        None,
        false,
    );
    record.actions.push(ActionRecord::new(
        Action::Tag,
        Outcome::Done,
        "tagged `cmkguard:status=non-compliant`",
    ));
    record
}

#[tokio::test]
async fn publish_sends_the_record_as_default_and_plain_words_as_email() {
    let sent: Arc<Mutex<Vec<PublishInput>>> = Arc::default();
    let seen = Arc::clone(&sent);
    let publish = mock!(aws_sdk_sns::Client::publish)
        .match_requests(move |input| {
            seen.lock().unwrap().push(input.clone());
            true
        })
        .then_output(|| PublishOutput::builder().message_id("m1").build());
    let sns = mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&publish]);
    let base = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .build();
    let ports = AwsPorts::new(base, ACCOUNT, None);
    ports.insert_sns("us-east-1", sns);

    let record = record();
    let notification = cmkguard_core::act::notification(TOPIC, &record, &Config::default());
    ports.publish(&notification).await.unwrap();

    let sent = sent.lock().unwrap();
    assert_eq!(sent.len(), 1);
    let input = &sent[0];
    assert_eq!(input.topic_arn(), Some(TOPIC));
    assert_eq!(input.message_structure(), Some("json"));
    assert_eq!(
        input.subject(),
        Some("cmkguard: non_compliant secret app/db-AbCdEf (aws-managed-key)")
    );
    let attributes = input.message_attributes().unwrap();
    for (name, value) in [
        ("verdict", "non_compliant"),
        ("account", ACCOUNT),
        ("region", "us-east-1"),
    ] {
        let attribute = &attributes[name];
        assert_eq!(attribute.data_type(), "String");
        assert_eq!(attribute.string_value(), Some(value), "{name}");
    }
    assert_eq!(attributes.len(), 3);

    let message: Value = serde_json::from_str(input.message().unwrap()).unwrap();
    let object = message.as_object().unwrap();
    assert_eq!(
        object.keys().collect::<Vec<_>>(),
        ["default", "email"],
        "{message}"
    );
    // `default` is the record, byte for byte as before message structure.
    assert_eq!(message["default"], record.to_json_line().as_str());
    let default: Value = serde_json::from_str(message["default"].as_str().unwrap()).unwrap();
    assert_eq!(default["verdict"], "non_compliant");
    assert_eq!(default["reason"], "aws-managed-key");

    let email = message["email"].as_str().unwrap();
    assert_eq!(email, notification.email);
    assert!(
        email.starts_with("cmkguard found a non-compliant secret app/db:"),
        "{email}"
    );
    assert!(
        email.contains(SECRET) && email.contains("cmkguard:exempt = true"),
        "{email}"
    );
    assert!(
        !email.contains('{') && !email.contains("\"verdict\""),
        "{email}"
    );
}
