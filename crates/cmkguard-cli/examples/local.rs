//! `just watch` and `just invoke`: the standard local Lambda loop against moto.
//!
//! `local watch PORT` starts moto on a free loopback port with the designated key (and its alias)
//! and an SNS topic, then runs `cargo lambda watch` on the function from the working tree (rebuilt
//! on every change), its output also in `.local/watch.log`. moto stops when this process does.
//!
//! `local invoke EVENT.json` delivers one event with `cargo lambda invoke`. A fixture names a
//! secret moto does not have: one of that name is made on the default key first and the event
//! points at it. Then it prints the function's response and the audit records it logged.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // a dev tool: fail loudly, print freely

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use cmkguard_testkit::{DEFAULT_ACCOUNT, Moto, workspace_root};
use serde_json::{Value, json};

const REGION: &str = "us-east-1";

fn state_dir() -> PathBuf {
    workspace_root().join(".local")
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["watch", port] => watch(port.parse().expect("the port is a number")).await,
        ["invoke", event] => invoke(Path::new(event)).await,
        _ => {
            eprintln!("usage: local watch PORT | local invoke EVENT.json");
            std::process::exit(2);
        }
    }
}

async fn watch(port: u16) {
    let moto = Moto::start();
    let keys = moto.make_keys(DEFAULT_ACCOUNT, REGION, true).await;
    let topic = moto.make_topic().await;
    let dir = state_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(".gitignore"), "*\n").unwrap();
    let log_path = dir.join("watch.log");
    let state = json!({
        "endpoint": moto.endpoint(),
        "port": port,
        "log": log_path,
        "topic": topic,
        "designated_key": keys.designated,
    });
    std::fs::write(dir.join("watch.json"), state.to_string()).unwrap();
    println!(
        "moto: {} (account {DEFAULT_ACCOUNT}, {REGION})",
        moto.endpoint()
    );
    println!(
        "designated key: {} (alias/cmkguard/secrets)",
        keys.designated
    );
    println!("SNS topic: {topic}");
    println!(
        "deliver an event from another terminal: just invoke testdata/events/CreateSecret-default-key.json\n"
    );

    let function_env = [
        ("CMKGUARD_ACTIONS", "tag,notify,remediate".to_owned()),
        ("CMKGUARD_REMEDIATE_ACCOUNTS", DEFAULT_ACCOUNT.to_owned()),
        ("CMKGUARD_SNS_TOPIC_ARN", topic.clone()),
    ];
    let mut command = Command::new("cargo");
    command
        .args([
            "lambda",
            "watch",
            "--package",
            "cmkguard-lambda",
            "--bin",
            "cmkguard-lambda",
        ])
        .args(["--invoke-address", "127.0.0.1", "--invoke-port"])
        .arg(port.to_string())
        .current_dir(workspace_root())
        .envs(moto.env())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // An env file, as `--env-var` splits values at commas (`tag,notify,remediate`).
    let env_file = dir.join("function.env");
    let lines: String = moto
        .env()
        .into_iter()
        .chain(function_env.map(|(n, v)| (n.to_owned(), v)))
        .map(|(name, value)| format!("{name}={value}\n"))
        .collect();
    std::fs::write(&env_file, lines).unwrap();
    command.arg("--env-file").arg(&env_file);
    let mut child = command
        .spawn()
        .expect("run `cargo lambda watch` (just lambda-tools installs it)");
    let log = std::sync::Arc::new(std::sync::Mutex::new(
        std::fs::File::create(&log_path).unwrap(),
    ));
    let copy = |stream: Box<dyn std::io::Read + Send>, to_stderr: bool| {
        let log = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = writeln!(log.lock().unwrap(), "{line}");
                if to_stderr {
                    eprintln!("{line}");
                } else {
                    println!("{line}");
                }
            }
        })
    };
    let out = copy(Box::new(child.stdout.take().unwrap()), false);
    let err = copy(Box::new(child.stderr.take().unwrap()), true);
    let status = child.wait().unwrap();
    let _ = (out.join(), err.join());
    drop(moto);
    std::process::exit(status.code().unwrap_or(1));
}

async fn invoke(event_path: &Path) {
    let dir = state_dir();
    let Ok(state) = std::fs::read_to_string(dir.join("watch.json")) else {
        eprintln!("no `just watch` is running here: start it first (in another terminal)");
        std::process::exit(2);
    };
    let state: Value = serde_json::from_str(&state).unwrap();
    let text = std::fs::read_to_string(event_path)
        .unwrap_or_else(|e| panic!("cannot read `{}`: {e}", event_path.display()));
    let mut event: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("`{}` is not JSON: {e}", event_path.display()));

    if let Some((named, name)) = secret_named_in(&event) {
        let arn = ensure_secret(state["endpoint"].as_str().unwrap(), &name).await;
        if named != arn && named.starts_with("arn:") {
            event = serde_json::from_str(&event.to_string().replace(&named, &arn)).unwrap();
        }
    }

    let log_path = PathBuf::from(state["log"].as_str().unwrap());
    let seen = std::fs::read_to_string(&log_path)
        .map(|t| t.len())
        .unwrap_or(0);
    let data = dir.join("event.json");
    std::fs::write(&data, event.to_string()).unwrap();
    let out = Command::new("cargo")
        .args([
            "lambda",
            "invoke",
            "cmkguard-lambda",
            "--invoke-address",
            "127.0.0.1",
        ])
        .arg("--invoke-port")
        .arg(state["port"].to_string())
        .arg("--data-file")
        .arg(&data)
        .args(["--output-format", "json"])
        .output()
        .expect("run `cargo lambda invoke`");
    println!("response: {}", String::from_utf8_lossy(&out.stdout).trim());
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    // The records reach the log as the function writes them: give it a moment.
    let until = Instant::now() + Duration::from_secs(2);
    let records = loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let records: Vec<String> = text
            .get(seen..)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v.get("verdict").is_some())
            .map(|v| serde_json::to_string_pretty(&v).unwrap())
            .collect();
        if !records.is_empty() || Instant::now() > until {
            break records;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    println!("audit records:");
    for record in records {
        println!("{record}");
    }
    std::process::exit(if out.status.success() { 0 } else { 1 });
}

/// The secret an event names (as the event says it, and its name), if any.
fn secret_named_in(event: &Value) -> Option<(String, String)> {
    let detail = &event["detail"];
    let arn = ["arn", "aRN"]
        .iter()
        .find_map(|k| detail["responseElements"][k].as_str());
    if let Some(arn) = arn {
        // `...:secret:NAME-XXXXXX`: AWS adds six random characters.
        let tail = arn.rsplit(":secret:").next()?;
        let name = tail.rsplit_once('-').map_or(tail, |(name, _)| name);
        return Some((arn.to_owned(), name.to_owned()));
    }
    ["secretId", "name"]
        .iter()
        .find_map(|k| detail["requestParameters"][k].as_str())
        .map(|id| (id.to_owned(), id.to_owned()))
}

/// The ARN of the secret `name` in moto, made on the default key when it does not exist.
async fn ensure_secret(endpoint: &str, name: &str) -> String {
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "local"))
        .build();
    let client = aws_sdk_secretsmanager::Client::from_conf(config);
    if let Ok(found) = client.describe_secret().secret_id(name).send().await {
        return found.arn().unwrap_or_default().to_owned();
    }
    let made = client
        .create_secret()
        .name(name)
        .secret_string("a local test value")
        .send()
        .await
        .unwrap_or_else(|e| panic!("create `{name}` in moto: {e:?}"));
    println!("made secret `{name}` on the default key in moto");
    made.arn().unwrap_or_default().to_owned()
}
