//! The shared case table through the Lambda handler (in process, with the in-memory fake).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use std::time::{Duration, SystemTime};

use cmkguard_core::fake::FakeAws;
use cmkguard_core::fake::cases::{self, Layer, config, world};
use cmkguard_core::{Guard, Record};
use cmkguard_lambda::{HandlerError, Invocation, account_of_function_arn, handle};

fn invocation(seconds: u64) -> Invocation {
    Invocation {
        request_id: "req-1".into(),
        own_account: "123456789012".into(),
        deadline: SystemTime::now() + Duration::from_secs(seconds),
        region: "us-east-1".into(),
    }
}

#[tokio::test]
async fn every_case_through_the_lambda_handler() {
    let all = cases::load_for(Layer::Lambda);
    assert!(all.len() >= 20, "the table shrank to {} cases", all.len());
    for case in all {
        let fake = FakeAws::new();
        world(&case, &fake);
        let guard = Guard::new(config(&case), fake);
        let mut emitted: Vec<Record> = Vec::new();
        let response = handle(
            &guard,
            &cases::event(&case.event),
            &invocation(30),
            &mut |r| emitted.push(r.clone()),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", case.label()));
        assert_eq!(emitted.len(), 1, "{}", case.label());
        assert_eq!(response["records"], 1, "{}", case.label());
        assert_eq!(
            response["verdicts"][&case.expect.verdict],
            1,
            "{}: {response}",
            case.label()
        );
        let problems = cases::check_record(&case, &serde_json::to_value(&emitted[0]).unwrap());
        assert!(problems.is_empty(), "{}: {problems:?}", case.label());
    }
}

#[test]
fn the_own_account_comes_from_the_function_arn_when_it_names_one() {
    assert_eq!(
        account_of_function_arn("arn:aws:lambda:us-east-1:123456789012:function:cmkguard-lambda"),
        Some("123456789012")
    );
    // `cargo lambda watch` hands out `function-arn`: the binary then asks STS (tests/runtime_api.rs).
    for none in [
        "function-arn",
        "not-an-arn",
        "arn:aws:lambda:us-east-1::function:f",
        "",
    ] {
        assert_eq!(account_of_function_arn(none), None, "{none}");
    }
}

#[test]
fn the_deadline_is_a_time_since_the_epoch_or_from_cargo_lambda_a_duration() {
    use cmkguard_lambda::deadline_from_header;
    use std::time::UNIX_EPOCH;
    let now = SystemTime::now();
    let lambda = 1_796_206_671_144;
    assert_eq!(
        deadline_from_header(lambda, now),
        UNIX_EPOCH + Duration::from_millis(lambda)
    );
    // `cargo lambda watch` sends `Lambda-Runtime-Deadline-Ms: 600000`.
    assert_eq!(
        deadline_from_header(600_000, now),
        now + Duration::from_secs(600)
    );
}

#[tokio::test]
async fn a_spent_deadline_is_a_retryable_error() {
    let fake = FakeAws::new();
    let case = cases::load()
        .into_iter()
        .find(|c| c.case == "default-key-is-tagged")
        .unwrap();
    world(&case, &fake);
    let guard = Guard::new(config(&case), fake);
    // Less time left than the margin the handler keeps: it gives the event back at once.
    let err = handle(
        &guard,
        &cases::event(&case.event),
        &invocation(1),
        &mut |_| {},
    )
    .await
    .unwrap_err();
    assert!(matches!(err, HandlerError::Deadline), "{err}");
    assert_eq!(guard.ports().writes(), 0);
}
