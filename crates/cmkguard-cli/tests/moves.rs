//! Finishing a move (the contract's "Finishing a move"), against moto through `cmkguard`, with
//! the counting proxy in front: a re-encryption records the version it left readable through
//! the AWS managed key (`cmkguard:moved-version`) and says once that the move is not finished;
//! until a new version is current the secret is `previous-key-decrypts`, with nothing written or
//! sent again; a new value, a rotation or a moved label finishes it. Action `rotate` asks the
//! secret's own rotation once per move, and never for a secret without one. The Lambda binary's
//! own test is `crates/cmkguard-lambda/tests/moves.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

mod support;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use cmkguard_core::fake::cases::actions;
use cmkguard_testkit::versions::Described;
use cmkguard_testkit::world::{Keys, MadeSecret};
use cmkguard_testkit::{
    DEFAULT_ACCOUNT, Fault, FaultProxy, Moto, Process, Rule, VersionEvent, When, form_value,
};
use serde_json::{Value, json};
use support::{FAST_SDK, Run, assert_no_canary};

const REGION: &str = "us-east-1";
const MOVED_VERSION: &str = "cmkguard:moved-version";
const ROTATION_REQUESTED: &str = "cmkguard:rotation-requested";
const STATUS: &str = "cmkguard:status";
/// How long one run may take: each takes a few seconds here, and a guard that loops must fail
/// its test, not hang it.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// One secret on the default key (two versions of canary values) in the default account, the
/// designated key and its alias, the SNS topic, and the guard configured with some actions.
struct World {
    moto: Moto,
    proxy: FaultProxy,
    keys: Keys,
    made: MadeSecret,
    /// `CreateSecret-default-key.json`, naming the secret.
    create: Value,
    env: BTreeMap<String, String>,
}

impl World {
    /// The world, with `CMKGUARD_ACTIONS=actions` and remediation in every account.
    async fn new(name: &str, actions: &str) -> World {
        let moto = Moto::start();
        let proxy = FaultProxy::start(&moto.endpoint());
        let (keys, made, create) = moto.default_key_secret(name).await;
        let topic = moto.make_topic().await;
        let mut env: BTreeMap<String, String> = FAST_SDK
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        for (k, v) in [
            ("CMKGUARD_ACTIONS", actions),
            ("CMKGUARD_REMEDIATE_ACCOUNTS", "*"),
            ("CMKGUARD_SNS_TOPIC_ARN", &topic),
        ] {
            env.insert(k.to_owned(), v.to_owned());
        }
        World {
            moto,
            proxy,
            keys,
            made,
            create,
            env,
        }
    }

