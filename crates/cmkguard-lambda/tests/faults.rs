//! The Lambda binary under a lasting AWS fault: an invocation error (so Lambda retries the
//! event), the failed action in the logged audit record, and Lambda's retry of the same event
//! converging, with at most one `UpdateSecret` that lands.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use std::path::Path;
use std::time::Duration;

use cmkguard_testkit::world::{Keys, MadeSecret, SecretState};
use cmkguard_testkit::{
    Fault, FaultProxy, Invocation, Moto, Outcome, Process, Rule, RuntimeApi, When,
};
use serde_json::Value;

/// Attempts per AWS call in the function: a rule hitting the first two calls outlasts them.
const ATTEMPTS: usize = 2;

/// One secret on the default key, two deliveries of its CreateSecret event to the Lambda binary,
/// with `rule` in the proxy; notifications land in an SQS queue subscribed to the topic.
struct TwoDeliveries {
    moto: Moto,
    proxy: FaultProxy,
    keys: Keys,
    made: MadeSecret,
    results: Vec<Invocation>,
    records: Vec<Value>,
    notifications: Vec<String>,
    output: String,
}

async fn deliver_twice(rule: Rule) -> TwoDeliveries {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.endpoint());
    let (keys, made, event) = moto.default_key_secret("cmkguard-test/lambda-faults").await;
    let topic = moto.make_topic().await;
    let queue = moto.subscribe_queue(&topic, "cmkguard-notifications").await;

    proxy.inject(rule);
    let api = RuntimeApi::start(vec![event.clone(), event]);
    let env = proxy.env(moto.env()).into_iter().chain(api.env()).chain(
        [
            ("CMKGUARD_ACTIONS", "tag,notify,remediate"),
            ("CMKGUARD_REMEDIATE_ACCOUNTS", "123456789012"),
            ("CMKGUARD_SNS_TOPIC_ARN", topic.as_str()),
            ("CMKGUARD_AWS_ATTEMPT_TIMEOUT_MS", "2000"),
            ("AWS_MAX_ATTEMPTS", &ATTEMPTS.to_string()),
            ("CMKGUARD_RETRY_BUDGET_MS", "0"),
            ("AWS_LAMBDA_LOG_LEVEL", "trace"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let function = Process::function(Path::new(env!("CARGO_BIN_EXE_cmkguard-lambda")), env);
    let results = api.wait_for(2, Duration::from_secs(90));
    proxy.wait_idle(Duration::from_secs(10));
    let (stdout, stderr) = function.stop();
    let records = cmkguard_testkit::audit_records(&stdout);
    let notifications = moto.receive_all(&queue);
    TwoDeliveries {
        moto,
        proxy,
        keys,
        made,
        results,
        records,
        notifications,
        output: format!("{stdout}\n{stderr}"),
    }
}

impl TwoDeliveries {
    /// The first delivery failed with an error Lambda retries, `action` failed in its record, and
    /// the retry converged: on the designated key, every value intact, one `UpdateSecret` landed.
    async fn assert_failed_then_converged(&self, what: &str, action: &str) {
        let output = &self.output;
        assert_eq!(self.results.len(), 2, "{what}: {output}");
        let Outcome::Error(body) = &self.results[0].outcome else {
            panic!("{what}: not an error: {:?}", self.results[0])
        };
        assert!(
            body["errorMessage"].as_str().unwrap().contains("transient"),
            "{what}: {body}"
        );
        assert_eq!(
            self.records.len(),
            2,
            "{what}: one record per delivery: {output}"
        );
        let failed = self.records[0]["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == action && a["outcome"] == "failed");
        assert!(failed, "{what}: {}", self.records[0]);

        assert!(
            matches!(self.results[1].outcome, Outcome::Response(_)),
            "{what}: {:?}",
            self.results[1]
        );
        let state = self.state().await;
        assert_eq!(
            state.kms_key_id.as_deref(),
            Some(self.keys.designated.as_str()),
            "{what}"
        );
        assert_eq!(state.current_value, self.made.current_value, "{what}");
        assert_eq!(
            state.previous_value.as_deref(),
            Some(self.made.previous_value.as_str())
        );
        let landed_updates = self
            .proxy
            .seen()
            .iter()
            .filter(|s| s.operation == "UpdateSecret" && s.fault.is_none())
            .count();
        assert_eq!(landed_updates, 1, "{what}: {:?}", self.proxy.seen());
        assert!(!output.contains("CANARY-"), "{what}");
    }

    async fn state(&self) -> SecretState {
        self.moto
            .secret_state("123456789012", "us-east-1", &self.made.arn)
            .await
    }
}

async fn lasting_fault_then_retry(operation: &str, fault: Fault, action: &str) {
    let run = deliver_twice(Rule::new(operation, fault.clone(), When::First(ATTEMPTS))).await;
    run.assert_failed_then_converged(&format!("{operation} {fault:?}"), action)
        .await;
}

/// A failure after a successful re-encryption (the `remediated` mark, or the notification): the
/// retry finds the secret on the designated key with the intent `remediating`, and finishes the
/// job: the mark, and exactly one notification, as an SQS subscriber of the topic receives them.
async fn a_failure_after_the_re_encryption_is_finished_by_the_retry(rule: Rule, action: &str) {
    let what = format!("{rule:?}");
    let run = deliver_twice(rule).await;
    run.assert_failed_then_converged(&what, action).await;
    let state = run.state().await;
    assert_eq!(
        state.tags.get("cmkguard:status").map(String::as_str),
        Some("remediated"),
        "{what}: {:?}",
        state.tags
    );
    assert_eq!(
        state.tags.get("cmkguard:reason").map(String::as_str),
        Some("aws-managed-key"),
        "{what}"
    );
    assert_eq!(
        run.notifications.len(),
        1,
        "{what}: {:?}",
        run.notifications
    );
    assert!(
        run.notifications[0].contains(&run.made.arn),
        "{what}: {}",
        run.notifications[0]
    );
    // The retry's record is the finding: re-encrypted (by the first delivery), then finished.
    let retry = &run.records[1];
    assert_eq!(retry["verdict"], "non_compliant", "{what}: {retry}");
    let outcome = |name: &str| {
        retry["actions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["action"] == name)
            .map(|a| a["outcome"].clone())
    };
    assert_eq!(outcome("remediate"), Some("done".into()), "{what}: {retry}");
    assert_eq!(outcome("tag"), Some("done".into()), "{what}: {retry}");
    assert_eq!(outcome("notify"), Some("done".into()), "{what}: {retry}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tagging_fails_after_the_re_encryption_and_the_retry_finishes_once() {
    // Only the `remediated` mark (the intent `remediating` before it goes through).
    let rule =
        Rule::new("TagResource", Fault::Throttle, When::First(ATTEMPTS)).with_body("remediated\"");
    a_failure_after_the_re_encryption_is_finished_by_the_retry(rule, "tag").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_fails_after_the_re_encryption_and_the_retry_finishes_once() {
    let rule = Rule::new("Publish", Fault::Status(500), When::First(ATTEMPTS));
    a_failure_after_the_re_encryption_is_finished_by_the_retry(rule, "notify").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lasting_throttle_on_update_secret_is_retried_by_lambda() {
    lasting_fault_then_retry("UpdateSecret", Fault::Throttle, "remediate").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lasting_reset_on_describe_key_of_the_alias_is_retried_by_lambda() {
    lasting_fault_then_retry("DescribeKey", Fault::Reset, "remediate").await;
}
