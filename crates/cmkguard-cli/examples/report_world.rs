//! A moto organization audited into an HTML report, for a browser to open (`just test-browser`,
//! `just report-screenshot`): `report_world browser|demo DIR` starts moto, makes the world, and
//! writes `DIR/report.html` (`cmkguard audit --format html`) and `DIR/expected.json`: what the
//! page must show, taken from the same audit's `--format json` records, not from the HTML.
//!
//! - `browser`: the world of `tests/audit.rs` (two accounts, two regions, a mix of keys, exempt
//!   and managed secrets) and secrets whose names and tags are HTML and script.
//! - `demo`: three accounts and three regions with a mix of findings, for the README's screenshot.
//! - `big`: more findings than the report lists at a time (`PAGE` in `src/report/html.rs`), in
//!   one account-region, for "Show more".

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // a test tool: fail loudly

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use cmkguard_testkit::world::SecretSpec;
use cmkguard_testkit::{DEFAULT_ACCOUNT, Moto, sibling_binary};
use serde_json::{Value, json};

const MEMBER: &str = "111122223333";
const ROLE: &str = "cmkguard-member";

/// Names and tag values that are HTML and script: the page must show them as text, run nothing.
const HOSTILE: [&str; 3] = [
    "<img src=x onerror=\"window.__pwned=1\">",
    "</script><script>window.__pwned=1</script>",
    "<svg onload=\"window.__pwned=1\">",
];

/// A secret: account, region, name, key kind, tags, owning service.
struct Made {
    account: &'static str,
    region: &'static str,
    name: String,
    key: &'static str,
    tags: Vec<(String, String)>,
    owner: Option<&'static str>,
}

fn made(account: &'static str, region: &'static str, name: &str, key: &'static str) -> Made {
    Made {
        account,
        region,
        name: name.to_owned(),
        key,
        tags: Vec::new(),
        owner: None,
    }
}

fn browser_world() -> Vec<Made> {
    let mut world = Vec::new();
    for account in [DEFAULT_ACCOUNT, MEMBER] {
        for region in ["us-east-1", "us-west-2"] {
            world.push(made(account, region, "app/default", "default"));
            world.push(made(account, region, "app/cmk", "cmk"));
            world.push(made(account, region, "app/alias", "cmk-alias"));
            world.push(made(account, region, "app/disabled", "cmk-disabled"));
            world.push(Made {
                tags: vec![("cmkguard:exempt".into(), "true".into())],
                ..made(account, region, "app/exempt", "default")
            });
            world.push(Made {
                owner: Some("rds"),
                ..made(account, region, "rds/managed", "default")
            });
        }
    }
    for name in HOSTILE {
        world.push(Made {
            tags: HOSTILE
                .iter()
                .enumerate()
                .map(|(i, t)| (format!("k{i}{t}"), t.to_string()))
                .collect(),
            ..made(DEFAULT_ACCOUNT, "us-east-1", name, "default")
        });
    }
    world
}

fn demo_world() -> Vec<Made> {
    const PROD: &str = "444455556666";
    const SERVICES: [&str; 8] = [
        "payments", "orders", "search", "billing", "identity", "ledger", "shipping", "catalog",
    ];
    const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-2"];
    // Secrets on the default key per account (rows) and region (columns): an uneven spread, so
    // the charts have something to rank.
    const DEFAULT_KEY: [[usize; 3]; 3] = [[2, 1, 0], [5, 3, 1], [1, 0, 0]];
    let mut world = Vec::new();
    for (a, account) in [DEFAULT_ACCOUNT, MEMBER, PROD].into_iter().enumerate() {
        for (r, region) in REGIONS.into_iter().enumerate() {
            for (s, service) in SERVICES.iter().enumerate() {
                let key = if s < DEFAULT_KEY[a][r] {
                    "default"
                } else {
                    "cmk"
                };
                world.push(made(
                    account,
                    region,
                    &format!("{service}/db-password"),
                    key,
                ));
                world.push(made(
                    account,
                    region,
                    &format!("{service}/api-key"),
                    "cmk-alias",
                ));
            }
            let odd = match (a, r) {
                (0, 1) | (1, 2) => Some(("reporting/warehouse", "cmk-disabled")),
                (1, 1) => Some(("archive/backup-key", "cmk-pending-deletion")),
                (2, 0) => Some(("partners/sftp", "cmk-disabled")),
                _ => None,
            };
            if let Some((name, key)) = odd {
                world.push(made(account, region, name, key));
            }
            if r == 0 {
                if a < 2 {
                    world.push(Made {
                        owner: Some("rds"),
                        ..made(account, region, "rds!db-orders-primary", "default")
                    });
                }
                world.push(Made {
                    tags: vec![("cmkguard:exempt".into(), "true".into())],
                    ..made(account, region, "legacy/report-token", "default")
                });
            }
        }
    }
    world
}

