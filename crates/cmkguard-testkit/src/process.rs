//! Child processes with their output in files (a pipe nobody reads would stall them): the
//! built Lambda binary under a Runtime API emulator (this crate's or cargo-lambda's), and
//! `cargo lambda watch`; and the fixture events pointed at a secret a test made.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A child process (the function, or `cargo lambda watch`); killed when dropped.
pub struct Process {
    child: Child,
    dir: tempfile::TempDir,
}

impl Process {
    /// Starts the function `binary` with only `env` in its environment (say moto's, the Runtime
    /// API's and the function's own variables).
    pub fn function<K, V>(binary: &Path, env: impl IntoIterator<Item = (K, V)>) -> Process
    where
        K: AsRef<std::ffi::OsStr>,
        V: AsRef<std::ffi::OsStr>,
    {
        Process::spawn(Command::new(binary).env_clear().envs(env))
    }

    /// Starts `command` with its output going to files.
    pub fn spawn(command: &mut Command) -> Process {
        let dir = tempfile::tempdir().expect("a temporary folder for the output");
        let file = |name: &str| {
            Stdio::from(std::fs::File::create(dir.path().join(name)).expect("an output file"))
        };
        let child = command
            .stdout(file("stdout"))
            .stderr(file("stderr"))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
        Process { child, dir }
    }

    /// What the function wrote so far: (stdout, stderr).
    pub fn output(&self) -> (String, String) {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        (read("stdout"), read("stderr"))
    }

    /// Stops the function; returns what it wrote: (stdout, stderr).
    pub fn stop(mut self) -> (String, String) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.output()
    }

    /// Waits at most `timeout` for the function to exit by itself.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `command` to its end with `input` on its standard input; its output is captured. A child
/// that stops reading early (unreadable input) may close its standard input first: not an error.
/// A binary of this workspace built next to the running example: `target/<profile>/examples/x`
/// -> `target/<profile>/NAME` (built by `cargo build --bins --examples`, as the recipes do).
pub fn sibling_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the running program's path");
    exe.parent()
        .and_then(|examples| examples.parent())
        .expect("an example runs from target/<profile>/examples")
        .join(name)
}

pub fn run_with_input(command: &mut Command, input: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    let mut stdin = child.stdin.take().expect("a piped standard input");
    // Written from a thread of its own: a child that answers before reading all of it must not
    // leave both sides waiting on full pipes.
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait for {command:?}: {e}"));
    let _ = writer.join();
    output
}

/// The audit records among a function's or the CLI's output lines (log lines that are not
/// records carry no `verdict`).
pub fn audit_records(output: &str) -> Vec<Value> {
    output
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("verdict").is_some())
        .collect()
}

/// The fixture `testdata/events/<file>` with its secret ARN replaced by `arn`.
pub fn event_for(file: &str, arn: &str) -> Value {
    let path = crate::workspace_root().join("testdata/events").join(file);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read `{}`: {e}", path.display()));
    let fixture: Value = serde_json::from_str(&text).expect("a fixture is JSON");
    let fixture_arn = fixture["detail"]["responseElements"]["arn"]
        .as_str()
        .or(fixture["detail"]["additionalEventData"]["SecretId"].as_str())
        .expect("the fixture names its secret in `responseElements.arn` (or `additionalEventData.SecretId`)");
    serde_json::from_str(&text.replace(fixture_arn, arn)).expect("still JSON")
}

/// The key the key-event fixtures (`DisableKey-*.json`, ...) name, in account `123456789012`.
pub const FIXTURE_KEY_ARN: &str =
    "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";

/// The key-event fixture `file` about `key_arn` (its ARN and bare id replace the fixture's) in
/// `account`.
pub fn key_event_for(file: &str, key_arn: &str, account: &str) -> Value {
    let path = crate::workspace_root().join("testdata/events").join(file);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read `{}`: {e}", path.display()));
    let fixture_id = FIXTURE_KEY_ARN.rsplit('/').next().unwrap_or_default();
    let key_id = key_arn.rsplit('/').next().unwrap_or_default();
    let text = text
        .replace(FIXTURE_KEY_ARN, key_arn)
        .replace(fixture_id, key_id)
        .replace("123456789012", account);
    serde_json::from_str(&text).expect("still JSON")
}
