//! Versions with only custom staging labels: AWS does not re-encrypt them when the key changes,
//! so a remediation says so, in the record's detail and on the `remediate` action.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use std::collections::BTreeMap;

use cmkguard_core::facts::CUSTOM_LABEL_VERSIONS;
use cmkguard_core::fake::cases::{KEY_ALIAS, OWN_ACCOUNT, ctx};
use cmkguard_core::fake::{FakeAws, customer_key};
use cmkguard_core::{Config, Guard, KeyState, Outcome, Scope, SecretFacts, Verdict};
use serde_json::json;

fn labels(pairs: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    pairs
        .iter()
        .map(|(id, l)| (id.to_string(), l.iter().map(|s| s.to_string()).collect()))
        .collect()
}

#[test]
fn only_versions_without_an_aws_label_are_kept_back() {
    let versions = labels(&[
        ("v-current", &["AWSCURRENT", "blue"]),
        ("v-previous", &["AWSPREVIOUS"]),
        ("v-pending", &["AWSPENDING"]),
        ("v-green", &["green"]),
        ("v-two", &["keep", "audit-2024"]),
        ("v-none", &[]),
    ]);
    let mut facts = SecretFacts::default();
    facts.set_custom_label_versions(versions.iter().map(|(id, l)| (id.as_str(), l.as_slice())));
    assert_eq!(
        facts.custom_label_versions.keys().collect::<Vec<_>>(),
        ["v-green", "v-two"]
    );
    let note = facts.custom_label_note().unwrap();
    assert!(note.starts_with(CUSTOM_LABEL_VERSIONS), "{note}");
    assert!(note.contains("`v-two` (`keep`, `audit-2024`)"), "{note}");
}

#[test]
fn the_note_stays_short_whatever_the_labels() {
    let facts = SecretFacts {
        custom_label_versions: (0..50)
            .map(|i| (format!("v{i}"), vec!["x".repeat(10_000)]))
            .collect::<BTreeMap<_, _>>(),
        ..SecretFacts::default()
    };
    let note = facts.custom_label_note().unwrap();
    assert!(note.len() < 2_000, "{}", note.len());
    assert!(note.contains("45 more"), "{note}");
}

#[tokio::test]
async fn a_remediation_names_the_versions_it_leaves_on_the_old_key() {
    let scope = Scope::new(OWN_ACCOUNT, "us-east-1");
    let fake = FakeAws::new();
    let key = customer_key(&scope, "designated", KeyState::Enabled);
    fake.put_alias(&scope, KEY_ALIAS, &key.arn);
    fake.put_key(&scope, key);
    let arn = format!("arn:aws:secretsmanager:us-east-1:{OWN_ACCOUNT}:secret:app-AbCdEf");
    let mut facts = SecretFacts {
        arn: arn.clone(),
        name: "app".into(),
        ..SecretFacts::default()
    };
    let versions = labels(&[("v1", &["AWSCURRENT"]), ("v0", &["release-42"])]);
    facts.set_custom_label_versions(versions.iter().map(|(id, l)| (id.as_str(), l.as_slice())));
    fake.put_secret(&scope, facts);
    let config = Config::from_lookup(|name| match name {
        "CMKGUARD_ACTIONS" => Some("tag,remediate".into()),
        "CMKGUARD_REMEDIATE_ACCOUNTS" => Some("*".into()),
        _ => None,
    })
    .unwrap();
    let guard = Guard::new(config, fake);
    let event = json!({
        "detail-type": "AWS API Call via CloudTrail", "source": "aws.secretsmanager",
        "account": OWN_ACCOUNT, "region": "us-east-1",
        "detail": {"eventName": "UpdateSecret", "awsRegion": "us-east-1",
                   "requestParameters": {"secretId": arn}}
    });
    let records = guard.handle(&event, &ctx()).await.unwrap();
    let record = &records[0];
    assert_eq!(record.verdict, Verdict::NonCompliant);
    let detail = record.detail.as_deref().unwrap();
    assert!(detail.contains(CUSTOM_LABEL_VERSIONS), "{detail}");
    assert!(detail.contains("`v0` (`release-42`)"), "{detail}");
    let remediate = &record.actions[0];
    assert_eq!(remediate.outcome, Outcome::Done);
    assert!(remediate.detail.contains("`v0`"), "{}", remediate.detail);
    assert!(!remediate.detail.contains("`v1`"), "{}", remediate.detail);
}
