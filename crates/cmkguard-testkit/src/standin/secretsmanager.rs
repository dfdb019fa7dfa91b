//! Secrets Manager (JSON 1.1): the lists and descriptions are generated, the writes stored.

use serde_json::{Value, json};

use super::call::Call;
use super::json::{json_error, json_reply, next_token, page_size, page_start};
use super::world::{CREATED, World, Written, key_arn, key_id, secret_arn, secret_name};
use crate::serve::Reply;

/// Secrets Manager's maximum `MaxResults` for `ListSecrets`.
const SECRETS_PAGE: usize = 100;

/// Every this many secrets, one (index 1, 11, ...) was moved by others: see
/// [`list_secret_versions`].
pub const MOVED_BY_OTHERS: usize = 10;
const DEFAULT_ENCRYPTION_KEY: &str = "DefaultEncryptionKey";

/// A secret as `ListSecrets` (`versions` = `SecretVersionsToStages`) or `DescribeSecret`
/// (`VersionIdsToStages`) shows it, with what writes changed.
fn secret_json(call: &Call, index: usize, written: Option<&Written>, versions: &str) -> Value {
    let (account, region) = (call.account.as_str(), call.region.as_str());
    let mut secret = json!({
        "ARN": secret_arn(account, region, index),
        "Name": secret_name(index),
        "CreatedDate": CREATED,
        "LastChangedDate": CREATED,
        versions: { key_id(account, region, &format!("version-{index}")): ["AWSCURRENT"] },
    });
    // The first is on the default key: AWS then reports no `KmsKeyId`.
    let kms_key_id = written
        .and_then(|w| w.kms_key_id.clone())
        .or_else(|| (index > 0).then(|| key_arn(account, region)));
    if let Some(key) = kms_key_id {
        secret["KmsKeyId"] = key.into();
    }
    if let Some(written) = written.filter(|w| !w.tags.is_empty()) {
        secret["Tags"] = written
            .tags
            .iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect();
    }
    secret
}

/// Filters are not applied: the audit lists everything.
pub(super) fn list_secrets(world: &World, call: &Call, input: &Value, id: &str) -> Reply {
    let Some(start) = page_start(input) else {
        return json_error(id, 400, "InvalidNextTokenException", "invalid `NextToken`");
    };
    let size = page_size(input, SECRETS_PAGE);
    let end = (start + size).min(world.secrets);
    let written = world.written();
    let secrets: Vec<Value> = (start..end)
        .map(|index| {
            let arn = secret_arn(&call.account, &call.region, index);
            secret_json(call, index, written.get(&arn), "SecretVersionsToStages")
        })
        .collect();
    drop(written);
    let mut output = json!({ "SecretList": secrets });
    if end < world.secrets {
        output["NextToken"] = next_token(end);
    }
    json_reply(id, "application/x-amz-json-1.1", &output)
}

pub(super) fn describe_secret(world: &World, call: &Call, input: &Value, id: &str) -> Reply {
    let Some(index) = secret_named(world, call, input) else {
        return secret_not_found(id);
    };
    let arn = secret_arn(&call.account, &call.region, index);
    let written = world.written().get(&arn).cloned();
    let secret = secret_json(call, index, written.as_ref(), "VersionIdsToStages");
    json_reply(id, "application/x-amz-json-1.1", &secret)
}

/// `ListSecretVersionIds`: the one current version, with its keys (`KmsKeyIds`, which moto does
/// not give). One secret in [`MOVED_BY_OTHERS`] (index 1, 11, 21, ...) was moved off the AWS
/// managed key by someone else, so its current version names both keys.
pub(super) fn list_secret_versions(world: &World, call: &Call, input: &Value, id: &str) -> Reply {
    let Some(index) = secret_named(world, call, input) else {
        return secret_not_found(id);
    };
    let (account, region) = (call.account.as_str(), call.region.as_str());
    let keys = match index {
        0 => vec![DEFAULT_ENCRYPTION_KEY.to_owned()],
        i if i % MOVED_BY_OTHERS == 1 => {
            vec![DEFAULT_ENCRYPTION_KEY.to_owned(), key_arn(account, region)]
        }
        _ => vec![key_arn(account, region)],
    };
    let output = json!({
        "ARN": secret_arn(account, region, index),
        "Name": secret_name(index),
        "Versions": [{
            "VersionId": key_id(account, region, &format!("version-{index}")),
            "VersionStages": ["AWSCURRENT"],
            "KmsKeyIds": keys,
            "CreatedDate": CREATED,
        }],
    });
    json_reply(id, "application/x-amz-json-1.1", &output)
}

/// `TagResource`, `UntagResource`, `UpdateSecret` (only its `KmsKeyId`).
pub(super) fn write_secret(world: &World, call: &Call, input: &Value, id: &str) -> Reply {
    let Some(index) = secret_named(world, call, input) else {
        return secret_not_found(id);
    };
    let arn = secret_arn(&call.account, &call.region, index);
    let mut written = world.written();
    let state = written.entry(arn.clone()).or_default();
    let strings = |field: &str| {
        input[field]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    let output = match call.operation.as_str() {
        "TagResource" => {
            for tag in input["Tags"].as_array().into_iter().flatten() {
                let key = tag["Key"].as_str().unwrap_or_default().to_owned();
                let value = tag["Value"].as_str().unwrap_or_default().to_owned();
                state.tags.insert(key, value);
            }
            json!({})
        }
        "UntagResource" => {
            for key in strings("TagKeys") {
                state.tags.remove(&key);
            }
            json!({})
        }
        _ => {
            if let Some(key) = input["KmsKeyId"].as_str() {
                state.kms_key_id = Some(key.to_owned());
            }
            json!({"ARN": arn, "Name": secret_name(index)})
        }
    };
    json_reply(id, "application/x-amz-json-1.1", &output)
}

/// The index of the secret `SecretId` names in the caller's account and region.
fn secret_named(world: &World, call: &Call, input: &Value) -> Option<usize> {
    let secret_id = input["SecretId"].as_str().unwrap_or_default();
    world.secret_index(&call.account, &call.region, secret_id)
}

fn secret_not_found(id: &str) -> Reply {
    let message = "Secrets Manager can't find the specified secret.";
    json_error(id, 400, "ResourceNotFoundException", message)
}
