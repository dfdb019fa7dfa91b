//! Every bad configuration value stops `cmkguard` at start: exit 2, one line on stderr that
//! names the variable, before any AWS call (no endpoint is reachable here).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use std::process::Command;

/// `(variable, value, the variable the message must name)` from `testdata/bad-config.json`.
fn bad_values() -> Vec<(String, String, String)> {
    let path = cmkguard_core::fake::cases::testdata().join("bad-config.json");
    let table: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    table["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let field = |name: &str| v[name].as_str().unwrap().to_owned();
            (field("variable"), field("value"), field("names"))
        })
        .collect()
}

#[test]
fn every_bad_value_is_exit_2_naming_the_variable() {
    let values = bad_values();
    assert!(values.len() >= 20);
    for (variable, value, named) in values {
        for args in [&["handle-event", "-"][..], &["check", "app/db"][..]] {
            let output = Command::new(env!("CARGO_BIN_EXE_cmkguard"))
                .args(args)
                .env_clear()
                .env("AWS_REGION", "us-east-1")
                // Nothing listens here: a run that got past the configuration would fail otherwise.
                .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
                .env("AWS_ACCESS_KEY_ID", "x")
                .env("AWS_SECRET_ACCESS_KEY", "x")
                .env(&variable, &value)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            let what = format!("{variable}={value:?} {args:?}");
            assert_eq!(output.status.code(), Some(2), "{what}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{what}: {stderr}");
            assert!(stderr.starts_with("cmkguard: "), "{what}: {stderr}");
            assert!(stderr.contains(&format!("`{named}`")), "{what}: {stderr}");
            assert!(output.stdout.is_empty(), "{what}");
        }
    }
}

#[test]
fn a_bad_flag_value_names_the_variable_it_overrides() {
    let output = Command::new(env!("CARGO_BIN_EXE_cmkguard"))
        .args(["--actions", "tag,explode", "handle-event", "-"])
        .env_clear()
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`CMKGUARD_ACTIONS`") && stderr.contains("explode"),
        "{stderr}"
    );
}
