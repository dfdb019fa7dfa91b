//! `cmkguard audit` against moto: two accounts (one through an assumed role) and two regions, a
//! mix of default-key, customer-key, alias, exempt and managed secrets; every format against the
//! golden files in `testdata/audit/` (`UPDATE_GOLDEN=1` rewrites them); the HTML report through an
//! HTML5 parser, hostile names and tags escaped; exit codes; `--apply` converging and a second
//! `--apply` writing nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use cmkguard_testkit::world::{Keys, SecretSpec};
use cmkguard_testkit::{DEFAULT_ACCOUNT, Moto, http};
use serde_json::Value;

const MEMBER: &str = "111122223333";
const REGIONS: [&str; 2] = ["us-east-1", "us-west-2"];

fn cmkguard(moto: &Moto, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cmkguard"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(moto.env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run cmkguard")
}

/// A secret to make: name, key kind, tags, owning service.
type Made = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    Option<&'static str>,
);

/// The secrets of every account and region, in creation order.
fn secrets() -> Vec<Made> {
    vec![
        ("app/default", "default", &[], None),
        ("app/cmk", "cmk", &[], None),
        ("app/alias", "cmk-alias", &[], None),
        ("app/disabled", "cmk-disabled", &[], None),
        (
            "app/exempt",
            "default",
            &[("cmkguard:exempt", "true")],
            None,
        ),
        ("rds/managed", "default", &[], Some("rds")),
    ]
}

async fn world(moto: &Moto) -> BTreeMap<(String, String), Keys> {
    moto.reset();
    let mut keys = BTreeMap::new();
    for account in [DEFAULT_ACCOUNT, MEMBER] {
        for region in REGIONS {
            let k = moto.make_keys(account, region, true).await;
            for (name, key, tags, owner) in secrets() {
                let spec = SecretSpec {
                    name: name.into(),
                    account: account.into(),
                    region: region.into(),
                    key: key.into(),
                    tags: tags
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    owning_service: owner.map(Into::into),
                    replica_regions: Vec::new(),
                };
                moto.make_secret(&spec, &k).await;
            }
            keys.insert((account.to_owned(), region.to_owned()), k);
        }
    }
    // A region where everything is in order.
    let k = moto.make_keys(DEFAULT_ACCOUNT, "eu-west-1", true).await;
    for (name, key, tags) in [
        ("ok/cmk", "cmk", vec![]),
        ("ok/exempt", "default", vec![("cmkguard:exempt", "true")]),
    ] {
        let spec = SecretSpec {
            name: name.into(),
            account: DEFAULT_ACCOUNT.into(),
            region: "eu-west-1".into(),
            key: key.into(),
            tags: tags
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ..SecretSpec::default()
        };
        moto.make_secret(&spec, &k).await;
    }
    keys
}

const BOTH: [&str; 9] = [
    "audit",
    "--accounts",
    "123456789012,111122223333",
    "--assume-role-name",
    "cmkguard-member",
    "--region",
    "us-east-1",
    "--region",
    "us-west-2",
];

fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    BOTH.iter().copied().chain(extra.iter().copied()).collect()
}

/// Replaces what moto makes up anew each run: key ids (UUIDs) and the 6 random characters of
/// secret ARNs.
fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if is_uuid(&chars[i..]) {
            out.push_str("00000000-0000-0000-0000-000000000000");
            i += 36;
            continue;
        }
        out.push(chars[i]);
        if chars[i..].starts_with(&[':', 's', 'e', 'c', 'r', 'e', 't', ':']) {
            for c in &chars[i + 1..i + 8] {
                out.push(*c);
            }
            i += 8;
            let end = chars[i..]
                .iter()
                .position(|c| matches!(c, '"' | ',' | ' ' | '\n' | '`'))
                .map_or(chars.len(), |p| i + p);
            let name: String = chars[i..end].iter().collect();
            match name.rsplit_once('-') {
                Some((base, suffix)) if suffix.len() == 6 => {
                    out.push_str(base);
                    out.push_str("-XXXXXX");
                }
                _ => out.push_str(&name),
            }
            i = end;
            continue;
        }
        i += 1;
    }
    out
}

