//! The AWS stand-in, called through the SDK clients cmkguard uses: each answer parses, errors come
//! back typed, and the requests are counted.

// Tests: a step that fails should panic right there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant, SystemTime};

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_sdk_account::types::RegionOptStatus;
use aws_sdk_kms::types::{KeyManagerType, KeyState};
use aws_sdk_organizations::types::{AccountState, AccountStatus};
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_sdk_secretsmanager::types::Tag;
use aws_sdk_sts::config::Credentials;
use cmkguard_testkit::Standin;
use cmkguard_testkit::standin::{MANAGEMENT_ACCOUNT, REGIONS};

/// Configuration acting in `account` through STS `AssumeRole`, as the guard gets it.
async fn assumed(standin: &Standin, account: &str, region: &str) -> SdkConfig {
    let base = standin.sdk_config("us-east-1").await;
    let out = aws_sdk_sts::Client::new(&base)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/cmkguard-member"))
        .role_session_name("cmkguard")
        .send()
        .await
        .unwrap();
    let c = out.credentials().unwrap();
    let credentials = Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        None,
        "assumed",
    );
    standin.sdk_config_with(credentials, region).await
}

#[tokio::test]
async fn sts_assumes_roles_into_the_organizations_accounts() {
    let standin = Standin::builder().members(3).start();
    let base = standin.sdk_config("us-east-1").await;
    let sts = aws_sdk_sts::Client::new(&base);
    let me = sts.get_caller_identity().send().await.unwrap();
    assert_eq!(me.account(), Some(MANAGEMENT_ACCOUNT));

    let member = standin.member_accounts().nth(2).unwrap();
    let out = sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::{member}:role/cmkguard-member"))
        .role_session_name("cmkguard")
        .send()
        .await
        .unwrap();
    let c = out.credentials().unwrap();
    assert_eq!(c.access_key_id().len(), 20);
    assert!(c.access_key_id().contains(&member), "{c:?}");
    assert!(!c.session_token().is_empty());
    let expires = SystemTime::try_from(*c.expiration()).unwrap();
    let left = expires.duration_since(SystemTime::now()).unwrap();
    assert!(
        left > Duration::from_secs(3500) && left <= Duration::from_secs(3600),
        "{left:?}"
    );
    assert_eq!(
        out.assumed_role_user().unwrap().arn(),
        format!("arn:aws:sts::{member}:assumed-role/cmkguard-member/cmkguard")
    );

    let config = assumed(&standin, &member, "eu-west-1").await;
    let them = aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(them.account(), Some(member.as_str()));

    let err = sts
        .assume_role()
        .role_arn("arn:aws:iam::999999999999:role/cmkguard-member")
        .role_session_name("cmkguard")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("AccessDenied"), "{err:?}");
}

#[tokio::test]
async fn organizations_lists_every_account_20_per_page() {
    let standin = Standin::builder().members(45).start();
    let base = standin.sdk_config("us-east-1").await;
    let client = aws_sdk_organizations::Client::new(&base);
    let mut pages = client.list_accounts().into_paginator().send();
    let mut ids = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.unwrap();
        assert!(page.accounts().len() <= 20);
        for account in page.accounts() {
            assert_eq!(account.state(), Some(&AccountState::Active));
            assert_eq!(account.status(), Some(&AccountStatus::Active));
            let id = account.id().unwrap();
            assert!(account.arn().unwrap().ends_with(id));
            assert!(account.name().is_some());
            ids.push(id.to_owned());
        }
    }
    assert_eq!(ids.len(), 46);
    assert_eq!(ids[0], MANAGEMENT_ACCOUNT);
    assert_eq!(ids[1..], standin.member_accounts().collect::<Vec<_>>());
    assert_eq!(standin.count("organizations:ListAccounts"), 3);

    let member = standin.member_accounts().next().unwrap();
    let config = assumed(&standin, &member, "us-east-1").await;
    let err = aws_sdk_organizations::Client::new(&config)
        .list_accounts()
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"), "{err:?}");
}

#[tokio::test]
async fn account_lists_the_17_default_regions() {
    let standin = Standin::builder().start();
    let member = standin.member_accounts().next().unwrap();
    let config = assumed(&standin, &member, "us-east-1").await;
    let client = aws_sdk_account::Client::new(&config);
    let mut pages = client
        .list_regions()
        .region_opt_status_contains(RegionOptStatus::Enabled)
        .region_opt_status_contains(RegionOptStatus::EnabledByDefault)
        .into_paginator()
        .send();
    let mut regions = Vec::new();
    while let Some(page) = pages.next().await {
        for region in page.unwrap().regions() {
            assert_eq!(
                region.region_opt_status(),
                Some(&RegionOptStatus::EnabledByDefault)
            );
            regions.push(region.region_name().unwrap().to_owned());
        }
    }
    assert_eq!(regions, REGIONS);
    let disabled = client
        .list_regions()
        .region_opt_status_contains(RegionOptStatus::Disabled)
        .send()
        .await
        .unwrap();
    assert!(disabled.regions().is_empty());
    assert_eq!(standin.count("account:ListRegions"), 2);
}

