//! The key's own events (`DisableKey`, `EnableKey`, `ScheduleKeyDeletion`, `CancelKeyDeletion`),
//! from the fixtures in `testdata/events/`: every secret on the key, named by key id, key ARN
//! or alias, and only those, decided with the key's state read fresh; at the listing floor.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use std::time::{Duration, UNIX_EPOCH};

use cmkguard_core::fake::FakeAws;
use cmkguard_core::fake::cases::{self, KEY_ALIAS, ctx};
use cmkguard_core::{Guard, KeyFacts, KeyState, Outcome, Reason, Record, Verdict};

mod common;

use common::{arn, cmk, scope, secret};

const KEY_ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";
/// `DeletionDate` of the fixture's `ScheduleKeyDeletion` (2026-12-14T06:12:40Z).
const DELETION: u64 = 1_797_228_760;
/// Secrets on other keys, so the listing takes several pages.
const OTHERS: usize = 250;

fn key(state: KeyState) -> KeyFacts {
    KeyFacts::customer(cmk(KEY_ID), state)
}

/// Three secrets on the key (by id, ARN and alias), one on another key, one on the default key,
/// and [`OTHERS`] more on the other key.
fn world(state: KeyState) -> FakeAws {
    let fake = FakeAws::new();
    fake.put_key(&scope(), key(state));
    fake.put_alias(&scope(), "alias/app", &cmk(KEY_ID));
    fake.put_key(
        &scope(),
        KeyFacts::customer(cmk("other"), KeyState::Enabled),
    );
    fake.put_key(
        &scope(),
        KeyFacts::customer(cmk("designated"), KeyState::Enabled),
    );
    fake.put_alias(&scope(), KEY_ALIAS, &cmk("designated"));
    fake.put_secret(&scope(), secret("on/id", Some(KEY_ID)));
    fake.put_secret(&scope(), secret("on/arn", Some(&cmk(KEY_ID))));
    fake.put_secret(&scope(), secret("on/alias", Some("alias/app")));
    fake.put_secret(&scope(), secret("off/other", Some(&cmk("other"))));
    fake.put_secret(&scope(), secret("off/default", None));
    for i in 0..OTHERS {
        fake.put_secret(
            &scope(),
            secret(&format!("off/{i:03}"), Some(&cmk("other"))),
        );
    }
    fake
}

fn guard(fake: FakeAws) -> Guard<FakeAws> {
    Guard::new(
        common::config("tag,notify,remediate,securityhub", &[]),
        fake,
    )
}

async fn deliver(guard: &Guard<FakeAws>, fixture: &str) -> Vec<Record> {
    guard
        .handle(&cases::event(fixture), &ctx())
        .await
        .unwrap_or_else(|e| panic!("{fixture}: {e}"))
}

fn names(records: &[Record]) -> Vec<String> {
    let mut names: Vec<String> = records
        .iter()
        .map(|r| r.secret_arn.clone().unwrap_or_default())
        .collect();
    names.sort();
    names
}

fn on_key() -> Vec<String> {
    let mut arns = vec![arn("on/alias"), arn("on/arn"), arn("on/id")];
    arns.sort();
    arns
}

#[tokio::test]
async fn disable_key_flags_exactly_its_secrets_once_at_the_listing_floor() {
    let guard = guard(world(KeyState::Disabled));
    let records = deliver(&guard, "DisableKey-key-arn.json").await;
    assert_eq!(names(&records), on_key());
    for record in &records {
        assert_eq!(
            (record.verdict, record.reason),
            (Verdict::NonCompliant, Reason::KeyDisabled)
        );
        assert!(record.detail.as_deref().unwrap().contains("`EnableKey`"));
        let remediate = record
            .actions
            .iter()
            .find(|a| a.action.as_str() == "remediate")
            .unwrap();
        assert_eq!(remediate.outcome, Outcome::Skipped);
        assert!(
            remediate.detail.starts_with("not attempted"),
            "{remediate:?}"
        );
    }
    let fake = guard.ports();
    assert_eq!(fake.published().len(), 3);
    // 255 secrets: three pages; the fresh key and the alias, once each; no `DescribeSecret`;
    // no re-encryption from a key KMS refuses.
    assert_eq!(fake.count("ListSecrets"), 3);
    assert_eq!(fake.count("DescribeKey"), 2);
    assert_eq!(fake.count("DescribeSecret"), 0);
    assert_eq!(fake.count("UpdateSecret"), 0);
    assert!(
        secret_findings(fake)
            .iter()
            .all(|f| f.severity.as_str() == "HIGH")
    );

    // A redelivery writes and sends nothing more.
    let writes = fake.writes();
    let again = deliver(&guard, "DisableKey-key-arn.json").await;
    assert_eq!(names(&again), on_key());
    assert_eq!(fake.writes(), writes);
    assert_eq!(fake.published().len(), 3);
}

