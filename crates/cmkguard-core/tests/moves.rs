//! Finishing a move: a secret the guard re-encrypted is `previous-key-decrypts` until a new
//! version is current (AWS keeps the existing versions under the previous key too), said once;
//! `rotate` asks for that version once; `CMKGUARD_CHECK_VERSIONS` finds moves made by others.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use cmkguard_core::config::AccountSet;
use cmkguard_core::fake::FakeAws;
use cmkguard_core::fake::cases::{KEY_ALIAS, ctx};
use cmkguard_core::finding::{Compliance, Severity};
use cmkguard_core::{
    Action, AwsError, Guard, GuardError, KeyFacts, KeyState, Outcome, Reason, Record, Verdict,
};
use serde_json::{Value, json};

mod common;

use common::{REGION, arn, cmk, config, event, scope, secret, sweep};

const NAME: &str = "app/db";

fn world(rotation: bool) -> FakeAws {
    let fake = FakeAws::new();
    fake.put_key(
        &scope(),
        KeyFacts::customer(cmk("designated"), KeyState::Enabled),
    );
    fake.put_alias(&scope(), KEY_ALIAS, &cmk("designated"));
    let mut facts = secret(NAME, None);
    facts.rotation_enabled = rotation;
    fake.put_secret(&scope(), facts);
    fake
}

/// The world's secret as an earlier release left a move: on the designated key, marked
/// `remediated` with its reason and previous key, no version recorded.
fn moved_by_an_earlier_release(fake: FakeAws) -> FakeAws {
    let mut facts = fake.secret(&scope(), &arn(NAME)).unwrap();
    facts.kms_key_id = Some(cmk("designated"));
    facts.tags.extend([
        ("cmkguard:status".into(), "remediated".into()),
        ("cmkguard:reason".into(), "aws-managed-key".into()),
        ("cmkguard:previous-key".into(), "aws/secretsmanager".into()),
    ]);
    fake.put_secret(&scope(), facts);
    fake
}

async fn deliver(guard: &Guard<FakeAws>, name: &str) -> Record {
    let mut records = guard
        .handle(&event(name, &arn(NAME)), &ctx())
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    records.remove(0)
}

fn outcome(record: &Record, action: Action) -> Option<Outcome> {
    record
        .actions
        .iter()
        .find(|a| a.action == action)
        .map(|a| a.outcome)
}

fn tag(guard: &Guard<FakeAws>, key: &str) -> Option<String> {
    guard
        .ports()
        .secret(&scope(), &arn(NAME))
        .unwrap()
        .tags
        .get(key)
        .cloned()
}

