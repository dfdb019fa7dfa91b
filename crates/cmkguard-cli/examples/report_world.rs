//! A moto organization audited into an HTML report, for a browser to open (`just test-browser`,
//! `just report-screenshot`): `report_world browser|demo DIR` starts moto, makes the world, and
//! writes `DIR/report.html` (`cmkguard audit --format html`) and `DIR/expected.json`: what the
//! page must show, taken from the same audit's `--format json` records, not from the HTML.
//!
//! - `browser`: the world of `tests/audit.rs` (two accounts, two regions, a mix of keys, exempt
//!   and managed secrets) and secrets whose names and tags are HTML and script. Its customer
//!   managed keys have findings the way the audit reviews them; `DIR/keys.html` is a report of
//!   hand-made records whose keys have chosen findings, one with a detail that is HTML and
//!   script (a key policy's `Sid` is free text), through the same printer as the CLI's.
//! - `demo`: three accounts and three regions with a mix of findings, for the README's screenshot.
//! - `big`: more findings than the report lists at a time (`PAGE` in `src/report/html.rs`), in
//!   one account-region, for "Show more".

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // a test tool: fail loudly

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use cmkguard_cli::keys;
use cmkguard_cli::output::{Format, Printer};
use cmkguard_cli::tally::Tally;
use cmkguard_core::Verdict;
use cmkguard_core::keypolicy::{KeyPolicyWord, KeyReview};
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
            // On a key with AWS's default key policy: the Keys section's finding.
            if account == MEMBER && region == "us-west-2" {
                world.push(made(account, region, "app/legacy", "other-cmk"));
            }
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

/// A key detail that is HTML and script: the Keys section must show it as text.
const HOSTILE_DETAIL: &str = "statement `<img src=x onerror=\"window.__pwned=1\">`";

/// A hand-made key: its ARN, its findings (word, detail), the secrets on it.
type Handmade = (String, Vec<(KeyPolicyWord, &'static str)>, usize);

fn handmade_keys() -> Vec<Handmade> {
    let arn =
        |region: &str, account: &str, id: &str| format!("arn:aws:kms:{region}:{account}:key/{id}");
    vec![
        (
            arn(
                "us-east-1",
                DEFAULT_ACCOUNT,
                "11111111-aaaa-4000-8000-000000000001",
            ),
            vec![
                (KeyPolicyWord::DelegatedToIam, HOSTILE_DETAIL),
                (
                    KeyPolicyWord::GrantDecrypt,
                    "grant `g-1` to `arn:aws:iam::123456789012:role/app`",
                ),
            ],
            3,
        ),
        (
            arn("eu-west-1", MEMBER, "22222222-bbbb-4000-8000-000000000002"),
            vec![(
                KeyPolicyWord::Public,
                "statement `Open`: `Principal` is `*`",
            )],
            1,
        ),
        (
            arn("us-east-1", MEMBER, "33333333-cccc-4000-8000-000000000003"),
            Vec::new(),
            2,
        ),
    ]
}

/// `DIR/keys.html` from hand-made records (the first secret of each key a finding, the rest
/// compliant), and what its Keys section must show.
fn keys_page(dir: &Path) -> Value {
    let mut out = Vec::new();
    let mut printer = Printer::new(Format::Html, &mut out).unwrap();
    let mut tally = Tally::default();
    let mut places = Vec::new();
    let mut expected = Vec::new();
    for (arn, findings, secrets) in handmade_keys() {
        let (account, region) = keys::place(&arn);
        let (account, region) = (account.to_owned(), region.to_owned());
        let review = KeyReview::of(&findings);
        for i in 0..secrets {
            let verdict = if i == 0 {
                Verdict::NonCompliant
            } else {
                Verdict::Compliant
            };
            let record =
                keys::on_reviewed_key(&format!("keys/s{i}"), &arn, review.clone(), verdict);
            tally.add(&record);
            printer.record(&record).unwrap();
        }
        if !places.contains(&(account.clone(), region.clone())) {
            places.push((account.clone(), region.clone()));
        }
        expected.push(json!({
            "arn": arn,
            "account": account,
            "region": region,
            "secrets": secrets,
            "words": review.words().iter().map(|w| w.as_str()).collect::<Vec<_>>(),
            "details": review.findings.iter().map(|f| f.detail.clone()).collect::<Vec<_>>(),
            "advice": review
                .words()
                .iter()
                .map(|w| cmkguard_core::advice::of(w.reason()).to_do)
                .collect::<Vec<_>>(),
        }));
    }
    for (account, region) in &places {
        tally.place(account, region);
    }
    printer.finish(&tally, false).unwrap();
    std::fs::write(dir.join("keys.html"), out).unwrap();
    json!({ "keys": expected, "hostile": HOSTILE_DETAIL })
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
    // Every `other-cmk` key in use has AWS's default key policy (the account root: `kms:*`), as
    // a key created without a policy of its own: `key-policy-delegated-to-iam`.
    for ((account, region), keys) in &keys {
        let in_use = world
            .iter()
            .any(|s| s.account == *account && s.region == *region && s.key == "other-cmk");
        if !in_use {
            continue;
        }
        let root = format!("arn:aws:iam::{account}:root");
        let policy = json!({"Version": "2012-10-17", "Statement": [{"Sid": "Enable IAM User Permissions",
            "Effect": "Allow", "Principal": {"AWS": root}, "Action": "kms:*", "Resource": "*"}]});
        moto.put_key_policy(account, region, keys.arn("other"), &policy.to_string())
            .await;
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
    // Secrets on a customer managed key whose policy was reviewed, and those whose key had
    // findings: what the Keys section counts.
    let reviewed = |with_findings: bool| {
        records
            .iter()
            .filter_map(|r| r["key_policy"].as_array())
            .filter(|words| !with_findings || !words.is_empty())
            .count()
    };
    let expected = json!({
        "audited": records.len(),
        "findings": findings,
        "hostile": if args[0] == "browser" { HOSTILE.to_vec() } else { Vec::new() },
        "key_reviewed_secrets": reviewed(false),
        "key_finding_secrets": reviewed(true),
        "keys_page": if args[0] == "browser" { keys_page(dir) } else { Value::Null },
    });
    std::fs::write(
        dir.join("expected.json"),
        serde_json::to_string_pretty(&expected).unwrap(),
    )
    .unwrap();
    println!("{}", dir.join("report.html").display());
}
