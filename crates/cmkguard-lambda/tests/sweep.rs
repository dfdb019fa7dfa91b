//! The scheduled sweep near the invocation deadline: it stops cleanly, says how far it got, and
//! the next sweep covers the rest.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use std::time::{Duration, SystemTime};

use cmkguard_core::facts::{KeyFacts, SecretFacts};
use cmkguard_core::fake::FakeAws;
use cmkguard_core::fake::cases::{KEY_ALIAS, OWN_ACCOUNT};
use cmkguard_core::finding::{Finding, RefusedFinding};
use cmkguard_core::ports::{
    AwsResult, DescribeKey, DescribeSecret, ImportFindings, ListSecrets, Publish, ReencryptSecret,
    ResolveAlias, SecretPage, TagSecret,
};
use cmkguard_core::{AuditRecord, Config, Guard, KeyState, Notification, Outcome, Scope};
use cmkguard_lambda::{Invocation, handle};
use serde_json::json;

const REGION: &str = "us-east-1";
const PAGE_DELAY: Duration = Duration::from_millis(1500);

/// The fake, with every `ListSecrets` page taking [`PAGE_DELAY`].
struct SlowList(FakeAws);

impl DescribeSecret for SlowList {
    async fn describe_secret(&self, scope: &Scope, id: &str) -> AwsResult<SecretFacts> {
        self.0.describe_secret(scope, id).await
    }
}

impl ListSecrets for SlowList {
    async fn list_secrets(&self, scope: &Scope, token: Option<String>) -> AwsResult<SecretPage> {
        tokio::time::sleep(PAGE_DELAY).await;
        self.0.list_secrets(scope, token).await
    }
}

impl TagSecret for SlowList {
    async fn tag_secret(
        &self,
        scope: &Scope,
        arn: &str,
        tags: &[(String, String)],
    ) -> AwsResult<()> {
        self.0.tag_secret(scope, arn, tags).await
    }
    async fn untag_secret(&self, scope: &Scope, arn: &str, keys: &[String]) -> AwsResult<()> {
        self.0.untag_secret(scope, arn, keys).await
    }
}

impl ReencryptSecret for SlowList {
    async fn set_secret_key(&self, scope: &Scope, arn: &str, key: &str) -> AwsResult<()> {
        self.0.set_secret_key(scope, arn, key).await
    }
}

impl DescribeKey for SlowList {
    async fn describe_key(&self, scope: &Scope, key_id: &str) -> AwsResult<KeyFacts> {
        self.0.describe_key(scope, key_id).await
    }
}

impl ResolveAlias for SlowList {
    async fn resolve_alias(&self, scope: &Scope, alias: &str) -> AwsResult<Option<KeyFacts>> {
        self.0.resolve_alias(scope, alias).await
    }
}

impl Publish for SlowList {
    async fn publish(&self, notification: &Notification) -> AwsResult<()> {
        self.0.publish(notification).await
    }
}

impl ImportFindings for SlowList {
    async fn import_findings(
        &self,
        scope: &Scope,
        findings: &[Finding],
    ) -> AwsResult<Vec<RefusedFinding>> {
        self.0.import_findings(scope, findings).await
    }
}

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
    let guard = Guard::new(Config::default(), SlowList(fake));
    let sweep = json!({"id": "sched-1", "detail-type": "Scheduled Event", "source": "aws.events",
                       "account": OWN_ACCOUNT, "region": REGION, "detail": {}});

    // Page 1 is read and decided in time; when page 2 arrives less than the sweep's margin is left.
    let mut first: Vec<AuditRecord> = Vec::new();
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
    assert_eq!(guard.ports().0.count("TagResource"), 100);

    // The next sweep lists again, skips what is already tagged, and tags the rest.
    let mut second: Vec<AuditRecord> = Vec::new();
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
    assert_eq!(guard.ports().0.count("TagResource"), 250);
}
