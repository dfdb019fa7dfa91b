//! At-least-once delivery and nothing lost, counted at the fault proxy (here, a counting proxy
//! with no faults): the same event three times makes one `UpdateSecret`; the events the guard's
//! own writes cause make no write at all; after remediation every version returns its value.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

mod support;

use cmkguard_core::fake::cases::{OWN_ACCOUNT, actions};
use cmkguard_testkit::{FaultProxy, Moto};
use serde_json::{Value, json};
use support::{assert_no_canary, case, cmkguard, setup};

const REMEDIATED: &str = "cloudformation-secret-is-remediated";

/// A CloudTrail record of the guard's own call `name` on `arn`, as EventBridge delivers it.
fn own_call(name: &str, arn: &str, request: Value) -> Vec<u8> {
    json!({
        "version": "0", "id": format!("eb-{name}"), "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.secretsmanager", "account": OWN_ACCOUNT, "region": "us-east-1",
        "detail": {
            "eventID": format!("ct-{name}"), "eventName": name, "awsRegion": "us-east-1",
            "eventSource": "secretsmanager.amazonaws.com",
            "userIdentity": {"arn": "arn:aws:sts::123456789012:assumed-role/cmkguard/cmkguard-lambda"},
            "requestParameters": request,
            "responseElements": {"arn": arn}
        }
    })
    .to_string()
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_deliveries_one_update_and_the_guards_own_events_write_nothing() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.endpoint());
    let case = case(REMEDIATED);
    let setup = setup(&moto, &case).await;
    let made = setup.made.clone().unwrap();
    let secret = case.secret.as_ref().unwrap();

    let mut states = Vec::new();
    for delivery in 1..=3 {
        let run = cmkguard(
            &moto,
            Some(&proxy),
            &["handle-event", "-"],
            &setup.env,
            &setup.event,
        );
        assert_eq!(run.code, Some(0), "delivery {delivery}: {}", run.stderr);
        assert_eq!(run.records.len(), 1, "delivery {delivery}: one record each");
        if delivery > 1 {
            assert!(
                actions(&run.records[0]).iter().all(|(_, o)| o != "done"),
                "delivery {delivery} wrote: {}",
                run.records[0]
            );
        }
        assert_no_canary(&made, &run.stdout, "delivery");
        assert_no_canary(&made, &run.stderr, "delivery");
        let state = moto
            .secret_state(&secret.account, "us-east-1", &made.arn)
            .await;
        states.push((
            state.kms_key_id,
            state.tags,
            state.current_value,
            state.previous_value,
        ));
    }
    assert_eq!(proxy.count("UpdateSecret"), 1, "{:?}", proxy.counts());
    // The intent (`remediating`) before the re-encryption, the mark (`remediated`) after it.
    assert_eq!(proxy.count("TagResource"), 2, "{:?}", proxy.counts());
    assert_eq!(proxy.count("Publish"), 1, "{:?}", proxy.counts());
    assert!(states.windows(2).all(|w| w[0] == w[1]), "{states:?}");

    // The events of the guard's own writes: UpdateSecret (a handled event) and TagResource (not).
    let designated = states[0].0.clone().unwrap();
    proxy.reset_counts();
    for event in [
        own_call(
            "UpdateSecret",
            &made.arn,
            json!({"secretId": made.arn, "kmsKeyId": designated}),
        ),
        own_call(
            "TagResource",
            &made.arn,
            json!({"secretId": made.arn, "tags": [{"key": "cmkguard:status", "value": "remediated"}]}),
        ),
    ] {
        let run = cmkguard(
            &moto,
            Some(&proxy),
            &["handle-event", "-"],
            &setup.env,
            &event,
        );
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert!(
            actions(&run.records[0]).iter().all(|(_, o)| o != "done"),
            "{}",
            run.records[0]
        );
    }
    assert_eq!(proxy.writes(), 0, "{:?}", proxy.counts());
    assert_eq!(
        proxy.count("DescribeSecret"),
        1,
        "only the UpdateSecret event is read"
    );
    let after = moto
        .secret_state(&secret.account, "us-east-1", &made.arn)
        .await;
    assert_eq!(
        (
            after.kms_key_id,
            after.tags,
            after.current_value,
            after.previous_value
        ),
        states[2]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_version_returns_its_value_after_remediation() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.endpoint());
    let case = case(REMEDIATED);
    let setup = setup(&moto, &case).await;
    let made = setup.made.clone().unwrap();
    let client = moto.secrets_client(OWN_ACCOUNT, "us-east-1").await;

    // A version with only a custom label, and a custom label on AWSCURRENT too.
    let kept_value = "CANARY-kept-do-not-log";
    let kept = client
        .put_secret_value()
        .secret_id(&made.arn)
        .secret_string(kept_value)
        .version_stages("release-42")
        .send()
        .await
        .unwrap();
    let kept_id = kept.version_id().unwrap().to_owned();
    let described = client
        .describe_secret()
        .secret_id(&made.arn)
        .send()
        .await
        .unwrap();
    let current_id = described
        .version_ids_to_stages()
        .unwrap()
        .iter()
        .find(|(_, labels)| labels.iter().any(|l| l == "AWSCURRENT"))
        .map(|(id, _)| id.clone())
        .unwrap();
    client
        .update_secret_version_stage()
        .secret_id(&made.arn)
        .version_stage("blue")
        .move_to_version_id(&current_id)
        .send()
        .await
        .unwrap();
    let values_before = all_values(&client, &made.arn).await;
    assert_eq!(
        values_before.len(),
        7,
        "four stages, three versions: {values_before:?}"
    );

    let run = cmkguard(
        &moto,
        Some(&proxy),
        &["handle-event", "-"],
        &setup.env,
        &setup.event,
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let record = &run.records[0];
    let detail = record["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("custom-label-versions"), "{record}");
    assert!(
        detail.contains(&kept_id) && detail.contains("release-42"),
        "{record}"
    );
    assert!(
        !detail.contains(&current_id),
        "AWSCURRENT is re-encrypted: {record}"
    );
    let remediate = &record["actions"][0];
    assert_eq!(remediate["outcome"], "done", "{record}");
    assert!(
        remediate["detail"].as_str().unwrap().contains(&kept_id),
        "{record}"
    );
    assert!(!run.stdout.contains(kept_value) && !run.stderr.contains(kept_value));
    assert_no_canary(&made, &run.stdout, "remediation");
    assert_no_canary(&made, &run.stderr, "remediation");

    // Nothing lost: every stage and every version id returns exactly what it did.
    assert_eq!(all_values(&client, &made.arn).await, values_before);
    let described = client
        .describe_secret()
        .secret_id(&made.arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.kms_key_id(),
        Some(
            setup.keys[&(OWN_ACCOUNT.into(), "us-east-1".into())]
                .designated
                .as_str()
        )
    );
    assert_eq!(proxy.count("UpdateSecret"), 1);
}

/// The value behind each stage (AWSCURRENT, AWSPREVIOUS, the custom ones), and each version id.
async fn all_values(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
) -> std::collections::BTreeMap<String, String> {
    let described = client
        .describe_secret()
        .secret_id(arn)
        .send()
        .await
        .unwrap();
    let mut values = std::collections::BTreeMap::new();
    for (id, labels) in described.version_ids_to_stages().unwrap() {
        let by_id = client
            .get_secret_value()
            .secret_id(arn)
            .version_id(id)
            .send()
            .await
            .unwrap();
        let value = by_id.secret_string().unwrap().to_owned();
        for label in labels {
            let by_stage = client
                .get_secret_value()
                .secret_id(arn)
                .version_stage(label)
                .send()
                .await
                .unwrap();
            assert_eq!(by_stage.secret_string(), Some(value.as_str()), "{label}");
            values.insert(format!("stage {label}"), value.clone());
        }
        values.insert(format!("version {id}"), value);
    }
    values
}

/// `notify` alone, as an SNS subscriber counts it: three deliveries of the event and then two
/// scheduled sweeps publish one message. The mark `notify` writes is what the later runs find.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_alone_sends_one_message_over_three_deliveries_and_two_sweeps() {
    let moto = Moto::start();
    let case = case("default-key-is-tagged");
    let setup = setup(&moto, &case).await;
    let made = setup.made.clone().unwrap();
    let topic = format!("arn:aws:sns:us-east-1:{OWN_ACCOUNT}:cmkguard");
    let queue = moto.subscribe_queue(&topic, "notify-alone").await;
    let mut env = setup.env.clone();
    env.insert("CMKGUARD_ACTIONS".into(), "notify".into());
    env.insert("CMKGUARD_SNS_TOPIC_ARN".into(), topic);
    let sweep = std::fs::read(
        cmkguard_testkit::workspace_root().join("testdata/events/ScheduledEvent-sweep.json"),
    )
    .unwrap();

    let mut outcomes = Vec::new();
    for (run_no, input) in [&setup.event, &setup.event, &setup.event, &sweep, &sweep]
        .into_iter()
        .enumerate()
    {
        let run = cmkguard(&moto, None, &["handle-event", "-"], &env, input);
        assert_eq!(run.code, Some(0), "run {run_no}: {}", run.stderr);
        let record = run
            .records
            .iter()
            .find(|r| r["secret_arn"] == made.arn.as_str())
            .unwrap_or_else(|| panic!("run {run_no}: no record of the secret: {}", run.stdout));
        assert_eq!(record["verdict"], "non_compliant", "run {run_no}: {record}");
        outcomes.push(actions(record));
        assert_no_canary(&made, &run.stdout, "notify alone");
    }
    // The first run published (its mark is part of the `notify` action); the others skipped.
    assert_eq!(
        outcomes[0],
        [("notify".to_owned(), "done".to_owned())],
        "{outcomes:?}"
    );
    for later in &outcomes[1..] {
        assert_eq!(
            later,
            &[("notify".to_owned(), "skipped".to_owned())],
            "{outcomes:?}"
        );
    }
    let messages = moto.receive_all(&queue);
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(messages[0].contains(&made.arn), "{}", messages[0]);
    let state = moto.secret_state(OWN_ACCOUNT, "us-east-1", &made.arn).await;
    assert_eq!(
        state.tags.get("cmkguard:status").map(String::as_str),
        Some("non-compliant"),
        "notify alone keeps the mark: {:?}",
        state.tags
    );
}
