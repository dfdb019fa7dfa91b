//! The `securityhub` action against moto, read back with `GetFindings`: the first finding's
//! fields, one finding per secret across redeliveries, PASSED once fixed (by a person, or by
//! the guard, with text saying which), no active FAILED finding for an exempt secret, a member
//! account's finding in that account, and an audit's findings in batches of 100.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

mod support;

use cmkguard_core::fake::cases::{OWN_ACCOUNT, actions};
use cmkguard_testkit::world::{MadeSecret, SecretSpec};
use cmkguard_testkit::{FaultProxy, Moto};
use serde_json::Value;
use support::{Run, Setup, assert_no_canary, case, cmkguard, setup};

const FINDING_TYPE: &str = "Software and Configuration Checks/AWS Security Best Practices/Secrets Manager customer managed key";

/// A moto of its own with the world of the case `case_name`, its actions plus `securityhub`.
async fn with_securityhub(case_name: &str) -> (Moto, Setup, MadeSecret) {
    let moto = Moto::start();
    let mut setup = setup(&moto, &case(case_name)).await;
    let actions = setup
        .env
        .get("CMKGUARD_ACTIONS")
        .cloned()
        .unwrap_or("tag".into());
    setup
        .env
        .insert("CMKGUARD_ACTIONS".into(), format!("{actions},securityhub"));
    let made = setup.made.clone().unwrap();
    (moto, setup, made)
}

/// One delivery of the case's event to `cmkguard handle-event`.
fn deliver(moto: &Moto, setup: &Setup) -> Run {
    cmkguard(moto, None, &["handle-event", "-"], &setup.env, &setup.event)
}

fn outcome(run: &Run, action: &str) -> Option<String> {
    actions(&run.records[0])
        .into_iter()
        .find(|(a, _)| a == action)
        .map(|(_, o)| o)
}

/// The one finding about `made` (panics when there is not exactly one).
fn the_finding(moto: &Moto, account: &str, made: &MadeSecret) -> Value {
    let all = moto.findings(account, "us-east-1");
    let about: Vec<_> = all
        .iter()
        .filter(|f| f["Resources"][0]["Id"] == made.arn.as_str())
        .collect();
    assert_eq!(about.len(), 1, "{all:#?}");
    about[0].clone()
}

