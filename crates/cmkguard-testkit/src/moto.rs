//! A moto server (the local AWS emulator) of one test's own, on a free loopback port.

use std::fs::{self, File};
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sts::config::Credentials;
use serde_json::{Value, json};

use crate::http;

/// The moto release the harness installs and that `shared/MOTO.md` was measured with.
pub const MOTO_REQUIREMENT: &str = "moto[server]==5.2.5";

/// The account moto acts in for the static test credentials.
pub const DEFAULT_ACCOUNT: &str = "123456789012";

/// Role assumed by [`Moto::sdk_config_for_account`] (moto accepts it without it existing).
pub const TEST_ROLE_NAME: &str = "cmkguard-test";

/// Environment variable naming a `moto_server` to use instead of `<workspace>/.venv`.
pub const MOTO_SERVER_ENV: &str = "CMKGUARD_MOTO_SERVER";

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const PORT_ATTEMPTS: usize = 5;
const TEST_SECRET: &str = "testing";

/// Runs `moto` with the interpreter's own watchdog: the server exits as soon as its stdin reaches
/// end of file, so a test process that dies without dropping its `Moto` (killed, or holding it in a
/// `static`) leaves no server behind.
const WATCHDOG_LAUNCHER: &str = "\
import os, sys, threading
def _watch():
    sys.stdin.buffer.read()
    os._exit(0)
threading.Thread(target=_watch, daemon=True).start()
from moto.server import main
main(sys.argv[1:])
";

/// A moto server started for one test, stopped (killed and reaped) on drop.
///
/// ```no_run
/// # async fn demo() {
/// let moto = cmkguard_testkit::Moto::start();
/// let config = moto.sdk_config("us-east-1").await;
/// let kms = aws_sdk_kms::Client::new(&config);
/// # let _ = kms;
/// # }
/// ```
// Long: the moto server and the worlds the tests build in it (keys, secrets, versions, topics).
#[derive(Debug)]
pub struct Moto {
    child: Child,
    // Held only so that moto's stdin stays open: closing it stops the server.
    _stdin: Option<ChildStdin>,
    port: u16,
    dir: PathBuf,
}

