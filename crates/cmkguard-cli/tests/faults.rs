//! Faults on every AWS call of the handler's path, injected by the proxy between the `cmkguard`
//! binary and moto: throttling, 500, 503, a delay beyond the attempt timeout, a reset connection.
//!
//! For each call: one fault is absorbed by the SDK's retries and the event completes as the case
//! table says; a fault that outlasts the retries stops the run with exit 1, the failure in the
//! record, the secret no worse than before, and a redelivery converges (then a third delivery
//! writes nothing).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

mod support;

use std::time::Duration;

use cmkguard_core::fake::cases::{self, Case, actions};
use cmkguard_testkit::{Fault, FaultProxy, Moto, Rule, When};
use support::{Setup, assert_no_canary, case, cmkguard, setup};

const FAULTS: [Fault; 5] = [
    Fault::Throttle,
    Fault::Status(500),
    Fault::Status(503),
    Fault::Delay(support::SLOW),
    Fault::Reset,
];

/// One AWS call on the handler's path, and a case of the table that makes it.
struct Call {
    operation: &'static str,
    /// Only requests whose body holds this (tells `DescribeKey` on a key from one on an alias).
    body: Option<&'static str>,
    case: &'static str,
    /// The action whose failure the record shows; `None` for reads (an `error` record).
    action: Option<&'static str>,
}

const REMEDIATED: &str = "cloudformation-secret-is-remediated";

fn rule(call: &Call, fault: &Fault, when: When) -> Rule {
    let rule = Rule::new(call.operation, fault.clone(), when);
    match call.body {
        Some(body) => rule.with_body(body),
        None => rule,
    }
}

fn label(call: &Call, fault: &Fault) -> String {
    format!(
        "{}{} ({fault:?}, case `{}`)",
        call.operation,
        call.body.map(|b| format!("[{b}]")).unwrap_or_default(),
        call.case
    )
}

/// The secret after a run: key, `cmkguard:*` tags, and every version's value intact.
async fn state_of(
    moto: &Moto,
    case: &Case,
    setup: &Setup,
    what: &str,
) -> (Option<String>, std::collections::BTreeMap<String, String>) {
    let (Some(made), Some(secret)) = (&setup.made, &case.secret) else {
        return (None, Default::default());
    };
    let state = moto
        .secret_state(&secret.account, &secret.region, &made.arn)
        .await;
    assert_eq!(
        state.current_value, made.current_value,
        "{what}: AWSCURRENT"
    );
    assert_eq!(
        state.previous_value.as_deref(),
        Some(made.previous_value.as_str()),
        "{what}: AWSPREVIOUS"
    );
    let key = state
        .kms_key_id
        .filter(|id| id != "alias/aws/secretsmanager");
    (key, cases::guard_tags(&state.tags))
}

fn key_of(setup: &Setup, case: &Case, kind: &str) -> Option<String> {
    let secret = case.secret.as_ref().unwrap();
    let keys = &setup.keys[&(secret.account.clone(), secret.region.clone())];
    Moto::key_id_for(keys, kind).filter(|id| id != "alias/aws/secretsmanager")
}

async fn one_fault_is_absorbed(moto: &Moto, proxy: &FaultProxy, call: &Call, fault: &Fault) {
    let what = label(call, fault);
    let case = case(call.case);
    let setup = setup(moto, &case).await;
    proxy.heal();
    proxy.reset_counts();
    proxy.inject(rule(call, fault, When::Nth(1)));

    let run = cmkguard(
        moto,
        Some(proxy),
        &["handle-event", "-"],
        &setup.env,
        &setup.event,
    );
    assert!(
        proxy.seen().iter().any(|s| s.fault.is_some()),
        "{what}: the fault never fired: {:?}",
        proxy.counts()
    );
    assert_eq!(
        run.records.len(),
        1,
        "{what}: {}\n{}",
        run.stdout,
        run.stderr
    );
    let problems = cases::check_record(&case, &run.records[0]);
    assert!(problems.is_empty(), "{what}: {problems:?}\n{}", run.stderr);
    assert_eq!(run.code, Some(0), "{what}: {}", run.stderr);
    proxy.wait_idle(Duration::from_secs(10));

    let (mut key, mut tags) = state_of(moto, &case, &setup, &what).await;
    if tags.get("cmkguard:status").map(String::as_str) == Some("remediating")
        && matches!(fault, Fault::Delay(_))
        && call.operation == "TagResource"
    {
        // The delayed first try of the intent landed after the final mark (AWS may apply a
        // write whose answer the client gave up on): the next delivery finishes the job again.
        let again = cmkguard(
            moto,
            Some(proxy),
            &["handle-event", "-"],
            &setup.env,
            &setup.event,
        );
        assert_eq!(again.code, Some(0), "{what}: {}", again.stderr);
        (key, tags) = state_of(moto, &case, &setup, &what).await;
    }
    if let Some(kind) = &case.expect.key_after {
        assert_eq!(key, key_of(&setup, &case, kind), "{what}: key after");
    }
    if let Some(want) = &case.expect.tags {
        assert_eq!(&tags, want, "{what}: tags after");
    }
    assert!(
        proxy.count("UpdateSecret") <= 2,
        "{what}: {:?}",
        proxy.counts()
    );
    assert_no_canary(setup.made.as_ref().unwrap(), &run.stdout, &what);
    assert_no_canary(setup.made.as_ref().unwrap(), &run.stderr, &what);
}

