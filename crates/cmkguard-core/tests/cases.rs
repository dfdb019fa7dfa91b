//! The shared case table through the engine, with the in-memory fake.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use std::collections::BTreeMap;

use cmkguard_core::fake::cases::{self, Case, KEY_ALIAS, OWN_ACCOUNT};
use cmkguard_core::fake::{FakeAws, customer_key};
use cmkguard_core::{Config, Context, Guard, KeyState, Replica, Scope, SecretFacts};

fn key_arn(scope: &Scope, id: &str) -> String {
    format!("arn:aws:kms:{}:{}:key/{id}", scope.region, scope.account)
}

/// The KmsKeyId a key kind of the table stands for.
fn key_id(scope: &Scope, kind: &str) -> Option<String> {
    match kind {
        "default" => None,
        "aws-alias" => Some("alias/aws/secretsmanager".into()),
        "cmk" => Some(key_arn(scope, "designated")),
        "cmk-alias" => Some(KEY_ALIAS.into()),
        "cmk-disabled" => Some(key_arn(scope, "disabled")),
        "cmk-pending-deletion" => Some(key_arn(scope, "pending-deletion")),
        "other-cmk" => Some(key_arn(scope, "other")),
        other => panic!("unknown key kind `{other}`"),
    }
}

/// Builds the case's world; returns the secret's scope and ARN.
fn world(case: &Case, fake: &FakeAws) -> Option<(Scope, String)> {
    let event = cases::event(&case.event);
    let secret = case.secret.as_ref()?;
    let scope = Scope::new(&secret.account, &secret.region);
    for region in ["us-east-1", "us-west-2"] {
        let s = Scope::new(&secret.account, region);
        fake.put_key(&s, customer_key(&s, "designated", KeyState::Enabled));
        fake.put_key(&s, customer_key(&s, "other", KeyState::Enabled));
        fake.put_key(&s, customer_key(&s, "disabled", KeyState::Disabled));
        fake.put_key(
            &s,
            customer_key(&s, "pending-deletion", KeyState::PendingDeletion),
        );
        if !(secret.no_alias && region == secret.region) {
            fake.put_alias(&s, KEY_ALIAS, &key_arn(&s, "designated"));
        }
    }
    let arn = cases::fixture_arn(&event).unwrap_or_else(|| {
        format!(
            "arn:aws:secretsmanager:{}:{}:secret:{}-AbCdEf",
            secret.region, secret.account, secret.name
        )
    });
    if secret.exists {
        fake.put_secret(
            &scope,
            SecretFacts {
                arn: arn.clone(),
                name: secret.name.clone(),
                kms_key_id: key_id(&scope, secret.key.as_deref().unwrap_or("default")),
                tags: secret.tags.clone(),
                owning_service: secret.owning_service.clone(),
                replicas: secret
                    .replica_regions
                    .iter()
                    .map(|r| Replica {
                        region: r.clone(),
                        kms_key_id: None,
                    })
                    .collect(),
            },
        );
    }
    Some((scope, arn))
}

fn config(case: &Case) -> Config {
    let cmk = key_arn(&Scope::new(OWN_ACCOUNT, "us-east-1"), "designated");
    let env: BTreeMap<String, String> = case
        .env
        .iter()
        .map(|(k, v)| (k.clone(), cases::expand(v, &cmk)))
        .collect();
    Config::from_lookup(|name| env.get(name).cloned())
        .unwrap_or_else(|e| panic!("{}: {e}", case.label()))
}

fn ctx() -> Context {
    Context {
        own_account: OWN_ACCOUNT.into(),
        region: "us-east-1".into(),
        deadline: None,
    }
}

#[tokio::test]
async fn every_case_through_the_engine() {
    let all = cases::load();
    assert!(all.len() >= 20, "the table shrank to {} cases", all.len());
    for case in all {
        let fake = FakeAws::new();
        let target = world(&case, &fake);
        let guard = Guard::new(config(&case), fake);
        let event = cases::event(&case.event);

        let records = guard
            .handle(&event, &ctx())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", case.label()));
        assert_eq!(records.len(), 1, "{}", case.label());
        let record = serde_json::to_value(&records[0]).unwrap();
        let problems = cases::check_record(&case, &record);
        assert!(problems.is_empty(), "{}: {problems:?}", case.label());

        if let (Some((scope, arn)), Some(secret)) = (&target, &case.secret)
            && secret.exists
        {
            let after = guard.ports().secret(scope, arn).unwrap();
            if let Some(tags) = &case.expect.tags {
                assert_eq!(
                    &cases::guard_tags(&after.tags),
                    tags,
                    "{}: tags after",
                    case.label()
                );
            }
            if let Some(kind) = &case.expect.key_after {
                assert_eq!(
                    after.kms_key_id,
                    key_id(scope, kind),
                    "{}: key after",
                    case.label()
                );
            }
        }
        if let Some(notified) = case.expect.notified {
            assert_eq!(
                !guard.ports().published().is_empty(),
                notified,
                "{}: notified",
                case.label()
            );
        }

        // At-least-once delivery: the same event again changes nothing.
        let writes = guard.ports().writes();
        let again = guard.handle(&event, &ctx()).await.unwrap();
        assert_eq!(
            guard.ports().writes(),
            writes,
            "{}: a redelivery wrote",
            case.label()
        );
        assert_eq!(again.len(), 1, "{}", case.label());
    }
}