impl Moto {
    /// Starts a moto server on a free loopback port and waits until it answers.
    ///
    /// Installs moto into `<workspace>/.venv` first when it is missing (once, under a file lock).
    /// Panics, with moto's log, when the server cannot be started.
    pub fn start() -> Moto {
        let binary = moto_server_binary();
        let dir = fresh_temp_dir();
        for name in ["aws-config", "aws-credentials"] {
            File::create(dir.join(name)).expect("create an empty AWS profile file");
        }
        let mut failures = Vec::new();
        for _ in 0..PORT_ATTEMPTS {
            match try_start(&binary, &dir) {
                Ok((child, stdin, port)) => {
                    return Moto {
                        child,
                        _stdin: stdin,
                        port,
                        dir,
                    };
                }
                Err(failure) => failures.push(failure),
            }
        }
        let log = fs::read_to_string(dir.join("moto.log")).unwrap_or_default();
        let _ = fs::remove_dir_all(&dir);
        panic!(
            "could not start `{}` after {PORT_ATTEMPTS} attempts: {}\n--- moto log ---\n{log}",
            binary.display(),
            failures.join("; "),
        );
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Environment for a child process (a cmkguard binary) to reach this moto with test
    /// credentials in `us-east-1`, ignoring the host's AWS profile files and instance metadata.
    pub fn env(&self) -> Vec<(String, String)> {
        local_env(self.endpoint(), &test_credentials(), &self.dir)
    }

    /// SDK configuration for this moto in `region`, acting in [`DEFAULT_ACCOUNT`]. Reads neither
    /// the environment nor the profile files.
    pub async fn sdk_config(&self, region: &str) -> SdkConfig {
        self.load_config(test_credentials(), region).await
    }

    /// SDK configuration acting in `account` (moto partitions data per account): credentials from
    /// STS AssumeRole of `arn:aws:iam::{account}:role/cmkguard-test` on this moto.
    pub async fn sdk_config_for_account(&self, account: &str, region: &str) -> SdkConfig {
        let base = self.sdk_config(region).await;
        let assumed = aws_sdk_sts::Client::new(&base)
            .assume_role()
            .role_arn(format!("arn:aws:iam::{account}:role/{TEST_ROLE_NAME}"))
            .role_session_name("cmkguard-testkit")
            .send()
            .await
            .unwrap_or_else(|e| panic!("assume a role in account `{account}` on moto: {e:?}"));
        let c = assumed
            .credentials()
            .expect("moto's AssumeRole answer has credentials");
        let credentials = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_owned()),
            None,
            "cmkguard-testkit-assume-role",
        );
        self.load_config(credentials, region).await
    }

    async fn load_config(&self, credentials: Credentials, region: &str) -> SdkConfig {
        local_sdk_config(&self.endpoint(), credentials, region).await
    }

    /// Clears every resource in every account and region (`POST /moto-api/reset`).
    pub fn reset(&self) {
        let url = format!("{}/moto-api/reset", self.endpoint());
        let response = http::post(&url, b"").expect("POST /moto-api/reset");
        assert_eq!(
            response.status,
            200,
            "moto reset failed: {}",
            response.text()
        );
    }

    /// Every SNS message moto recorded, in all accounts and regions: per topic, in publishing
    /// order (topics in moto's order, so not one global order).
    ///
    /// Each is `{"topic_arn", "account_id", "region", "message_id", "message", "subject",
    /// "message_attributes", "group_id"}`; `message_attributes` maps a name to
    /// `{"Type": "String", "Value": "..."}`, and `subject`/`group_id` may be null. `message` is
    /// as published: with `MessageStructure=json`, the JSON object of the bodies per protocol.
    pub fn sns_messages(&self) -> Vec<Value> {
        let data = self.data();
        let topics = data["sns"]["Topic"].as_array().cloned().unwrap_or_default();
        let mut messages = Vec::new();
        for topic in &topics {
            let arn = topic["arn"].as_str().unwrap_or_default();
            let region = arn.split(':').nth(3).unwrap_or_default();
            let sent = topic["sent_notifications"].as_array();
            // moto 5 keeps each as (message_id, message, subject, message_attributes, group_id).
            for n in sent.into_iter().flatten() {
                messages.push(json!({
                    "topic_arn": arn,
                    "account_id": topic["account_id"],
                    "region": region,
                    "message_id": n[0],
                    "message": n[1],
                    "subject": n[2],
                    "message_attributes": if n[3].is_null() { json!({}) } else { n[3].clone() },
                    "group_id": n[4],
                }));
            }
        }
        messages
    }

    /// moto's whole internal state (`GET /moto-api/data.json`); its shape is moto's, per version.
    pub fn data(&self) -> Value {
        let url = format!("{}/moto-api/data.json", self.endpoint());
        let response = http::get(&url).expect("GET /moto-api/data.json");
        assert_eq!(response.status, 200, "moto data.json: {}", response.text());
        response.json().expect("moto's data.json is JSON")
    }

    /// What moto has written to its log so far (its request lines, errors).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("moto.log")).unwrap_or_default()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// One attempt at a free port: the child, its stdin (the watchdog's pipe) and the port.
