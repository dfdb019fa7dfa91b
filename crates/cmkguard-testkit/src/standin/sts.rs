//! STS (query protocol: form-encoded requests, XML answers): `AssumeRole` hands out key ids that
//! encode the target account; `GetCallerIdentity`.

use std::time::{SystemTime, UNIX_EPOCH};

use super::call::{Call, SESSION_KEY_SUFFIX};
use super::world::{MANAGEMENT_ACCOUNT, World};
use crate::http::form_value;
use crate::serve::{Reply, respond};

const STS_NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

pub(super) fn assume_role(world: &World, form: &[u8], id: &str) -> Reply {
    let role_arn = form_value(form, "RoleArn").unwrap_or_default();
    let session = form_value(form, "RoleSessionName").unwrap_or_else(|| "session".to_owned());
    // `arn:aws:iam::ACCOUNT:role/NAME`
    let parts: Vec<&str> = role_arn.splitn(6, ':').collect();
    let (account, role) = match parts[..] {
        ["arn", _, "iam", "", account, resource] => {
            (account, resource.strip_prefix("role/").unwrap_or_default())
        }
        _ => {
            let message = format!("`{role_arn}` is not a role ARN");
            return query_error(id, 400, "ValidationError", &message);
        }
    };
    if !world.has_account(account) || role.is_empty() {
        let message = format!("not authorized to perform `sts:AssumeRole` on `{role_arn}`");
        return query_error(id, 403, "AccessDenied", &message);
    }
    let seconds: u64 = form_value(form, "DurationSeconds")
        .and_then(|s| s.parse().ok())
        .unwrap_or(3600);
    let expiration = iso8601(now_secs() + seconds);
    let role_name = role.rsplit('/').next().unwrap_or(role);
    query_reply(
        "AssumeRole",
        &format!(
            "<AssumedRoleUser><AssumedRoleId>AROASTANDIN{account}:{session}</AssumedRoleId>\
             <Arn>arn:aws:sts::{account}:assumed-role/{role_name}/{session}</Arn></AssumedRoleUser>\
             <Credentials><AccessKeyId>ASIA{account}{SESSION_KEY_SUFFIX}</AccessKeyId>\
             <SecretAccessKey>standin-secret-{account}</SecretAccessKey>\
             <SessionToken>standin-session-{account}</SessionToken>\
             <Expiration>{expiration}</Expiration></Credentials>\
             <PackedPolicySize>0</PackedPolicySize>",
            session = xml_escape(&session),
            role_name = xml_escape(role_name),
        ),
        id,
    )
}

pub(super) fn caller_identity(call: &Call, id: &str) -> Reply {
    let account = &call.account;
    let (arn, user) = if account == MANAGEMENT_ACCOUNT {
        (
            format!("arn:aws:iam::{account}:user/standin"),
            "AIDASTANDIN".to_owned(),
        )
    } else {
        // The session key id encodes only the account: the role and session are not kept.
        (
            format!("arn:aws:sts::{account}:assumed-role/standin/standin"),
            format!("AROASTANDIN{account}:standin"),
        )
    };
    query_reply(
        "GetCallerIdentity",
        &format!("<Arn>{arn}</Arn><UserId>{user}</UserId><Account>{account}</Account>"),
        id,
    )
}

fn query_reply(operation: &str, result: &str, id: &str) -> Reply {
    let body = format!(
        "<{operation}Response xmlns=\"{STS_NAMESPACE}\"><{operation}Result>{result}</{operation}Result>\
         <ResponseMetadata><RequestId>{id}</RequestId></ResponseMetadata></{operation}Response>"
    );
    respond(
        200,
        &[("Content-Type", "text/xml"), ("x-amzn-RequestId", id)],
        body,
    )
}

/// A query-protocol error; `Throttling` is one the SDK retries as throttling.
pub(super) fn query_error(id: &str, status: u16, code: &str, message: &str) -> Reply {
    let kind = if status >= 500 { "Receiver" } else { "Sender" };
    let body = format!(
        "<ErrorResponse xmlns=\"{STS_NAMESPACE}\"><Error><Type>{kind}</Type><Code>{code}</Code>\
         <Message>{}</Message></Error><RequestId>{id}</RequestId></ErrorResponse>",
        xml_escape(message)
    );
    respond(
        status,
        &[("Content-Type", "text/xml"), ("x-amzn-RequestId", id)],
        body,
    )
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `secs` since the epoch as an ISO 8601 UTC time, as STS writes `Expiration`.
fn iso8601(secs: u64) -> String {
    aws_sdk_sts::primitives::DateTime::from_secs(secs as i64)
        .fmt(aws_sdk_sts::primitives::DateTimeFormat::DateTime)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
