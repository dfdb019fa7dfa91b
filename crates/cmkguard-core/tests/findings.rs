//! The `securityhub` action in the engine: which decisions import a finding, what it says, and
//! how a sweep batches them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use cmkguard_core::fake::FakeAws;
use cmkguard_core::fake::cases::{KEY_ALIAS, OWN_ACCOUNT, ctx};
use cmkguard_core::finding::{Compliance, RecordState, Severity, Subject};
use cmkguard_core::{Action, Config, Guard, GuardError, KeyFacts, KeyState, Outcome, Verdict};
use serde_json::Value;

mod common;

use common::{REGION, arn, cmk, scope, secret, sweep};

fn event(secret_arn: &str) -> Value {
    common::event("CreateSecret", secret_arn)
}

fn config(actions: &str, dry_run: bool) -> Config {
    common::config(
        actions,
        &[("CMKGUARD_DRY_RUN", if dry_run { "true" } else { "false" })],
    )
}

fn world() -> FakeAws {
    let fake = FakeAws::new();
    for (id, state) in [
        ("designated", KeyState::Enabled),
        ("disabled", KeyState::Disabled),
    ] {
        fake.put_key(&scope(), KeyFacts::customer(cmk(id), state));
    }
    fake.put_alias(&scope(), KEY_ALIAS, &cmk("designated"));
    fake
}

fn outcome(record: &cmkguard_core::Record, action: Action) -> Option<Outcome> {
    record
        .actions
        .iter()
        .find(|a| a.action == action)
        .map(|a| a.outcome)
}

#[tokio::test]
async fn a_finding_is_imported_when_it_changes_and_only_then() {
    let fake = world();
    fake.put_secret(&scope(), secret("app/db", Some(&cmk("disabled"))));
    let guard = Guard::new(config("securityhub", false), fake);
    for _ in 0..3 {
        let records = guard.handle(&event(&arn("app/db")), &ctx()).await.unwrap();
        assert_eq!(records[0].verdict, Verdict::NonCompliant);
    }
    // One import for three deliveries: `securityhub` alone keeps the mark.
    assert_eq!(guard.ports().imports(), [1]);
    let findings = guard.ports().findings();
    assert_eq!(findings.len(), 1);
    let f = &findings[0];
    assert_eq!(f.compliance, Compliance::Failed);
    assert_eq!(
        f.severity,
        Severity::High,
        "a disabled key cannot decrypt the secret"
    );
    assert_eq!(f.record_state, RecordState::Active);
    assert_eq!(f.id, format!("cmkguard/secret-kms-key/{}", arn("app/db")));
    assert_eq!(
        f.product_arn(),
        format!("arn:aws:securityhub:{REGION}:{OWN_ACCOUNT}:product/{OWN_ACCOUNT}/default")
    );
    let after = guard.ports().secret(&scope(), &arn("app/db")).unwrap();
    assert_eq!(after.tags["cmkguard:status"], "non-compliant");

    // Fixed by a person: PASSED, the same finding, and then quiet again.
    let mut fixed = after.clone();
    fixed.kms_key_id = Some(cmk("designated"));
    guard.ports().put_secret(&scope(), fixed);
    for _ in 0..2 {
        guard.handle(&event(&arn("app/db")), &ctx()).await.unwrap();
    }
    assert_eq!(guard.ports().imports(), [1, 1]);
    let findings = guard.ports().findings();
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].compliance, Compliance::Passed);
    assert_eq!(findings[0].severity, Severity::Informational);
    assert!(findings[0].description.contains("fixed outside cmkguard"));
}

#[tokio::test]
async fn a_dry_run_imports_nothing_and_says_what_it_would_import() {
    let fake = world();
    fake.put_secret(&scope(), secret("app/db", None));
    let guard = Guard::new(config("tag,securityhub", true), fake);
    let records = guard.handle(&event(&arn("app/db")), &ctx()).await.unwrap();
    let action = records[0]
        .actions
        .iter()
        .find(|a| a.action == Action::SecurityHub)
        .unwrap();
    assert_eq!(action.outcome, Outcome::DryRun);
    assert!(action.detail.contains("would import finding"), "{action:?}");
    assert!(action.detail.contains("FAILED, MEDIUM"), "{action:?}");
    assert!(guard.ports().imports().is_empty());
}