fn try_start(binary: &Path, dir: &Path) -> Result<(Child, Option<ChildStdin>, u16), String> {
    let port = free_port();
    let log = File::options()
        .create(true)
        .append(true)
        .open(dir.join("moto.log"))
        .map_err(|e| format!("open moto's log: {e}"))?;
    let log_err = log.try_clone().map_err(|e| e.to_string())?;
    let args = [
        "-H".to_owned(),
        "127.0.0.1".to_owned(),
        "-p".to_owned(),
        port.to_string(),
    ];
    let mut command = match python_of(binary) {
        Some(python) => {
            let mut c = Command::new(python);
            c.arg("-c").arg(WATCHDOG_LAUNCHER).stdin(Stdio::piped());
            c
        }
        None => {
            let mut c = Command::new(binary);
            c.stdin(Stdio::null());
            c
        }
    };
    command
        .args(&args)
        .stdout(log)
        .stderr(log_err)
        // moto runs boto3 inside: keep a host endpoint or profile from leaking into it.
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_PROFILE");
    let mut child = command
        .spawn()
        .map_err(|e| format!("spawn `{}`: {e}", binary.display()))?;
    let stdin = child.stdin.take();

    let deadline = Instant::now() + READY_TIMEOUT;
    let probe = format!("http://127.0.0.1:{port}/moto-api/config");
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("moto on port {port} exited ({status})"));
        }
        let answered = http::request_with_timeout("GET", &probe, &[], &[], Duration::from_secs(2))
            .is_ok_and(|r| r.status < 500);
        // Whoever answers may be another program on that port: it is ours only once our child
        // holds the listening socket.
        if answered && listens_on(child.id(), port) {
            return Ok((child, stdin, port));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "moto on port {port} not ready after {READY_TIMEOUT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind a free loopback port")
        .port()
}

/// Whether process `pid` holds a socket listening on TCP `port` (Linux: from `/proc`).
#[cfg(target_os = "linux")]
fn listens_on(pid: u32, port: u16) -> bool {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if *state == "0A" && local_port == Some(port) {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        fs::read_link(fd.path())
            .is_ok_and(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
    })
}

/// Elsewhere the best check is that the child is still running, which the caller does.
#[cfg(not(target_os = "linux"))]
fn listens_on(_pid: u32, _port: u16) -> bool {
    true
}

/// The Python interpreter named by the `#!` line of a `moto_server` script, when it names one
/// directly (a venv's does); `None` means run the binary as it is.
fn python_of(binary: &Path) -> Option<PathBuf> {
    let text = fs::read(binary).ok()?;
    let first_line = text.split(|b| *b == b'\n').next()?;
    let first_line = std::str::from_utf8(first_line).ok()?;
    let interpreter = first_line.strip_prefix("#!")?.trim();
    let file_name = Path::new(interpreter).file_name()?.to_str()?;
    let is_python = file_name.starts_with("python") && !interpreter.contains(char::is_whitespace);
    (is_python && Path::new(interpreter).is_file()).then(|| PathBuf::from(interpreter))
}

/// The workspace root: this crate lives in `<root>/crates/cmkguard-testkit`.
pub fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The `moto_server` to run: `$CMKGUARD_MOTO_SERVER`, else `<workspace>/.venv/bin/moto_server`,
/// installed there on first use (`python3 -m venv` and `pip install 'moto[server]==5.2.5'`,
/// serialized across processes by a lock file in the venv).
pub fn moto_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os(MOTO_SERVER_ENV) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "`{MOTO_SERVER_ENV}` names `{}`, which is not a file",
            path.display()
        );
        return path;
    }
    ensure_installed(&workspace_root().join(".venv"))
}

/// `<venv>/bin/moto_server`, installing moto into `venv` first when it is missing.
fn ensure_installed(venv: &Path) -> PathBuf {
    ensure_pip_tool(venv, "moto_server", MOTO_REQUIREMENT)
}

/// The cargo-lambda release (the PyPI package) the justfile pins for `just watch`/`just invoke`.
pub const CARGO_LAMBDA_REQUIREMENT: &str = "cargo-lambda==1.9.2";

/// `<workspace>/.venv-lambda/bin/cargo-lambda`, installed there on first use (as `just watch`
/// does), so the test of cargo-lambda's emulator runs on a fresh machine too.
pub fn cargo_lambda_binary() -> PathBuf {
    ensure_pip_tool(
        &workspace_root().join(".venv-lambda"),
        "cargo-lambda",
        CARGO_LAMBDA_REQUIREMENT,
    )
}

