//! Notifications against moto, with the fault proxy in front keeping every `Publish` body: an
//! SQS subscriber gets the audit record unchanged (SNS message structure's `default`), and the
//! `email` body is plain words about the finding, with no JSON and no secret value in any body.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

mod support;

use cmkguard_core::fake::cases::OWN_ACCOUNT;
use cmkguard_testkit::world::SecretSpec;
use cmkguard_testkit::{FaultProxy, Moto, form_value, workspace_root};
use serde_json::Value;
use support::{assert_no_canary, case, cmkguard, setup};

/// An SQS body as the SNS envelope it holds (moto escapes it for XML).
fn envelope(body: &str) -> Value {
    let json = body
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("not an SNS envelope: {e}: {json}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_gets_the_record_and_email_gets_plain_words_without_values() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.endpoint());
    proxy.keep_bodies("sns:Publish");
    // One secret on the default key (the case's), one on a disabled key.
    let setup = setup(&moto, &case("default-key-is-tagged")).await;
    let on_default = setup.made.clone().unwrap();
    let keys = &setup.keys[&(OWN_ACCOUNT.to_owned(), "us-east-1".to_owned())];
    let spec = SecretSpec {
        name: "cmkguard-test/disabled-key".into(),
        account: OWN_ACCOUNT.into(),
        region: "us-east-1".into(),
        key: "cmk-disabled".into(),
        ..Default::default()
    };
    let on_disabled = moto.make_secret(&spec, keys).await;
    let topic = format!("arn:aws:sns:us-east-1:{OWN_ACCOUNT}:cmkguard");
    let queue = moto.subscribe_queue(&topic, "records").await;
    let mut env = setup.env.clone();
    env.insert("CMKGUARD_ACTIONS".into(), "tag,notify".into());
    env.insert("CMKGUARD_SNS_TOPIC_ARN".into(), topic.clone());

    let sweep =
        std::fs::read(workspace_root().join("testdata/events/ScheduledEvent-sweep.json")).unwrap();
    let run = cmkguard(&moto, Some(&proxy), &["handle-event", "-"], &env, &sweep);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let mut flagged: Vec<&Value> = run
        .records
        .iter()
        .filter(|r| r["verdict"] == "non_compliant")
        .collect();
    flagged.sort_by_key(|r| r["secret_arn"].as_str().unwrap().to_owned());
    let mut expected = vec![on_default.arn.clone(), on_disabled.arn.clone()];
    expected.sort();
    assert_eq!(
        flagged
            .iter()
            .map(|r| r["secret_arn"].as_str().unwrap())
            .collect::<Vec<_>>(),
        expected,
        "{}",
        run.stdout
    );

    // The SQS subscriber: the record, as published before message structure (the record as
    // printed, less the `notify` action that follows the publishing).
    let mut envelopes: Vec<Value> = moto
        .receive_all(&queue)
        .iter()
        .map(|b| envelope(b))
        .collect();
    assert_eq!(envelopes.len(), 2, "{envelopes:?}");
    envelopes.sort_by_key(|e| e["Message"].as_str().unwrap().to_owned());
    let mut defaults = Vec::new();
    for (envelope, record) in envelopes.iter().zip(&flagged) {
        let message = envelope["Message"].as_str().unwrap();
        let published: Value = serde_json::from_str(message)
            .unwrap_or_else(|e| panic!("the SQS body is not the record: {e}: {message}"));
        let mut printed = (*record).clone();
        let actions = printed["actions"].as_array_mut().unwrap();
        assert_eq!(actions.pop().unwrap()["action"], "notify");
        assert_eq!(published, printed);
        let name = cmkguard_core::arn::secret_name(record["secret_arn"].as_str().unwrap());
        assert!(
            envelope["Subject"]
                .as_str()
                .unwrap()
                .starts_with(&format!("cmkguard: non_compliant secret {name}-")),
            "{envelope}"
        );
        assert_eq!(
            envelope["MessageAttributes"]["verdict"]["Value"],
            "non_compliant"
        );
        assert_eq!(
            envelope["MessageAttributes"]["account"]["Value"],
            OWN_ACCOUNT
        );
        assert_eq!(
            envelope["MessageAttributes"]["region"]["Value"],
            "us-east-1"
        );
        defaults.push(message.to_owned());
    }

    // The `Publish` requests: message structure, `default` byte for byte what SQS got, `email`
    // the plain words; no value anywhere.
    let bodies = proxy.bodies("Publish");
    assert_eq!(bodies.len(), 2);
    let mut emails = Vec::new();
    for body in &bodies {
        assert_eq!(
            form_value(body, "MessageStructure").as_deref(),
            Some("json")
        );
        let message: Value = serde_json::from_str(&form_value(body, "Message").unwrap()).unwrap();
        assert!(
            defaults.iter().any(|d| message["default"] == d.as_str()),
            "{message}"
        );
        let email = message["email"].as_str().unwrap().to_owned();
        assert!(
            !email.contains('{') && !email.contains("\"verdict\""),
            "{email}"
        );
        for made in [&on_default, &on_disabled] {
            assert_no_canary(made, &String::from_utf8_lossy(body), "a Publish body");
            assert_no_canary(made, &message.to_string(), "a Publish message");
        }
        emails.push(email);
    }
    emails.sort();
    for (email, arn) in emails.iter().zip(&expected) {
        for needle in [
            arn.as_str(),
            OWN_ACCOUNT,
            "us-east-1",
            "cmkguard:exempt = true",
        ] {
            assert!(email.contains(needle), "no {needle:?} in:\n{email}");
        }
    }
    let default_key = emails
        .iter()
        .find(|e| e.contains("AWS managed key"))
        .unwrap();
    assert!(
        default_key.contains("no key policy of its own"),
        "{default_key}"
    );
    assert!(default_key.contains("Status tag: done"), "{default_key}");
    let disabled = emails.iter().find(|e| e.contains("is disabled")).unwrap();
    assert!(disabled.contains("enable-key"), "{disabled}");
    eprintln!("{default_key}\n-----\n{disabled}");
}
