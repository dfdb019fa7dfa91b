//! The hostile corpus (`testdata/hostile/`) through the engine: each file gives a clear error
//! (`unreadable-*`) or one record of the verdict its name starts with, never a panic, and no
//! record grows with what the event stuffed into it. The 1 MiB payloads are made here rather
//! than committed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use std::path::PathBuf;

use cmkguard_core::event::{self, EventError};
use cmkguard_core::fake::FakeAws;
use cmkguard_core::fake::cases::{ctx, testdata};
use cmkguard_core::{Config, Guard, Record};
use serde_json::{Value, json};

/// Every corpus file with the outcome its name announces.
pub fn corpus() -> Vec<(PathBuf, String)> {
    let mut files: Vec<_> = std::fs::read_dir(testdata().join("hostile"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let expected = name.split('-').next().unwrap().to_owned();
            (path, expected)
        })
        .collect()
}

async fn engine(bytes: &[u8]) -> Result<Vec<Record>, EventError> {
    event::read_bytes(bytes)?;
    let value: Value = serde_json::from_slice(bytes).unwrap();
    let guard = Guard::new(Config::default(), FakeAws::new());
    Ok(guard.handle(&value, &ctx()).await.unwrap())
}

#[tokio::test]
async fn every_hostile_event_gives_a_clear_error_or_one_record() {
    let corpus = corpus();
    assert!(corpus.len() >= 40, "{}", corpus.len());
    for (path, expected) in &corpus {
        let name = path.file_name().unwrap().to_string_lossy();
        let bytes = std::fs::read(path).unwrap();
        match engine(&bytes).await {
            Err(e) => {
                assert_eq!(expected, "unreadable", "{name}: {e}");
                let message = e.to_string();
                assert!(message.starts_with("unreadable event"), "{name}: {message}");
                assert!(
                    !message.contains('\n') && message.len() < 300,
                    "{name}: {message}"
                );
            }
            Ok(records) => {
                assert_eq!(records.len(), 1, "{name}");
                let line = records[0].to_json_line();
                assert_eq!(records[0].verdict.as_str(), expected, "{name}: {line}");
                assert!(
                    line.len() < 4096,
                    "{name}: a record of {} bytes",
                    line.len()
                );
            }
        }
    }
}

#[tokio::test]
async fn other_partitions_are_read_from_the_arn() {
    let dir = testdata().join("hostile");
    for (file, partition, region) in [
        ("not_found-aws-cn-arn.json", "aws-cn", "cn-north-1"),
        (
            "not_found-aws-us-gov-arn.json",
            "aws-us-gov",
            "us-gov-west-1",
        ),
    ] {
        let records = engine(&std::fs::read(dir.join(file)).unwrap())
            .await
            .unwrap();
        let record = &records[0];
        assert_eq!(record.region.as_deref(), Some(region), "{file}");
        assert!(
            record
                .secret_arn
                .as_deref()
                .unwrap()
                .starts_with(&format!("arn:{partition}:secretsmanager:{region}:")),
            "{file}"
        );
    }
    let records =
        engine(&std::fs::read(dir.join("error-us-gov-arn-foreign-account.json")).unwrap())
            .await
            .unwrap();
    assert_eq!(records[0].reason.as_str(), "foreign-account");
    assert_eq!(records[0].account.as_deref(), Some("111122223333"));
}

/// 1 MiB payloads: a name, an unread field, an actor, and plain nesting.
pub fn one_mib_payloads() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    const MIB: usize = 1 << 20;
    let call = |request: Value, actor: &str| {
        json!({
            "detail-type": "AWS API Call via CloudTrail", "source": "aws.secretsmanager",
            "account": "123456789012", "region": "us-east-1",
            "detail": {"eventName": "CreateSecret", "awsRegion": "us-east-1",
                       "userIdentity": {"arn": actor}, "requestParameters": request}
        })
        .to_string()
        .into_bytes()
    };
    let big = "A".repeat(MIB);
    vec![
        (
            "1 MiB secret name",
            call(json!({"name": big}), "me"),
            "error",
        ),
        (
            "1 MiB unread field",
            call(json!({"name": "app", "secretString": big}), "me"),
            "not_found",
        ),
        (
            "1 MiB actor",
            call(json!({"name": "app"}), &big),
            "not_found",
        ),
        (
            "1 MiB of brackets",
            "[".repeat(MIB).into_bytes(),
            "unreadable",
        ),
        (
            "1 MiB of whitespace around an empty object",
            format!("{}{{}}", " ".repeat(MIB)).into_bytes(),
            "ignored",
        ),
    ]
}

#[tokio::test]
async fn one_mib_payloads_are_read_and_never_echoed() {
    for (what, bytes, expected) in one_mib_payloads() {
        assert!(bytes.len() >= 1 << 20, "{what}");
        match engine(&bytes).await {
            Err(e) => {
                assert_eq!(expected, "unreadable", "{what}: {e}");
                assert!(e.to_string().len() < 300, "{what}");
            }
            Ok(records) => {
                assert_eq!(records[0].verdict.as_str(), expected, "{what}");
                assert!(records[0].to_json_line().len() < 4096, "{what}");
            }
        }
    }
}
