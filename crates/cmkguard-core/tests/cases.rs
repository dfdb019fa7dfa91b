//! The shared case table through the engine, with the in-memory fake.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use cmkguard_core::Guard;
use cmkguard_core::fake::FakeAws;
use cmkguard_core::fake::cases::{self, Keys, Layer, config, ctx, world};

#[tokio::test]
async fn every_case_through_the_engine() {
    let all = cases::load_for(Layer::Engine);
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
                    Keys::in_fake(scope, &case.key_kinds()).key_id(kind),
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

#[test]
fn every_event_fixture_is_in_the_table() {
    let mut files: Vec<String> = std::fs::read_dir(cases::testdata().join("events"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut covered: Vec<String> = cases::load().into_iter().map(|c| c.event).collect();
    // The sweep has its own tests (tests/engine.rs and the CLI's moto tests).
    covered.push("ScheduledEvent-sweep.json".into());
    // The key events check every secret on a key, not one: they have their own tests
    // (tests/key_events.rs and the moto tests), on these same fixtures.
    for file in &files {
        if event_name_of(file).is_some_and(|n| cmkguard_core::event::KEY_EVENTS.contains(&n))
            && !file.ends_with("-failed.json")
        {
            covered.push(file.clone());
        }
    }
    covered.sort();
    covered.dedup();
    assert_eq!(
        files, covered,
        "every fixture in testdata/events runs through the case table"
    );
}

#[test]
fn a_row_can_name_the_layers_it_runs_through() {
    let row = |layers: &str| {
        format!(
            r#"{{"cases": [{{"case": "c", "event": "e.json", {layers}
                "expect": {{"verdict": "compliant", "reason": "r", "actions": []}}}}]}}"#
        )
    };
    let every = cases::parse(&row("")).unwrap();
    assert_eq!(every[0].layers, [Layer::Engine, Layer::Cli, Layer::Lambda]);
    let some = cases::parse(&row(r#""layers": ["cli", "lambda"],"#)).unwrap();
    assert_eq!(some[0].layers, [Layer::Cli, Layer::Lambda]);

    let err = cases::parse(&row(r#""layers": ["web"],"#)).unwrap_err();
    assert!(err.to_string().contains("unknown variant `web`"), "{err}");

    // Every row of the table runs somewhere.
    let all = cases::load();
    let nowhere: Vec<&str> = all
        .iter()
        .filter(|c| c.layers.is_empty())
        .map(|c| c.case.as_str())
        .collect();
    assert!(nowhere.is_empty(), "rows that run nowhere: {nowhere:?}");
}

/// `DisableKey` of `DisableKey-key-arn.json`.
fn event_name_of(file: &str) -> Option<&str> {
    file.split('-').next()
}
