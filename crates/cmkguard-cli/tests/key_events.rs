//! The key's own events against moto, through `cmkguard handle-event` (the Lambda's handler; the
//! Lambda binary's own test is `crates/cmkguard-lambda/tests/key_events.rs`): three secrets on one key (by key id, key ARN and alias) among
//! others on other keys and on the default key. `DisableKey` flags exactly the three, with one
//! message each at an SQS subscriber, and a redelivery sends nothing; `EnableKey` clears the
//! marks; `ScheduleKeyDeletion` names the date; `CancelKeyDeletion` leaves the key disabled. The
//! requests stay at the listing floor with 250 other secrets in the account; a member account's
//! key event goes through the assumed role.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use std::collections::BTreeMap;

use aws_sdk_secretsmanager::primitives::{DateTime, DateTimeFormat};
use cmkguard_testkit::{DEFAULT_ACCOUNT, FaultProxy, Moto, key_event_for};
use serde_json::Value;

mod support;

use support::cmkguard;

const REGION: &str = "us-east-1";
const MEMBER: &str = "111122223333";

/// The fixture `file` about `key_arn` in `account`, as bytes for standard input.
fn event(file: &str, key_arn: &str, account: &str) -> Vec<u8> {
    key_event_for(file, key_arn, account)
        .to_string()
        .into_bytes()
}

fn arns(records: &[Value]) -> Vec<String> {
    let mut arns: Vec<String> = records
        .iter()
        .map(|r| r["secret_arn"].as_str().unwrap().to_owned())
        .collect();
    arns.sort();
    arns
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_events_flag_exactly_the_secrets_on_the_key_once() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.endpoint());
    let world = moto.secrets_on_a_key(DEFAULT_ACCOUNT, REGION, 250).await;
    let topic = moto.make_topic().await;
    let queue = moto.subscribe_queue(&topic, "key-events").await;
    let env = env(&[
        ("CMKGUARD_ACTIONS", "tag,notify"),
        ("CMKGUARD_SNS_TOPIC_ARN", &topic),
    ]);
    let deliver = |file: &str| {
        let run = cmkguard(
            &moto,
            Some(&proxy),
            &["handle-event", "-"],
            &env,
            &event(file, &world.key_arn, DEFAULT_ACCOUNT),
        );
        assert_eq!(run.code, Some(0), "{file}: {}", run.stderr);
        assert!(!run.stdout.contains("CANARY"), "{file}: a value was logged");
        run.records
    };

    world.disable().await;
    proxy.reset_counts();
    let disabled = deliver("DisableKey-key-arn.json");
    assert_eq!(arns(&disabled), world.on_key);
    assert!(
        disabled.iter().all(|r| r["reason"] == "key-disabled"),
        "{disabled:?}"
    );
    // 255 secrets: three pages; the key fresh, the alias once, the designated alias once; not
    // one `DescribeSecret`.
    assert_eq!(proxy.count("ListSecrets"), 3);
    assert_eq!(proxy.count("DescribeKey"), 3);
    assert_eq!(proxy.count("DescribeSecret"), 0);
    assert_eq!(proxy.count("TagResource"), 3);
    assert_eq!(moto.receive_all(&queue).len(), 3);

    // A redelivery sends nothing.
    let again = deliver("DisableKey-key-arn.json");
    assert_eq!(arns(&again), world.on_key);
    assert!(moto.receive_all(&queue).is_empty());

    // Enabled again: compliant, the marks removed.
    world.enable().await;
    let enabled = deliver("EnableKey-key-arn.json");
    assert!(
        enabled.iter().all(|r| r["verdict"] == "compliant"),
        "{enabled:?}"
    );
    for arn in &world.on_key {
        let state = moto.secret_state(DEFAULT_ACCOUNT, REGION, arn).await;
        assert!(
            !state.tags.contains_key("cmkguard:status"),
            "{arn}: {:?}",
            state.tags
        );
    }

    // Scheduled for deletion: the date and the way out.
    let scheduled = world
        .kms
        .schedule_key_deletion()
        .key_id(&world.key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    // To the second, as the guard writes it.
    let date = DateTime::from_secs(scheduled.deletion_date().unwrap().secs())
        .fmt(DateTimeFormat::DateTime)
        .unwrap();
    let pending = deliver("ScheduleKeyDeletion-key-arn.json");
    assert_eq!(arns(&pending), world.on_key);
    for record in &pending {
        assert_eq!(record["reason"], "key-pending-deletion");
        let detail = record["detail"].as_str().unwrap();
        assert!(detail.contains(&format!("on {date}")), "{detail} ({date})");
        assert!(
            detail.contains("`CancelKeyDeletion`, then `EnableKey`"),
            "{detail}"
        );
    }
    let messages = moto.receive_all(&queue);
    assert_eq!(messages.len(), 3);
    assert!(messages.iter().all(|m| m.contains(&date)), "{messages:?}");

    // Cancelled: the key stays disabled, as in AWS.
    world.cancel_deletion().await;
    let cancelled = deliver("CancelKeyDeletion-key-arn.json");
    assert!(
        cancelled.iter().all(|r| r["reason"] == "key-disabled"),
        "{cancelled:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_accounts_key_event_goes_through_the_role() {
    let moto = Moto::start();
    let world = moto.secrets_on_a_key(MEMBER, REGION, 0).await;
    world.disable().await;
    let run = cmkguard(
        &moto,
        None,
        &["handle-event", "-"],
        &env(&[("CMKGUARD_ASSUME_ROLE_NAME", "cmkguard-member")]),
        &event("DisableKey-key-arn.json", &world.key_arn, MEMBER),
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(arns(&run.records), world.on_key);
    assert!(
        run.records
            .iter()
            .all(|r| r["account"] == MEMBER && r["reason"] == "key-disabled")
    );

    // Without the role, one `foreign-account` record and nothing else.
    let refused = cmkguard(
        &moto,
        None,
        &["handle-event", "-"],
        &BTreeMap::new(),
        &event("DisableKey-key-arn.json", &world.key_arn, MEMBER),
    );
    assert_eq!(refused.records.len(), 1);
    assert_eq!(refused.records[0]["reason"], "foreign-account");
}