fn is_uuid(c: &[char]) -> bool {
    c.len() >= 36
        && c[..36].iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn golden(name: &str, got: &str) {
    let path: PathBuf = cmkguard_testkit::workspace_root()
        .join("testdata/audit")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, got).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    assert_eq!(
        got,
        want,
        "{} differs (UPDATE_GOLDEN=1 rewrites it)",
        path.display()
    );
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn records(output: &Output) -> Vec<Value> {
    stdout(output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a record: {l}: {e}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_two_accounts_two_regions_every_format_then_apply() {
    let moto = Moto::start();
    let keys = world(&moto).await;

    // Dry run, every format: nothing changes, exit 1 (there are findings).
    for (format, file) in [
        ("json", "audit.jsonl"),
        ("csv", "audit.csv"),
        ("table", "audit.txt"),
        ("markdown", "audit.md"),
        ("html", "audit.html"),
    ] {
        let output = cmkguard(&moto, &args(&["--format", format]));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{format}: {stderr}");
        golden(file, &normalise(&stdout(&output)));
    }
    let html = stdout(&cmkguard(&moto, &args(&["--format", "html"])));
    let document = parse_html(&html);
    assert_eq!(count(&document, "tr", "data-account"), 12, "{html}");
    assert_eq!(text_of_id(&document, "count-audited"), "24");
    assert_eq!(text_of_id(&document, "count-findings"), "12");
    let dry = records(&cmkguard(&moto, &args(&["--format", "json"])));
    assert_eq!(dry.len(), 24);
    assert!(
        dry.iter()
            .all(|r| r["dry_run"] == true && r.get("verdict").is_some())
    );
    assert!(
        !dry.iter()
            .any(|r| r["actions"].to_string().contains("\"done\"")),
        "a dry run wrote"
    );
    let tags_of = |r: &Value| r["actions"].as_array().unwrap().len();
    assert_eq!(
        dry.iter().map(tags_of).sum::<usize>(),
        12,
        "4 places x 3 flagged secrets"
    );

    // --apply: tags everywhere, re-encrypts only in the opted-in account, never managed secrets.
    let apply = [
        "--apply",
        "--format",
        "json",
        "--actions",
        "tag,remediate",
        "--remediate-accounts",
        DEFAULT_ACCOUNT,
    ];
    let first = cmkguard(&moto, &args(&apply));
    assert_eq!(
        first.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    golden("apply-first.jsonl", &normalise(&stdout(&first)));
    let first = records(&first);
    assert!(first.iter().all(|r| r["dry_run"] == false));
    let done = |rs: &[Value]| {
        rs.iter()
            .flat_map(|r| r["actions"].as_array().unwrap().clone())
            .filter(|a| a["outcome"] == "done")
            .count()
    };
    // Own account, 2 regions: default re-encrypted and tagged (2), disabled tagged (1: a key
    // KMS refuses is not re-encrypted from), managed tagged (1); member account, 2 regions:
    // default, disabled, managed tagged (3), remediation skipped.
    assert_eq!(done(&first), 2 * 4 + 2 * 3);
    for region in REGIONS {
        let k = &keys[&(DEFAULT_ACCOUNT.to_owned(), region.to_owned())];
        let client = moto.secrets_client(DEFAULT_ACCOUNT, region).await;
        let d = client
            .describe_secret()
            .secret_id("app/default")
            .send()
            .await
            .unwrap();
        assert_eq!(d.kms_key_id(), Some(k.designated.as_str()), "{region}");
        let m = client
            .describe_secret()
            .secret_id("rds/managed")
            .send()
            .await
            .unwrap();
        assert_eq!(
            m.kms_key_id(),
            None,
            "a managed secret is never re-encrypted"
        );
    }

    // A second --apply converges: no write at all.
    let second = cmkguard(&moto, &args(&apply));
    assert_eq!(second.status.code(), Some(1));
    golden("apply-second.jsonl", &normalise(&stdout(&second)));
    assert_eq!(done(&records(&second)), 0, "the second --apply wrote");

    // All compliant or exempt: exit 0.
    let ok = cmkguard(&moto, &["audit", "--region", "eu-west-1"]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    golden("all-compliant.txt", &normalise(&stdout(&ok)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_errors_exit_2() {
    let moto = Moto::start();
    let bad = cmkguard(&moto, &["audit", "--accounts", "12345"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("`12345`"));

    let foreign = cmkguard(&moto, &["audit", "--accounts", MEMBER]);
    assert_eq!(foreign.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&foreign.stderr).contains("--assume-role-name"));

    let format = cmkguard(&moto, &["audit", "--format", "xml"]);
    assert_eq!(format.status.code(), Some(2));

    let config = cmkguard(&moto, &["audit", "--actions", "shout"]);
    assert_eq!(config.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&config.stderr).contains("CMKGUARD_ACTIONS"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_an_organization() {
    let moto = Moto::start();
    let organizations = |target: &str, body: &str| {
        let response = http::request(
            "POST",
            &format!("{}/", moto.endpoint()),
            &[
                ("Content-Type", "application/x-amz-json-1.1"),
                ("X-Amz-Target", &format!("AWSOrganizationsV20161128.{target}")),
                (
                    "Authorization",
                    "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/organizations/aws4_request, SignedHeaders=host, Signature=x",
                ),
            ],
            body.as_bytes(),
        )
        .unwrap();
        assert_eq!(response.status, 200, "{target}: {}", response.text());
        response.json().unwrap()
    };
    organizations("CreateOrganization", r#"{"FeatureSet": "ALL"}"#);
    let created = organizations(
        "CreateAccount",
        r#"{"AccountName": "member", "Email": "member@example.com"}"#,
    );
    assert!(created.get("CreateAccountStatus").is_some(), "{created}");
    let listed = organizations("ListAccounts", "{}");
    let ids: Vec<String> = listed["Accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["Id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2, "{listed}");

    // A secret on the default key in each account: the table lists the places with findings.
    for id in &ids {
        let keys = moto.make_keys(id, "us-east-1", false).await;
        let spec = SecretSpec {
            name: "org/default".into(),
            account: id.clone(),
            region: "us-east-1".into(),
            key: "default".into(),
            ..SecretSpec::default()
        };
        moto.make_secret(&spec, &keys).await;
    }

    let output = cmkguard(
        &moto,
        &[
            "audit",
            "--organization",
            "--assume-role-name",
            "cmkguard-member",
            "--format",
            "table",
        ],
    );
    let text = stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for id in &ids {
        assert!(text.contains(id.as_str()), "{id} not audited: {text}");
    }
    assert!(
        text.contains("2 account-regions in 2 accounts audited, each with findings, each listed."),
        "{text}"
    );

    // The organization's accounts in the order `ListAccounts` gives them, one record each.
    let json = cmkguard(
        &moto,
        &[
            "audit",
            "--organization",
            "--assume-role-name",
            "cmkguard-member",
            "--format",
            "json",
            "--concurrency",
            "1",
        ],
    );
    let accounts: Vec<String> = records(&json)
        .iter()
        .map(|r| r["account"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(accounts, ids);

    // Without the role, the organization is refused before any call, by name.
    let refused = cmkguard(&moto, &["audit", "--organization"]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--assume-role-name"), "{stderr}");
    let bad = cmkguard(&moto, &["audit", "--concurrency", "0"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--concurrency"));
}

/// A region without the designated alias: a dry run attempts nothing, so nothing `failed` and the
/// audit is complete (exit 1, findings); its records and the table say why the re-encryption
/// would not go through. `--apply` attempts it: `failed`, exit 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_without_the_alias_is_a_dry_run_that_would_fail_then_a_failed_apply() {
    let moto = Moto::start();
    let region = "eu-west-1";
    let keys = moto.make_keys(DEFAULT_ACCOUNT, region, false).await;
    for name in ["noalias/one", "noalias/two"] {
        let spec = SecretSpec {
            name: name.into(),
            account: DEFAULT_ACCOUNT.into(),
            region: region.into(),
            key: "default".into(),
            ..SecretSpec::default()
        };
        moto.make_secret(&spec, &keys).await;
    }
    let base = [
        "audit",
        "--region",
        region,
        "--actions",
        "tag,remediate",
        "--remediate-accounts",
        DEFAULT_ACCOUNT,
    ];
    let with = |extra: &[&'static str]| -> Vec<&str> {
        base.iter().copied().chain(extra.iter().copied()).collect()
    };

    let dry = cmkguard(&moto, &with(&["--format", "json"]));
    let stderr = String::from_utf8_lossy(&dry.stderr).into_owned();
    assert_eq!(dry.status.code(), Some(1), "{stderr}");
    let recs = records(&dry);
    assert_eq!(recs.len(), 2, "{}", stdout(&dry));
    for record in &recs {
        let remediate = record["actions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["action"] == "remediate")
            .unwrap();
        assert_eq!(remediate["outcome"], "dry_run", "{record}");
        assert_eq!(
            remediate["detail"],
            format!("would fail: alias `alias/cmkguard/secrets` not found in `{region}`"),
            "{record}"
        );
    }
    let table = cmkguard(&moto, &with(&[]));
    assert_eq!(table.status.code(), Some(1));
    let text = stdout(&table);
    assert!(
        text.contains("Planned actions that would not go through:"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{DEFAULT_ACCOUNT} {region}: remediate: alias `alias/cmkguard/secrets` not found in `{region}` (2 secrets)"
        )),
        "{text}"
    );

    let applied = cmkguard(&moto, &with(&["--format", "json", "--apply"]));
    assert_eq!(applied.status.code(), Some(2));
    for record in records(&applied) {
        let remediate = record["actions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["action"] == "remediate")
            .unwrap();
        assert_eq!(remediate["outcome"], "failed", "{record}");
    }
}

/// Parses `html` as a browser does (WHATWG HTML5) and fails on any parse error.
fn parse_html(html: &str) -> markup5ever_rcdom::RcDom {
    use html5ever::tendril::TendrilSink;
    let dom = html5ever::parse_document(markup5ever_rcdom::RcDom::default(), Default::default())
        .one(html);
    let errors: Vec<String> = dom.errors.borrow().iter().map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "HTML5 parse errors: {errors:?}\n{html}");
    dom
}

/// Every element of the document, in document order.
fn elements(dom: &markup5ever_rcdom::RcDom) -> Vec<markup5ever_rcdom::Handle> {
    let mut out = Vec::new();
    let mut stack = vec![dom.document.clone()];
    while let Some(node) = stack.pop() {
        if matches!(node.data, markup5ever_rcdom::NodeData::Element { .. }) {
            out.push(node.clone());
        }
        stack.extend(node.children.borrow().iter().rev().cloned());
    }
    out
}

fn name_of(node: &markup5ever_rcdom::Handle) -> String {
    match &node.data {
        markup5ever_rcdom::NodeData::Element { name, .. } => name.local.to_string(),
        _ => String::new(),
    }
}

fn attribute(node: &markup5ever_rcdom::Handle, attribute: &str) -> Option<String> {
    match &node.data {
        markup5ever_rcdom::NodeData::Element { attrs, .. } => attrs
            .borrow()
            .iter()
            .find(|a| &*a.name.local == attribute)
            .map(|a| a.value.to_string()),
        _ => None,
    }
}

fn text(node: &markup5ever_rcdom::Handle) -> String {
    let mut out = String::new();
    if let markup5ever_rcdom::NodeData::Text { contents } = &node.data {
        out.push_str(&contents.borrow());
    }
    for child in node.children.borrow().iter() {
        out.push_str(&text(child));
    }
    out
}

/// Elements named `tag` that carry `with`.
fn count(dom: &markup5ever_rcdom::RcDom, tag: &str, with: &str) -> usize {
    elements(dom)
        .iter()
        .filter(|e| name_of(e) == tag && attribute(e, with).is_some())
        .count()
}

fn text_of_id(dom: &markup5ever_rcdom::RcDom, id: &str) -> String {
    let found = elements(dom)
        .into_iter()
        .find(|e| attribute(e, "id").as_deref() == Some(id))
        .unwrap_or_else(|| panic!("no element `{id}`"));
    text(&found)
}

/// Names and tags that are HTML, script, Markdown: the reports show them as text and run nothing.
const HOSTILE: [&str; 3] = [
    "<img src=x onerror=\"window.__pwned=1\">",
    "</script><script>window.__pwned=1</script>",
    "x|y`z`<b>&amp;",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_and_tags_show_as_text_in_the_reports() {
    let moto = Moto::start();
    let keys = moto.make_keys(DEFAULT_ACCOUNT, "us-east-1", true).await;
    for name in HOSTILE {
        let spec = SecretSpec {
            name: name.into(),
            account: DEFAULT_ACCOUNT.into(),
            region: "us-east-1".into(),
            key: "default".into(),
            tags: HOSTILE
                .iter()
                .map(|t| (format!("k{t}"), t.to_string()))
                .collect(),
            ..SecretSpec::default()
        };
        moto.make_secret(&spec, &keys).await;
    }
    let run = |format: &str| {
        let output = cmkguard(
            &moto,
            &["audit", "--region", "us-east-1", "--format", format],
        );
        assert_eq!(
            output.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout(&output)
    };

    let html = run("html");
    let document = parse_html(&html);
    // Only the report's own elements: no `img`, one `script`, and each name as text.
    let all = elements(&document);
    assert!(!all.iter().any(|e| name_of(e) == "img" || name_of(e) == "b"));
    assert_eq!(all.iter().filter(|e| name_of(e) == "script").count(), 1);
    let names: Vec<String> = all
        .iter()
        .filter(|e| attribute(e, "class").as_deref() == Some("secret"))
        .map(text)
        .collect();
    for name in HOSTILE {
        assert!(
            names.iter().any(|n| n == name),
            "{name} not shown: {names:?}"
        );
        assert!(!html.contains(name), "`{name}` unescaped in:\n{html}");
        let titles = all.iter().filter_map(|e| attribute(e, "title"));
        assert!(
            titles.into_iter().any(|t| t.contains(name)),
            "{name}: no ARN title"
        );
    }
    assert_eq!(count(&document, "tr", "data-account"), HOSTILE.len());

    let markdown = run("markdown");
    for name in HOSTILE {
        assert!(
            !markdown.contains(name),
            "`{name}` unescaped in:\n{markdown}"
        );
    }
    assert!(
        markdown.contains("\\<img src=x onerror=\"window.\\_\\_pwned=1\"\\>"),
        "{markdown}"
    );
    // Every findings row has its 9 cells: nothing from AWS opened a column.
    let rows: Vec<&str> = markdown
        .lines()
        .filter(|l| l.starts_with(&format!("| {DEFAULT_ACCOUNT} | us-east-1 |")))
        .collect();
    assert_eq!(rows.len(), HOSTILE.len(), "{markdown}");
    for row in rows {
        let cells = row.replace("\\|", "").matches('|').count();
        assert_eq!(cells, 10, "{row}");
    }
}
