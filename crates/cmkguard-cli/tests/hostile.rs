//! The hostile corpus (`testdata/hostile/`) and 1 MiB payloads through `cmkguard handle-event`:
//! unreadable input exits 2 with one line on stderr and no record; everything else gives one
//! record of the verdict the file's name starts with, and the exit code the contract gives it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

mod support;

use std::collections::BTreeMap;

use cmkguard_core::fake::cases::testdata;
use cmkguard_testkit::Moto;
use support::{Run, cmkguard};

fn quiet() -> BTreeMap<String, String> {
    BTreeMap::from([("RUST_LOG".to_owned(), "warn".to_owned())])
}

fn check(what: &str, expected: &str, run: &Run) {
    if expected == "unreadable" {
        assert_eq!(run.code, Some(2), "{what}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{what}: {}", run.stdout);
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{what}: {}", run.stderr);
        assert!(
            lines[0].starts_with("cmkguard: unreadable event") && lines[0].len() < 300,
            "{what}: {}",
            lines[0]
        );
        return;
    }
    assert_eq!(
        run.records.len(),
        1,
        "{what}: {}\n{}",
        run.stdout,
        run.stderr
    );
    assert_eq!(
        run.records[0]["verdict"], expected,
        "{what}: {}",
        run.stdout
    );
    assert!(
        run.stdout.len() < 4096,
        "{what}: {} bytes",
        run.stdout.len()
    );
    let code = if expected == "error" { 1 } else { 0 };
    assert_eq!(run.code, Some(code), "{what}: {}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{what}: {}", run.stderr);
}

#[test]
fn every_hostile_event_through_the_cli() {
    let moto = Moto::start();
    let mut files: Vec<_> = std::fs::read_dir(testdata().join("hostile"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 40);
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let expected = name.split('-').next().unwrap();
        // Half by file, half on standard input: both readers.
        let run = if name.len() % 2 == 0 {
            cmkguard(
                &moto,
                None,
                &["handle-event", path.to_str().unwrap()],
                &quiet(),
                b"",
            )
        } else {
            let bytes = std::fs::read(&path).unwrap();
            cmkguard(&moto, None, &["handle-event", "-"], &quiet(), &bytes)
        };
        check(&name, expected, &run);
    }
}

#[test]
fn one_mib_payloads_through_the_cli() {
    let moto = Moto::start();
    let big = "A".repeat(1 << 20);
    let call = |request: serde_json::Value| {
        serde_json::json!({
            "detail-type": "AWS API Call via CloudTrail", "source": "aws.secretsmanager",
            "account": "123456789012", "region": "us-east-1",
            "detail": {"eventName": "CreateSecret", "awsRegion": "us-east-1", "requestParameters": request}
        })
        .to_string()
        .into_bytes()
    };
    for (what, bytes, expected) in [
        (
            "1 MiB secret name",
            call(serde_json::json!({"name": big})),
            "error",
        ),
        (
            "1 MiB unread field",
            call(serde_json::json!({"name": "app", "secretString": big})),
            "not_found",
        ),
        (
            "1 MiB of brackets",
            "[".repeat(1 << 20).into_bytes(),
            "unreadable",
        ),
    ] {
        let run = cmkguard(&moto, None, &["handle-event", "-"], &quiet(), &bytes);
        check(what, expected, &run);
    }
}

#[test]
fn a_missing_file_is_exit_2_naming_it() {
    let moto = Moto::start();
    let run = cmkguard(
        &moto,
        None,
        &["handle-event", "/nonexistent/event.json"],
        &quiet(),
        b"",
    );
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("/nonexistent/event.json"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}