#[tokio::test]
async fn a_refused_import_is_failed_the_mark_still_goes_on_and_nothing_loops() {
    let fake = world();
    fake.put_secret(&scope(), secret("app/db", None));
    fake.refuse_findings("InvalidAccess");
    let guard = Guard::new(config("tag,securityhub", false), fake);
    let records = guard.handle(&event(&arn("app/db")), &ctx()).await.unwrap();
    assert_eq!(
        outcome(&records[0], Action::SecurityHub),
        Some(Outcome::Failed)
    );
    assert_eq!(outcome(&records[0], Action::Tag), Some(Outcome::Done));
    let again = guard.handle(&event(&arn("app/db")), &ctx()).await.unwrap();
    assert_eq!(outcome(&again[0], Action::SecurityHub), None);
    assert_eq!(guard.ports().imports(), [1]);
}

#[tokio::test]
async fn a_transient_import_failure_leaves_no_mark_so_the_retry_imports() {
    let fake = world();
    fake.put_secret(&scope(), secret("app/db", None));
    fake.fail(
        "BatchImportFindings",
        cmkguard_core::AwsError::Transient("TooManyRequestsException".into()),
    );
    let guard = Guard::new(config("tag,securityhub", false), fake);
    let err = guard
        .handle(&event(&arn("app/db")), &ctx())
        .await
        .unwrap_err();
    assert!(matches!(err, GuardError::Transient { .. }), "{err}");
    assert_eq!(guard.ports().count("TagResource"), 0);
    guard.ports().heal("BatchImportFindings");
    let records = guard.handle(&event(&arn("app/db")), &ctx()).await.unwrap();
    assert_eq!(
        outcome(&records[0], Action::SecurityHub),
        Some(Outcome::Done)
    );
    assert_eq!(guard.ports().findings().len(), 1);
}

#[tokio::test]
async fn a_sweep_imports_a_pages_findings_in_one_request() {
    let fake = world();
    for i in 0..250 {
        let key = (i % 5 == 0).then(|| cmk("designated"));
        fake.put_secret(&scope(), secret(&format!("app/{i:03}"), key.as_deref()));
    }
    let guard = Guard::new(config("tag,remediate,securityhub", false), fake);
    let records = guard.handle(&sweep(), &ctx()).await.unwrap();
    assert_eq!(records.len(), 250);
    // 3 pages (100, 100, 50): one request each, 200 findings (the other 50 were compliant).
    assert_eq!(guard.ports().imports(), [80, 80, 40]);
    let findings = guard.ports().findings();
    assert_eq!(findings.len(), 200);
    // A move is `FAILED` at `LOW` until the secret's next version (`previous-key-decrypts`).
    assert!(findings.iter().all(|f| f.compliance == Compliance::Failed
        && f.severity == Severity::Low
        && f.reason == cmkguard_core::Reason::PreviousKeyDecrypts
        && f.description.contains("cmkguard re-encrypted")
        && f.description.contains("until a new version is current")
        && matches!(&f.subject, Subject::Secret { kms_key_id: Some(key), .. } if *key == cmk("designated"))));
    // The next sweep has nothing to import.
    guard.handle(&sweep(), &ctx()).await.unwrap();
    assert_eq!(guard.ports().imports().len(), 3);
}

#[tokio::test]
async fn an_exempt_secret_is_archived_and_a_deleted_one_too() {
    let fake = world();
    fake.put_secret(&scope(), secret("app/db", None));
    let guard = Guard::new(config("tag,securityhub", false), fake);
    guard.handle(&event(&arn("app/db")), &ctx()).await.unwrap();
    let mut exempt = guard.ports().secret(&scope(), &arn("app/db")).unwrap();
    exempt.tags.insert("cmkguard:exempt".into(), "true".into());
    guard.ports().put_secret(&scope(), exempt);
    let records = guard.handle(&event(&arn("app/db")), &ctx()).await.unwrap();
    assert_eq!(records[0].verdict, Verdict::Exempt);
    let f = &guard.ports().findings()[0];
    assert_eq!(f.record_state, RecordState::Archived);

    // A secret that is gone: its finding is archived.
    let gone = arn("app/gone");
    let records = guard.handle(&event(&gone), &ctx()).await.unwrap();
    assert_eq!(records[0].verdict, Verdict::NotFound);
    assert_eq!(
        outcome(&records[0], Action::SecurityHub),
        Some(Outcome::Done)
    );
    let archived = guard
        .ports()
        .findings()
        .into_iter()
        .find(|f| matches!(&f.subject, Subject::Secret { arn, .. } if *arn == gone))
        .unwrap();
    assert_eq!(archived.record_state, RecordState::Archived);
    assert!(
        matches!(&archived.subject, Subject::Secret { name, .. } if name == "app/gone"),
        "{archived:?}"
    );
}
