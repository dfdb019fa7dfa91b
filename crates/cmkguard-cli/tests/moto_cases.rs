//! The shared case table through the `cmkguard` binary, against a moto server of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

mod support;

use std::collections::BTreeMap;

use cmkguard_core::fake::cases::{self, Layer, OWN_ACCOUNT};
use cmkguard_testkit::Moto;
use cmkguard_testkit::world::SecretSpec;
use serde_json::Value;
use support::{cmkguard, setup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_through_the_cli_against_moto() {
    let moto = Moto::start();
    let all = cases::load_for(Layer::Cli);
    assert!(all.len() >= 20);
    for case in &all {
        let setup = setup(&moto, case).await;
        let run = cmkguard(
            &moto,
            None,
            &["handle-event", "-"],
            &setup.env,
            &setup.event,
        );
        let stderr = &run.stderr;
        let got = &run.records;
        assert_eq!(
            got.len(),
            1,
            "{}: stdout {:?} stderr {stderr}",
            case.label(),
            run.stdout
        );
        let problems = cases::check_record(case, &got[0]);
        assert!(
            problems.is_empty(),
            "{}: {problems:?}\nstderr: {stderr}",
            case.label()
        );
        let failed =
            got[0]["verdict"] == "error" || got[0]["actions"].to_string().contains("\"failed\"");
        assert_eq!(
            run.code,
            Some(if failed { 1 } else { 0 }),
            "{}: exit code; stderr {stderr}",
            case.label()
        );

        let messages_before = moto.sns_messages().len();
        if let Some(notified) = case.expect.notified {
            assert_eq!(messages_before > 0, notified, "{}: notified", case.label());
            if notified {
                let message = &moto.sns_messages()[0];
                // Published with message structure: `default` is the record.
                let bodies: Value =
                    serde_json::from_str(message["message"].as_str().unwrap()).unwrap();
                let body: Value =
                    serde_json::from_str(bodies["default"].as_str().unwrap()).unwrap();
                assert!(
                    bodies["email"]
                        .as_str()
                        .is_some_and(|email| email.contains("cmkguard:exempt = true")),
                    "{}: the e-mail body: {bodies}",
                    case.label()
                );
                assert_eq!(
                    body["verdict"],
                    got[0]["verdict"],
                    "{}: the message is the record",
                    case.label()
                );
                assert_eq!(
                    message["message_attributes"]["verdict"]["Value"],
                    got[0]["verdict"],
                    "{}",
                    case.label()
                );
                assert_eq!(
                    message["message_attributes"]["account"]["Value"],
                    got[0]["account"],
                    "{}",
                    case.label()
                );
                assert_eq!(
                    message["message_attributes"]["region"]["Value"],
                    got[0]["region"],
                    "{}",
                    case.label()
                );
                assert!(
                    message["subject"]
                        .as_str()
                        .unwrap()
                        .starts_with("cmkguard: "),
                    "{}",
                    case.label()
                );
            }
        }

        if let (Some(made), Some(secret)) = (&setup.made, &case.secret) {
            let state = moto
                .secret_state(&secret.account, &secret.region, &made.arn)
                .await;
            if let Some(tags) = &case.expect.tags {
                assert_eq!(
                    &cases::guard_tags(&state.tags),
                    tags,
                    "{}: tags after",
                    case.label()
                );
            }
            if let Some(kind) = &case.expect.key_after {
                let keys = &setup.keys[&(secret.account.clone(), secret.region.clone())];
                // moto stores `alias/aws/secretsmanager` as no key id at all: both mean the default key.
                let normal = |id: Option<String>| id.filter(|id| id != "alias/aws/secretsmanager");
                assert_eq!(
                    normal(state.kms_key_id),
                    normal(Moto::key_id_for(keys, kind)),
                    "{}: key after",
                    case.label()
                );
            }
            // Nothing lost: every version still holds exactly its value.
            assert_eq!(
                state.current_value,
                made.current_value,
                "{}: AWSCURRENT",
                case.label()
            );
            assert_eq!(
                state.previous_value.as_deref(),
                Some(made.previous_value.as_str()),
                "{}: AWSPREVIOUS",
                case.label()
            );
            // Never a secret value in any output.
            for canary in [&made.current_value, &made.previous_value] {
                assert!(
                    !run.stdout.contains(canary.as_str()),
                    "{}: canary on stdout",
                    case.label()
                );
                assert!(
                    !stderr.contains(canary.as_str()),
                    "{}: canary on stderr",
                    case.label()
                );
            }
        }

        // A second delivery makes no write.
        let again = cmkguard(
            &moto,
            None,
            &["handle-event", "-"],
            &setup.env,
            &setup.event,
        );
        let again = again.records;
        assert_eq!(again.len(), 1, "{}", case.label());
        assert!(
            !again[0]["actions"].to_string().contains("\"done\""),
            "{}: redelivery wrote: {}",
            case.label(),
            again[0]
        );
        assert_eq!(
            moto.sns_messages().len(),
            messages_before,
            "{}: redelivery notified again",
            case.label()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_event_sweeps_the_region_through_the_cli() {
    let moto = Moto::start();
    let keys = moto.make_keys(OWN_ACCOUNT, "us-east-1", true).await;
    let mut made = Vec::new();
    for (name, key) in [
        ("sweep/a", "default"),
        ("sweep/b", "cmk"),
        ("sweep/c", "default"),
    ] {
        let spec = SecretSpec {
            name: name.into(),
            account: OWN_ACCOUNT.into(),
            region: "us-east-1".into(),
            key: key.into(),
            ..Default::default()
        };
        made.push(moto.make_secret(&spec, &keys).await);
    }
    let event = serde_json::to_vec(&cases::event("ScheduledEvent-sweep.json")).unwrap();
    let env = BTreeMap::from([("CMKGUARD_ACTIONS".to_owned(), "tag".to_owned())]);
    let run = cmkguard(&moto, None, &["handle-event", "-"], &env, &event);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let got: Vec<Value> = run
        .records
        .into_iter()
        .filter(|r| r.get("verdict").is_some())
        .collect();
    let mut verdicts: Vec<(String, String)> = got
        .iter()
        .map(|r| {
            (
                r["secret_arn"].as_str().unwrap().to_owned(),
                r["verdict"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    verdicts.sort();
    let mut want: Vec<(String, String)> = made
        .iter()
        .zip(["non_compliant", "compliant", "non_compliant"])
        .map(|(m, v)| (m.arn.clone(), v.to_owned()))
        .collect();
    want.sort();
    assert_eq!(verdicts, want);
    for record in &got {
        assert_eq!(record["event_name"], "ScheduledEvent");
    }
    let state = moto
        .secret_state(OWN_ACCOUNT, "us-east-1", &made[0].arn)
        .await;
    assert_eq!(
        state.tags.get("cmkguard:status").map(String::as_str),
        Some("non-compliant")
    );
}
