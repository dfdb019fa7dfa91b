//! Engine behaviours beyond the case table: convergence on the guard's own writes, transient
//! failures, key caching, cross-account keys, sweeps.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use cmkguard_core::fake::FakeAws;
use cmkguard_core::fake::cases::{KEY_ALIAS, OWN_ACCOUNT, ctx};
use cmkguard_core::{
    AwsError, Config, Guard, GuardError, KeyFacts, KeyManager, KeyState, Outcome, Reason, Record,
    Verdict,
};
use serde_json::{Value, json};

mod common;

use common::{REGION, arn, cmk, event, scope, secret};

fn config(actions: &str) -> Config {
    common::config(actions, &[])
}

/// The CloudTrail event `name` on `app/db`, delivered to `guard`.
async fn deliver(guard: &Guard<FakeAws>, name: &str) -> Result<Vec<Record>, GuardError> {
    guard.handle(&event(name, &arn("app/db")), &ctx()).await
}

/// [`world`] with `app/db` on the default key.
fn world_with_secret() -> FakeAws {
    let fake = world();
    fake.put_secret(&scope(), secret("app/db", None));
    fake
}

fn world() -> FakeAws {
    let fake = FakeAws::new();
    let key = KeyFacts::customer(cmk("designated"), KeyState::Enabled);
    fake.put_key(&scope(), key);
    fake.put_alias(&scope(), KEY_ALIAS, &cmk("designated"));
    fake
}

#[tokio::test]
async fn the_guards_own_writes_converge_with_no_further_write() {
    let fake = world_with_secret();
    let guard = Guard::new(config("tag,notify,remediate"), fake);

    let first = deliver(&guard, "CreateSecret").await.unwrap();
    assert_eq!(first[0].verdict, Verdict::NonCompliant);
    assert_eq!(guard.ports().count("UpdateSecret"), 1);
    let writes = guard.ports().writes();

    // The events the remediation causes: UpdateSecret (the guard's own) and a redelivery.
    for name in ["UpdateSecret", "CreateSecret", "UpdateSecret"] {
        let records = guard
            .handle(&event(name, &arn("app/db")), &ctx())
            .await
            .unwrap();
        assert_eq!(records.len(), 1);
        assert!(
            records[0]
                .actions
                .iter()
                .all(|a| a.outcome != Outcome::Done),
            "{:?}",
            records[0]
        );
    }
    assert_eq!(
        guard.ports().writes(),
        writes,
        "no write after the first delivery"
    );
    assert_eq!(guard.ports().count("UpdateSecret"), 1);
}

#[tokio::test]
async fn a_transient_failure_is_retryable_and_the_redelivery_converges() {
    let fake = world_with_secret();
    fake.fail(
        "TagResource",
        AwsError::Transient("ThrottlingException: rate exceeded".into()),
    );
    let guard = Guard::new(config("tag,remediate"), fake);

    let err = deliver(&guard, "CreateSecret").await.unwrap_err();
    let GuardError::Transient { records, .. } = &err else {
        panic!("not transient: {err}")
    };
    // The intent could not be marked, so nothing was re-encrypted.
    assert_eq!(outcomes(&records[0]), [("remediate", Outcome::Failed)]);
    assert_eq!(guard.ports().count("UpdateSecret"), 0);

    guard.ports().heal("TagResource");
    let records = deliver(&guard, "CreateSecret").await.unwrap();
    assert_eq!(records[0].verdict, Verdict::NonCompliant);
    assert_eq!(
        outcomes(&records[0]),
        [("remediate", Outcome::Done), ("tag", Outcome::Done)]
    );
    assert_eq!(guard.ports().count("UpdateSecret"), 1);
}

fn outcomes(record: &cmkguard_core::Record) -> Vec<(&'static str, Outcome)> {
    record
        .actions
        .iter()
        .map(|a| (a.action.as_str(), a.outcome))
        .collect()
}

