//! `just bench-org`: cmkguard at organization scale, against the testkit's AWS stand-in (moto
//! answers ~150 requests/s; the stand-in answers as fast as hyper, after a chosen delay that plays
//! AWS's round trip).
//!
//! - Audit: `cmkguard audit --organization --all-regions` over N member accounts x 17 regions:
//!   wall time against the critical path (the sequential `ListAccounts` pages, then one account's
//!   chain), peak RSS, requests per operation against the floor, peak requests in flight.
//! - Warm Lambda: one process under the Runtime API emulator, a `CreateSecret` event from each of
//!   1,000 member accounts in turn: peak RSS after 20 accounts and after all, `AssumeRole` per
//!   account; then the requests per event about a compliant secret in its own account.
//!
//! The binaries come from `ORG_CMKGUARD` and `ORG_LAMBDA`, each a comma list of `label=path` (or
//! paths), so one run can measure a baseline and a new build side by side. Other knobs:
//! `ORG_ACCOUNTS` (member accounts, comma list, default `1000,5000`), `ORG_DELAY_MS` (per answer,
//! default 100), `ORG_SECRETS` (per account-region, default 3), `ORG_STS_RATE` (`RATE` or
//! `RATE:BURST`, AssumeRole per second; default unlimited), `ORG_CONCURRENCY` (passed to the audit
//! as `--concurrency`), `ORG_LAMBDA_ACCOUNTS` (default 1000), `ORG_LAMBDA_DELAY_MS` (default 0),
//! `ORG_SECTIONS` (`audit,lambda`), `ORG_CHECK_VERSIONS` (`true`: the audit runs with
//! `--check-versions`; its floor adds one `ListSecretVersionIds` per secret on the customer
//! managed key, and the stand-in's moves by others must all be found), `ORG_MAX_RSS_MIB` (an audit past it is killed and reported;
//! default three quarters of the memory available at start), `ORG_FORMATS` (the audit's
//! `--format`s, comma list of `json`, `html`, `markdown`; default `json`). With `html`, the rows
//! counted are the report's finding rows (one per account-region: secret 0 is on the default
//! key), so raising `ORG_SECRETS` adds compliant secrets only, which the report counts, not keeps.
//! `ORG_REPORT_DIR`: where the last HTML report is written (`report.html`), for
//! `just bench-report`, which opens it in the browser.
//!
//! Asserts nothing about time; it checks exit codes and record counts (after printing).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // a benchmark: fail loudly, print freely

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use cmkguard_testkit::standin::{MANAGEMENT_ACCOUNT, MOVED_BY_OTHERS, REGIONS};
use cmkguard_testkit::{Outcome, RuntimeApi, Standin, event_for, workspace_root};
use serde_json::Value;

const ROLE: &str = "cmkguard-member";
const REGION: &str = "us-east-1";
/// The account the fixture events name, replaced by each event's own.
const FIXTURE_ACCOUNT: &str = "123456789012";
const RSS_EARLY_ACCOUNTS: usize = 20;
const WARM_EVENTS: usize = 10;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn number(name: &str, default: usize) -> usize {
    var(name).map_or(default, |v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("`{name}`: `{v}` is not a number"))
    })
}

fn numbers(name: &str, default: &str) -> Vec<usize> {
    var(name)
        .unwrap_or_else(|| default.to_owned())
        .split(',')
        .map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|_| panic!("`{name}`: `{v}` is not a number"))
        })
        .collect()
}

/// `label=path` items (a bare path is its own label), else the release binary `name`.
fn binaries(variable: &str, name: &str) -> Vec<(String, PathBuf)> {
    let Some(list) = var(variable) else {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("target"));
        let path = target.join("release").join(name);
        return vec![(format!("release/{name}"), path)];
    };
    list.split(',')
        .map(|item| match item.split_once('=') {
            Some((label, path)) => (label.trim().to_owned(), PathBuf::from(path.trim())),
            None => (item.trim().to_owned(), PathBuf::from(item.trim())),
        })
        .inspect(|(_, path)| {
            assert!(
                path.is_file(),
                "`{variable}`: no binary at {} (`just bench-org` builds the release ones)",
                path.display()
            );
        })
        .collect()
}