    /// `cmkguard ARGS` at the most verbose log level, through the proxy, stopped after
    /// [`RUN_LIMIT`]; no secret value in its output.
    fn run(&self, args: &[&str]) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cmkguard"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "trace")
            .envs(self.proxy.env(self.moto.env()))
            .envs(&self.env)
            .stdin(Stdio::null());
        let mut process = Process::spawn(&mut command);
        let status = process.wait(RUN_LIMIT);
        let (stdout, stderr) = process.stop();
        let Some(status) = status else {
            panic!(
                "`cmkguard {args:?}` still running after {RUN_LIMIT:?}; requests so far: {:?}",
                self.proxy.counts()
            );
        };
        assert_no_canary(&self.made, &stdout, &format!("{args:?}"));
        assert_no_canary(&self.made, &stderr, &format!("{args:?}"));
        let records = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a record: {l}: {e}")))
            .collect();
        Run {
            code: status.code(),
            stdout,
            stderr,
            records,
        }
    }

    /// `cmkguard handle-event FILE` of `event`: handled (exit 0), one record, returned.
    fn deliver(&self, event: &Value) -> Value {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), event.to_string()).unwrap();
        let run = self.run(&["handle-event", file.path().to_str().unwrap()]);
        assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
        assert_eq!(run.records.len(), 1, "one record: {}", run.stdout);
        run.records.into_iter().next().unwrap()
    }

    /// The `CreateSecret` event that moves the secret.
    fn deliver_create(&self) -> Value {
        self.deliver(&self.create)
    }

    /// The event `kind` about the secret, naming `version`.
    fn deliver_version_event(&self, kind: VersionEvent, version: &str) -> Value {
        self.deliver(&kind.for_secret(&self.made.arn, version))
    }

    async fn describe(&self) -> Described {
        self.moto
            .describe(DEFAULT_ACCOUNT, REGION, &self.made.arn)
            .await
    }

    async fn tags(&self) -> BTreeMap<String, String> {
        self.describe().await.tags
    }

    async fn current_version(&self) -> String {
        self.moto
            .current_version(DEFAULT_ACCOUNT, REGION, &self.made.arn)
            .await
    }

    /// A new value written by the test (never by the product), under `labels`; its version id.
    async fn put_value(&self, value: &str, labels: &[&str]) -> String {
        self.moto
            .put_value(DEFAULT_ACCOUNT, REGION, &self.made.arn, value, labels)
            .await
    }

    /// `AWSCURRENT` moved onto `version` (`UpdateSecretVersionStage`).
    async fn move_current_to(&self, version: &str) {
        self.moto
            .move_label(
                DEFAULT_ACCOUNT,
                REGION,
                &self.made.arn,
                "AWSCURRENT",
                version,
            )
            .await
    }

    /// Delivers `CreateSecret` and checks that it moved the secret: on the designated key,
    /// marked `remediated` with the version that was `AWSCURRENT`. The record and that version.
    async fn moved(&self) -> (Value, String) {
        let before = self.current_version().await;
        let record = self.deliver_create();
        assert_eq!(record["verdict"], "non_compliant", "{record}");
        assert_eq!(record["reason"], "aws-managed-key", "{record}");
        assert_eq!(
            actions(&record)[0],
            ("remediate".to_owned(), "done".to_owned()),
            "{record}"
        );
        let after = self.describe().await;
        assert_eq!(
            after.kms_key_id.as_deref(),
            Some(self.keys.designated.as_str())
        );
        assert_eq!(after.tag(STATUS), Some("remediated"), "{after:?}");
        (record, before)
    }
}

/// What a record did: its actions with outcome `done`.
fn done(record: &Value) -> Vec<String> {
    actions(record)
        .into_iter()
        .filter(|(_, outcome)| outcome == "done")
        .map(|(action, _)| action)
        .collect()
}

