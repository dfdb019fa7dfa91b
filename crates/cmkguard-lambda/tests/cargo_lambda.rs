//! The built `cmkguard-lambda` binary under cargo-lambda's own Runtime API emulator (`cargo lambda
//! watch --only-lambda-apis`, events from `cargo lambda invoke`), the loop Rust Lambda users run
//! locally, against moto. cargo-lambda hands out the function ARN `function-arn`, which names no
//! account, and never answers `/runtime/init/error` for a restarted function.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cmkguard_testkit::{
    DEFAULT_ACCOUNT, FaultProxy, Moto, Process, cargo_lambda_binary, workspace_root,
};
use serde_json::Value;

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(port: u16, watch: &Process) {
    let until = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        assert!(
            Instant::now() < until,
            "cargo lambda watch never listened: {:?}",
            watch.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The function binary, pointed at cargo-lambda's Runtime API and at `aws` (moto or a proxy).
fn function(port: u16, aws: &[(String, String)], env: &[(&str, &str)]) -> Process {
    Process::spawn(
        Command::new(env!("CARGO_BIN_EXE_cmkguard-lambda"))
            .env_clear()
            .envs(aws.iter().cloned())
            // What `cargo lambda watch --only-lambda-apis` says to set.
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "4096")
            .envs(env.iter().copied()),
    )
}

/// `cargo lambda invoke` with `event`; the function's response.
fn invoke(cargo_lambda: &Path, port: u16, event: &Value) -> Value {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), event.to_string()).unwrap();
    let out = Command::new(cargo_lambda)
        .args([
            "lambda",
            "invoke",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
        ])
        .arg(port.to_string())
        .arg("--data-file")
        .arg(file.path())
        .args(["--output-format", "json"])
        .stdin(Stdio::null())
        .output()
        .expect("run cargo lambda invoke");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo lambda invoke failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_function_under_cargo_lambda_watch_remediates_once_and_a_bad_configuration_exits() {
    let cargo_lambda = cargo_lambda_binary();
    let moto = Moto::start();
    let (keys, made, event) = moto.default_key_secret("cmkguard-test/cargo-lambda").await;
    let topic = moto.make_topic().await;

    let port = free_port();
    let watch = Process::spawn(
        Command::new(&cargo_lambda)
            .args([
                "lambda",
                "watch",
                "--only-lambda-apis",
                "--invoke-address",
                "127.0.0.1",
            ])
            .arg("--invoke-port")
            .arg(port.to_string())
            .current_dir(workspace_root())
            .stdin(Stdio::null()),
    );
    wait_listening(port, &watch);

    let proxy = FaultProxy::start(&moto.endpoint());
    let aws = proxy.env(moto.env());
    let good = function(
        port,
        &aws,
        &[
            ("CMKGUARD_ACTIONS", "tag,notify,remediate"),
            ("CMKGUARD_REMEDIATE_ACCOUNTS", DEFAULT_ACCOUNT),
            ("CMKGUARD_SNS_TOPIC_ARN", &topic),
        ],
    );
    let first = invoke(&cargo_lambda, port, &event);
    assert_eq!(
        first["verdicts"]["non_compliant"],
        1,
        "{first}\n{:?}",
        good.output()
    );
    let writes = proxy.writes();
    assert!(writes > 0, "{:?}", proxy.counts());
    // The second delivery of the same event finds the move already reported (its current
    // version waits for a new one: `previous-key-decrypts`) and writes nothing.
    let second = invoke(&cargo_lambda, port, &event);
    assert_eq!(
        second["verdicts"]["non_compliant"],
        1,
        "{second}\n{:?}",
        good.output()
    );
    assert_eq!(proxy.writes(), writes, "{:?}", proxy.counts());
    // The function ARN names no account: STS told it, once for both invocations.
    assert_eq!(proxy.count("GetCallerIdentity"), 1, "{:?}", proxy.counts());

    let state = moto
        .secret_state(DEFAULT_ACCOUNT, "us-east-1", &made.arn)
        .await;
    state.assert_reencrypted(&keys.designated, &made);
    assert_eq!(moto.sns_messages().len(), 1);
    drop(good);

    // The everyday edit loop: the same `cargo lambda watch`, the function restarted with a bad
    // configuration. It says which variable, and exits, though nobody answers its init error.
    let mut bad = function(port, &aws, &[("CMKGUARD_ACTIONS", "tag,explode")]);
    let status = bad.wait(Duration::from_secs(15));
    let (stdout, stderr) = bad.output();
    let output = format!("{stdout}{stderr}");
    let status = status.unwrap_or_else(|| panic!("still running after 15 s: {output}"));
    assert!(!status.success(), "{status:?}: {output}");
    assert!(
        output.contains("CMKGUARD_ACTIONS") && output.contains("explode"),
        "{output}"
    );
    drop(watch);
}