/// Peak resident set size of `pid` so far (`VmHWM`), in KiB; `None` once it has exited.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Three quarters of the memory available now (`MemAvailable`), so that an audit that grows without
/// bound is stopped before the kernel's OOM killer picks a process, maybe another one.
fn default_max_rss_kib() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let available: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(8 * 1024 * 1024);
    available / 4 * 3
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn secs(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64())
}

/// Left-aligned columns two spaces apart, as the CLI prints its tables.
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut table = comfy_table::Table::new();
    table
        .load_style(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
        .set_header(header.to_vec())
        .add_rows(rows.to_vec());
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    for line in table.lines() {
        println!("  {}", line.trim_end());
    }
}

struct Options {
    delay: Duration,
    secrets: usize,
    sts_rate: Option<(f64, f64)>,
    concurrency: Option<String>,
    formats: Vec<String>,
    /// `ORG_CHECK_VERSIONS=true`: the audit runs with `--check-versions`.
    check_versions: bool,
    report_dir: Option<PathBuf>,
    /// An audit whose peak RSS passes this is killed, before it takes the machine with it.
    max_rss_kib: u64,
}

impl Options {
    fn standin(&self, members: usize, delay: Duration) -> Standin {
        let mut builder = Standin::builder()
            .members(members)
            .secrets_per_region(self.secrets)
            .delay(delay);
        if let Some((rate, burst)) = self.sts_rate {
            builder = builder.sts_rate_limit(rate, burst);
        }
        builder.start()
    }
}

/// One audit run, as the process saw it.
struct AuditRun {
    wall: Duration,
    peak_rss_kib: u64,
    status: ExitStatus,
    /// Killed for passing [`Options::max_rss_kib`].
    killed: bool,
    /// JSON records, or the HTML report's finding rows, or Markdown lines.
    records: usize,
    /// What the audit wrote to standard output.
    bytes: usize,
    /// Records (or report rows) that say `previous-key-decrypts`.
    previous_key_decrypts: usize,
    stderr: String,
    counts: BTreeMap<String, usize>,
    total: usize,
    peak_in_flight: usize,
    throttled: usize,
}