#[tokio::test]
async fn the_key_is_read_fresh_and_enable_key_clears_the_marks() {
    let guard = guard(world(KeyState::Enabled));
    // The key's state is cached as enabled by a secret's own event.
    let created = guard
        .handle(&common::event("CreateSecret", &arn("on/arn")), &ctx())
        .await
        .unwrap();
    assert_eq!(created[0].verdict, Verdict::Compliant);

    guard.ports().put_key(&scope(), key(KeyState::Disabled));
    let disabled = deliver(&guard, "DisableKey-key-id-only.json").await;
    assert_eq!(names(&disabled), on_key());
    assert!(disabled.iter().all(|r| r.reason == Reason::KeyDisabled));
    let marked = guard.ports().secret(&scope(), &arn("on/id")).unwrap();
    assert_eq!(marked.tags["cmkguard:status"], "non-compliant");

    guard.ports().put_key(&scope(), key(KeyState::Enabled));
    let enabled = deliver(&guard, "EnableKey-key-arn.json").await;
    assert!(enabled.iter().all(|r| r.verdict == Verdict::Compliant));
    for name in ["on/id", "on/arn", "on/alias"] {
        let after = guard.ports().secret(&scope(), &arn(name)).unwrap();
        assert!(
            cases::guard_tags(&after.tags).is_empty(),
            "{name}: {:?}",
            after.tags
        );
    }
}

#[tokio::test]
async fn schedule_key_deletion_names_the_date_and_the_way_out() {
    let deletion = UNIX_EPOCH + Duration::from_secs(DELETION);
    let fake = world(KeyState::Enabled);
    fake.put_key(
        &scope(),
        key(KeyState::PendingDeletion).deleted_at(Some(deletion)),
    );
    // The key at stake is also the region's designated key.
    fake.put_alias(&scope(), KEY_ALIAS, &cmk(KEY_ID));
    let guard = guard(fake);
    let records = deliver(&guard, "ScheduleKeyDeletion-key-arn.json").await;
    assert_eq!(names(&records), on_key());
    for record in &records {
        assert_eq!(record.reason, Reason::KeyPendingDeletion);
        let detail = record.detail.as_deref().unwrap();
        assert!(detail.contains("on 2026-12-14T06:12:40Z"), "{detail}");
        assert!(
            detail.contains("`CancelKeyDeletion`, then `EnableKey`"),
            "{detail}"
        );
        assert!(detail.contains("designated key of `us-east-1`"), "{detail}");
    }
    let findings = secret_findings(guard.ports());
    assert_eq!(findings.len(), 3);
    for finding in &findings {
        assert_eq!(finding.severity.as_str(), "CRITICAL");
        assert!(finding.description.contains("2026-12-14T06:12:40Z"));
        assert!(finding.description.contains("Re-encryption cannot help"));
        assert!(finding.description.contains("designated key"));
    }
    let message = &guard.ports().published()[0].message;
    assert!(message.contains("2026-12-14T06:12:40Z"), "{message}");

    // `CancelKeyDeletion` leaves the key disabled, as AWS does.
    guard.ports().put_key(&scope(), key(KeyState::Disabled));
    let cancelled = deliver(&guard, "CancelKeyDeletion-key-arn.json").await;
    assert!(cancelled.iter().all(|r| r.reason == Reason::KeyDisabled));
}

#[tokio::test]
async fn a_key_no_secret_uses_writes_and_sends_nothing() {
    let fake = world(KeyState::Disabled);
    for name in ["on/id", "on/arn", "on/alias"] {
        fake.put_secret(&scope(), secret(name, Some(&cmk("other"))));
    }
    let guard = guard(fake);
    let records = deliver(&guard, "DisableKey-key-arn.json").await;
    assert!(records.is_empty(), "{records:?}");
    assert_eq!(guard.ports().writes(), 0);
    assert!(guard.ports().findings().is_empty());
}

#[test]
fn failed_and_other_kms_calls_are_ignored() {
    let failed = cmkguard_core::event::read(&cases::event("DisableKey-failed.json")).unwrap();
    assert!(matches!(
        failed,
        cmkguard_core::Input::Ignored {
            reason: Reason::FailedCall,
            ..
        }
    ));
    let mut other = cases::event("DisableKey-key-arn.json");
    other["detail"]["eventName"] = "EnableKeyRotation".into();
    assert!(matches!(
        cmkguard_core::event::read(&other).unwrap(),
        cmkguard_core::Input::Ignored {
            reason: Reason::UnsupportedEventName,
            ..
        }
    ));
    let mut nameless = cases::event("DisableKey-key-id-only.json");
    nameless["detail"]["requestParameters"] = serde_json::json!({});
    assert!(matches!(
        cmkguard_core::event::read(&nameless).unwrap(),
        cmkguard_core::Input::Malformed { .. }
    ));
}

/// The findings about secrets (a key event also imports its key's policy findings).
fn secret_findings(fake: &FakeAws) -> Vec<cmkguard_core::finding::Finding> {
    fake.findings()
        .into_iter()
        .filter(|f| matches!(f.subject, cmkguard_core::finding::Subject::Secret { .. }))
        .collect()
}
