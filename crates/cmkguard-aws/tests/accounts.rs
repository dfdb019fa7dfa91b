//! Other accounts against moto, behind the testkit's proxy that counts (and throttles) STS: one
//! `AssumeRole` per account however many calls and clients need it, a warm process that sees
//! more accounts than it keeps still answering (it assumes the role again in an account it let
//! go), and a throttled `AssumeRole` retried instead of dropping the account.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use cmkguard_aws::AwsPorts;
use cmkguard_core::Scope;
use cmkguard_core::ports::{DescribeSecret, ListSecrets};
use cmkguard_testkit::world::SecretSpec;
use cmkguard_testkit::{DEFAULT_ACCOUNT, Fault, FaultProxy, Moto, Rule, When};

const REGION: &str = "us-east-1";
const MEMBERS: [&str; 4] = [
    "111111111111",
    "222222222222",
    "333333333333",
    "444444444444",
];

/// A secret in each member account; their ARNs.
async fn world(moto: &Moto) -> Vec<String> {
    let mut arns = Vec::new();
    for account in MEMBERS {
        let keys = moto.make_keys(account, REGION, false).await;
        let spec = SecretSpec {
            name: format!("app/{account}"),
            account: account.into(),
            region: REGION.into(),
            key: "default".into(),
            ..SecretSpec::default()
        };
        arns.push(moto.make_secret(&spec, &keys).await.arn);
    }
    arns
}

async fn ports(moto: &Moto, proxy: &FaultProxy, accounts: usize, scopes: usize) -> AwsPorts {
    let base = moto
        .sdk_config(REGION)
        .await
        .into_builder()
        .endpoint_url(proxy.endpoint())
        .build();
    AwsPorts::new(base, DEFAULT_ACCOUNT, Some("cmkguard-member".into()))
        .with_capacity(accounts, scopes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_assume_role_per_account_and_a_bounded_warm_process_still_answers() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.endpoint());
    let arns = world(&moto).await;

    // Room for every account: two rounds over four accounts, two calls each, one AssumeRole each.
    let roomy = ports(&moto, &proxy, 8, 8).await;
    proxy.reset_counts();
    for _ in 0..2 {
        for (account, arn) in MEMBERS.iter().zip(&arns) {
            let scope = Scope::new(*account, REGION);
            assert_eq!(roomy.describe_secret(&scope, arn).await.unwrap().arn, *arn);
            let page = roomy.list_secrets(&scope, None).await.unwrap();
            assert_eq!(page.secrets.len(), 1, "{account}");
        }
    }
    assert_eq!(proxy.count("AssumeRole"), MEMBERS.len());

    // Many callers at once in a new account: still one AssumeRole.
    let fresh = ports(&moto, &proxy, 8, 8).await;
    proxy.reset_counts();
    let scope = Scope::new(MEMBERS[0], REGION);
    let calls = (0..10).map(|_| fresh.describe_secret(&scope, &arns[0]));
    for result in futures_util::future::join_all(calls).await {
        assert_eq!(result.unwrap().arn, arns[0]);
    }
    assert_eq!(proxy.count("AssumeRole"), 1);

    // Room for two accounts only: every answer is still right, what is kept stays within its
    // bounds, and an account let go is assumed again when it comes back.
    let tight = ports(&moto, &proxy, 2, 2).await;
    proxy.reset_counts();
    for _ in 0..2 {
        for (account, arn) in MEMBERS.iter().zip(&arns) {
            let facts = tight
                .describe_secret(&Scope::new(*account, REGION), arn)
                .await
                .unwrap();
            assert_eq!(facts.arn, *arn);
            let (accounts, scopes) = tight.kept();
            assert!(accounts <= 2 && scopes <= 2, "{accounts} {scopes}");
        }
    }
    assert_eq!(proxy.count("AssumeRole"), 2 * MEMBERS.len());

    // An audit releases an account it is done with.
    tight.release(MEMBERS[3]);
    assert_eq!(tight.kept(), (1, 1));

    // The own account needs no role.
    proxy.reset_counts();
    tight
        .list_secrets(&Scope::new(DEFAULT_ACCOUNT, REGION), None)
        .await
        .unwrap();
    assert_eq!(proxy.count("AssumeRole"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_assume_role_is_retried_and_the_account_is_not_dropped() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.endpoint());
    let arns = world(&moto).await;
    let ports = ports(&moto, &proxy, 8, 8).await;
    proxy.reset_counts();
    // More throttles in a row than the SDK's own three attempts.
    proxy.inject(Rule::new("AssumeRole", Fault::Throttle, When::First(5)));
    let facts = ports
        .describe_secret(&Scope::new(MEMBERS[1], REGION), &arns[1])
        .await
        .unwrap();
    assert_eq!(facts.arn, arns[1]);
    assert_eq!(proxy.count("AssumeRole"), 6);
}
