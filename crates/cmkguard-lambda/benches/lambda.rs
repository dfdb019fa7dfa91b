//! `just bench`: the Lambda's performance budget, each figure beside a baseline measured in the
//! same run. Prints figures; asserts nothing about time (timings are not tests).
//!
//! - init: exec to the first Runtime API `next`, against a bare `lambda_runtime` hello-world
//!   (same profile) and against importing Cloud Custodian's Lambda handler (`c7n`, pinned);
//! - AWS requests per event, counted at a proxy in front of moto, cold and warm;
//! - handling time per event (from the function's EMF lines), cold and warm;
//! - peak RSS over 1,000 events;
//! - the size of the deployable arm64 zip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // a benchmark: fail loudly, print freely

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cmkguard_testkit::world::SecretSpec;
use cmkguard_testkit::{FaultProxy, Moto, RuntimeApi, workspace_root};
use serde_json::Value;

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";
const INIT_RUNS: usize = 25;

struct Function {
    child: Child,
    dir: PathBuf,
}

impl Function {
    fn start(
        binary: &Path,
        api: &RuntimeApi,
        aws: Option<Vec<(String, String)>>,
        env: &[(&str, &str)],
    ) -> Function {
        let dir = std::env::temp_dir().join(format!(
            "cmkguard-bench-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut command = Command::new(binary);
        command
            .env_clear()
            .envs(api.env())
            .env("AWS_REGION", REGION);
        if let Some(aws) = aws {
            command.envs(aws);
        }
        let child = command
            .envs(env.iter().copied())
            .stdout(Stdio::from(
                std::fs::File::create(dir.join("stdout")).unwrap(),
            ))
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("stderr")).unwrap(),
            ))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
        Function { child, dir }
    }

    /// Peak resident set size so far (VmHWM), in KiB.
    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdout")).unwrap_or_default()
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Exec to the first `next` request, median of [`INIT_RUNS`] runs.
fn init_time(binary: &Path) -> Duration {
    let runs = (0..INIT_RUNS)
        .map(|_| {
            let api = RuntimeApi::start(vec![]);
            let spawned = Instant::now();
            let function = Function::start(binary, &api, None, &[]);
            let deadline = Instant::now() + Duration::from_secs(10);
            while api.first_next_at().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_micros(200));
            }
            let first = api
                .first_next_at()
                .unwrap_or_else(|| panic!("{} never asked for an event", binary.display()));
            drop(function);
            first.saturating_duration_since(spawned)
        })
        .collect();
    median(runs)
}

/// Interpreter start plus importing Cloud Custodian's Lambda handler, median of runs.
fn custodian_init_time(python: &Path) -> Option<Duration> {
    if !python.exists() {
        return None;
    }
    let runs = (0..INIT_RUNS / 5)
        .map(|_| {
            let started = Instant::now();
            let status = Command::new(python)
                .args(["-c", "import c7n.handler"])
                .status()
                .ok()?;
            status.success().then(|| started.elapsed())
        })
        .collect::<Option<Vec<_>>>()?;
    Some(median(runs))
}

fn requests(proxy: &FaultProxy) -> usize {
    proxy.counts().values().sum()
}

fn event_for(arn: &str, id: usize) -> Value {
    let path = workspace_root().join("testdata/events/UpdateSecret-value-only.json");
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    event["detail"]["responseElements"]["arn"] = arn.into();
    event["detail"]["requestParameters"]["secretId"] = arn.into();
    event["detail"]["eventID"] = format!("bench-{id}").into();
    event
}

/// Runs `events` through one process; for each, the AWS requests it cost (counted at a proxy in
/// front of moto) and its handling time.
fn per_event(
    moto: &Moto,
    binary: &Path,
    events: &[Value],
    env: &[(&str, &str)],
) -> Vec<(usize, f64)> {
    let proxy = FaultProxy::start(&moto.endpoint());
    let api = RuntimeApi::start(vec![]);
    let function = Function::start(binary, &api, Some(proxy.env(moto.env())), env);
    let mut costs = Vec::new();
    for (i, event) in events.iter().enumerate() {
        let before = requests(&proxy);
        api.push_event(event.clone());
        let done = api.wait_for(i + 1, Duration::from_secs(30));
        assert_eq!(
            done.len(),
            i + 1,
            "event {i} not handled: {}",
            function.stdout()
        );
        proxy.wait_idle(Duration::from_secs(5));
        costs.push((requests(&proxy) - before, 0.0));
    }
    let times: Vec<f64> = function
        .stdout()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["handling_time"].as_f64())
        .collect();
    for (cost, time) in costs.iter_mut().zip(times) {
        cost.1 = time;
    }
    costs
}

