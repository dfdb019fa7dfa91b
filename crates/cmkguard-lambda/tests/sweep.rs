//! The scheduled sweep near the invocation deadline: it stops cleanly, says how far it got, and
//! the next sweep covers the rest.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use std::time::{Duration, SystemTime};

use cmkguard_core::facts::SecretFacts;
use cmkguard_core::fake::FakeAws;
use cmkguard_core::fake::cases::{KEY_ALIAS, OWN_ACCOUNT};
use cmkguard_core::{Config, Guard, KeyState, Outcome, Record, Scope};
use cmkguard_lambda::{Invocation, handle};
use serde_json::json;

const REGION: &str = "us-east-1";
const PAGE_DELAY: Duration = Duration::from_millis(1500);

fn invocation(deadline: Duration) -> Invocation {
    Invocation {
        request_id: "req-1".into(),
        own_account: OWN_ACCOUNT.into(),
        deadline: SystemTime::now() + deadline,
        region: REGION.into(),
    }
}

#[tokio::test]
async fn a_sweep_near_the_deadline_stops_cleanly_and_the_next_covers_the_rest() {
    let scope = Scope::new(OWN_ACCOUNT, REGION);
    let fake = FakeAws::new();
    let key = cmkguard_core::fake::customer_key(&scope, "designated", KeyState::Enabled);
    fake.put_alias(&scope, KEY_ALIAS, &key.arn);
    fake.put_key(&scope, key);
    for i in 0..250 {
        fake.put_secret(
            &scope,
            SecretFacts {
                arn: format!("arn:aws:secretsmanager:{REGION}:{OWN_ACCOUNT}:secret:s{i:03}-AbCdEf"),
                name: format!("s{i:03}"),
                ..SecretFacts::default()
            },
        );
    }
    // Every `ListSecrets` page takes [`PAGE_DELAY`].
    fake.delay("ListSecrets", PAGE_DELAY);
    let guard = Guard::new(Config::default(), fake);
    let sweep = json!({"id": "sched-1", "detail-type": "Scheduled Event", "source": "aws.events",
                       "account": OWN_ACCOUNT, "region": REGION, "detail": {}});

    // Page 1 is read and decided in time; when page 2 arrives less than the sweep's margin is left.
    let mut first: Vec<Record> = Vec::new();
    let response = handle(
        &guard,
        &sweep,
        &invocation(Duration::from_millis(5500)),
        &mut |r| first.push(r.clone()),
    )
    .await
    .expect("a sweep that runs out of time is not an invocation error");
    assert_eq!(first.len(), 100);
    assert_eq!(
        response["sweep"],
        json!({"pages": 1, "secrets": 100, "complete": false})
    );
    assert_eq!(response["records"], 100);
    assert_eq!(guard.ports().count("TagResource"), 100);

    // The next sweep lists again, skips what is already tagged, and tags the rest.
    let mut second: Vec<Record> = Vec::new();
    let response = handle(
        &guard,
        &sweep,
        &invocation(Duration::from_secs(60)),
        &mut |r| second.push(r.clone()),
    )
    .await
    .unwrap();
    assert_eq!(second.len(), 250);
    assert!(response.get("sweep").is_none(), "{response}");
    let skipped = second
        .iter()
        .filter(|r| r.actions.iter().any(|a| a.outcome == Outcome::Skipped))
        .count();
    assert_eq!(skipped, 100);
    assert_eq!(guard.ports().count("TagResource"), 250);
}
