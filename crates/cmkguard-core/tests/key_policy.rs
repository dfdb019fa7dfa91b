//! The key policy review through the engine, with the in-memory AWS: report and enforce modes,
//! the designated key reviewed before a move, one read per key, fresh reads on a key event, and
//! one Security Hub finding per key and word.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use cmkguard_core::fake::FakeAws;
use cmkguard_core::fake::cases::{KEY_ALIAS, OWN_ACCOUNT, ctx};
use cmkguard_core::finding::{Compliance, RecordState, Subject};
use cmkguard_core::keyfindings::key_finding_id;
use cmkguard_core::keypolicy::{Grant, KeyPolicyWord};
use cmkguard_core::{Action, Guard, KeyFacts, KeyState, Outcome, Reason, Record, Verdict};
use serde_json::{Value, json};

mod common;

use common::{arn, cmk, event, scope, secret, sweep};

/// AWS's default key policy: the account root gets `kms:*` ("Enable IAM User Permissions").
fn default_policy() -> String {
    json!({"Version": "2012-10-17", "Id": "key-default-1", "Statement": [{
        "Sid": "Enable IAM User Permissions", "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{OWN_ACCOUNT}:root")},
        "Action": "kms:*", "Resource": "*"}]})
    .to_string()
}

/// Anyone may decrypt.
fn public_policy() -> String {
    json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "Everyone", "Effect": "Allow", "Principal": "*",
        "Action": "kms:Decrypt", "Resource": "*"}]})
    .to_string()
}

/// The app's key with AWS's default policy, the designated key with a clean one (the fake's
/// default), and `n` secrets on the app's key.
fn world(n: usize) -> FakeAws {
    let fake = FakeAws::new();
    for id in ["app", "designated"] {
        fake.put_key(&scope(), KeyFacts::customer(cmk(id), KeyState::Enabled));
    }
    fake.put_alias(&scope(), KEY_ALIAS, &cmk("designated"));
    fake.put_key_policy(&cmk("app"), &default_policy());
    for i in 0..n {
        fake.put_secret(&scope(), secret(&format!("app/{i:03}"), Some(&cmk("app"))));
    }
    fake
}

fn guard(fake: FakeAws, actions: &str, mode: &str) -> Guard<FakeAws> {
    Guard::new(
        common::config(actions, &[("CMKGUARD_KEY_POLICY", mode)]),
        fake,
    )
}

async fn check(guard: &Guard<FakeAws>, name: &str) -> Record {
    let mut records = guard
        .handle(&event("UpdateSecret", &arn(name)), &ctx())
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    records.pop().unwrap()
}

fn words(record: &Record) -> Vec<KeyPolicyWord> {
    record
        .key_policy
        .as_ref()
        .map(|r| r.words())
        .unwrap_or_default()
}

fn action(record: &Record, action: Action) -> Option<&cmkguard_core::ActionRecord> {
    record.actions.iter().find(|a| a.action == action)
}

#[tokio::test]
async fn report_mode_records_the_words_and_changes_no_verdict() {
    let guard = guard(world(1), "tag,notify", "report");
    let record = check(&guard, "app/000").await;
    assert_eq!(record.verdict, Verdict::Compliant);
    assert_eq!(words(&record), [KeyPolicyWord::DelegatedToIam]);
    let line: Value = serde_json::from_str(&record.to_json_line()).unwrap();
    assert_eq!(line["key_policy"], json!(["key-policy-delegated-to-iam"]));
    // No tag and no notification for a key policy finding in report mode.
    assert_eq!(guard.ports().count("TagResource"), 0);
    assert_eq!(guard.ports().count("Publish"), 0);
}