/// Re-encrypted, then the mark (or the notification) failed: the retry finds the intent on the
/// secret and finishes the job, with one notification in all.
#[tokio::test]
async fn a_retry_after_a_partial_failure_finishes_the_remediation_once() {
    for failing in ["TagResource", "Publish"] {
        let fake = world_with_secret();
        // The intent mark passes; the next tag (or the publish) fails.
        let passes = usize::from(failing == "TagResource");
        fake.fail_after(failing, passes, AwsError::Transient("HTTP 503".into()));
        let guard = Guard::new(config("tag,notify,remediate"), fake);
        let err = deliver(&guard, "CreateSecret").await.unwrap_err();
        assert!(
            matches!(err, GuardError::Transient { .. }),
            "{failing}: {err}"
        );
        assert_eq!(guard.ports().count("UpdateSecret"), 1, "{failing}");
        let after = guard.ports().secret(&scope(), &arn("app/db")).unwrap();
        assert_eq!(after.tags["cmkguard:status"], "remediating", "{failing}");

        guard.ports().heal(failing);
        let records = deliver(&guard, "CreateSecret").await.unwrap();
        assert_eq!(records[0].verdict, Verdict::NonCompliant, "{failing}");
        assert_eq!(
            outcomes(&records[0]),
            [
                ("remediate", Outcome::Done),
                ("tag", Outcome::Done),
                ("notify", Outcome::Done)
            ],
            "{failing}"
        );
        let after = guard.ports().secret(&scope(), &arn("app/db")).unwrap();
        assert_eq!(after.tags["cmkguard:status"], "remediated", "{failing}");
        assert_eq!(after.tags["cmkguard:previous-key"], "aws/secretsmanager");
        // A third delivery, and the events of the guard's own writes: nothing more.
        let writes = guard.ports().writes();
        let records = deliver(&guard, "UpdateSecret").await.unwrap();
        // What is left of the move (the current version is still under the previous key) was
        // said by the move's own notification: nothing more is written or sent.
        assert_eq!(
            (records[0].verdict, records[0].reason),
            (Verdict::NonCompliant, Reason::PreviousKeyDecrypts),
            "{failing}"
        );
        assert_eq!(guard.ports().writes(), writes, "{failing}");
        assert_eq!(guard.ports().published().len(), 1, "{failing}");
        assert_eq!(guard.ports().count("UpdateSecret"), 1, "{failing}");
    }
}

/// `notify` alone keeps the mark: three deliveries and two sweeps, one message.
#[tokio::test]
async fn notify_alone_notifies_once_across_deliveries_and_sweeps() {
    let fake = world_with_secret();
    let guard = Guard::new(config("notify"), fake);
    for _ in 0..3 {
        deliver(&guard, "CreateSecret").await.unwrap();
    }
    let sweep = serde_json::json!({
        "id": "sweep-1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "region": "us-east-1", "detail": {}
    });
    for _ in 0..2 {
        guard.handle(&sweep, &ctx()).await.unwrap();
    }
    assert_eq!(guard.ports().published().len(), 1);
    let after = guard.ports().secret(&scope(), &arn("app/db")).unwrap();
    assert_eq!(after.tags["cmkguard:status"], "non-compliant");
}

#[tokio::test]
async fn a_transient_describe_is_an_error_for_lambda_to_retry() {
    let fake = world_with_secret();
    fake.fail("DescribeSecret", AwsError::Transient("HTTP 503".into()));
    let guard = Guard::new(config("tag"), fake);
    let err = deliver(&guard, "CreateSecret").await.unwrap_err();
    assert!(matches!(err, GuardError::Transient { .. }), "{err}");
    assert_eq!(guard.ports().writes(), 0);
}