#[tokio::test]
async fn a_move_records_its_version_and_is_said_once_until_a_new_version() {
    let guard = Guard::new(
        config("tag,notify,remediate,securityhub", &[]),
        world(false),
    );
    let first = deliver(&guard, "CreateSecret").await;
    assert_eq!(outcome(&first, Action::Remediate), Some(Outcome::Done));
    let moved = guard
        .ports()
        .secret(&scope(), &arn(NAME))
        .unwrap()
        .current_version
        .unwrap();
    assert_eq!(tag(&guard, "cmkguard:moved-version"), Some(moved.clone()));
    assert_eq!(
        tag(&guard, "cmkguard:status").as_deref(),
        Some("remediated")
    );
    // The move's one notification says what is left, and how to finish it.
    let sent = guard.ports().published();
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0].email.contains("The move is not finished yet."),
        "{}",
        sent[0].email
    );
    // Security Hub: FAILED at LOW until the new version.
    let finding = &guard.ports().findings()[0];
    assert_eq!(
        (finding.compliance, finding.severity, finding.reason),
        (
            Compliance::Failed,
            Severity::Low,
            Reason::PreviousKeyDecrypts
        )
    );

    // Redeliveries, the guard's own events and sweeps: `previous-key-decrypts`, nothing written.
    let writes = guard.ports().writes();
    for name in [
        "CreateSecret",
        "UpdateSecret",
        "TagResource",
        "CreateSecret",
    ] {
        let record = deliver(&guard, name).await;
        if name == "TagResource" {
            assert_eq!(record.verdict, Verdict::Ignored);
            continue;
        }
        assert_eq!(
            (record.verdict, record.reason),
            (Verdict::NonCompliant, Reason::PreviousKeyDecrypts),
            "{record:?}"
        );
        assert!(
            record.detail.as_deref().unwrap().contains(&moved),
            "{record:?}"
        );
        assert!(
            record.actions.iter().all(|a| a.outcome == Outcome::Skipped),
            "{record:?}"
        );
    }
    let swept = guard.handle(&sweep(), &ctx()).await.unwrap();
    assert_eq!(swept[0].reason, Reason::PreviousKeyDecrypts);
    assert_eq!(
        guard.ports().writes(),
        writes,
        "{:?} {swept:?}",
        guard.ports().calls()
    );
    assert_eq!(guard.ports().published().len(), 1);
    assert_eq!(guard.ports().imports(), [1]);

    // A new value: compliant, the version tag removed, `remediated` kept, the finding PASSED.
    guard.ports().new_version(&scope(), &arn(NAME)).unwrap();
    let record = deliver(&guard, "PutSecretValue").await;
    assert_eq!(
        (record.verdict, record.reason),
        (Verdict::Compliant, Reason::CustomerManagedKey)
    );
    assert_eq!(tag(&guard, "cmkguard:moved-version"), None);
    assert_eq!(tag(&guard, "cmkguard:reason"), None);
    assert_eq!(
        tag(&guard, "cmkguard:status").as_deref(),
        Some("remediated")
    );
    assert_eq!(guard.ports().count("UntagResource"), 1);
    let finding = &guard.ports().findings()[0];
    assert_eq!(finding.compliance, Compliance::Passed);
    assert!(
        finding.description.contains("move to"),
        "{}",
        finding.description
    );
    // And then nothing more.
    let writes = guard.ports().writes();
    let again = deliver(&guard, "UpdateSecretVersionStage").await;
    let swept = guard.handle(&sweep(), &ctx()).await.unwrap();
    assert_eq!(
        guard.ports().writes(),
        writes,
        "{again:?} {swept:?} {:?}",
        guard.ports().secret(&scope(), &arn(NAME))
    );
    assert_eq!(guard.ports().published().len(), 1);
}

#[tokio::test]
async fn a_pending_version_from_before_the_move_keeps_the_finding() {
    let guard = Guard::new(config("tag,remediate", &[]), world(false));
    deliver(&guard, "CreateSecret").await;
    // A rotation that moves `AWSPENDING` onto the moved version (one that predates the move).
    let mut facts = guard.ports().secret(&scope(), &arn(NAME)).unwrap();
    let moved = facts.current_version.clone().unwrap();
    facts.current_version = Some("later".into());
    facts.pending_version = Some(moved);
    guard.ports().put_secret(&scope(), facts);
    let record = deliver(&guard, "UpdateSecretVersionStage").await;
    assert_eq!(record.reason, Reason::PreviousKeyDecrypts);
    assert!(record.detail.unwrap().contains("AWSPENDING"));
}