/// 520 secrets on the default key (MEDIUM) and, listed last, 3 on a disabled key (HIGH).
fn big_world() -> Vec<Made> {
    let mut world: Vec<Made> = (0..520)
        .map(|i| {
            made(
                DEFAULT_ACCOUNT,
                "us-east-1",
                &format!("bulk/{i:04}"),
                "default",
            )
        })
        .collect();
    for i in 0..3 {
        world.push(made(
            DEFAULT_ACCOUNT,
            "us-east-1",
            &format!("zz-disabled/{i}"),
            "cmk-disabled",
        ));
    }
    world
}

fn audit(moto: &Moto, accounts: &str, regions: &[&str], format: &str) -> Vec<u8> {
    let mut command = Command::new(sibling_binary("cmkguard"));
    command
        .args(["audit", "--accounts", accounts, "--assume-role-name", ROLE])
        .args(["--format", format])
        .envs(moto.env());
    for region in regions {
        command.args(["--region", region]);
    }
    let output = command.output().expect("run cmkguard");
    assert_eq!(
        output.status.code(),
        Some(1),
        "cmkguard audit --format {format}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (world, dir) = match args.as_slice() {
        [mode, dir] if mode == "browser" => (browser_world(), dir),
        [mode, dir] if mode == "demo" => (demo_world(), dir),
        [mode, dir] if mode == "big" => (big_world(), dir),
        _ => panic!("usage: report_world browser|demo|big DIR"),
    };
    let dir = Path::new(dir);
    std::fs::create_dir_all(dir).unwrap();
    assert!(
        sibling_binary("cmkguard").exists(),
        "build the CLI first: cargo build -p cmkguard-cli"
    );

    let moto = Moto::start();
    let mut keys = BTreeMap::new();
    for secret in &world {
        let place = (secret.account, secret.region);
        if let std::collections::btree_map::Entry::Vacant(entry) = keys.entry(place) {
            entry.insert(moto.make_keys(secret.account, secret.region, true).await);
        }
        let spec = SecretSpec {
            name: secret.name.clone(),
            account: secret.account.into(),
            region: secret.region.into(),
            key: secret.key.into(),
            tags: secret.tags.iter().cloned().collect(),
            owning_service: secret.owner.map(Into::into),
            replica_regions: Vec::new(),
        };
        moto.make_secret(&spec, &keys[&place]).await;
    }
    let mut accounts: Vec<&str> = Vec::new();
    for secret in &world {
        if !accounts.contains(&secret.account) {
            accounts.push(secret.account);
        }
    }
    let accounts = accounts.join(",");
    let mut regions: Vec<&str> = world.iter().map(|s| s.region).collect();
    regions.sort();
    regions.dedup();

    let html = audit(&moto, &accounts, &regions, "html");
    std::fs::write(dir.join("report.html"), html).unwrap();
    let records: Vec<Value> = String::from_utf8(audit(&moto, &accounts, &regions, "json"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let findings: Vec<Value> = records
        .iter()
        .filter(|r| !matches!(r["verdict"].as_str(), Some("compliant" | "exempt")))
        .map(|r| {
            let arn = r["secret_arn"].as_str().unwrap();
            let name = world
                .iter()
                .find(|s| arn.contains(&format!(":secret:{}-", s.name)))
                .map(|s| s.name.clone())
                .unwrap();
            json!({
                "account": r["account"],
                "region": r["region"],
                "name": name,
                "reason": r["reason"],
            })
        })
        .collect();
    let expected = json!({
        "audited": records.len(),
        "findings": findings,
        "hostile": if args[0] == "browser" { HOSTILE.to_vec() } else { Vec::new() },
    });
    std::fs::write(
        dir.join("expected.json"),
        serde_json::to_string_pretty(&expected).unwrap(),
    )
    .unwrap();
    println!("{}", dir.join("report.html").display());
}