/// `<venv>/bin/<script>`, from `pip install <requirement>` into `venv` when it is missing
/// (serialized across processes by a lock file in the venv).
fn ensure_pip_tool(venv: &Path, script: &str, requirement: &str) -> PathBuf {
    let binary = venv.join("bin").join(script);
    if binary.is_file() {
        return binary;
    }
    fs::create_dir_all(venv).expect("create the venv directory");
    let lock = File::create(venv.join(".cmkguard-install.lock")).expect("create the install lock");
    lock.lock().expect("lock the install");
    // Another process may have installed it while this one waited for the lock. pip installs
    // the package (and so its script) after all its dependencies: the script's presence means a
    // complete install.
    if !binary.is_file() {
        pip_install(venv, requirement);
    }
    drop(lock);
    assert!(
        binary.is_file(),
        "installing {requirement} did not create `{}`",
        binary.display()
    );
    binary
}

fn pip_install(venv: &Path, requirement: &str) {
    let log_path = venv.join("cmkguard-install.log");
    eprintln!(
        "cmkguard-testkit: installing {requirement} into {} (once; log in {})",
        venv.display(),
        log_path.display()
    );
    let started = Instant::now();
    let log = File::create(&log_path).expect("create the install log");
    let run = |command: &mut Command| {
        let log = log.try_clone().expect("clone the install log handle");
        let log_err = log.try_clone().expect("clone the install log handle");
        let status = command
            .stdout(log)
            .stderr(log_err)
            .status()
            .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
        if !status.success() {
            let text = fs::read_to_string(&log_path).unwrap_or_default();
            panic!("{command:?} failed ({status})\n--- install log ---\n{text}");
        }
    };
    if !venv.join("bin").join("pip").is_file() {
        run(Command::new("python3").arg("-m").arg("venv").arg(venv));
    }
    run(Command::new(venv.join("bin").join("pip"))
        .args(["install", "--disable-pip-version-check", "--quiet"])
        .arg(requirement));
    let mut log = log;
    let _ = writeln!(log, "installed in {:?}", started.elapsed());
    eprintln!(
        "cmkguard-testkit: installed {requirement} in {:.0?}",
        started.elapsed()
    );
}

/// A new, empty directory under the system temp dir, unique to this process and call.
fn fresh_temp_dir() -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir =
        std::env::temp_dir().join(format!("cmkguard-moto-{}-{n}-{nanos}", std::process::id()));
    fs::create_dir_all(&dir).expect("create a temp dir for moto");
    dir
}

/// The credentials moto's default account takes.
fn test_credentials() -> Credentials {
    let token = Some(TEST_SECRET.to_owned());
    Credentials::new(TEST_SECRET, TEST_SECRET, token, None, "cmkguard-testkit")
}

