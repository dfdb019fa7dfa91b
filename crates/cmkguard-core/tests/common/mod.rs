//! What the engine's tests share: one account and region, names, events and configurations.

#![allow(dead_code)] // each test file uses its own part

use cmkguard_core::fake::cases::OWN_ACCOUNT;
use cmkguard_core::{Config, Scope, SecretFacts};
use serde_json::{Value, json};

pub const REGION: &str = "us-east-1";

pub fn scope() -> Scope {
    Scope::new(OWN_ACCOUNT, REGION)
}

pub fn arn(name: &str) -> String {
    format!("arn:aws:secretsmanager:{REGION}:{OWN_ACCOUNT}:secret:{name}-AbCdEf")
}

pub fn cmk(id: &str) -> String {
    format!("arn:aws:kms:{REGION}:{OWN_ACCOUNT}:key/{id}")
}

/// The CloudTrail event `name` on `secret_arn`, as EventBridge delivers it.
pub fn event(name: &str, secret_arn: &str) -> Value {
    json!({
        "id": "eb-1", "detail-type": "AWS API Call via CloudTrail", "source": "aws.secretsmanager",
        "account": OWN_ACCOUNT, "region": REGION,
        "detail": {"eventID": format!("ct-{name}"), "eventName": name, "awsRegion": REGION,
                   "eventSource": "secretsmanager.amazonaws.com",
                   "userIdentity": {"arn": "arn:aws:iam::123456789012:user/alice"},
                   "requestParameters": {"secretId": secret_arn}, "responseElements": {"arn": secret_arn}}
    })
}

/// The scheduled event: a sweep of the region.
pub fn sweep() -> Value {
    json!({"id": "sweep-1", "detail-type": "Scheduled Event", "source": "aws.events",
           "account": OWN_ACCOUNT, "region": REGION, "detail": {}})
}

pub fn secret(name: &str, key: Option<&str>) -> SecretFacts {
    SecretFacts {
        arn: arn(name),
        name: name.into(),
        kms_key_id: key.map(Into::into),
        // Every secret here has a value: its first version is current.
        current_version: Some(format!("{name}-v1")),
        ..Default::default()
    }
}

/// `actions`, remediation in every account, a topic, and `more` variables.
pub fn config(actions: &str, more: &[(&str, &str)]) -> Config {
    let mut vars = vec![
        ("CMKGUARD_ACTIONS", actions),
        ("CMKGUARD_REMEDIATE_ACCOUNTS", "*"),
        (
            "CMKGUARD_SNS_TOPIC_ARN",
            "arn:aws:sns:us-east-1:123456789012:cmkguard",
        ),
    ];
    vars.extend_from_slice(more);
    Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    })
    .expect("a valid configuration")
}
