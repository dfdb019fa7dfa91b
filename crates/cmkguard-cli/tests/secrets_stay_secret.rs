//! Secrets stay secret: no product code path names `GetSecretValue`, and every path (events of
//! each kind, a sweep, `check`, faults) run at the most verbose log level, through the CLI and
//! the Lambda binary, prints no secret value.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cmkguard_testkit::world::{MadeSecret, SecretSpec};
use cmkguard_testkit::{Fault, FaultProxy, Moto, Outcome, Rule, RuntimeApi, When, workspace_root};
use serde_json::{Value, json};
use support::cmkguard;

/// Lines of product code (not comments) that name the call, under `dir`.
fn mentions(dir: &Path, extension: &str, comment: &str, found: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            mentions(&path, extension, comment, found);
            continue;
        }
        if path.extension().and_then(|e| e.to_str()) != Some(extension) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let lower = line.to_ascii_lowercase().replace('_', "");
            if lower.contains("getsecretvalue") && !line.trim_start().starts_with(comment) {
                found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
}

#[test]
fn no_product_code_calls_get_secret_value() {
    let root = workspace_root();
    let mut found = Vec::new();
    for krate in [
        "cmkguard-core",
        "cmkguard-aws",
        "cmkguard-lambda",
        "cmkguard-cli",
    ] {
        let src = root.join("crates").join(krate).join("src");
        assert!(src.is_dir(), "{}", src.display());
        mentions(&src, "rs", "//", &mut found);
    }
    mentions(&root.join("cloudformation"), "yaml", "#", &mut found);
    mentions(&root.join("cloudformation"), "yml", "#", &mut found);
    assert!(
        found.is_empty(),
        "GetSecretValue in product code:\n{}",
        found.join("\n")
    );

    // The scan does see what it looks for.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("x.rs"),
        "client.get_secret_value().send()\n// GetSecretValue\n",
    )
    .unwrap();
    let mut seen = Vec::new();
    mentions(dir.path(), "rs", "//", &mut seen);
    assert_eq!(seen.len(), 1, "{seen:?}");
}

struct World {
    secrets: Vec<MadeSecret>,
    events: Vec<Vec<u8>>,
}