#[tokio::test]
async fn secrets_manager_lists_describes_and_writes_a_generated_world() {
    let standin = Standin::builder()
        .members(2)
        .secrets_per_region(150)
        .start();
    let member = standin.member_accounts().nth(1).unwrap();
    let region = "ap-south-1";
    let config = assumed(&standin, &member, region).await;
    let sm = aws_sdk_secretsmanager::Client::new(&config);

    let mut pages = sm.list_secrets().max_results(100).into_paginator().send();
    let mut secrets = Vec::new();
    while let Some(page) = pages.next().await {
        secrets.extend(page.unwrap().secret_list().to_vec());
    }
    assert_eq!(secrets.len(), 150);
    assert_eq!(standin.count("secretsmanager:ListSecrets"), 2);
    let key = standin.key_arn(&member, region);
    for (i, secret) in secrets.iter().enumerate() {
        assert_eq!(
            secret.arn(),
            Some(standin.secret_arn(&member, region, i).as_str())
        );
        let expected = (i > 0).then_some(key.as_str());
        assert_eq!(secret.kms_key_id(), expected, "secret {i}");
        assert!(secret.created_date().is_some());
    }

    let arn = standin.secret_arn(&member, region, 0);
    let described = sm.describe_secret().secret_id(&arn).send().await.unwrap();
    assert_eq!(described.arn(), Some(arn.as_str()));
    assert_eq!(described.kms_key_id(), None);
    assert_eq!(described.version_ids_to_stages().unwrap().len(), 1);
    let by_name = sm
        .describe_secret()
        .secret_id("standin/secret-0001")
        .send()
        .await
        .unwrap();
    assert_eq!(by_name.kms_key_id(), Some(key.as_str()));

    sm.tag_resource()
        .secret_id(&arn)
        .tags(
            Tag::builder()
                .key("cmkguard:status")
                .value("non-compliant")
                .build(),
        )
        .send()
        .await
        .unwrap();
    sm.update_secret()
        .secret_id(&arn)
        .kms_key_id(&key)
        .send()
        .await
        .unwrap();
    let after = sm.describe_secret().secret_id(&arn).send().await.unwrap();
    assert_eq!(after.kms_key_id(), Some(key.as_str()));
    assert_eq!(after.tags().len(), 1);
    sm.untag_resource()
        .secret_id(&arn)
        .tag_keys("cmkguard:status")
        .send()
        .await
        .unwrap();
    let after = sm.describe_secret().secret_id(&arn).send().await.unwrap();
    assert!(after.tags().is_empty());

    // Another account's or region's secret is not found from here.
    let management = standin.sdk_config(region).await;
    let err = aws_sdk_secretsmanager::Client::new(&management)
        .describe_secret()
        .secret_id(&arn)
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_resource_not_found_exception(),
        "{err:?}"
    );
    let err = sm
        .describe_secret()
        .secret_id("standin/secret-0150")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_resource_not_found_exception(),
        "{err:?}"
    );
}

#[tokio::test]
async fn kms_describes_customer_keys_the_default_key_and_no_unknown_alias() {
    let standin = Standin::builder().start();
    let region = "eu-north-1";
    let kms = aws_sdk_kms::Client::new(&standin.sdk_config(region).await);
    let key = standin.key_arn(MANAGEMENT_ACCOUNT, region);

    let meta = kms.describe_key().key_id(&key).send().await.unwrap();
    let meta = meta.key_metadata().unwrap();
    assert_eq!(meta.arn(), Some(key.as_str()));
    assert_eq!(meta.key_manager(), Some(&KeyManagerType::Customer));
    assert_eq!(meta.key_state(), Some(&KeyState::Enabled));
    assert_eq!(meta.aws_account_id(), Some(MANAGEMENT_ACCOUNT));

    let by_id = key.rsplit('/').next().unwrap();
    let meta = kms.describe_key().key_id(by_id).send().await.unwrap();
    assert_eq!(meta.key_metadata().unwrap().arn(), Some(key.as_str()));

    let default = kms
        .describe_key()
        .key_id("alias/aws/secretsmanager")
        .send()
        .await
        .unwrap();
    let default = default.key_metadata().unwrap();
    assert_eq!(default.key_manager(), Some(&KeyManagerType::Aws));
    assert_ne!(default.arn(), Some(key.as_str()));

    let err = kms
        .describe_key()
        .key_id("alias/cmkguard/secrets")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error().unwrap().is_not_found_exception(),
        "{err:?}"
    );

    let foreign = standin.key_arn(&standin.member_accounts().next().unwrap(), region);
    let err = kms
        .describe_key()
        .key_id(&foreign)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"), "{err:?}");

    let designated = Standin::builder()
        .designated_alias("alias/cmkguard/secrets")
        .start();
    let kms = aws_sdk_kms::Client::new(&designated.sdk_config(region).await);
    let alias_arn = format!("arn:aws:kms:{region}:{MANAGEMENT_ACCOUNT}:alias/cmkguard/secrets");
    for alias in ["alias/cmkguard/secrets", alias_arn.as_str()] {
        let meta = kms.describe_key().key_id(alias).send().await.unwrap();
        assert_eq!(meta.key_metadata().unwrap().arn(), Some(key.as_str()));
    }
}