#[tokio::test]
async fn permanent_failures_are_verdicts() {
    let fake = world_with_secret();
    fake.fail(
        "DescribeSecret",
        AwsError::AccessDenied("not allowed".into()),
    );
    let guard = Guard::new(config("tag"), fake);
    let records = deliver(&guard, "CreateSecret").await.unwrap();
    assert_eq!(
        (records[0].verdict, records[0].reason.as_str()),
        (Verdict::Error, "access-denied")
    );

    let fake = world_with_secret();
    fake.fail("TagResource", AwsError::AccessDenied("no tagging".into()));
    let guard = Guard::new(config("tag,notify"), fake);
    let records = deliver(&guard, "CreateSecret").await.unwrap();
    let outcomes: Vec<_> = records[0]
        .actions
        .iter()
        .map(|a| (a.action.as_str(), a.outcome))
        .collect();
    // A failed action does not stop the others, but without the mark a notification could not
    // be kept from repeating on every delivery: at most one per finding means none is sent.
    assert_eq!(
        outcomes,
        [("tag", Outcome::Failed), ("notify", Outcome::Failed)]
    );
    assert!(records[0].actions[1].detail.contains("could not be marked"));
    assert_eq!(guard.ports().published().len(), 0);

    // A permanent failure to publish keeps the mark: the record and the metric tell of it.
    let fake = world_with_secret();
    fake.fail("Publish", AwsError::AccessDenied("no publishing".into()));
    let guard = Guard::new(config("tag,notify"), fake);
    let records = deliver(&guard, "CreateSecret").await.unwrap();
    assert_eq!(
        records[0]
            .actions
            .iter()
            .map(|a| a.outcome)
            .collect::<Vec<_>>(),
        [Outcome::Done, Outcome::Failed]
    );
}

#[tokio::test]
async fn key_facts_are_cached_in_the_warm_process() {
    let fake = world();
    for i in 0..5 {
        fake.put_secret(&scope(), secret(&format!("s{i}"), Some(&cmk("designated"))));
    }
    let guard = Guard::new(config("tag"), fake);
    for i in 0..5 {
        let records = guard
            .handle(&event("CreateSecret", &arn(&format!("s{i}"))), &ctx())
            .await
            .unwrap();
        assert_eq!(records[0].verdict, Verdict::Compliant);
    }
    assert_eq!(guard.ports().count("DescribeKey"), 1);
    assert_eq!(guard.ports().count("DescribeSecret"), 5);
}

#[tokio::test]
async fn a_default_key_secret_costs_no_describe_key() {
    let fake = world();
    fake.put_secret(&scope(), secret("s", None));
    fake.put_secret(&scope(), secret("t", Some("alias/aws/secretsmanager")));
    let guard = Guard::new(config("none"), fake);
    for name in ["s", "t"] {
        let records = guard
            .handle(&event("CreateSecret", &arn(name)), &ctx())
            .await
            .unwrap();
        assert_eq!(
            (records[0].verdict, records[0].key_manager),
            (Verdict::NonCompliant, Some(KeyManager::Aws))
        );
    }
    assert_eq!(guard.ports().calls(), ["DescribeSecret", "DescribeSecret"]);
}

#[tokio::test]
async fn a_key_with_key_manager_aws_is_non_compliant() {
    let fake = world();
    let aws_key = KeyFacts::aws(cmk("aws-managed"));
    fake.put_key(&scope(), aws_key);
    fake.put_secret(&scope(), secret("s", Some(&cmk("aws-managed"))));
    let guard = Guard::new(config("tag,remediate"), fake);
    let records = guard
        .handle(&event("CreateSecret", &arn("s")), &ctx())
        .await
        .unwrap();
    assert_eq!(
        (records[0].verdict, records[0].reason.as_str()),
        (Verdict::NonCompliant, "aws-managed-key")
    );
    assert_eq!(
        guard
            .ports()
            .secret(&scope(), &arn("s"))
            .unwrap()
            .kms_key_id,
        Some(cmk("designated"))
    );
}

#[tokio::test]
async fn a_denied_foreign_key_is_customer_managed_by_definition() {
    let fake = world();
    let foreign = "arn:aws:kms:us-east-1:999988887777:key/shared";
    fake.put_secret(&scope(), secret("s", Some(foreign)));
    fake.fail("DescribeKey", AwsError::AccessDenied("not your key".into()));
    let guard = Guard::new(config("tag"), fake);
    let records = guard
        .handle(&event("CreateSecret", &arn("s")), &ctx())
        .await
        .unwrap();
    let record = &records[0];
    assert_eq!(
        (record.verdict, record.reason.as_str()),
        (Verdict::Compliant, "cross-account-key")
    );
    assert_eq!(record.key_manager, Some(KeyManager::Customer));
    assert!(
        record.detail.as_deref().unwrap().contains("denied"),
        "{record:?}"
    );

    // The same denial on a key of the secret's own account is not excused.
    let fake = world();
    fake.put_secret(&scope(), secret("s", Some(&cmk("mine"))));
    fake.fail("DescribeKey", AwsError::AccessDenied("not allowed".into()));
    let guard = Guard::new(config("tag"), fake);
    let records = guard
        .handle(&event("CreateSecret", &arn("s")), &ctx())
        .await
        .unwrap();
    assert_eq!(
        (records[0].verdict, records[0].reason.as_str()),
        (Verdict::Error, "key-access-denied")
    );
}