/// Secrets on every kind of key, and an event of each kind the guard reads.
async fn world(moto: &Moto) -> World {
    moto.reset();
    moto.make_topic().await;
    let keys = moto.make_keys("123456789012", "us-east-1", true).await;
    let mut secrets = Vec::new();
    for (name, key, tags, owner) in [
        ("trace/default", "default", vec![], None),
        ("trace/disabled", "cmk-disabled", vec![], None),
        (
            "trace/cmk",
            "cmk",
            vec![("cmkguard:status", "non-compliant")],
            None,
        ),
        (
            "trace/exempt",
            "default",
            vec![("cmkguard:exempt", "true")],
            None,
        ),
        ("trace/managed", "default", vec![], Some("rds")),
    ] {
        let spec = SecretSpec {
            name: name.into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            key: key.into(),
            tags: tags
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            owning_service: owner.map(Into::into),
            ..Default::default()
        };
        secrets.push(moto.make_secret(&spec, &keys).await);
    }
    let read = |file: &str| {
        let path = workspace_root().join("testdata/events").join(file);
        serde_json::from_str::<Value>(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let mut events: Vec<Vec<u8>> = secrets
        .iter()
        .map(|s| {
            let mut event = read("UpdateSecret-value-only.json");
            event["detail"]["requestParameters"]["secretId"] = json!(s.arn);
            event["detail"]["responseElements"]["arn"] = json!(s.arn);
            event.to_string().into_bytes()
        })
        .collect();
    for file in [
        "ScheduledEvent-sweep.json",
        "CreateSecret-failed.json",
        "DeleteSecret-not-handled.json",
        "CreateSecret-other-account.json",
        "CreateSecret-minimal.json",
    ] {
        events.push(read(file).to_string().into_bytes());
    }
    events.push(b"{\"detail\": 3}".to_vec());
    World { secrets, events }
}

fn assert_clean(world: &World, text: &str, what: &str) {
    for secret in &world.secrets {
        for value in [&secret.current_value, &secret.previous_value] {
            assert!(
                !text.contains(value.as_str()),
                "{what}: a secret value in the output"
            );
        }
    }
    assert!(!text.contains("CANARY-"), "{what}: a canary in the output");
}

fn env() -> BTreeMap<String, String> {
    [
        ("CMKGUARD_ACTIONS", "tag,notify,remediate"),
        ("CMKGUARD_REMEDIATE_ACCOUNTS", "*"),
        (
            "CMKGUARD_SNS_TOPIC_ARN",
            "arn:aws:sns:us-east-1:123456789012:cmkguard",
        ),
        ("CMKGUARD_AWS_ATTEMPT_TIMEOUT_MS", "2000"),
        ("AWS_MAX_ATTEMPTS", "2"),
        ("CMKGUARD_RETRY_BUDGET_MS", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_path_at_trace_level_prints_no_secret_value() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.endpoint());

    // The CLI (`RUST_LOG=trace`): every event, `check` on every secret, then again under faults.
    let world = world(&moto).await;
    let mut runs = 0;
    for faults in [false, true] {
        proxy.heal();
        if faults {
            for op in [
                "DescribeSecret",
                "DescribeKey",
                "UpdateSecret",
                "TagResource",
                "ListSecrets",
            ] {
                let fraction = When::Fraction {
                    fraction: 0.5,
                    seed: 5,
                };
                proxy.inject(Rule::new(op, Fault::Throttle, fraction));
            }
            proxy.inject(Rule::new("Publish", Fault::Reset, When::Nth(1)));
        }
        for event in &world.events {
            let run = cmkguard(&moto, Some(&proxy), &["handle-event", "-"], &env(), event);
            assert_clean(
                &world,
                &format!("{}{}", run.stdout, run.stderr),
                "handle-event",
            );
            runs += 1;
        }
        for secret in &world.secrets {
            let run = cmkguard(&moto, Some(&proxy), &["check", &secret.arn], &env(), b"");
            assert_clean(&world, &format!("{}{}", run.stdout, run.stderr), "check");
            runs += 1;
        }
    }
    assert!(runs >= 30);

    // The Lambda binary (`AWS_LAMBDA_LOG_LEVEL=trace`): every event on a fresh world.
    let world = self::world(&moto).await;
    proxy.heal();
    proxy.inject(Rule::new(
        "DescribeKey",
        Fault::Status(503),
        When::Fraction {
            fraction: 0.3,
            seed: 9,
        },
    ));
    let events: Vec<Value> = world
        .events
        .iter()
        .map(|e| serde_json::from_slice(e).unwrap())
        .collect();
    let count = events.len();
    let api = RuntimeApi::start(events);
    let dir = tempfile::tempdir().unwrap();
    let lambda = workspace_lambda_binary();
    let mut child = Command::new(lambda)
        .env_clear()
        .envs(proxy.env(moto.env()))
        .envs(api.env())
        .envs(env())
        .env("AWS_LAMBDA_LOG_LEVEL", "trace")
        .stdout(std::fs::File::create(dir.path().join("out")).unwrap())
        .stderr(std::fs::File::create(dir.path().join("err")).unwrap())
        .spawn()
        .unwrap();
    let results = api.wait_for(count, Duration::from_secs(120));
    let _ = child.kill();
    let _ = child.wait();
    let output = format!(
        "{}{}",
        std::fs::read_to_string(dir.path().join("out")).unwrap(),
        std::fs::read_to_string(dir.path().join("err")).unwrap()
    );
    assert_eq!(results.len(), count, "{output}");
    assert!(
        results
            .iter()
            .any(|r| matches!(r.outcome, Outcome::Response(_)))
    );
    assert!(output.contains("TRACE"), "trace level was on");
    assert_clean(&world, &output, "cmkguard-lambda");
}

/// The Lambda binary, built next to the CLI's (same target directory).
fn workspace_lambda_binary() -> std::path::PathBuf {
    let cli = Path::new(env!("CARGO_BIN_EXE_cmkguard"));
    let lambda = cli.with_file_name("cmkguard-lambda");
    assert!(
        lambda.exists(),
        "build it first: `cargo build -p cmkguard-lambda` ({})",
        lambda.display()
    );
    lambda
}