/// Runs the audit to its end: its records are counted as they stream (not kept), its peak RSS
/// read from `/proc` every 10 ms while it runs (the high-water mark only grows; what it gains
/// in its last 10 ms is missed).
fn audit(binary: &PathBuf, standin: &Standin, options: &Options, format: &str) -> AuditRun {
    standin.reset_counts();
    let mut command = Command::new(binary);
    command.args([
        "audit",
        "--organization",
        "--all-regions",
        "--assume-role-name",
        ROLE,
        "--format",
        format,
    ]);
    if let Some(n) = &options.concurrency {
        command.args(["--concurrency", n]);
    }
    if options.check_versions {
        command.arg("--check-versions");
    }
    let started = Instant::now();
    let mut child = command
        .env_clear()
        .envs(standin.env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
    let stdout = child.stdout.take().unwrap();
    let html = format == "html";
    let mut copy = options.report_dir.as_ref().filter(|_| html).map(|dir| {
        std::fs::create_dir_all(dir).unwrap();
        std::io::BufWriter::new(std::fs::File::create(dir.join("report.html")).unwrap())
    });
    let records = std::thread::spawn(move || {
        let (mut records, mut bytes, mut moved) = (0, 0, 0);
        for line in BufReader::new(stdout).split(b'\n').map_while(Result::ok) {
            bytes += line.len() + 1;
            if let Some(copy) = &mut copy {
                copy.write_all(&line)
                    .and_then(|()| copy.write_all(b"\n"))
                    .unwrap();
            }
            let counted = if html {
                line.starts_with(b"<tr data-account=")
            } else {
                !line.is_empty()
            };
            records += usize::from(counted);
            moved += usize::from(
                counted
                    && line
                        .windows(PREVIOUS_KEY.len())
                        .any(|w| w == PREVIOUS_KEY.as_bytes()),
            );
        }
        (records, bytes, moved)
    });
    let mut stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut peak_rss_kib = 0;
    let mut killed = false;
    let status = loop {
        if let Some(kib) = vm_hwm_kib(child.id()) {
            peak_rss_kib = peak_rss_kib.max(kib);
        }
        if peak_rss_kib > options.max_rss_kib && !killed {
            let _ = child.kill();
            killed = true;
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let wall = started.elapsed();
    let (records, bytes, previous_key_decrypts) = records.join().unwrap();
    AuditRun {
        wall,
        peak_rss_kib,
        status,
        killed,
        records,
        bytes,
        previous_key_decrypts,
        stderr: stderr.join().unwrap(),
        counts: standin.counts(),
        total: standin.total(),
        peak_in_flight: standin.peak_in_flight(),
        throttled: standin.throttled(),
    }
}

/// The fewest requests an organization-wide audit can make: every `ListAccounts` page, one
/// `AssumeRole` per member, one `ListRegions` per account (the management account is audited
/// too), every `ListSecrets` page and one `DescribeKey` per distinct key per account-region.
/// With `--check-versions`, one `ListSecretVersionIds` per secret on the customer managed key.
fn audit_floor(
    members: usize,
    secrets: usize,
    check_versions: bool,
) -> BTreeMap<&'static str, usize> {
    let accounts = members + 1;
    let scopes = accounts * REGIONS.len();
    // Secret 0 is on the default key, the others on one customer managed key.
    let keys = usize::from(secrets > 1);
    let mut floor = BTreeMap::from([
        ("sts:GetCallerIdentity", 1),
        ("organizations:ListAccounts", accounts.div_ceil(20)),
        ("sts:AssumeRole", members),
        ("account:ListRegions", accounts),
        (
            "secretsmanager:ListSecrets",
            scopes * secrets.div_ceil(100).max(1),
        ),
        ("kms:DescribeKey", scopes * keys),
        // The key policy review (`report`, the default): one of each per distinct key.
        ("kms:GetKeyPolicy", scopes * keys),
        ("kms:ListGrants", scopes * keys),
    ]);
    if check_versions {
        floor.insert(
            "secretsmanager:ListSecretVersionIds",
            scopes * secrets.saturating_sub(1),
        );
    }
    floor
}

/// The reason of a move whose previous key still decrypts (the stand-in has one such secret in
/// `MOVED_BY_OTHERS`, seen with `--check-versions`).
const PREVIOUS_KEY: &str = "previous-key-decrypts";

/// `ListAccounts` pages one after another, then one account's chain after its page
/// (`AssumeRole`, `ListRegions`, `ListSecrets`, `DescribeKey`).
fn critical_path(members: usize, delay: Duration) -> Duration {
    delay * ((members + 1).div_ceil(20) as u32 + 4)
}

fn audit_section(
    members: usize,
    cmkguards: &[(String, PathBuf)],
    options: &Options,
    failures: &mut Vec<String>,
) {
    let secrets = options.secrets;
    let accounts = members + 1;
    let expected_records = accounts * REGIONS.len() * secrets;
    println!(
        "audit: {members} member accounts + the management account, {} regions, {secrets} secrets per account-region ({expected_records} secrets); {} ms per answer; AssumeRole {}{}",
        REGIONS.len(),
        options.delay.as_millis(),
        options
            .sts_rate
            .map_or("unlimited".to_owned(), |(r, b)| format!(
                "{r}/s (burst {b})"
            )),
        options
            .concurrency
            .as_ref()
            .map_or(String::new(), |n| format!("; --concurrency {n}")),
    );
    if options.check_versions {
        let moved = accounts * REGIONS.len() * secrets.saturating_sub(1).div_ceil(MOVED_BY_OTHERS);
        println!(
            "  --check-versions: the stand-in lists one secret in {MOVED_BY_OTHERS} (index 1, 11, ...) as moved off the AWS managed key by others: {moved} expected `previous-key-decrypts`"
        );
    }
    let standin = options.standin(members, options.delay);
    let critical = critical_path(members, options.delay);
    let floor = audit_floor(members, secrets, options.check_versions);
    let floor_total: usize = floor.values().sum();
    let mut runs = Vec::new();
    for (format, (label, binary)) in options
        .formats
        .iter()
        .flat_map(|f| cmkguards.iter().map(move |b| (f, b)))
    {
        let run = audit(binary, &standin, options, format);
        let label = if options.formats.len() > 1 {
            format!("{label} --format {format}")
        } else {
            label.clone()
        };
        // Secret 0 of each account-region is on the default key: a finding (exit 1), and the
        // HTML report's one row there.
        let expected_exit = if secrets > 0 { 1 } else { 0 };
        let expected_records = match format.as_str() {
            "json" => Some(expected_records),
            "html" => Some(accounts * REGIONS.len() * usize::from(secrets > 0)),
            _ => None,
        };
        if run.killed {
            failures.push(format!(
                "audit `{label}` at {members} accounts: killed after {} s, its peak RSS over {} MiB (`ORG_MAX_RSS_MIB`)",
                secs(run.wall),
                mib(options.max_rss_kib)
            ));
        } else if run.status.code() != Some(expected_exit)
            || expected_records.is_some_and(|n| run.records != n)
        {
            failures.push(format!(
                "audit `{label}` at {members} accounts: {} and {} records (expected exit {expected_exit} and {expected_records:?}); stderr:\n{}",
                run.status,
                run.records,
                tail(&run.stderr)
            ));
        }
        if options.check_versions {
            let expected =
                accounts * REGIONS.len() * secrets.saturating_sub(1).div_ceil(MOVED_BY_OTHERS);
            println!(
                "  `{label}`: {} `previous-key-decrypts`",
                run.previous_key_decrypts
            );
            if run.previous_key_decrypts != expected {
                failures.push(format!(
                    "audit `{label}`: {} `previous-key-decrypts`, expected {expected}",
                    run.previous_key_decrypts
                ));
            }
        }
        runs.push((label, run));
    }

    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|(label, run)| {
            vec![
                label.to_string(),
                secs(run.wall),
                secs(critical),
                // No delay, no critical path to compare with.
                if critical.is_zero() {
                    "-".to_owned()
                } else {
                    format!("{:.1}x", run.wall.as_secs_f64() / critical.as_secs_f64())
                },
                mib(run.peak_rss_kib),
                run.records.to_string(),
                format!("{:.1}", run.bytes as f64 / 1024.0),
                match (run.killed, run.status.code()) {
                    (true, _) => "killed (RSS)".to_owned(),
                    (false, Some(code)) => code.to_string(),
                    (false, None) => "signal".to_owned(),
                },
                run.total.to_string(),
                format!("{:.2}x", run.total as f64 / floor_total as f64),
                run.peak_in_flight.to_string(),
                run.throttled.to_string(),
            ]
        })
        .collect();
    print_table(
        &[
            "binary",
            "wall s",
            "critical path s",
            "wall/critical",
            "peak RSS MiB",
            "records",
            "output KiB",
            "exit",
            "requests",
            "/floor",
            "peak in flight",
            "throttled",
        ],
        &rows,
    );
    println!();

    // Requests per operation: the floor's, then any other seen.
    let mut operations: Vec<String> = floor.keys().map(|k| k.to_string()).collect();
    for (_, run) in &runs {
        for op in run.counts.keys() {
            if !operations.contains(op) {
                operations.push(op.clone());
            }
        }
    }
    let rows: Vec<Vec<String>> = operations
        .iter()
        .map(|op| {
            let mut row = vec![
                op.clone(),
                floor.get(op.as_str()).map_or("-".into(), |n| n.to_string()),
            ];
            row.extend(
                runs.iter()
                    .map(|(_, run)| run.counts.get(op).copied().unwrap_or(0).to_string()),
            );
            row
        })
        .collect();
    let mut header = vec!["requests", "floor"];
    header.extend(runs.iter().map(|(label, _)| label.as_str()));
    print_table(&header, &rows);
    println!();
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// The `CreateSecret` fixture about `arn` (secret 1: on its account-region's customer managed
/// key), as its own account's trail reports it, with an event id of its own.
fn create_secret_event(account: &str, arn: &str, key_arn: &str, n: usize) -> Value {
    let fixture = event_for("CreateSecret-key-arn.json", arn);
    let fixture_key = fixture["detail"]["requestParameters"]["kmsKeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let text = fixture
        .to_string()
        .replace(&fixture_key, key_arn)
        .replace(FIXTURE_ACCOUNT, account);
    let mut event: Value = serde_json::from_str(&text).unwrap();
    event["id"] = format!("00000000-0000-4000-8000-{n:012}").into();
    event["detail"]["eventID"] = format!("00000000-0000-4000-9000-{n:012}").into();
    event
}

struct LambdaRun {
    rss_early_kib: u64,
    rss_all_kib: u64,
    assume_role: usize,
    throttled: usize,
    accounts: usize,
    failed: usize,
    warm_counts: BTreeMap<String, usize>,
    warm_total: usize,
}

/// Waits for `n` results in all; the ones after `from` that are not a response are failures.
fn wait(api: &RuntimeApi, n: usize, from: usize) -> usize {
    let results = api.wait_for(n, Duration::from_secs(3600));
    assert!(
        results.len() >= n,
        "the function answered {} of {n} events",
        results.len()
    );
    results[from..]
        .iter()
        .filter(|r| !matches!(r.outcome, Outcome::Response(_)))
        .count()
}

fn lambda(binary: &PathBuf, standin: &Standin, accounts: usize) -> LambdaRun {
    standin.reset_counts();
    let api = RuntimeApi::start(Vec::new())
        .with_timeout(Duration::from_secs(900))
        .with_function_arn(format!(
            "arn:aws:lambda:{REGION}:{MANAGEMENT_ACCOUNT}:function:cmkguard-lambda"
        ));
    let mut child = Command::new(binary)
        .env_clear()
        .envs(standin.env())
        .envs(api.env())
        .env("CMKGUARD_ASSUME_ROLE_NAME", ROLE)
        .env("CMKGUARD_ACTIONS", "tag")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
    let event = |account: &str, n: usize| {
        let arn = standin.secret_arn(account, REGION, 1);
        create_secret_event(account, &arn, &standin.key_arn(account, REGION), n)
    };
    let members: Vec<String> = standin.member_accounts().take(accounts).collect();
    let early = RSS_EARLY_ACCOUNTS.min(members.len());
    let mut failed = 0;
    for (n, account) in members[..early].iter().enumerate() {
        api.push_event(event(account, n));
    }
    failed += wait(&api, early, 0);
    let rss_early_kib = vm_hwm_kib(child.id()).unwrap_or(0);
    for (n, account) in members.iter().enumerate().skip(early) {
        api.push_event(event(account, n));
    }
    failed += wait(&api, members.len(), early);
    let rss_all_kib = vm_hwm_kib(child.id()).unwrap_or(0);
    let assume_role = standin.count("sts:AssumeRole");
    let throttled = standin.throttled();

    // Warm: the management account's key is described once, then each event is about a secret
    // whose key is cached.
    let mut n = members.len();
    api.push_event(event(MANAGEMENT_ACCOUNT, n));
    n += 1;
    failed += wait(&api, n, n - 1);
    standin.reset_counts();
    for _ in 0..WARM_EVENTS {
        api.push_event(event(MANAGEMENT_ACCOUNT, n));
        n += 1;
    }
    failed += wait(&api, n, n - WARM_EVENTS);
    let run = LambdaRun {
        rss_early_kib,
        rss_all_kib,
        assume_role,
        throttled,
        accounts: members.len(),
        failed,
        warm_counts: standin.counts(),
        warm_total: standin.total(),
    };
    let _ = child.kill();
    let _ = child.wait();
    run
}

fn lambda_section(
    accounts: usize,
    delay: Duration,
    lambdas: &[(String, PathBuf)],
    options: &Options,
    failures: &mut Vec<String>,
) {
    println!(
        "warm Lambda: a CreateSecret event (secret on a customer managed key, actions `tag`) from each of {accounts} member accounts in turn, in {REGION}; {} ms per answer; then {WARM_EVENTS} about a compliant secret in its own account",
        delay.as_millis()
    );
    let standin = options.standin(accounts, delay);
    let mut rows = Vec::new();
    for (label, binary) in lambdas {
        let run = lambda(binary, &standin, accounts);
        if run.failed > 0 {
            failures.push(format!(
                "lambda `{label}`: {} events were not answered with a response",
                run.failed
            ));
        }
        let warm: Vec<String> = run
            .warm_counts
            .iter()
            .map(|(op, n)| format!("{op} {:.1}", *n as f64 / WARM_EVENTS as f64))
            .collect();
        rows.push(vec![
            label.clone(),
            mib(run.rss_early_kib),
            mib(run.rss_all_kib),
            format!(
                "{:.2}x",
                run.rss_all_kib as f64 / run.rss_early_kib.max(1) as f64
            ),
            format!("{:.2}", run.assume_role as f64 / run.accounts.max(1) as f64),
            run.throttled.to_string(),
            run.failed.to_string(),
            format!("{:.1}", run.warm_total as f64 / WARM_EVENTS as f64),
            warm.join(", "),
        ]);
    }
    let early = format!("RSS MiB after {RSS_EARLY_ACCOUNTS} accounts");
    let all = format!("after {accounts}");
    print_table(
        &[
            "binary",
            &early,
            &all,
            "ratio",
            "AssumeRole per account",
            "throttled",
            "failed events",
            "warm requests per event (target 1)",
            "of which",
        ],
        &rows,
    );
    println!();
}

fn main() {
    let sections = var("ORG_SECTIONS").unwrap_or_else(|| "audit,lambda".into());
    let sts_rate = var("ORG_STS_RATE").map(|v| {
        let parse = |s: &str| -> f64 {
            s.trim()
                .parse()
                .unwrap_or_else(|_| panic!("`ORG_STS_RATE`: `{v}` is not RATE or RATE:BURST"))
        };
        match v.split_once(':') {
            Some((rate, burst)) => (parse(rate), parse(burst)),
            None => (parse(&v), parse(&v)),
        }
    });
    let options = Options {
        delay: Duration::from_millis(number("ORG_DELAY_MS", 100) as u64),
        secrets: number("ORG_SECRETS", 3),
        sts_rate,
        concurrency: var("ORG_CONCURRENCY"),
        check_versions: var("ORG_CHECK_VERSIONS").as_deref() == Some("true"),
        formats: var("ORG_FORMATS")
            .unwrap_or_else(|| "json".into())
            .split(',')
            .map(|f| match f.trim() {
                f @ ("json" | "html" | "markdown") => f.to_owned(),
                other => panic!("`ORG_FORMATS`: `{other}` is not json, html or markdown"),
            })
            .collect(),
        report_dir: var("ORG_REPORT_DIR").map(PathBuf::from),
        max_rss_kib: var("ORG_MAX_RSS_MIB").map_or_else(default_max_rss_kib, |v| {
            v.trim()
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("`ORG_MAX_RSS_MIB`: `{v}` is not a number"))
                * 1024
        }),
    };
    let mut failures = Vec::new();
    if sections.contains("audit") {
        let cmkguards = binaries("ORG_CMKGUARD", "cmkguard");
        for members in numbers("ORG_ACCOUNTS", "1000,5000") {
            audit_section(members, &cmkguards, &options, &mut failures);
        }
    }
    if sections.contains("lambda") {
        let lambdas = binaries("ORG_LAMBDA", "cmkguard-lambda");
        let delay = Duration::from_millis(number("ORG_LAMBDA_DELAY_MS", 0) as u64);
        let accounts = number("ORG_LAMBDA_ACCOUNTS", 1000);
        lambda_section(accounts, delay, &lambdas, &options, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