/// The outcome and detail of `action` in `record`.
fn action<'r>(record: &'r Value, name: &str) -> (&'r str, &'r str) {
    let found = record["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == name)
        .unwrap_or_else(|| panic!("no `{name}` action: {record}"));
    (
        found["outcome"].as_str().unwrap(),
        found["detail"].as_str().unwrap_or_default(),
    )
}

fn assert_previous_key_decrypts(record: &Value, version: &str) {
    assert_eq!(record["verdict"], "non_compliant", "{record}");
    assert_eq!(record["reason"], "previous-key-decrypts", "{record}");
    assert!(
        record["detail"]
            .as_str()
            .unwrap_or_default()
            .contains(version),
        "the detail names the moved version `{version}`: {record}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_records_the_version_labelled_awscurrent() {
    let world = World::new("moves/records", "tag,notify,remediate").await;
    let (record, current_before) = world.moved().await;
    assert_eq!(done(&record), ["remediate", "tag", "notify"], "{record}");
    // Re-encrypted, every value kept.
    world
        .moto
        .secret_state(DEFAULT_ACCOUNT, REGION, &world.made.arn)
        .await
        .assert_reencrypted(&world.keys.designated, &world.made);

    let current = world.current_version().await;
    assert_eq!(current, current_before, "a key change makes no new version");
    let tags = world.tags().await;
    assert_eq!(tags.get(MOVED_VERSION), Some(&current), "{tags:?}");
    assert_eq!(tags.get(STATUS).map(String::as_str), Some("remediated"));
    assert_eq!(
        tags.get("cmkguard:reason").map(String::as_str),
        Some("aws-managed-key")
    );
    assert_eq!(
        tags.get("cmkguard:previous-key").map(String::as_str),
        Some("aws/secretsmanager")
    );
    assert!(!tags.contains_key(ROTATION_REQUESTED), "{tags:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_deliveries_of_a_move_send_one_notification_saying_it_is_not_finished() {
    let world = World::new("moves/one-message", "tag,notify,remediate").await;
    world.proxy.keep_bodies("sns:Publish");
    let (_, moved) = world.moved().await;
    let writes_of_the_move = world.proxy.writes();
    for delivery in 2..=3 {
        let record = world.deliver_create();
        assert_previous_key_decrypts(&record, &moved);
        assert!(
            done(&record).is_empty(),
            "delivery {delivery} wrote: {record}"
        );
    }
    assert_eq!(
        world.proxy.writes(),
        writes_of_the_move,
        "{:?}",
        world.proxy.counts()
    );
    assert_eq!(world.proxy.count("UpdateSecret"), 1);
    assert_eq!(
        world.proxy.count("Publish"),
        1,
        "{:?}",
        world.proxy.counts()
    );
    assert_eq!(world.moto.sns_messages().len(), 1);

    let bodies = world.proxy.bodies("Publish");
    let message: Value = serde_json::from_str(&form_value(&bodies[0], "Message").unwrap()).unwrap();
    let email = message["email"].as_str().unwrap();
    assert!(email.contains("The move is not finished yet."), "{email}");
    assert!(email.contains("rotate-secret"), "how to finish it: {email}");
    assert!(email.contains(&world.made.arn), "{email}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_after_a_move_says_previous_key_decrypts_and_exits_1() {
    let world = World::new("moves/check", "tag,notify,remediate").await;
    let (_, moved) = world.moved().await;
    world.proxy.reset_counts();

    let run = world.run(&["check", &world.made.arn]);
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.records.len(), 1, "{}", run.stdout);
    assert_previous_key_decrypts(&run.records[0], &moved);
    assert_eq!(run.records[0]["key_manager"], "CUSTOMER", "{}", run.stdout);
    assert_eq!(world.proxy.writes(), 0, "{:?}", world.proxy.counts());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_value_finishes_the_move() {
    let world = World::new("moves/new-value", "tag,notify,remediate").await;
    let (_, moved) = world.moved().await;
    let new = world.put_value("CANARY-new-do-not-log", &[]).await;
    assert_ne!(new, moved);
    world.proxy.reset_counts();

    let record = world.deliver_version_event(VersionEvent::PutSecretValue, &new);
    assert_eq!(record["verdict"], "compliant", "{record}");
    assert_eq!(record["event_name"], "PutSecretValue", "{record}");
    let tags = world.tags().await;
    assert!(!tags.contains_key(MOVED_VERSION), "{tags:?}");
    assert_eq!(
        tags.get(STATUS).map(String::as_str),
        Some("remediated"),
        "the status stays as history: {tags:?}"
    );
    assert_eq!(
        world.proxy.count("UntagResource"),
        1,
        "{:?}",
        world.proxy.counts()
    );
    assert_eq!(
        world.proxy.count("Publish"),
        0,
        "{:?}",
        world.proxy.counts()
    );

    // The audit agrees (and, without `--apply`, changes nothing).
    world.proxy.reset_counts();
    let audit = world.run(&["audit", "--format", "json"]);
    assert_eq!(audit.code, Some(0), "{}\n{}", audit.stdout, audit.stderr);
    let ours: Vec<&Value> = audit
        .records
        .iter()
        .filter(|r| r["secret_arn"] == world.made.arn.as_str())
        .collect();
    assert_eq!(ours.len(), 1, "{}", audit.stdout);
    assert_eq!(ours[0]["verdict"], "compliant", "{}", ours[0]);
    assert_eq!(world.proxy.writes(), 0, "{:?}", world.proxy.counts());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_finishes_the_move() {
    let world = World::new("moves/rotation", "tag,notify,remediate").await;
    let (_, moved) = world.moved().await;
    // The owner turns rotation on after the move; moto rotates at once.
    let rotated = world
        .moto
        .enable_rotation(DEFAULT_ACCOUNT, REGION, &world.made.arn, 30)
        .await;
    assert_ne!(rotated, moved);
    world.proxy.reset_counts();

    let record = world.deliver_version_event(VersionEvent::RotationSucceeded, &rotated);
    assert_eq!(record["verdict"], "compliant", "{record}");
    assert_eq!(record["event_name"], "RotationSucceeded", "{record}");
    assert_eq!(record["secret_arn"], world.made.arn.as_str(), "{record}");
    let tags = world.tags().await;
    assert!(!tags.contains_key(MOVED_VERSION), "{tags:?}");
    assert_eq!(tags.get(STATUS).map(String::as_str), Some("remediated"));
    assert_eq!(
        world.proxy.count("UntagResource"),
        1,
        "{:?}",
        world.proxy.counts()
    );

    // The `RotateSecret` call's own event, later: compliant, nothing written.
    world.proxy.reset_counts();
    let late = world.deliver_version_event(VersionEvent::RotateSecret, &rotated);
    assert_eq!(late["verdict"], "compliant", "{late}");
    assert_eq!(late["event_name"], "RotateSecret", "{late}");
    assert_eq!(world.proxy.writes(), 0, "{:?}", world.proxy.counts());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_awscurrent_to_a_new_version_finishes_the_move() {
    let world = World::new("moves/label", "tag,notify,remediate").await;
    let (_, moved) = world.moved().await;
    // A version made after the move under a label of its own, then made current.
    let staged = world
        .put_value("CANARY-staged-do-not-log", &["staged"])
        .await;
    assert_eq!(world.current_version().await, moved, "still the moved one");
    world.move_current_to(&staged).await;
    world.proxy.reset_counts();

    let record = world.deliver_version_event(VersionEvent::UpdateSecretVersionStage, &staged);
    assert_eq!(record["verdict"], "compliant", "{record}");
    assert_eq!(record["event_name"], "UpdateSecretVersionStage", "{record}");
    assert!(!world.tags().await.contains_key(MOVED_VERSION));
    assert_eq!(
        world.proxy.count("UntagResource"),
        1,
        "{:?}",
        world.proxy.counts()
    );
}

/// Moving `AWSCURRENT` back to a version older than the move (say, undoing a bad value) does
/// not finish it: AWS keeps every version that existed at the key change under the previous key
/// too, so that version is as readable through `aws/secretsmanager` as the moved one. The guard
/// tells the two apart by the versions' `CreatedDate` (`ListSecretVersionIds`); moto dates every
/// version "now" there, so the proxy answers that call with the dates AWS would give.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_awscurrent_back_to_a_version_older_than_the_move_does_not_finish_it() {
    let world = World::new("moves/label-back", "tag,notify,remediate").await;
    let older = world
        .describe()
        .await
        .labelled("AWSPREVIOUS")
        .expect("an AWSPREVIOUS version")
        .to_owned();
    let (_, moved) = world.moved().await;
    world.move_current_to(&older).await;
    let versions = json!({"ARN": world.made.arn, "Versions": [
        {"VersionId": older, "VersionStages": ["AWSCURRENT"], "CreatedDate": 1.7e9},
        {"VersionId": moved, "VersionStages": ["AWSPREVIOUS"], "CreatedDate": 1.7e9 + 60.0},
    ]});
    world.proxy.inject(Rule::new(
        "ListSecretVersionIds",
        Fault::Accept(versions.to_string()),
        When::Always,
    ));
    world.proxy.reset_counts();

    let record = world.deliver_version_event(VersionEvent::UpdateSecretVersionStage, &older);
    assert_eq!(
        record["verdict"], "non_compliant",
        "{record} (moved: {moved})"
    );
    assert_eq!(record["reason"], "previous-key-decrypts", "{record}");
    assert!(
        record["detail"].as_str().unwrap().contains("predates"),
        "{record}"
    );
    // The versions were read once, for their dates; nothing was written.
    assert_eq!(world.proxy.count("ListSecretVersionIds"), 1);
    assert_eq!(world.proxy.writes(), 0, "{:?}", world.proxy.counts());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_calls_rotate_secret_once_and_never_reads_or_writes_a_value() {
    let world = World::new("moves/rotate", "tag,notify,remediate,rotate").await;
    // Rotation on before the move (moto makes that rotation's version current at once).
    world
        .moto
        .enable_rotation(DEFAULT_ACCOUNT, REGION, &world.made.arn, 30)
        .await;
    world.proxy.reset_counts();
    world.proxy.keep_bodies("RotateSecret");
    world.proxy.keep_bodies("TagResource");

    let (first, moved) = world.moved().await;
    assert_eq!(
        done(&first),
        ["remediate", "tag", "rotate", "notify"],
        "{first}"
    );
    assert!(
        action(&first, "rotate").1.contains(&moved),
        "the rotation names the moved version: {first}"
    );
    for _ in 2..=3 {
        let record = world.deliver_create();
        assert!(!done(&record).contains(&"rotate".to_owned()), "{record}");
    }
    assert_eq!(
        world.proxy.count("RotateSecret"),
        1,
        "{:?}",
        world.proxy.counts()
    );
    // The request is marked on the secret first: a retry after a lost answer does not ask again.
    let order: Vec<String> = world
        .proxy
        .seen()
        .into_iter()
        .map(|s| s.operation)
        .collect();
    let at = order.iter().position(|o| o == "RotateSecret").unwrap();
    assert_eq!(order[at - 1], "TagResource", "{order:?}");
    let marks: Vec<String> = world
        .proxy
        .bodies("TagResource")
        .into_iter()
        .map(|b| String::from_utf8(b).unwrap())
        .filter(|b| b.contains(ROTATION_REQUESTED))
        .collect();
    assert_eq!(marks.len(), 1, "{marks:?}");
    assert!(marks[0].contains(&moved), "{marks:?}");
    // The secret's id, and the idempotency token the SDK fills in: no rules, no function, no value.
    let body: Value = serde_json::from_slice(&world.proxy.bodies("RotateSecret")[0]).unwrap();
    let mut fields: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort();
    assert_eq!(fields, ["ClientRequestToken", "SecretId"], "{body}");
    assert_eq!(body["SecretId"], world.made.arn.as_str(), "{body}");
    for operation in ["GetSecretValue", "PutSecretValue", "BatchGetSecretValue"] {
        assert_eq!(
            world.proxy.count(operation),
            0,
            "{operation}: {:?}",
            world.proxy.counts()
        );
    }
    // moto's rotation made a new current version: the move is finished.
    assert_ne!(world.current_version().await, moved);
    let tags = world.tags().await;
    assert!(!tags.contains_key(MOVED_VERSION), "{tags:?}");
    assert!(!tags.contains_key(ROTATION_REQUESTED), "{tags:?}");
    assert_eq!(tags.get(STATUS).map(String::as_str), Some("remediated"));
}

/// AWS accepts `RotateSecret` at once and runs the rotation function afterwards: until it
/// finishes, the moved version stays `AWSCURRENT`. The proxy answers `RotateSecret` itself (moto
/// would rotate at once), so later deliveries meet that window: no second call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_is_not_asked_twice_while_the_rotation_runs() {
    let world = World::new("moves/rotate-async", "tag,notify,remediate,rotate").await;
    world
        .moto
        .enable_rotation(DEFAULT_ACCOUNT, REGION, &world.made.arn, 30)
        .await;
    let accepted = json!({"ARN": world.made.arn, "Name": "moves/rotate-async"}).to_string();
    world.proxy.inject(Rule::new(
        "RotateSecret",
        Fault::Accept(accepted),
        When::Always,
    ));
    world.proxy.reset_counts();

    let (first, moved) = world.moved().await;
    assert_eq!(action(&first, "rotate").0, "done", "{first}");
    let writes_of_the_move = world.proxy.writes();
    for _ in 2..=3 {
        let record = world.deliver_create();
        assert_previous_key_decrypts(&record, &moved);
        let (outcome, detail) = action(&record, "rotate");
        assert_eq!(outcome, "skipped", "{record}");
        assert!(detail.contains(&moved), "{record}");
        assert!(done(&record).is_empty(), "{record}");
    }
    assert_eq!(
        world.proxy.count("RotateSecret"),
        1,
        "{:?}",
        world.proxy.counts()
    );
    assert_eq!(world.proxy.writes(), writes_of_the_move);
    assert_eq!(world.proxy.count("Publish"), 1);
    let tags = world.tags().await;
    assert_eq!(tags.get(ROTATION_REQUESTED), Some(&moved), "{tags:?}");
    assert_eq!(tags.get(MOVED_VERSION), Some(&moved), "{tags:?}");

    // The rotation finishes (here: moto's own), and says so.
    world.proxy.heal();
    let rotated = world
        .moto
        .enable_rotation(DEFAULT_ACCOUNT, REGION, &world.made.arn, 30)
        .await;
    let record = world.deliver_version_event(VersionEvent::RotationSucceeded, &rotated);
    assert_eq!(record["verdict"], "compliant", "{record}");
    let tags = world.tags().await;
    assert!(!tags.contains_key(MOVED_VERSION), "{tags:?}");
    assert!(!tags.contains_key(ROTATION_REQUESTED), "{tags:?}");
    assert_eq!(world.proxy.count("RotateSecret"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_never_rotates_a_secret_without_rotation() {
    let world = World::new("moves/no-rotation", "tag,notify,remediate,rotate").await;
    world.proxy.reset_counts();

    let (first, _) = world.moved().await;
    let (outcome, detail) = action(&first, "rotate");
    assert_eq!(outcome, "skipped", "{first}");
    assert!(detail.contains("rotation is not enabled"), "{first}");
    let again = world.deliver_create();
    assert_eq!(action(&again, "rotate").0, "skipped", "{again}");
    assert_eq!(
        world.proxy.count("RotateSecret"),
        0,
        "{:?}",
        world.proxy.counts()
    );
    assert!(!world.tags().await.contains_key(ROTATION_REQUESTED));
}

/// A world for `--check-versions`: besides the secret on the default key, two on the designated
/// key (their ARNs).
async fn versions_world(name: &str) -> (World, Vec<String>) {
    let world = World::new(name, "tag").await;
    let secrets = world.moto.secrets_client(DEFAULT_ACCOUNT, REGION).await;
    let mut on_key = Vec::new();
    for suffix in ["a", "b"] {
        let arn = secrets
            .create_secret()
            .name(format!("{name}-{suffix}"))
            .secret_string("CANARY-versions-do-not-log")
            .kms_key_id(&world.keys.designated)
            .send()
            .await
            .unwrap()
            .arn()
            .unwrap()
            .to_owned();
        on_key.push(arn);
    }
    (world, on_key)
}

/// `cmkguard audit --format json ARGS`: the counts start at zero; each secret's verdict and reason.
fn audit(world: &World, args: &[&str]) -> (Run, BTreeMap<String, (String, String)>) {
    world.proxy.reset_counts();
    let run = world.run(&[&["audit", "--format", "json"], args].concat());
    let verdicts = run
        .records
        .iter()
        .map(|r| {
            let field = |name: &str| r[name].as_str().unwrap_or_default().to_owned();
            (field("secret_arn"), (field("verdict"), field("reason")))
        })
        .collect();
    (run, verdicts)
}

/// `--check-versions` reads the versions of the secrets that are compliant on a customer managed
/// key, one `ListSecretVersionIds` each, and finds a move made by someone else in their
/// `KmsKeyIds`. moto returns no `KmsKeyIds`: the proxy answers for moto, as AWS does (one
/// version under the AWS managed key too, one under the secret's key alone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_versions_reads_each_compliant_secrets_versions_once() {
    let (world, on_key) = versions_world("moves/versions").await;
    let (plain, _) = audit(&world, &[]);
    assert_eq!(
        world.proxy.count("ListSecretVersionIds"),
        0,
        "{}",
        plain.stdout
    );

    for (arn, keys) in on_key.iter().zip([
        json!(["DefaultEncryptionKey", world.keys.designated]),
        json!([world.keys.designated]),
    ]) {
        let version = world
            .moto
            .current_version(DEFAULT_ACCOUNT, REGION, arn)
            .await;
        let answer = json!({"ARN": arn, "Versions": [{
            "VersionId": version, "VersionStages": ["AWSCURRENT"],
            "KmsKeyIds": keys, "CreatedDate": 1.7e9
        }]});
        world.proxy.inject(
            Rule::new(
                "ListSecretVersionIds",
                Fault::Accept(answer.to_string()),
                When::Always,
            )
            .with_body(arn),
        );
    }
    let (run, verdicts) = audit(&world, &["--check-versions"]);
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        world.proxy.count("ListSecretVersionIds"),
        2,
        "{:?}",
        world.proxy.counts()
    );
    assert_eq!(
        verdicts[&on_key[0]],
        (
            "non_compliant".to_owned(),
            "previous-key-decrypts".to_owned()
        ),
        "{verdicts:?}"
    );
    assert_eq!(verdicts[&on_key[1]].0, "compliant", "{verdicts:?}");
    assert_eq!(
        verdicts[&world.made.arn].1, "aws-managed-key",
        "not read: {verdicts:?}"
    );
}

/// moto 5.2.5 answers `ListSecretVersionIds` with `"NextToken": ""`: the last page all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_versions_against_moto_ends() {
    let (world, on_key) = versions_world("moves/versions-moto").await;
    let (run, verdicts) = audit(&world, &["--check-versions"]);
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(world.proxy.count("ListSecretVersionIds"), 2);
    for arn in &on_key {
        assert_eq!(verdicts[arn].0, "compliant", "{verdicts:?}");
    }
}
