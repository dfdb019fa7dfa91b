//! Every bad configuration value fails the Lambda's init: the binary reports an init error to
//! the Runtime API whose message names the variable, and serves no event.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use std::process::{Command, Stdio};
use std::time::Duration;

use cmkguard_testkit::{Outcome, RuntimeApi};

#[test]
fn every_bad_value_fails_the_init_naming_the_variable() {
    let path = cmkguard_testkit::workspace_root().join("testdata/bad-config.json");
    let table: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for row in table["values"].as_array().unwrap() {
        let field = |name: &str| row[name].as_str().unwrap().to_owned();
        let (variable, value, named) = (field("variable"), field("value"), field("names"));
        let what = format!("{variable}={value:?}");
        let api = RuntimeApi::start(vec![serde_json::json!({"never": "served"})]);
        let mut child = Command::new(env!("CARGO_BIN_EXE_cmkguard-lambda"))
            .env_clear()
            .envs(api.env())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env("AWS_ACCESS_KEY_ID", "x")
            .env("AWS_SECRET_ACCESS_KEY", "x")
            .env(&variable, &value)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let results = api.wait_for(1, Duration::from_secs(20));
        let status = child.wait().unwrap();
        assert!(!status.success(), "{what}: the process should exit");
        assert_eq!(results.len(), 1, "{what}: {results:?}");
        let Outcome::InitError(body) = &results[0].outcome else {
            panic!("{what}: not an init error: {:?}", results[0])
        };
        let message = body["errorMessage"].as_str().unwrap();
        assert!(message.contains(&format!("`{named}`")), "{what}: {message}");
        assert_eq!(api.pending_events(), 1, "{what}: an event was served");
    }
}
