//! The scheduled sweep over the accounts of `CMKGUARD_SWEEP_ACCOUNTS`: the own account alone as
//! before (no cursor), a list or the organization in parallel, the cursor that makes the next
//! sweep start where a cut one stopped, and the failures of listing the organization.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use std::time::{Duration, Instant};

use cmkguard_core::fake::FakeAws;
use cmkguard_core::fake::cases::{OWN_ACCOUNT, ctx};
use cmkguard_core::{AwsError, Context, Guard, GuardError, Reason, Record, Scope, Verdict};

mod common;

use common::{REGION, sweep};

const MEMBERS: [&str; 3] = ["111111111111", "222222222222", "333333333333"];

/// A secret on the default key in the own account and in each member account.
fn world() -> FakeAws {
    let fake = FakeAws::new();
    for account in std::iter::once(OWN_ACCOUNT).chain(MEMBERS) {
        let scope = Scope::new(account, REGION);
        let mut secret = common::secret("app/db", None);
        secret.arn = format!("arn:aws:secretsmanager:{REGION}:{account}:secret:app/db-AbCdEf");
        fake.put_secret(&scope, secret);
    }
    fake
}

fn config(sweep_accounts: &str) -> cmkguard_core::Config {
    common::config(
        "tag",
        &[
            ("CMKGUARD_SWEEP_ACCOUNTS", sweep_accounts),
            ("CMKGUARD_ASSUME_ROLE_NAME", "cmkguard-member"),
        ],
    )
}

fn accounts(records: &[Record]) -> Vec<String> {
    let mut accounts: Vec<String> = records
        .iter()
        .map(|r| r.account.clone().unwrap_or_default())
        .collect();
    accounts.sort();
    accounts
}

fn own() -> Scope {
    Scope::new(OWN_ACCOUNT, REGION)
}

#[tokio::test]
async fn by_default_the_sweep_covers_the_own_account_and_keeps_no_cursor() {
    let guard = Guard::new(common::config("tag", &[]), world());
    let records = guard.handle(&sweep(), &ctx()).await.unwrap();
    assert_eq!(accounts(&records), [OWN_ACCOUNT]);
    assert_eq!(guard.ports().count("GetParameter"), 0);
    assert_eq!(guard.ports().count("ListAccounts"), 0);
}

#[tokio::test]
async fn a_list_of_accounts_is_swept_and_a_finished_sweep_writes_no_cursor() {
    let list = format!("{OWN_ACCOUNT},{},{}", MEMBERS[0], MEMBERS[2]);
    let guard = Guard::new(config(&list), world());
    let records = guard.handle(&sweep(), &ctx()).await.unwrap();
    assert_eq!(
        accounts(&records),
        [MEMBERS[0], OWN_ACCOUNT, MEMBERS[2]].map(str::to_owned)
    );
    assert!(records.iter().all(|r| r.verdict == Verdict::NonCompliant));
    assert_eq!(guard.ports().count("GetParameter"), 1);
    // Nothing to remember: the cursor was unset and the sweep finished.
    assert_eq!(guard.ports().count("PutParameter"), 0);
    assert_eq!(guard.ports().count("ListSecrets"), 3);
}

#[tokio::test]
async fn the_organization_is_every_account_listed() {
    let fake = world();
    let mut org = vec![OWN_ACCOUNT];
    org.extend(MEMBERS);
    fake.put_organization(&org);
    let guard = Guard::new(config("organization"), fake);
    let records = guard.handle(&sweep(), &ctx()).await.unwrap();
    assert_eq!(accounts(&records).len(), 4);
    assert_eq!(guard.ports().count("ListAccounts"), 1);
}