#[tokio::test]
async fn unknown_operations_are_refused_by_name_and_counted() {
    let standin = Standin::builder().start();
    let sm = aws_sdk_secretsmanager::Client::new(&standin.sdk_config("us-east-1").await);
    let err = sm
        .get_secret_value()
        .secret_id("standin/secret-0000")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("UnknownOperationException"), "{err:?}");
    assert!(
        err.message()
            .unwrap()
            .contains("secretsmanager:GetSecretValue"),
        "{err:?}"
    );
    assert_eq!(standin.count("secretsmanager:GetSecretValue"), 1);
}

#[tokio::test]
async fn assume_role_over_the_rate_is_throttling_which_the_sdk_retries() {
    let standin = Standin::builder()
        .members(3)
        .sts_rate_limit(5.0, 1.0)
        .start();
    let once = standin
        .sdk_config("us-east-1")
        .await
        .into_builder()
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .build();
    let sts = aws_sdk_sts::Client::new(&once);
    let member = standin.member_accounts().next().unwrap();
    let role = format!("arn:aws:iam::{member}:role/cmkguard-member");
    let assume = |sts: &aws_sdk_sts::Client| {
        sts.assume_role()
            .role_arn(&role)
            .role_session_name("cmkguard")
            .send()
    };
    assume(&sts).await.unwrap();
    let err = assume(&sts).await.unwrap_err();
    assert_eq!(err.code(), Some("Throttling"), "{err:?}");

    let retrying = standin
        .sdk_config("us-east-1")
        .await
        .into_builder()
        .retry_config(RetryConfig::standard().with_max_attempts(5))
        .build();
    let sts = aws_sdk_sts::Client::new(&retrying);
    for _ in 0..3 {
        assume(&sts).await.unwrap();
    }
    assert!(standin.throttled() >= 2, "{}", standin.throttled());
    assert_eq!(
        standin.count("sts:AssumeRole"),
        5 + standin.throttled() - 1,
        "every attempt is counted"
    );
}

#[tokio::test]
async fn answers_wait_for_the_delay_and_the_peak_in_flight_is_kept() {
    let standin = Standin::builder().delay(Duration::from_millis(200)).start();
    let sts = aws_sdk_sts::Client::new(&standin.sdk_config("us-east-1").await);
    sts.get_caller_identity().send().await.unwrap();
    standin.reset_counts();
    assert!(standin.counts().is_empty());
    assert_eq!(standin.peak_in_flight(), 0);

    let started = Instant::now();
    let calls = (0..5).map(|_| {
        let sts = sts.clone();
        tokio::spawn(async move { sts.get_caller_identity().send().await })
    });
    for call in calls.collect::<Vec<_>>() {
        call.await.unwrap().unwrap();
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(
        took < Duration::from_millis(900),
        "{took:?}: not answered side by side"
    );
    assert_eq!(standin.peak_in_flight(), 5);
    assert_eq!(standin.total(), 5);
    assert_eq!(standin.counts()["sts:GetCallerIdentity"], 5);
}

/// `ListSecretVersionIds` gives what moto cannot: each version's `KmsKeyIds`, with one secret in
/// ten moved off the AWS managed key by someone else (both keys on its current version).
#[tokio::test]
async fn secrets_manager_lists_versions_with_their_keys() {
    use cmkguard_testkit::standin::MOVED_BY_OTHERS;
    let standin = Standin::builder().members(1).secrets_per_region(12).start();
    let member = standin.member_accounts().next().unwrap();
    let region = "eu-west-1";
    let sm = aws_sdk_secretsmanager::Client::new(&assumed(&standin, &member, region).await);
    let key = standin.key_arn(&member, region);
    let keys = |i: usize| {
        let arn = standin.secret_arn(&member, region, i);
        let sm = sm.clone();
        async move {
            let out = sm
                .list_secret_version_ids()
                .secret_id(arn)
                .send()
                .await
                .unwrap();
            let version = &out.versions()[0];
            assert_eq!(version.version_stages(), ["AWSCURRENT"]);
            version.kms_key_ids().to_vec()
        }
    };
    assert_eq!(keys(0).await, ["DefaultEncryptionKey"]);
    assert_eq!(
        keys(1).await,
        ["DefaultEncryptionKey".to_owned(), key.clone()]
    );
    assert_eq!(keys(2).await, std::slice::from_ref(&key));
    assert_eq!(keys(MOVED_BY_OTHERS + 1).await.len(), 2);
    assert_eq!(standin.count("secretsmanager:ListSecretVersionIds"), 4);
}
