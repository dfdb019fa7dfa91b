//! KMS (JSON 1.1): `DescribeKey` on the account-region's AWS managed key, its customer managed
//! key (by id, ARN or the designated alias), or any key id of the caller's; `GetKeyPolicy` (a
//! policy the review finds nothing in, as the project's key template writes it) and `ListGrants`
//! (none) on a key of the caller's.

use serde_json::{Value, json};

use super::call::Call;
use super::json::{json_error, json_reply};
use super::world::{CREATED, World, key_id};
use crate::serve::Reply;

pub(super) fn describe_key(world: &World, call: &Call, input: &Value, id: &str) -> Reply {
    let (account, region) = (call.account.as_str(), call.region.as_str());
    let key_id_in = input["KeyId"].as_str().unwrap_or_default();
    let customer = key_id(account, region, "customer");
    let aws = key_id(account, region, "aws");
    // An ARN names its account and region; a bare id or alias is the caller's.
    let (owner, place, resource) = match key_id_in.strip_prefix("arn:") {
        Some(_) => {
            let parts: Vec<&str> = key_id_in.splitn(6, ':').collect();
            let ["arn", _, "kms", place, owner, resource] = parts[..] else {
                return kms_not_found(id, key_id_in);
            };
            (owner, place, resource)
        }
        None => (account, region, key_id_in),
    };
    if owner != account {
        let message = format!("not authorized to perform `kms:DescribeKey` on `{key_id_in}`");
        return json_error(id, 400, "AccessDeniedException", &message);
    }
    if place != region {
        return kms_not_found(id, key_id_in);
    }
    let found = if let Some(alias) = resource.strip_prefix("alias/") {
        if alias == "aws/secretsmanager" {
            Some((aws.as_str(), "AWS"))
        } else if world.designated_alias.as_deref() == Some(resource) {
            Some((customer.as_str(), "CUSTOMER"))
        } else {
            None
        }
    } else {
        let key = resource.strip_prefix("key/").unwrap_or(resource);
        if key == aws {
            Some((aws.as_str(), "AWS"))
        } else if is_uuid(key) {
            // Any key id of the caller's is a customer managed key, enabled.
            Some((key, "CUSTOMER"))
        } else {
            None
        }
    };
    let Some((key, manager)) = found else {
        return kms_not_found(id, key_id_in);
    };
    let description = if manager == "AWS" {
        "Default key that protects my Secrets Manager data when no other key is defined"
    } else {
        "cmkguard stand-in key"
    };
    let metadata = json!({
        "KeyMetadata": {
            "AWSAccountId": account,
            "KeyId": key,
            "Arn": format!("arn:aws:kms:{region}:{account}:key/{key}"),
            "CreationDate": CREATED,
            "Enabled": true,
            "Description": description,
            "KeyUsage": "ENCRYPT_DECRYPT",
            "KeyState": "Enabled",
            "Origin": "AWS_KMS",
            "KeyManager": manager,
            "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
            "KeySpec": "SYMMETRIC_DEFAULT",
            "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
            "MultiRegion": false,
        }
    });
    json_reply(id, "application/x-amz-json-1.1", &metadata)
}

pub(super) fn get_key_policy(call: &Call, input: &Value, id: &str) -> Reply {
    let key_arn = input["KeyId"].as_str().unwrap_or_default();
    let own = format!(":{}:key/", call.account);
    if !key_arn.contains(&own) {
        let message = format!("not authorized to perform `kms:GetKeyPolicy` on `{key_arn}`");
        return json_error(id, 400, "AccessDeniedException", &message);
    }
    let policy = cmkguard_core::fake::clean_policy(key_arn);
    let reply = json!({"Policy": policy, "PolicyName": "default"});
    json_reply(id, "application/x-amz-json-1.1", &reply)
}

pub(super) fn list_grants(id: &str) -> Reply {
    let reply = json!({"Grants": [], "Truncated": false});
    json_reply(id, "application/x-amz-json-1.1", &reply)
}

fn kms_not_found(id: &str, key_id: &str) -> Reply {
    let message = format!("Key '{key_id}' does not exist");
    json_error(id, 400, "NotFoundException", &message)
}

/// A key id: a UUID in its hyphenated form (the only form of 36 characters `uuid` reads).
fn is_uuid(text: &str) -> bool {
    text.len() == 36 && uuid::Uuid::try_parse(text).is_ok()
}
