//! The moto harness against a real moto server (installed into `<workspace>/.venv` on first use).

// Tests: a step that fails should panic right there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use aws_sdk_secretsmanager::Client as SecretsManager;
use aws_sdk_sns::types::MessageAttributeValue;
use cmkguard_testkit::{DEFAULT_ACCOUNT, Moto, http};

#[tokio::test]
async fn starts_on_its_own_port_and_reset_clears_state() {
    let started = Instant::now();
    let moto = Moto::start();
    eprintln!("Moto::start() took {:?}", started.elapsed());

    assert_ne!(moto.port(), 0);
    assert_eq!(moto.endpoint(), format!("http://127.0.0.1:{}", moto.port()));
    let config = http::get(&format!("{}/moto-api/config", moto.endpoint())).unwrap();
    assert!(config.status < 300, "moto-api answers: {config:?}");

    let sm = SecretsManager::new(&moto.sdk_config("us-east-1").await);
    sm.create_secret()
        .name("app/db")
        .secret_string("s3cr3t")
        .send()
        .await
        .unwrap();
    let before = sm.list_secrets().send().await.unwrap();
    assert_eq!(before.secret_list().len(), 1);
    let arn = before.secret_list()[0].arn().unwrap();
    assert!(arn.contains(&format!(":{DEFAULT_ACCOUNT}:")), "{arn}");

    moto.reset();

    let after = sm.list_secrets().send().await.unwrap();
    assert!(after.secret_list().is_empty(), "reset left {after:?}");
}

#[tokio::test]
async fn two_motos_run_side_by_side_with_separate_state() {
    let a = Moto::start();
    let b = Moto::start();
    assert_ne!(a.port(), b.port());

    let sm_a = SecretsManager::new(&a.sdk_config("us-east-1").await);
    let sm_b = SecretsManager::new(&b.sdk_config("us-east-1").await);
    sm_a.create_secret()
        .name("only-in-a")
        .secret_string("x")
        .send()
        .await
        .unwrap();

    let in_a = sm_a.list_secrets().send().await.unwrap();
    let in_b = sm_b.list_secrets().send().await.unwrap();
    assert_eq!(in_a.secret_list().len(), 1);
    assert!(in_b.secret_list().is_empty(), "b sees a's secret: {in_b:?}");

    drop(a);
    // b keeps serving after a is gone.
    assert!(sm_b.list_secrets().send().await.is_ok());
}

#[tokio::test]
async fn a_dropped_moto_stops_listening() {
    let moto = Moto::start();
    let url = format!("{}/moto-api/config", moto.endpoint());
    assert!(http::get(&url).is_ok());
    drop(moto);
    assert!(http::get(&url).is_err(), "moto still answers after drop");
}

#[tokio::test]
async fn sdk_config_for_account_acts_in_that_account() {
    let moto = Moto::start();
    let other = moto
        .sdk_config_for_account("222233334444", "eu-west-1")
        .await;
    let sm_other = SecretsManager::new(&other);
    let created = sm_other
        .create_secret()
        .name("elsewhere")
        .secret_string("x")
        .send()
        .await
        .unwrap();
    let arn = created.arn().unwrap();
    assert!(
        arn.starts_with("arn:aws:secretsmanager:eu-west-1:222233334444:secret:elsewhere"),
        "{arn}"
    );

    // Data is partitioned per account: the default account does not see it.
    let sm_default = SecretsManager::new(&moto.sdk_config("eu-west-1").await);
    let listed = sm_default.list_secrets().send().await.unwrap();
    assert!(listed.secret_list().is_empty(), "{listed:?}");

    let identity = aws_sdk_sts::Client::new(&other)
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(identity.account(), Some("222233334444"));
}