fn no_secret_value(made: &MadeSecret, findings: &[Value]) {
    let text = format!("{findings:?}");
    assert_no_canary(made, &text, "a finding");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finding_per_secret_failed_then_passed_when_a_person_fixes_it() {
    let (moto, setup, made) = with_securityhub("default-key-is-tagged").await;

    let first = deliver(&moto, &setup);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    assert_eq!(
        outcome(&first, "securityhub").as_deref(),
        Some("done"),
        "{}",
        first.stdout
    );
    let finding = the_finding(&moto, OWN_ACCOUNT, &made);

    // The fields of the contract, exactly.
    assert_eq!(finding["SchemaVersion"], "2018-10-08");
    assert_eq!(
        finding["Id"],
        format!("cmkguard/secret-kms-key/{}", made.arn).as_str()
    );
    assert_eq!(
        finding["ProductArn"],
        format!("arn:aws:securityhub:us-east-1:{OWN_ACCOUNT}:product/{OWN_ACCOUNT}/default")
            .as_str()
    );
    assert_eq!(finding["AwsAccountId"], OWN_ACCOUNT);
    assert_eq!(finding["GeneratorId"], "cmkguard/secret-kms-key");
    assert_eq!(finding["Types"], serde_json::json!([FINDING_TYPE]));
    assert!(
        finding["Types"][0]
            .as_str()
            .unwrap()
            .starts_with("Software and Configuration Checks/")
    );
    let fields = &finding["ProductFields"];
    assert_eq!(fields["ProviderName"], "cmkguard");
    assert_eq!(fields["ProviderVersion"], env!("CARGO_PKG_VERSION"));
    let resource = &finding["Resources"][0];
    assert_eq!(resource["Type"], "AwsSecretsManagerSecret");
    assert_eq!(resource["Id"], made.arn.as_str());
    assert_eq!(resource["Region"], "us-east-1");
    let details = &resource["Details"]["AwsSecretsManagerSecret"];
    assert_eq!(details["Name"], "cmkguard-test/default-key");
    assert!(
        details.get("KmsKeyId").is_none(),
        "the default key has no key id: {details}"
    );
    assert_eq!(finding["Compliance"]["Status"], "FAILED");
    assert_eq!(finding["Severity"]["Label"], "MEDIUM");
    assert_eq!(
        finding["FindingProviderFields"]["Severity"]["Label"],
        "MEDIUM"
    );
    assert_eq!(finding["RecordState"], "ACTIVE");
    // What to do: the reason's row of the one advice table (the e-mail and the reports read it too).
    assert_eq!(
        finding["Remediation"]["Recommendation"]["Text"],
        cmkguard_core::advice::of(cmkguard_core::Reason::AwsManagedKey).to_do
    );
    // Left to people.
    assert!(finding.get("Note").is_none() && finding.get("UserDefinedFields").is_none());
    assert!(
        finding.get("Workflow").is_none_or(|w| w["Status"] == "NEW"),
        "{finding}"
    );
    let created = finding["CreatedAt"].clone();

    // A redelivery: no import, the same one finding.
    let again = deliver(&moto, &setup);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!(outcome(&again, "securityhub"), None, "{}", again.stdout);
    let same = the_finding(&moto, OWN_ACCOUNT, &made);
    assert_eq!(same["UpdatedAt"], finding["UpdatedAt"]);

    // A person moves the secret to a customer managed key: PASSED, the same finding.
    let designated = setup.keys[&(OWN_ACCOUNT.to_owned(), "us-east-1".to_owned())]
        .designated
        .clone();
    moto.secrets_client(OWN_ACCOUNT, "us-east-1")
        .await
        .update_secret()
        .secret_id(&made.arn)
        .kms_key_id(&designated)
        .send()
        .await
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let fixed = deliver(&moto, &setup);
    assert_eq!(fixed.code, Some(0), "{}", fixed.stderr);
    assert_eq!(fixed.records[0]["verdict"], "compliant");
    assert_eq!(outcome(&fixed, "securityhub").as_deref(), Some("done"));
    let passed = the_finding(&moto, OWN_ACCOUNT, &made);
    assert_eq!(passed["Id"], finding["Id"]);
    assert_eq!(passed["Compliance"]["Status"], "PASSED");
    assert_eq!(passed["Severity"]["Label"], "INFORMATIONAL");
    assert!(
        passed["Description"]
            .as_str()
            .unwrap()
            .contains("fixed outside cmkguard"),
        "{passed:?}"
    );
    assert_eq!(passed["CreatedAt"], created, "the first CreatedAt stays");
    assert!(
        passed["UpdatedAt"].as_str() > finding["UpdatedAt"].as_str(),
        "a later UpdatedAt"
    );
    no_secret_value(&made, &moto.findings(OWN_ACCOUNT, "us-east-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_encrypted_by_the_guard_stays_failed_at_low_and_says_what_is_left() {
    let (moto, setup, made) = with_securityhub("cloudformation-secret-is-remediated").await;
    let run = deliver(&moto, &setup);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(outcome(&run, "remediate").as_deref(), Some("done"));
    assert_eq!(outcome(&run, "securityhub").as_deref(), Some("done"));
    let finding = the_finding(&moto, OWN_ACCOUNT, &made);
    // The move is finished only by a new version: FAILED at LOW until then.
    assert_eq!(finding["Compliance"]["Status"], "FAILED");
    assert_eq!(finding["Severity"]["Label"], "LOW");
    assert_eq!(
        finding["ProductFields"]["cmkguard/reason"],
        "previous-key-decrypts"
    );
    assert!(
        finding["Description"]
            .as_str()
            .unwrap()
            .contains("until a new version is current"),
        "{finding:?}"
    );
    assert!(
        finding["Title"]
            .as_str()
            .unwrap()
            .contains("re-encrypted by cmkguard"),
        "{finding:?}"
    );
    assert!(
        finding["Description"]
            .as_str()
            .unwrap()
            .contains("cmkguard re-encrypted"),
        "{finding:?}"
    );
    let details = &finding["Resources"][0]["Details"]["AwsSecretsManagerSecret"];
    assert!(
        details["KmsKeyId"]
            .as_str()
            .is_some_and(|k| k.starts_with("arn:aws:kms:")),
        "{details}"
    );
    // The guard's own UpdateSecret event comes back: nothing more to import.
    let again = deliver(&moto, &setup);
    assert_eq!(outcome(&again, "securityhub"), None, "{}", again.stdout);
    assert_eq!(moto.findings(OWN_ACCOUNT, "us-east-1").len(), 1);
    no_secret_value(&made, &moto.findings(OWN_ACCOUNT, "us-east-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exempt_secret_has_no_active_failed_finding() {
    let (moto, setup, made) = with_securityhub("default-key-is-tagged").await;
    let first = deliver(&moto, &setup);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    moto.secrets_client(OWN_ACCOUNT, "us-east-1")
        .await
        .tag_resource()
        .secret_id(&made.arn)
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("cmkguard:exempt")
                .value("true")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let exempt = deliver(&moto, &setup);
    assert_eq!(exempt.records[0]["verdict"], "exempt", "{}", exempt.stdout);
    assert_eq!(outcome(&exempt, "securityhub").as_deref(), Some("done"));
    let finding = the_finding(&moto, OWN_ACCOUNT, &made);
    let active_failed =
        finding["RecordState"] == "ACTIVE" && finding["Compliance"]["Status"] == "FAILED";
    assert!(!active_failed, "{finding:?}");
    assert_eq!(finding["RecordState"], "ARCHIVED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_accounts_finding_is_imported_in_that_account() {
    let moto = Moto::start();
    let case = case("other-account-through-role");
    let mut setup = setup(&moto, &case).await;
    setup
        .env
        .insert("CMKGUARD_ACTIONS".into(), "tag,securityhub".into());
    let made = setup.made.clone().unwrap();
    let run = deliver(&moto, &setup);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        outcome(&run, "securityhub").as_deref(),
        Some("done"),
        "{}",
        run.stdout
    );
    let member = "111122223333";
    let finding = the_finding(&moto, member, &made);
    assert_eq!(finding["AwsAccountId"], member);
    assert_eq!(
        finding["ProductArn"],
        format!("arn:aws:securityhub:us-east-1:{member}:product/{member}/default").as_str()
    );
    assert!(
        moto.findings(OWN_ACCOUNT, "us-east-1").is_empty(),
        "not in the guard's account"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_imports_findings_in_batches_of_100() {
    let moto = Moto::start();
    moto.reset();
    let keys = moto.make_keys(OWN_ACCOUNT, "us-east-1", true).await;
    let mut made = Vec::new();
    for i in 0..250 {
        let spec = SecretSpec {
            name: format!("audit/app-{i:03}"),
            account: OWN_ACCOUNT.into(),
            region: "us-east-1".into(),
            key: "default".into(),
            ..Default::default()
        };
        made.push(moto.make_secret(&spec, &keys).await);
    }
    let proxy = FaultProxy::start(&moto.endpoint());
    let env = [
        ("CMKGUARD_ACTIONS".to_owned(), "tag,securityhub".to_owned()),
        ("CMKGUARD_RETRY_BUDGET_MS".to_owned(), "0".to_owned()),
    ]
    .into();
    let run = cmkguard(
        &moto,
        Some(&proxy),
        &[
            "audit",
            "--apply",
            "--region",
            "us-east-1",
            "--format",
            "json",
        ],
        &env,
        b"",
    );
    assert_eq!(run.code, Some(1), "non-compliant secrets: {}", run.stderr);
    assert_eq!(run.records.len(), 250);
    assert!(
        run.records
            .iter()
            .all(|r| actions(r).contains(&("securityhub".to_owned(), "done".to_owned())))
    );
    let imports = proxy.count("BatchImportFindings");
    assert!(
        (1..=3).contains(&imports),
        "{imports} imports: {:?}",
        proxy.counts()
    );
    let findings = moto.findings(OWN_ACCOUNT, "us-east-1");
    assert_eq!(findings.len(), 250);
    for m in &made {
        no_secret_value(m, &findings);
    }
    // A second audit changes nothing: no import at all.
    proxy.reset_counts();
    let again = cmkguard(
        &moto,
        Some(&proxy),
        &[
            "audit",
            "--apply",
            "--region",
            "us-east-1",
            "--format",
            "json",
        ],
        &env,
        b"",
    );
    assert_eq!(again.records.len(), 250, "{}", again.stderr);
    assert_eq!(
        proxy.count("BatchImportFindings"),
        0,
        "{:?}",
        proxy.counts()
    );
}
