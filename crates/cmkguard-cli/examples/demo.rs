//! `just demo`: the guard against a local AWS emulator, start to finish. Starts moto on a free
//! loopback port, makes the region's customer managed key and alias, makes secrets on the default
//! key and on the key, runs `cmkguard handle-event` on a CreateSecret event for each with
//! `tag,notify,remediate,securityhub`, prints the audit records and a before/after table, writes
//! the audit's HTML report to `target/cmkguard-report.html` (`cmkguard audit --format html`), and
//! stops moto.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // a demo: fail loudly, print freely

use std::process::Command;

use cmkguard_testkit::world::{SecretSpec, SecretState};
use cmkguard_testkit::{Moto, sibling_binary};
use serde_json::Value;

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

fn key_label(state: &SecretState, designated: &str) -> String {
    match state.kms_key_id.as_deref() {
        None => format!("{} (AWS managed)", cmkguard_core::tags::DEFAULT_KEY),
        Some(k) if k == designated => "alias/cmkguard/secrets (customer managed)".into(),
        Some(k) => k.to_owned(),
    }
}

#[tokio::main]
async fn main() {
    let binary = sibling_binary("cmkguard");
    assert!(
        binary.exists(),
        "build the CLI first: cargo build -p cmkguard-cli (looked for {})",
        binary.display()
    );

    println!("== starting moto (local AWS emulator)");
    let moto = Moto::start();
    println!("   {}", moto.endpoint());
    let keys = moto.make_keys(ACCOUNT, REGION, true).await;
    let topic = moto.make_topic().await;
    println!(
        "   customer managed key {} as alias/cmkguard/secrets",
        keys.designated
    );
    println!("   SNS topic {topic}");

    let secrets = [
        ("demo/payments-db", "default", vec![], None),
        ("demo/orders-db", "cmk", vec![], None),
        ("demo/api-token", "default", vec![], None),
        (
            "demo/legacy-report",
            "default",
            vec![("cmkguard:exempt", "true")],
            None,
        ),
        ("rds!db-demo-1234", "default", vec![], Some("rds")),
    ];
    let mut made = Vec::new();
    for (name, key, tags, owner) in &secrets {
        let spec = SecretSpec {
            name: (*name).into(),
            account: ACCOUNT.into(),
            region: REGION.into(),
            key: (*key).into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            owning_service: owner.map(Into::into),
            replica_regions: vec![],
        };
        made.push((*name, moto.make_secret(&spec, &keys).await));
    }

    let mut before = Vec::new();
    for (_, secret) in &made {
        before.push(moto.secret_state(ACCOUNT, REGION, &secret.arn).await);
    }

    println!(
        "\n== running the guard on a CreateSecret event for each secret (actions: tag,notify,remediate,securityhub)\n"
    );
    for (i, (_, secret)) in made.iter().enumerate() {
        let mut event = cmkguard_testkit::event_for("CreateSecret-default-key.json", &secret.arn);
        event["detail"]["eventID"] = format!("00000000-0000-4000-8000-{i:012}").into();
        let event = event.to_string();
        let out = cmkguard_testkit::run_with_input(
            Command::new(&binary)
                .args(["handle-event", "-"])
                .envs(moto.env())
                .env("CMKGUARD_ACTIONS", "tag,notify,remediate,securityhub")
                .env("CMKGUARD_REMEDIATE_ACCOUNTS", ACCOUNT)
                .env("CMKGUARD_SNS_TOPIC_ARN", &topic),
            event.as_bytes(),
        );
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            println!("{line}");
        }
    }

    println!("\n== before and after\n");
    // Each secret's Security Hub finding, read back from the emulator (`GetFindings`).
    let findings = moto.findings(ACCOUNT, REGION);
    let finding_of = |arn: &str| {
        findings
            .iter()
            .find(|f| f["Resources"][0]["Id"] == arn)
            .map_or("-".to_owned(), |f| {
                format!(
                    "{} {} {}",
                    f["Compliance"]["Status"].as_str().unwrap_or("?"),
                    f["Severity"]["Label"].as_str().unwrap_or("?"),
                    f["RecordState"].as_str().unwrap_or("?")
                )
            })
    };
    let mut rows = Vec::new();
    for ((name, secret), before) in made.iter().zip(&before) {
        let after = moto.secret_state(ACCOUNT, REGION, &secret.arn).await;
        let tag = |name: &str| after.tags.get(name).map_or("-", String::as_str);
        rows.push(vec![
            name.to_string(),
            key_label(before, &keys.designated),
            key_label(&after, &keys.designated),
            format!("{} / {}", tag("cmkguard:status"), tag("cmkguard:reason")),
            finding_of(&secret.arn),
        ]);
        assert_eq!(
            after.current_value, secret.current_value,
            "a secret value changed"
        );
    }
    let header = [
        "secret",
        "key before",
        "key after",
        "cmkguard:status / reason",
        "Security Hub finding",
    ];
    cmkguard_cli::output::write_columns(&mut std::io::stdout(), &header, &rows).unwrap();
    let messages: Vec<Value> = moto.sns_messages();
    println!(
        "\n{} SNS notifications published, {} Security Hub findings; every secret's values are unchanged.",
        messages.len(),
        findings.len()
    );

    // What is left, as a report to open in a browser: the managed secret, never re-encrypted.
    let report = binary
        .parent()
        .and_then(|p| p.parent())
        .unwrap()
        .join("cmkguard-report.html");
    let out = Command::new(&binary)
        .args(["audit", "--region", REGION, "--format", "html"])
        .envs(moto.env())
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "cmkguard audit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&report, &out.stdout).unwrap();
    println!("\n== the audit's HTML report: {}", report.display());
    println!("== stopping moto");
}