async fn a_lasting_fault_is_retried_by_redelivery(
    moto: &Moto,
    proxy: &FaultProxy,
    call: &Call,
    fault: &Fault,
) {
    let what = label(call, fault);
    let case = case(call.case);
    let setup = setup(moto, &case).await;
    let made = setup.made.clone().unwrap();
    let before = state_of(moto, &case, &setup, &what).await;
    proxy.heal();
    proxy.reset_counts();
    proxy.inject(rule(call, fault, When::Always));

    // The failure outlasts the retries: exit 1, one line on stderr, the failure in the record.
    let run = cmkguard(
        moto,
        Some(proxy),
        &["handle-event", "-"],
        &setup.env,
        &setup.event,
    );
    assert_eq!(run.code, Some(1), "{what}: {}\n{}", run.stdout, run.stderr);
    // Logs (at trace level here) share stderr; the message for people is one line of its own.
    let messages: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("cmkguard: "))
        .collect();
    assert_eq!(messages.len(), 1, "{what}: {}", run.stderr);
    assert!(messages[0].contains("transient"), "{what}: {}", messages[0]);
    assert_eq!(run.records.len(), 1, "{what}: {}", run.stdout);
    let record = &run.records[0];
    match call.action {
        Some(action) => assert!(
            actions(record).contains(&(action.to_owned(), "failed".to_owned())),
            "{what}: no failed `{action}` in {record}"
        ),
        None => assert_eq!(
            (record["verdict"].as_str(), record["reason"].as_str()),
            (Some("error"), Some("transient-failure")),
            "{what}: {record}"
        ),
    }
    assert_no_canary(&made, &run.stdout, &what);
    assert_no_canary(&made, &run.stderr, &what);

    // Never worse: every value intact, on the old key or the designated one.
    assert!(proxy.wait_idle(Duration::from_secs(10)), "{what}: stuck");
    let designated = key_of(&setup, &case, "cmk");
    let between = state_of(moto, &case, &setup, &what).await;
    assert!(
        between.0 == before.0 || between.0 == designated,
        "{what}: key {:?}",
        between.0
    );

    // The redelivery converges.
    proxy.heal();
    let again = cmkguard(
        moto,
        Some(proxy),
        &["handle-event", "-"],
        &setup.env,
        &setup.event,
    );
    assert_eq!(
        again.code,
        Some(0),
        "{what}: {}\n{}",
        again.stdout,
        again.stderr
    );
    let (key, tags) = state_of(moto, &case, &setup, &what).await;
    if let Some(kind) = &case.expect.key_after {
        assert_eq!(key, key_of(&setup, &case, kind), "{what}: key after");
    }
    if between.0 != before.0 {
        // The re-encryption landed in the failed run (a delayed write, or a later step failed):
        // the intent `remediating` written before it makes the redelivery finish the job, and
        // its record is the finding.
        assert_eq!(
            between.1.get("cmkguard:status").map(String::as_str),
            Some("remediating"),
            "{what}"
        );
        assert_eq!(again.records[0]["verdict"], "non_compliant", "{what}");
        assert!(
            actions(&again.records[0]).contains(&("remediate".to_owned(), "done".to_owned())),
            "{what}: {}",
            again.records[0]
        );
        if let Some(want) = &case.expect.tags {
            assert_eq!(&tags, want, "{what}: tags after");
        }
    } else if between.1 != before.1 {
        // A delayed tag write landed after the client gave up: the tags are already right.
        if let Some(want) = &case.expect.tags {
            assert_eq!(&tags, want, "{what}: tags after");
        }
    } else {
        let problems = cases::check_record(&case, &again.records[0]);
        assert!(problems.is_empty(), "{what}: redelivery {problems:?}");
        if let Some(want) = &case.expect.tags {
            assert_eq!(&tags, want, "{what}: tags after");
        }
    }

    // And a third delivery writes nothing.
    proxy.reset_counts();
    let third = cmkguard(
        moto,
        Some(proxy),
        &["handle-event", "-"],
        &setup.env,
        &setup.event,
    );
    assert_eq!(third.code, Some(0), "{what}: {}", third.stderr);
    assert_eq!(proxy.writes(), 0, "{what}: {:?}", proxy.counts());
    assert_no_canary(&made, &again.stderr, &what);
    assert_no_canary(&made, &third.stderr, &what);
}

async fn every_fault_on(call: Call) {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.endpoint());
    for fault in &FAULTS {
        one_fault_is_absorbed(&moto, &proxy, &call, fault).await;
    }
    for fault in &FAULTS {
        a_lasting_fault_is_retried_by_redelivery(&moto, &proxy, &call, fault).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_secret() {
    every_fault_on(Call {
        operation: "DescribeSecret",
        body: None,
        case: REMEDIATED,
        action: None,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_key() {
    every_fault_on(Call {
        operation: "DescribeKey",
        body: Some(":key/"),
        case: "pending-deletion-key-is-not-re-encrypted",
        action: None,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_alias() {
    every_fault_on(Call {
        operation: "DescribeKey",
        body: Some("alias/"),
        case: REMEDIATED,
        action: Some("remediate"),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_resource() {
    every_fault_on(Call {
        operation: "TagResource",
        body: None,
        case: REMEDIATED,
        // The first `TagResource` is the intent `remediating`, written before `UpdateSecret`:
        // when it cannot be written, the re-encryption is not attempted.
        action: Some("remediate"),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untag_resource() {
    every_fault_on(Call {
        operation: "UntagResource",
        body: None,
        case: "stale-tag-is-removed-when-compliant",
        action: Some("tag"),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_secret() {
    every_fault_on(Call {
        operation: "UpdateSecret",
        body: None,
        case: REMEDIATED,
        action: Some("remediate"),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish() {
    every_fault_on(Call {
        operation: "Publish",
        body: None,
        case: REMEDIATED,
        action: Some("notify"),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assume_role() {
    every_fault_on(Call {
        operation: "AssumeRole",
        body: None,
        case: "other-account-through-role",
        action: None,
    })
    .await;
}