#[tokio::main]
async fn main() {
    let guard = PathBuf::from(env!("CARGO_BIN_EXE_cmkguard-lambda"));
    let hello = guard.parent().unwrap().join("examples/hello");
    assert!(
        hello.exists(),
        "build the floor first: cargo build --release -p cmkguard-lambda --example hello"
    );
    let custodian = workspace_root().join(".venv-c7n/bin/python");

    println!("cmkguard-lambda benchmark ({})", guard.display());
    println!();
    println!("== init: exec to the first Runtime API `next` (median of {INIT_RUNS})");
    let floor = init_time(&hello);
    let ours = init_time(&guard);
    println!("   hello-world (floor)          {:>8.2} ms", ms(floor));
    println!(
        "   cmkguard-lambda              {:>8.2} ms   {:.2}x the floor (target <= 1.2x)",
        ms(ours),
        ms(ours) / ms(floor)
    );
    match custodian_init_time(&custodian) {
        Some(c7n) => println!(
            "   c7n handler import (peer)    {:>8.2} ms   cmkguard is {:.0}x faster",
            ms(c7n),
            ms(c7n) / ms(ours)
        ),
        None => println!("   c7n handler import (peer)    not measured: run `just c7n-venv` first"),
    }

    let moto = Moto::start();
    let keys = moto.make_keys(ACCOUNT, REGION, true).await;
    let make = |name: &str, key: &str| {
        let spec = SecretSpec {
            name: name.into(),
            account: ACCOUNT.into(),
            region: REGION.into(),
            key: key.into(),
            ..Default::default()
        };
        let moto = &moto;
        let keys = keys.clone();
        async move { moto.make_secret(&spec, &keys).await.arn }
    };
    let cmk_a = make("bench/cmk-a", "cmk").await;
    let cmk_b = make("bench/cmk-b", "cmk").await;
    let default_a = make("bench/default-a", "default").await;
    let default_b = make("bench/default-b", "default").await;
    let remediate_a = make("bench/remediate-a", "default").await;
    let remediate_b = make("bench/remediate-b", "default").await;

    println!();
    println!("== AWS requests and handling time per event (moto on loopback)");
    let tag = [("CMKGUARD_ACTIONS", "tag")];
    let compliant = per_event(
        &moto,
        &guard,
        &[event_for(&cmk_a, 1), event_for(&cmk_b, 2)],
        &tag,
    );
    let default = per_event(
        &moto,
        &guard,
        &[event_for(&default_a, 3), event_for(&default_b, 4)],
        &tag,
    );
    let remediate_env = [
        ("CMKGUARD_ACTIONS", "tag,remediate"),
        ("CMKGUARD_REMEDIATE_ACCOUNTS", ACCOUNT),
    ];
    let remediation = per_event(
        &moto,
        &guard,
        &[event_for(&remediate_a, 5), event_for(&remediate_b, 6)],
        &remediate_env,
    );
    println!(
        "   {:<34} {:>9} {:>9} {:>11} {:>11}",
        "event", "req cold", "req warm", "ms cold", "ms warm"
    );
    for (name, costs, target) in [
        (
            "compliant, customer managed key",
            &compliant,
            "target: 2 cold, 1 warm",
        ),
        (
            "default key (tagged)",
            &default,
            "no DescribeKey: 1 + TagResource",
        ),
        (
            "remediation (tag,remediate)",
            &remediation,
            "describe, alias, intent, update, verify, mark",
        ),
    ] {
        println!(
            "   {:<34} {:>9} {:>9} {:>11.2} {:>11.2}   {target}",
            name, costs[0].0, costs[1].0, costs[0].1, costs[1].1
        );
    }

    println!();
    println!("== peak RSS over 1,000 events");
    let api = RuntimeApi::start(vec![]);
    let function = Function::start(&guard, &api, Some(moto.env()), &tag);
    let arns = [&cmk_a, &cmk_b, &default_a, &default_b];
    for i in 0..1000 {
        api.push_event(event_for(arns[i % arns.len()], 100 + i));
    }
    let started = Instant::now();
    let done = api.wait_for(1000, Duration::from_secs(300));
    let elapsed = started.elapsed();
    let rss = function.peak_rss_kib();
    println!(
        "   {} events in {:.2} s ({:.2} ms/event); peak RSS {:.1} MiB (target < 16 MB)",
        done.len(),
        elapsed.as_secs_f64(),
        ms(elapsed) / done.len() as f64,
        rss as f64 / 1024.0
    );
    drop(function);

    println!();
    println!("== deployable zip");
    let zip = workspace_root().join("target/lambda/cmkguard-lambda/bootstrap.zip");
    match std::fs::metadata(&zip) {
        Ok(meta) => println!(
            "   {} : {:.2} MiB (target < 4 MB)",
            zip.display(),
            meta.len() as f64 / 1024.0 / 1024.0
        ),
        Err(_) => println!("   {} is missing: run `just package` first", zip.display()),
    }
}