/// Environment for a child process (a cmkguard binary) to reach `endpoint` with `credentials` in
/// `us-east-1`, reading the profile files in `profile` (empty ones, so not the host's) and no
/// instance metadata.
pub(crate) fn local_env(
    endpoint: String,
    credentials: &Credentials,
    profile: &Path,
) -> Vec<(String, String)> {
    let path = |name: &str| profile.join(name).display().to_string();
    let mut env = vec![
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", credentials.access_key_id().to_owned()),
        (
            "AWS_SECRET_ACCESS_KEY",
            credentials.secret_access_key().to_owned(),
        ),
    ];
    if let Some(token) = credentials.session_token() {
        env.push(("AWS_SESSION_TOKEN", token.to_owned()));
    }
    env.extend([
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("AWS_CONFIG_FILE", path("aws-config")),
        ("AWS_SHARED_CREDENTIALS_FILE", path("aws-credentials")),
    ]);
    env.into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

/// SDK configuration for a local AWS stand-in (moto, the testkit's [`crate::standin`]) at
/// `endpoint` in `region` with `credentials`: reads neither the environment nor the profile files.
pub(crate) async fn local_sdk_config(
    endpoint: &str,
    credentials: Credentials,
    region: &str,
) -> SdkConfig {
    // The replacement (`aws_runtime::env_config::file`) is not a dependency of this crate.
    #[allow(deprecated)]
    let no_profile = aws_config::profile::profile_file::ProfileFiles::builder()
        .with_contents(
            aws_config::profile::profile_file::ProfileFileKind::Config,
            "",
        )
        .build();
    aws_config::defaults(BehaviorVersion::latest())
        .empty_test_environment()
        .profile_files(no_profile)
        .credentials_provider(credentials)
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .load()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real `pip install` from PyPI into a temporary venv (about a minute, alongside the
    /// other tests), as `just test` does on a fresh machine.
    #[test]
    fn installs_once_when_several_ask_at_the_same_time() {
        let dir = fresh_temp_dir();
        let venv = dir.join(".venv");
        let installers: Vec<_> = (0..3)
            .map(|_| {
                let venv = venv.clone();
                std::thread::spawn(move || ensure_installed(&venv))
            })
            .collect();
        let binaries: Vec<PathBuf> = installers.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(binaries.iter().all(|b| *b == venv.join("bin/moto_server")));
        assert!(
            python_of(&binaries[0]).is_some(),
            "a venv script names its python"
        );
        let log = fs::read_to_string(venv.join("cmkguard-install.log")).unwrap();
        assert_eq!(log.matches("installed in").count(), 1, "{log}");
        let _ = fs::remove_dir_all(&dir);
    }

    /// The justfile installs the same pins for `just demo`/`just watch` as the harness does.
    #[test]
    fn the_justfile_pins_what_the_harness_installs() {
        let justfile = fs::read_to_string(workspace_root().join("justfile")).unwrap();
        for pin in [MOTO_REQUIREMENT, CARGO_LAMBDA_REQUIREMENT] {
            assert!(
                justfile.contains(&format!("\"{pin}\"")),
                "the justfile lacks `{pin}`"
            );
        }
    }

    #[test]
    fn finds_the_python_of_a_venv_script_only() {
        let dir = fresh_temp_dir();
        let python = dir.join("python3.11");
        fs::write(&python, "").unwrap();
        let script = |name: &str, contents: &[u8]| {
            let path = dir.join(name);
            fs::write(&path, contents).unwrap();
            path
        };
        let venv_script = script(
            "venv",
            format!("#!{}\nimport sys\n", python.display()).as_bytes(),
        );
        assert_eq!(python_of(&venv_script), Some(python.clone()));
        let env_script = script("env", b"#!/usr/bin/env python3\n");
        assert_eq!(python_of(&env_script), None);
        let not_python = script("sh", b"#!/bin/sh\n");
        assert_eq!(python_of(&not_python), None);
        let missing = script(
            "gone",
            format!("#!{}/python3\n", dir.join("nowhere").display()).as_bytes(),
        );
        assert_eq!(python_of(&missing), None);
        let elf = script("elf", &[0x7f, b'E', b'L', b'F']);
        assert_eq!(python_of(&elf), None);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn listens_on_tells_whose_socket_it_is() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(listens_on(std::process::id(), port));
        let mut other = Command::new("sleep").arg("5").spawn().unwrap();
        assert!(!listens_on(other.id(), port));
        drop(listener);
        assert!(!listens_on(std::process::id(), port));
        let _ = other.kill();
        let _ = other.wait();
    }

    #[test]
    fn moto_exits_when_its_stdin_closes() {
        let mut moto = Moto::start();
        assert!(
            moto._stdin.is_some(),
            "the venv's moto runs under the watchdog"
        );
        drop(moto._stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while moto.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "moto outlived its stdin");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
