//! Shared by every test of the binary against moto: a case of the table made in moto (its keys,
//! alias, topic and secret), and the `cmkguard` binary run against it (through the fault proxy
//! when one is given).

#![allow(dead_code)] // each test file uses its own part

use std::collections::BTreeMap;
use std::process::{Command, Output};

use cmkguard_core::fake::cases::{self, Case, OWN_ACCOUNT};
use cmkguard_testkit::world::{Keys, MadeSecret, SecretSpec};
use cmkguard_testkit::{FaultProxy, Moto, run_with_input};
use serde_json::Value;

/// Short timeouts, two attempts and no retry budget beyond them, so faults cost little time
/// (tests/burst.rs shows the budget at work). The attempt timeout stays well above moto's
/// slowest first call on a busy machine.
pub const FAST_SDK: [(&str, &str); 3] = [
    ("CMKGUARD_AWS_ATTEMPT_TIMEOUT_MS", "2000"),
    ("AWS_MAX_ATTEMPTS", "2"),
    ("CMKGUARD_RETRY_BUDGET_MS", "0"),
];

/// A delay that outlasts one attempt.
pub const SLOW: std::time::Duration = std::time::Duration::from_millis(2600);

pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub records: Vec<Value>,
}

/// Runs `cmkguard ARGS` at the most verbose log level with `env` over moto's environment (with
/// `AWS_ENDPOINT_URL` on the proxy when there is one).
pub fn cmkguard(
    moto: &Moto,
    proxy: Option<&FaultProxy>,
    args: &[&str],
    env: &BTreeMap<String, String>,
    stdin: &[u8],
) -> Run {
    let base = match proxy {
        Some(proxy) => proxy.env(moto.env()),
        None => moto.env(),
    };
    output(run_with_input(
        Command::new(env!("CARGO_BIN_EXE_cmkguard"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "trace")
            .envs(base)
            .envs(env),
        stdin,
    ))
}

pub fn output(output: Output) -> Run {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let records = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON record: {l}: {e}")))
        .collect();
    Run {
        code: output.status.code(),
        stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        records,
    }
}

pub struct Setup {
    pub made: Option<MadeSecret>,
    pub keys: BTreeMap<(String, String), Keys>,
    pub event: Vec<u8>,
    pub env: BTreeMap<String, String>,
}

pub fn case(name: &str) -> Case {
    cases::load()
        .into_iter()
        .find(|c| c.case == name)
        .unwrap_or_else(|| panic!("no case `{name}` in testdata/cases.json"))
}

/// Makes a case's world in moto (after a reset): keys and alias, the topic, the secret.
pub async fn setup(moto: &Moto, case: &Case) -> Setup {
    moto.reset();
    moto.make_topic().await;
    let mut places = vec![(OWN_ACCOUNT.to_owned(), "us-east-1".to_owned())];
    if let Some(secret) = &case.secret {
        places.extend(
            cmkguard_testkit::world::REGIONS
                .iter()
                .map(|r| (secret.account.clone(), r.to_string())),
        );
        places.push((secret.account.clone(), secret.region.clone()));
    }
    places.sort();
    places.dedup();
    let mut keys = BTreeMap::new();
    for (account, region) in places {
        let no_alias = case
            .secret
            .as_ref()
            .is_some_and(|s| s.no_alias && s.account == account && s.region == region);
        keys.insert(
            (account.clone(), region.clone()),
            moto.make_keys_of(&account, &region, !no_alias, &case.key_kinds())
                .await,
        );
    }
    let own_keys = keys[&(OWN_ACCOUNT.to_owned(), "us-east-1".to_owned())].clone();
    let mut made = None;
    let mut event = serde_json::to_string(&cases::event(&case.event)).unwrap();
    if let Some(secret) = &case.secret
        && secret.exists
    {
        let spec = SecretSpec {
            name: secret.name.clone(),
            account: secret.account.clone(),
            region: secret.region.clone(),
            key: secret.key.clone().unwrap_or_else(|| "default".into()),
            tags: secret.tags.clone(),
            owning_service: secret.owning_service.clone(),
            replica_regions: secret.replica_regions.clone(),
        };
        let k = keys[&(secret.account.clone(), secret.region.clone())].clone();
        let secret_made = moto.make_secret(&spec, &k).await;
        // The fixture's ARN has AWS's random suffix; moto made another one.
        if let Some(fixture_arn) = cases::fixture_arn(&cases::event(&case.event)) {
            event = event.replace(&fixture_arn, &secret_made.arn);
        }
        made = Some(secret_made);
    }
    let mut env: BTreeMap<String, String> = case
        .env
        .iter()
        .map(|(k, v)| (k.clone(), cases::expand(v, &own_keys.designated)))
        .collect();
    for (k, v) in FAST_SDK {
        env.insert(k.into(), v.into());
    }
    Setup {
        made,
        keys,
        event: event.into_bytes(),
        env,
    }
}

/// Panics when a canary value of `made` shows in `text`.
pub fn assert_no_canary(made: &MadeSecret, text: &str, what: &str) {
    for canary in [&made.current_value, &made.previous_value] {
        assert!(
            !text.contains(canary.as_str()),
            "{what}: a secret value in the output"
        );
    }
    assert!(!text.contains("CANARY-"), "{what}: a canary in the output");
}