#[tokio::test]
async fn the_rotation_service_event_finishes_a_move() {
    let guard = Guard::new(config("tag,remediate", &[]), world(true));
    deliver(&guard, "CreateSecret").await;
    guard.ports().new_version(&scope(), &arn(NAME)).unwrap();
    let rotation = json!({
        "id": "eb-rot", "detail-type": "AWS Service Event via CloudTrail",
        "source": "aws.secretsmanager", "account": common::scope().account, "region": REGION,
        "detail": {"eventID": "ct-rot", "eventName": "RotationSucceeded", "awsRegion": REGION,
                   "eventSource": "secretsmanager.amazonaws.com", "eventType": "AwsServiceEvent",
                   "userIdentity": {"invokedBy": "secretsmanager.amazonaws.com"},
                   "additionalEventData": {"SecretId": arn(NAME)}}
    });
    let records = guard.handle(&rotation, &ctx()).await.unwrap();
    assert_eq!(records[0].verdict, Verdict::Compliant);
    assert_eq!(records[0].event_name.as_deref(), Some("RotationSucceeded"));
    assert_eq!(tag(&guard, "cmkguard:moved-version"), None);
    // A service event that names no secret is malformed, and says where it looked.
    let mut nameless = rotation.clone();
    nameless["detail"]["additionalEventData"] = Value::Null;
    let records = guard.handle(&nameless, &ctx()).await.unwrap();
    assert_eq!(records[0].reason, Reason::MalformedEvent);
    assert!(
        records[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("additionalEventData.SecretId")
    );
}

#[tokio::test]
async fn rotate_asks_once_per_move_whatever_the_deliveries() {
    let guard = Guard::new(config("tag,notify,remediate,rotate", &[]), world(true));
    // The rotation makes its version later (as a rotation function would): hold the version.
    guard
        .ports()
        .delay("RotateSecret", std::time::Duration::ZERO);
    let first = deliver(&guard, "CreateSecret").await;
    assert_eq!(
        outcome(&first, Action::Rotate),
        Some(Outcome::Done),
        "{first:?}"
    );
    assert_eq!(guard.ports().count("RotateSecret"), 1);
    // The fake's rotation made the new version at once: compliant from here.
    let record = deliver(&guard, "RotateSecret").await;
    assert_eq!(record.verdict, Verdict::Compliant);
    assert_eq!(guard.ports().count("RotateSecret"), 1);
    assert_eq!(guard.ports().published().len(), 1);
    // The notification says the rotation was asked for.
    let sent = &guard.ports().published()[0];
    assert!(sent.email.contains("Rotation: done"), "{}", sent.email);
}

#[tokio::test]
async fn rotate_is_not_asked_again_when_the_rotation_has_not_made_its_version_yet() {
    let fake = world(true);
    let guard = Guard::new(config("tag,remediate,rotate", &[]), fake);
    // A rotation that is refused leaves the request mark: the next deliveries do not ask again.
    guard.ports().fail(
        "RotateSecret",
        AwsError::Other("AccessDeniedException: lambda:InvokeFunction".into()),
    );
    let first = deliver(&guard, "CreateSecret").await;
    let rotate = first
        .actions
        .iter()
        .find(|a| a.action == Action::Rotate)
        .unwrap();
    assert_eq!(rotate.outcome, Outcome::Failed);
    assert!(rotate.detail.contains("the finding stays"), "{rotate:?}");
    guard.ports().heal("RotateSecret");
    for _ in 0..3 {
        let record = deliver(&guard, "CreateSecret").await;
        assert_eq!(record.reason, Reason::PreviousKeyDecrypts);
        assert_eq!(outcome(&record, Action::Rotate), Some(Outcome::Skipped));
    }
    guard.handle(&sweep(), &ctx()).await.unwrap();
    assert_eq!(guard.ports().count("RotateSecret"), 1);
}

#[tokio::test]
async fn a_transient_rotate_failure_is_retried_and_the_move_reported_once() {
    let guard = Guard::new(config("tag,notify,remediate,rotate", &[]), world(true));
    guard.ports().fail(
        "RotateSecret",
        AwsError::Transient("ThrottlingException".into()),
    );
    let err = guard
        .handle(&event("CreateSecret", &arn(NAME)), &ctx())
        .await
        .unwrap_err();
    assert!(matches!(err, GuardError::Transient { .. }), "{err}");
    assert_eq!(tag(&guard, "cmkguard:rotation-requested"), None);
    assert_eq!(
        tag(&guard, "cmkguard:status").as_deref(),
        Some("remediating")
    );
    guard.ports().heal("RotateSecret");
    let record = deliver(&guard, "CreateSecret").await;
    assert_eq!(
        outcome(&record, Action::Rotate),
        Some(Outcome::Done),
        "{record:?}"
    );
    assert_eq!(outcome(&record, Action::Notify), Some(Outcome::Done));
    assert_eq!(guard.ports().count("UpdateSecret"), 1);
    assert_eq!(guard.ports().published().len(), 1);
}

#[tokio::test]
async fn rotate_never_touches_a_secret_without_rotation() {
    let guard = Guard::new(config("tag,remediate,rotate", &[]), world(false));
    let first = deliver(&guard, "CreateSecret").await;
    let rotate = first
        .actions
        .iter()
        .find(|a| a.action == Action::Rotate)
        .unwrap();
    assert_eq!(rotate.outcome, Outcome::Skipped);
    assert!(
        rotate.detail.contains("rotation is not enabled"),
        "{rotate:?}"
    );
    deliver(&guard, "CreateSecret").await;
    assert_eq!(guard.ports().count("RotateSecret"), 0);
    assert_eq!(tag(&guard, "cmkguard:rotation-requested"), None);
}

#[tokio::test]
async fn rotate_stays_in_the_remediation_accounts() {
    let mut config = config("tag,remediate,rotate", &[]);
    config.remediate_accounts = AccountSet::Some(["111122223333".to_owned()].into());
    // An earlier release's move in an account that is not opted in.
    let fake = moved_by_an_earlier_release(world(true));
    let guard = Guard::new(config, fake);
    let record = deliver(&guard, "CreateSecret").await;
    assert_eq!(outcome(&record, Action::Rotate), Some(Outcome::Skipped));
    assert_eq!(guard.ports().count("RotateSecret"), 0);
}

/// Secrets moved by earlier releases (no `cmkguard:moved-version`) are not quietly compliant:
/// the current version is taken as the moved one, said once, and the next version ends it.
#[tokio::test]
async fn an_earlier_releases_move_is_adopted_and_said_once() {
    let fake = moved_by_an_earlier_release(world(false));
    let guard = Guard::new(config("tag,notify,securityhub", &[]), fake);
    let first = deliver(&guard, "CreateSecret").await;
    assert_eq!(
        (first.verdict, first.reason),
        (Verdict::NonCompliant, Reason::PreviousKeyDecrypts)
    );
    assert!(first.detail.as_deref().unwrap().contains("earlier release"));
    assert_eq!(
        tag(&guard, "cmkguard:moved-version").as_deref(),
        Some("app/db-v1")
    );
    assert_eq!(guard.ports().published().len(), 1);
    assert_eq!(guard.ports().findings()[0].severity, Severity::Low);
    for _ in 0..2 {
        deliver(&guard, "CreateSecret").await;
    }
    guard.handle(&sweep(), &ctx()).await.unwrap();
    assert_eq!(guard.ports().published().len(), 1);
    assert_eq!(guard.ports().imports(), [1]);
    guard.ports().new_version(&scope(), &arn(NAME)).unwrap();
    assert_eq!(
        deliver(&guard, "PutSecretValue").await.verdict,
        Verdict::Compliant
    );
    assert_eq!(tag(&guard, "cmkguard:moved-version"), None);
}

/// `CMKGUARD_CHECK_VERSIONS`: a current version that names another key (`KmsKeyIds`) is a move
/// made by others; the secret's own key, however named, is not.
#[tokio::test]
async fn checked_versions_find_moves_made_by_others() {
    let fake = world(false);
    for (name, keys) in [
        ("by-others", vec!["DefaultEncryptionKey", "designated"]),
        ("by-id", vec!["designated"]),
        ("by-arn", vec![]),
    ] {
        let mut facts = secret(name, Some(&cmk("designated")));
        facts.current_version = Some(format!("{name}-v1"));
        fake.put_secret(&scope(), facts);
        let keys: Vec<String> = if name == "by-arn" {
            vec![cmk("designated")]
        } else {
            keys.into_iter().map(str::to_owned).collect()
        };
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        fake.put_version_keys(&arn(name), &format!("{name}-v1"), &keys);
    }
    let guard = Guard::new(
        config("tag,notify", &[("CMKGUARD_CHECK_VERSIONS", "true")]),
        fake,
    );
    let records = guard.handle(&sweep(), &ctx()).await.unwrap();
    let reason = |name: &str| {
        records
            .iter()
            .find(|r| r.secret_arn.as_deref() == Some(arn(name).as_str()))
            .map(|r| (r.verdict, r.reason))
            .unwrap()
    };
    assert_eq!(
        reason("by-others"),
        (Verdict::NonCompliant, Reason::PreviousKeyDecrypts)
    );
    assert_eq!(
        reason("by-id"),
        (Verdict::Compliant, Reason::CustomerManagedKey)
    );
    assert_eq!(
        reason("by-arn"),
        (Verdict::Compliant, Reason::CustomerManagedKey)
    );
    let by_others = records
        .iter()
        .find(|r| r.reason == Reason::PreviousKeyDecrypts)
        .unwrap();
    assert!(
        by_others
            .detail
            .as_deref()
            .unwrap()
            .contains("DefaultEncryptionKey")
    );
    // One request per secret on a customer managed key that was otherwise compliant (the
    // default-key secret needs none).
    assert_eq!(guard.ports().count("ListSecretVersionIds"), 3);
    // A finding like any other: marked `non-compliant`, notified once.
    guard.handle(&sweep(), &ctx()).await.unwrap();
    assert_eq!(
        guard
            .ports()
            .published()
            .iter()
            .filter(|n| n.message.contains("previous-key-decrypts"))
            .count(),
        1
    );
}

#[tokio::test]
async fn versions_are_not_read_unless_asked() {
    let fake = world(false);
    fake.put_secret(&scope(), secret("on-cmk", Some(&cmk("designated"))));
    let guard = Guard::new(config("tag", &[]), fake);
    guard.handle(&sweep(), &ctx()).await.unwrap();
    assert_eq!(guard.ports().count("ListSecretVersionIds"), 0);
}

/// AWS keeps every version that existed at the key change under the previous key too: moving
/// `AWSCURRENT` back to an older version does not finish a move; a version made after it does.
/// Only then are the versions read (one `ListSecretVersionIds`, for their `CreatedDate`).
#[tokio::test]
async fn a_rollback_to_a_version_older_than_the_move_does_not_finish_it() {
    let guard = Guard::new(config("tag,remediate", &[]), world(false));
    let older = guard
        .ports()
        .secret(&scope(), &arn(NAME))
        .unwrap()
        .current_version
        .unwrap();
    guard.ports().new_version(&scope(), &arn(NAME)).unwrap();
    deliver(&guard, "CreateSecret").await;
    assert_eq!(guard.ports().count("ListSecretVersionIds"), 0);
    // AWSCURRENT back on the version that was AWSPREVIOUS at the move.
    let mut facts = guard.ports().secret(&scope(), &arn(NAME)).unwrap();
    facts.current_version = Some(older.clone());
    guard.ports().put_secret(&scope(), facts);
    let record = deliver(&guard, "UpdateSecretVersionStage").await;
    assert_eq!(record.reason, Reason::PreviousKeyDecrypts, "{record:?}");
    assert!(
        record.detail.as_deref().unwrap().contains("predates"),
        "{record:?}"
    );
    assert!(tag(&guard, "cmkguard:moved-version").is_some());
    assert_eq!(guard.ports().count("ListSecretVersionIds"), 1);
    // A version made now finishes it.
    guard.ports().new_version(&scope(), &arn(NAME)).unwrap();
    let record = deliver(&guard, "PutSecretValue").await;
    assert_eq!(record.verdict, Verdict::Compliant, "{record:?}");
    assert_eq!(tag(&guard, "cmkguard:moved-version"), None);
}