#[tokio::test]
async fn sns_messages_returns_what_was_published() {
    let moto = Moto::start();
    assert!(moto.sns_messages().is_empty());

    let sns = aws_sdk_sns::Client::new(&moto.sdk_config("us-east-1").await);
    let topic = sns.create_topic().name("alerts").send().await.unwrap();
    let topic_arn = topic.topic_arn().unwrap();
    sns.publish()
        .topic_arn(topic_arn)
        .subject("cmkguard verdict")
        .message(r#"{"verdict":"non-compliant"}"#)
        .message_attributes(
            "verdict",
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value("non-compliant")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    sns.publish()
        .topic_arn(topic_arn)
        .message("second")
        .send()
        .await
        .unwrap();

    let other = aws_sdk_sns::Client::new(
        &moto
            .sdk_config_for_account("999988887777", "eu-west-1")
            .await,
    );
    let other_topic = other.create_topic().name("alerts").send().await.unwrap();
    other
        .publish()
        .topic_arn(other_topic.topic_arn().unwrap())
        .message("from elsewhere")
        .send()
        .await
        .unwrap();

    let messages = moto.sns_messages();
    assert_eq!(messages.len(), 3, "{messages:#?}");
    let first = &messages[0];
    assert_eq!(first["topic_arn"], topic_arn);
    assert_eq!(first["account_id"], DEFAULT_ACCOUNT);
    assert_eq!(first["region"], "us-east-1");
    assert_eq!(first["subject"], "cmkguard verdict");
    assert_eq!(first["message"], r#"{"verdict":"non-compliant"}"#);
    assert_eq!(
        first["message_attributes"]["verdict"],
        serde_json::json!({"Type": "String", "Value": "non-compliant"})
    );
    assert!(
        first["message_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
    assert_eq!(messages[1]["message"], "second");
    assert!(messages[1]["subject"].is_null());
    assert_eq!(messages[1]["message_attributes"], serde_json::json!({}));
    let elsewhere = &messages[2];
    assert_eq!(elsewhere["account_id"], "999988887777");
    assert_eq!(elsewhere["region"], "eu-west-1");
    assert_eq!(elsewhere["message"], "from elsewhere");

    moto.reset();
    assert!(moto.sns_messages().is_empty());
}

#[test]
fn env_points_a_child_process_at_this_moto_only() {
    let moto = Moto::start();
    let env: std::collections::HashMap<String, String> = moto.env().into_iter().collect();
    assert_eq!(env["AWS_ENDPOINT_URL"], moto.endpoint());
    assert_eq!(env["AWS_ACCESS_KEY_ID"], "testing");
    assert_eq!(env["AWS_REGION"], "us-east-1");
    assert_eq!(env["AWS_EC2_METADATA_DISABLED"], "true");
    for file in ["AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"] {
        let contents = std::fs::read(&env[file]).unwrap();
        assert!(contents.is_empty(), "{file} is not empty");
    }

    drop(moto);
    assert!(
        !std::path::Path::new(&env["AWS_CONFIG_FILE"]).exists(),
        "the temp dir outlives the server"
    );
}

/// The case table's key kinds are data: a row's own key gets its state and its key policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_of_a_row_get_their_state_and_policy() {
    use cmkguard_testkit::world::{KeyKind, standard_keys};
    let moto = cmkguard_testkit::Moto::start();
    let policy = serde_json::json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "Root", "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
        "Action": "kms:*", "Resource": "*"}]});
    let mut kinds = standard_keys();
    kinds.push(KeyKind {
        name: "reviewed".into(),
        state: "Disabled".into(),
        policy: Some(policy.clone()),
    });
    let keys = moto
        .make_keys_of(cmkguard_testkit::DEFAULT_ACCOUNT, "us-east-1", true, &kinds)
        .await;
    let kms = moto
        .kms_client(cmkguard_testkit::DEFAULT_ACCOUNT, "us-east-1")
        .await;
    let reviewed = keys.arn("reviewed");
    let got = kms
        .get_key_policy()
        .key_id(reviewed)
        .policy_name("default")
        .send()
        .await
        .unwrap();
    let got: serde_json::Value = serde_json::from_str(got.policy().unwrap()).unwrap();
    assert_eq!(got, policy);
    let described = kms.describe_key().key_id(reviewed).send().await.unwrap();
    assert_eq!(
        described
            .key_metadata()
            .unwrap()
            .key_state()
            .unwrap()
            .as_str(),
        "Disabled"
    );
    assert_eq!(keys.key_id("key:reviewed").as_deref(), Some(reviewed));
    assert_eq!(
        keys.key_id("cmk").as_deref(),
        Some(keys.designated.as_str())
    );
}