#[tokio::test]
async fn a_scheduled_event_sweeps_the_region_page_by_page() {
    let fake = world();
    for i in 0..250 {
        let key = (i % 2 == 0).then(|| cmk("designated"));
        fake.put_secret(&scope(), secret(&format!("s{i:03}"), key.as_deref()));
    }
    let guard = Guard::new(config("none"), fake);
    let sweep = json!({"id": "sched-1", "detail-type": "Scheduled Event", "source": "aws.events",
                       "account": OWN_ACCOUNT, "region": REGION, "detail": {}});
    let records = guard.handle(&sweep, &ctx()).await.unwrap();
    assert_eq!(records.len(), 250);
    assert_eq!(
        records
            .iter()
            .filter(|r| r.verdict == Verdict::NonCompliant)
            .count(),
        125
    );
    assert_eq!(guard.ports().count("ListSecrets"), 3);
    assert_eq!(
        guard.ports().count("DescribeSecret"),
        0,
        "decided from the list pages alone"
    );
    assert_eq!(guard.ports().count("DescribeKey"), 1);
    assert!(
        records
            .iter()
            .all(|r| r.event_id.as_deref() == Some("sched-1"))
    );
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let fake = world();
    fake.put_secret(&scope(), secret("s", None));
    let mut config = config("tag,notify,remediate");
    config.dry_run = true;
    let guard = Guard::new(config, fake);
    let records = guard
        .handle(&event("CreateSecret", &arn("s")), &ctx())
        .await
        .unwrap();
    assert!(records[0].dry_run);
    assert!(
        records[0]
            .actions
            .iter()
            .all(|a| a.outcome == Outcome::DryRun),
        "{:?}",
        records[0].actions
    );
    assert!(records[0].actions[0].detail.contains(&cmk("designated")));
    assert_eq!(guard.ports().writes(), 0);
}

#[tokio::test]
async fn the_notification_is_the_record_with_filterable_attributes() {
    let fake = world_with_secret();
    let guard = Guard::new(config("notify"), fake);
    let records = deliver(&guard, "CreateSecret").await.unwrap();
    let published = guard.ports().published();
    assert_eq!(published.len(), 1);
    let message: Value = serde_json::from_str(&published[0].message).unwrap();
    assert_eq!(message["secret_arn"], arn("app/db"));
    assert_eq!(message["verdict"], "non_compliant");
    assert_eq!(
        published[0].subject,
        "cmkguard: non_compliant secret app/db-AbCdEf (aws-managed-key)"
    );
    let attributes: Vec<_> = published[0]
        .attributes
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        attributes,
        [
            ("verdict", "non_compliant"),
            ("account", OWN_ACCOUNT),
            ("region", REGION)
        ]
    );
    assert_eq!(records[0].actions[0].outcome, Outcome::Done);
}

#[tokio::test]
async fn the_designated_key_is_resolved_once_per_warm_process() {
    let fake = world();
    fake.put_secret(&scope(), secret("a", None));
    fake.put_secret(&scope(), secret("b", None));
    let guard = Guard::new(config("remediate"), fake);
    for name in ["a", "b"] {
        let records = guard
            .handle(&event("CreateSecret", &arn(name)), &ctx())
            .await
            .unwrap();
        assert_eq!(
            records[0].actions[0].outcome,
            Outcome::Done,
            "{:?}",
            records[0]
        );
    }
    assert_eq!(guard.ports().count("ResolveAlias"), 1);
    assert_eq!(guard.ports().count("UpdateSecret"), 2);
}