#[tokio::test]
async fn enforce_mode_makes_the_secret_non_compliant_and_moves_it() {
    let guard = guard(world(1), "tag,remediate", "enforce");
    let record = check(&guard, "app/000").await;
    assert_eq!(
        (record.verdict, record.reason),
        (Verdict::NonCompliant, Reason::KeyPolicyDelegatedToIam)
    );
    assert!(
        record
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("Enable IAM User Permissions"),
        "{record:?}"
    );
    let moved = action(&record, Action::Remediate).unwrap();
    assert_eq!(moved.outcome, Outcome::Done, "{moved:?}");
    assert_eq!(
        guard
            .ports()
            .secret(&scope(), &arn("app/000"))
            .unwrap()
            .kms_key_id
            .as_deref(),
        Some(cmk("designated").as_str())
    );
}

#[tokio::test]
async fn enforce_mode_never_moves_a_secret_onto_a_designated_key_with_a_finding() {
    let fake = world(0);
    fake.put_secret(&scope(), secret("plain", None));
    fake.put_key_policy(&cmk("designated"), &public_policy());
    let guard = guard(fake, "tag,remediate", "enforce");
    let record = check(&guard, "plain").await;
    assert_eq!(record.reason, Reason::AwsManagedKey);
    let refused = action(&record, Action::Remediate).unwrap();
    assert_eq!(refused.outcome, Outcome::Failed);
    assert!(refused.detail.contains("key-policy-public"), "{refused:?}");
    assert_eq!(guard.ports().count("UpdateSecret"), 0);
    assert!(
        guard
            .ports()
            .secret(&scope(), &arn("plain"))
            .unwrap()
            .kms_key_id
            .is_none()
    );
}

#[tokio::test]
async fn report_mode_moves_onto_a_drifted_designated_key_and_says_so() {
    let fake = world(0);
    fake.put_secret(&scope(), secret("plain", None));
    fake.put_key_policy(&cmk("designated"), &public_policy());
    let guard = guard(fake, "tag,remediate", "report");
    let record = check(&guard, "plain").await;
    let moved = action(&record, Action::Remediate).unwrap();
    assert_eq!(moved.outcome, Outcome::Done);
    assert!(moved.detail.contains("key-policy-public"), "{moved:?}");
}

#[tokio::test]
async fn off_reads_no_policy() {
    let guard = guard(world(3), "tag", "off");
    let record = check(&guard, "app/000").await;
    assert!(record.key_policy.is_none());
    let line: Value = serde_json::from_str(&record.to_json_line()).unwrap();
    assert!(line.get("key_policy").is_none(), "{line}");
    assert_eq!(guard.ports().count("GetKeyPolicy"), 0);
    assert_eq!(guard.ports().count("ListGrants"), 0);
}

#[tokio::test]
async fn a_sweep_reads_each_key_once() {
    let guard = guard(world(120), "tag", "report");
    let records = guard.handle(&sweep(), &ctx()).await.unwrap();
    assert_eq!(records.len(), 120);
    assert!(
        records
            .iter()
            .all(|r| words(r) == [KeyPolicyWord::DelegatedToIam])
    );
    assert_eq!(guard.ports().count("GetKeyPolicy"), 1);
    assert_eq!(guard.ports().count("ListGrants"), 1);
    // Cached: the next sweep within 5 minutes reads nothing again.
    guard.handle(&sweep(), &ctx()).await.unwrap();
    assert_eq!(guard.ports().count("GetKeyPolicy"), 1);
}

#[tokio::test]
async fn a_grant_or_policy_event_reads_the_key_fresh() {
    let fake = world(2);
    fake.put_key_policy(&cmk("app"), &cmkguard_core::fake::clean_policy(&cmk("app")));
    let guard = guard(fake, "tag", "report");
    assert_eq!(words(&check(&guard, "app/000").await), []);
    // A contractor gets a grant: the event re-checks the secrets on the key with a fresh read.
    guard.ports().put_grant(
        &cmk("app"),
        Grant {
            id: "g-1".into(),
            grantee_principal: Some("arn:aws:iam::123456789012:role/Contractor".into()),
            operations: vec!["Decrypt".into()],
        },
    );
    let grant_event = key_event("CreateGrant");
    let records = guard.handle(&grant_event, &ctx()).await.unwrap();
    assert_eq!(records.len(), 2);
    assert!(
        records
            .iter()
            .all(|r| words(r) == [KeyPolicyWord::GrantDecrypt]),
        "{records:?}"
    );
    assert!(
        records[0].key_policy.as_ref().unwrap().findings[0]
            .detail
            .contains("g-1")
    );
    assert_eq!(guard.ports().count("ListGrants"), 2);
}