#[tokio::test]
async fn a_sweep_cut_by_the_deadline_is_continued_from_where_it_stopped() {
    let fake = world();
    fake.delay("ListSecrets", Duration::from_millis(400));
    let list = MEMBERS.join(",");
    let guard = Guard::new(config(&list), fake);
    // 3.2 s before the deadline: the sweep stops 3 s before it, with every listing in flight.
    let near = Context {
        deadline: Some(Instant::now() + Duration::from_millis(3200)),
        ..ctx()
    };
    let err = guard.handle(&sweep(), &near).await.unwrap_err();
    let GuardError::Stopped { progress, .. } = err else {
        panic!("{err}");
    };
    assert!(!progress.complete);
    let counted = progress.accounts.unwrap();
    assert_eq!((counted.total, counted.done), (3, 0));
    // The first account of this sweep's order is where the next one starts.
    assert_eq!(guard.ports().cursor(&own()).as_deref(), Some(MEMBERS[0]));

    // A later sweep with time finishes and forgets the cursor.
    guard.ports().delay("ListSecrets", Duration::ZERO);
    let records = guard.handle(&sweep(), &ctx()).await.unwrap();
    assert_eq!(accounts(&records), MEMBERS.map(str::to_owned));
    assert_eq!(guard.ports().cursor(&own()), None);
}

#[tokio::test]
async fn the_next_sweep_starts_at_the_cursor() {
    let fake = world();
    let list = MEMBERS.join(",");
    let guard = Guard::new(config(&list), fake);
    guard
        .ports()
        .delay("ListSecrets", Duration::from_millis(400));
    let near = Context {
        deadline: Some(Instant::now() + Duration::from_millis(3200)),
        ..ctx()
    };
    // Saved by hand as a cut sweep would: the second account comes first next time.
    {
        use cmkguard_core::ports::SweepCursor;
        guard
            .ports()
            .save_cursor(&own(), Some(MEMBERS[1]))
            .await
            .unwrap();
    }
    let _ = guard.handle(&sweep(), &near).await.unwrap_err();
    // Nothing got done, so the next sweep still starts with the second account, not the first.
    assert_eq!(guard.ports().cursor(&own()).as_deref(), Some(MEMBERS[1]));
    // A cursor past every account wraps around to the first.
    {
        use cmkguard_core::ports::SweepCursor;
        guard
            .ports()
            .save_cursor(&own(), Some("999999999999"))
            .await
            .unwrap();
    }
    let _ = guard.handle(&sweep(), &near).await.unwrap_err();
    assert_eq!(guard.ports().cursor(&own()).as_deref(), Some(MEMBERS[0]));
}

#[tokio::test]
async fn an_organization_that_cannot_be_listed_is_an_error_record_or_a_retry() {
    let fake = world();
    fake.fail(
        "ListAccounts",
        AwsError::AccessDenied("not the management account".into()),
    );
    let guard = Guard::new(config("organization"), fake);
    let records = guard.handle(&sweep(), &ctx()).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].verdict, Verdict::Error);
    assert_eq!(records[0].reason, Reason::AccessDenied);
    assert!(
        records[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("organizations:ListAccounts")
    );

    guard.ports().fail(
        "ListAccounts",
        AwsError::Transient("ThrottlingException".into()),
    );
    let err = guard.handle(&sweep(), &ctx()).await.unwrap_err();
    assert!(matches!(err, GuardError::Transient { .. }), "{err}");
}

#[tokio::test]
async fn a_transient_failure_in_one_account_is_retried_from_that_account() {
    let fake = world();
    fake.fail_after(
        "ListSecrets",
        2,
        AwsError::Transient("ServiceUnavailable".into()),
    );
    let list = MEMBERS.join(",");
    let guard = Guard::new(config(&list), fake);
    let err = guard.handle(&sweep(), &ctx()).await.unwrap_err();
    let GuardError::Transient { records, .. } = &err else {
        panic!("{err}");
    };
    // The two accounts that were listed were decided and reported.
    assert_eq!(records.len(), 2);
    assert_eq!(guard.ports().cursor(&own()).as_deref(), Some(MEMBERS[2]));
}

#[tokio::test]
async fn without_the_role_another_account_is_a_foreign_account_record() {
    let config = common::config(
        "tag",
        &[(
            "CMKGUARD_SWEEP_ACCOUNTS",
            MEMBERS[0], // one account needs no role only when it is the own one
        )],
    );
    let guard = Guard::new(config, world());
    let records = guard.handle(&sweep(), &ctx()).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].reason, Reason::ForeignAccount);
    assert!(
        records[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("CMKGUARD_ASSUME_ROLE_NAME")
    );
}