#[tokio::test]
async fn a_key_of_another_account_without_a_role_is_unreadable_and_not_read() {
    let fake = world(0);
    let foreign = "arn:aws:kms:us-east-1:999988887777:key/theirs";
    fake.put_key(&scope(), KeyFacts::customer(foreign, KeyState::Enabled));
    fake.put_secret(&scope(), secret("shared", Some(foreign)));
    let guard = guard(fake, "tag", "enforce");
    let record = check(&guard, "shared").await;
    assert_eq!(
        record.verdict,
        Verdict::Compliant,
        "unreadable is never enforced"
    );
    assert_eq!(words(&record), [KeyPolicyWord::Unreadable]);
    assert_eq!(guard.ports().count("GetKeyPolicy"), 0);
}

#[tokio::test]
async fn security_hub_gets_one_finding_per_key_and_word_naming_the_secrets() {
    let guard = guard(world(40), "securityhub", "report");
    // A key event (not the scheduled sweep): the words the key does not have are closed too.
    guard
        .handle(&key_event("PutKeyPolicy"), &ctx())
        .await
        .unwrap();
    let findings = guard.ports().findings();
    let keys: Vec<_> = findings
        .iter()
        .filter(|f| matches!(f.subject, Subject::Key { .. }))
        .collect();
    assert_eq!(keys.len(), KeyPolicyWord::ALL.len(), "{keys:?}");
    let failed: Vec<_> = keys
        .iter()
        .filter(|f| f.compliance == Compliance::Failed)
        .collect();
    assert_eq!(failed.len(), 1);
    let delegated = failed[0];
    assert_eq!(
        delegated.id,
        key_finding_id(&cmk("app"), KeyPolicyWord::DelegatedToIam)
    );
    assert_eq!(delegated.record_state, RecordState::Active);
    let Subject::Key {
        arn: key,
        secrets,
        secret_count,
    } = &delegated.subject
    else {
        unreachable!()
    };
    assert_eq!(
        (key.as_str(), secrets.len(), *secret_count),
        (cmk("app").as_str(), 31, 40)
    );
    assert!(
        delegated.description.contains("40 secrets depend on it"),
        "{}",
        delegated.description
    );
    assert!(
        keys.iter()
            .filter(|f| f.compliance == Compliance::Passed)
            .all(|f| f.record_state == RecordState::Archived)
    );

    // The scheduled sweep imports only what the key has.
    let fresh = guard_with_findings(world(40));
    fresh.handle(&sweep(), &ctx()).await.unwrap();
    let keys: Vec<_> = fresh
        .ports()
        .findings()
        .into_iter()
        .filter(|f| matches!(f.subject, Subject::Key { .. }))
        .collect();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].compliance, Compliance::Failed);
}

fn guard_with_findings(fake: FakeAws) -> Guard<FakeAws> {
    guard(fake, "securityhub", "report")
}

/// A key event `name` on the app's key, from the fixture of that name.
fn key_event(name: &str) -> Value {
    let text = std::fs::read_to_string(
        cmkguard_core::fake::cases::testdata().join(format!("events/{name}-key-arn.json")),
    )
    .unwrap();
    let mut event: Value = serde_json::from_str(&text).unwrap();
    let key = cmk("app");
    event["detail"]["resources"][0]["ARN"] = json!(key);
    event["detail"]["requestParameters"]["keyId"] = json!(key);
    event
}
