//! Reading what EventBridge delivers. Tolerant of missing and unknown fields (CloudTrail omits
//! `userAgent`, `sourceIPAddress`, `responseElements` at times), exact about what it reads, and
//! never panicking: a field of the wrong type counts as absent.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::arn::Arn;
use crate::reason::Reason;

/// The CloudTrail events the guard acts on: the secret's key may have changed, or (the last
/// three) it may have a new current version, which finishes a move.
pub const HANDLED_EVENTS: [&str; 7] = [
    "CreateSecret",
    "UpdateSecret",
    "ReplicateSecretToRegions",
    "RestoreSecret",
    "PutSecretValue",
    "RotateSecret",
    "UpdateSecretVersionStage",
];

/// The Secrets Manager service events (`AWS Service Event via CloudTrail`) the guard acts on:
/// a rotation made a new current version.
pub const SERVICE_EVENTS: [&str; 1] = ["RotationSucceeded"];

/// The event name the records of a scheduled sweep carry.
pub const SCHEDULED_EVENT: &str = "ScheduledEvent";

/// The key's own CloudTrail events the guard acts on: the first four change whether the key can
/// decrypt, the last four who may decrypt with it (its policy, its grants).
pub const KEY_EVENTS: [&str; 8] = [
    "DisableKey",
    "EnableKey",
    "ScheduleKeyDeletion",
    "CancelKeyDeletion",
    "PutKeyPolicy",
    "CreateGrant",
    "RevokeGrant",
    "RetireGrant",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("unreadable event: {0}")]
    NotJson(String),
    #[error("unreadable event: expected a JSON object, found {0}")]
    NotObject(&'static str),
}

/// What an input is, once read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A Secrets Manager API call that names a secret.
    ApiCall(ApiCall),
    /// A KMS call that changed a key's state: every secret on that key is checked.
    KeyCall(KeyCall),
    /// A handled API call whose record does not say which secret (or names it wrongly).
    Malformed {
        meta: EventMeta,
        reason: Reason,
        detail: String,
    },
    /// EventBridge `Scheduled Event`: sweep the region.
    Scheduled(EventMeta),
    /// Anything else; recorded as `ignored` with this reason.
    Ignored { meta: EventMeta, reason: Reason },
}

/// What every record says about the event it came from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventMeta {
    pub event_id: Option<String>,
    pub event_name: Option<String>,
    pub account: Option<String>,
    pub region: Option<String>,
    pub actor: Option<String>,
    /// The Lambda request id of the invocation that handles the event.
    pub request_id: Option<String>,
}

impl Input {
    /// The same input, its records to carry `request_id`.
    pub fn with_request_id(mut self, request_id: Option<String>) -> Self {
        let meta = match &mut self {
            Input::ApiCall(call) => &mut call.meta,
            Input::KeyCall(call) => &mut call.meta,
            Input::Malformed { meta, .. }
            | Input::Scheduled(meta)
            | Input::Ignored { meta, .. } => meta,
        };
        meta.request_id = request_id;
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCall {
    pub meta: EventMeta,
    /// Name, full ARN or partial ARN, as the record gives it.
    pub secret_id: String,
    /// The secret's account and region (from its ARN when it has one, else from the event).
    pub account: String,
    pub region: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCall {
    pub meta: EventMeta,
    /// A key ARN or a key id, as the record gives it.
    pub key_id: String,
    /// The event's account and region.
    pub account: String,
    pub region: String,
}

/// A string, or absent when missing, null or of another type.
fn lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) if !s.is_empty() => Some(s),
        _ => None,
    })
}

/// An object, or absent when it is anything else.
fn lenient_object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = Value::deserialize(d)?;
    Ok(if value.is_object() {
        serde_json::from_value(value).ok()
    } else {
        None
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Envelope {
    #[serde(deserialize_with = "lenient")]
    id: Option<String>,
    #[serde(rename = "detail-type", deserialize_with = "lenient")]
    detail_type: Option<String>,
    #[serde(deserialize_with = "lenient")]
    source: Option<String>,
    #[serde(deserialize_with = "lenient")]
    account: Option<String>,
    #[serde(deserialize_with = "lenient")]
    region: Option<String>,
    #[serde(deserialize_with = "lenient_object")]
    detail: Option<Detail>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Detail {
    #[serde(rename = "eventID", deserialize_with = "lenient")]
    event_id: Option<String>,
    #[serde(deserialize_with = "lenient")]
    event_name: Option<String>,
    #[serde(deserialize_with = "lenient")]
    event_source: Option<String>,
    #[serde(deserialize_with = "lenient")]
    aws_region: Option<String>,
    #[serde(deserialize_with = "lenient")]
    recipient_account_id: Option<String>,
    /// Present (with any value) when the call failed.
    error_code: Option<Value>,
    #[serde(deserialize_with = "lenient_object")]
    user_identity: Option<UserIdentity>,
    #[serde(deserialize_with = "lenient_object")]
    request_parameters: Option<RequestParameters>,
    #[serde(deserialize_with = "lenient_object")]
    response_elements: Option<ResponseElements>,
    /// CloudTrail's `resources`: for KMS calls, the key (`{"type": "AWS::KMS::Key", "ARN": ...}`).
    resources: Option<Value>,
    /// Service events name the secret here (`SecretId`, its ARN).
    #[serde(deserialize_with = "lenient_object")]
    additional_event_data: Option<AdditionalEventData>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AdditionalEventData {
    #[serde(rename = "SecretId", deserialize_with = "lenient")]
    secret_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct UserIdentity {
    #[serde(deserialize_with = "lenient")]
    arn: Option<String>,
    #[serde(deserialize_with = "lenient")]
    invoked_by: Option<String>,
    #[serde(deserialize_with = "lenient")]
    principal_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RequestParameters {
    #[serde(deserialize_with = "lenient")]
    secret_id: Option<String>,
    #[serde(deserialize_with = "lenient")]
    name: Option<String>,
    #[serde(deserialize_with = "lenient")]
    key_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ResponseElements {
    #[serde(deserialize_with = "lenient")]
    arn: Option<String>,
    /// Records before 2024 spell it `aRN`.
    #[serde(rename = "aRN", deserialize_with = "lenient")]
    legacy_arn: Option<String>,
}

/// Reads raw bytes (a file, stdin, a Lambda payload).
pub fn read_bytes(bytes: &[u8]) -> Result<Input, EventError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| EventError::NotJson(e.to_string()))?;
    read(&value)
}

/// Reads an already parsed JSON value.
pub fn read(value: &Value) -> Result<Input, EventError> {
    if !value.is_object() {
        return Err(EventError::NotObject(json_kind(value)));
    }
    let envelope = Envelope::deserialize(value).unwrap_or_default();
    let detail = envelope.detail.unwrap_or_default();
    // Every record quotes these: cap what an event can make the guard log.
    let capped = |s: Option<String>| s.map(|s| crate::text::shorten(&s));
    let meta = EventMeta {
        event_id: capped(detail.event_id.clone().or(envelope.id.clone())),
        event_name: capped(detail.event_name.clone()),
        account: capped(
            envelope
                .account
                .clone()
                .or(detail.recipient_account_id.clone()),
        ),
        region: capped(detail.aws_region.clone().or(envelope.region.clone())),
        actor: capped(detail.user_identity.as_ref().and_then(|u| {
            u.arn
                .clone()
                .or(u.invoked_by.clone())
                .or(u.principal_id.clone())
        })),
        request_id: None,
    };

    match (envelope.source.as_deref(), envelope.detail_type.as_deref()) {
        (Some("aws.events"), Some("Scheduled Event")) => {
            let meta = EventMeta {
                event_name: Some(SCHEDULED_EVENT.into()),
                ..meta
            };
            return Ok(Input::Scheduled(meta));
        }
        (Some("aws.secretsmanager"), Some("AWS API Call via CloudTrail")) => {}
        (Some("aws.secretsmanager"), Some("AWS Service Event via CloudTrail")) => {
            return Ok(read_service_event(meta, detail));
        }
        (Some("aws.kms"), Some("AWS API Call via CloudTrail")) => {
            return Ok(read_key_call(meta, detail));
        }
        _ => {
            return Ok(Input::Ignored {
                meta,
                reason: Reason::UnsupportedEvent,
            });
        }
    }
    if detail
        .event_source
        .as_deref()
        .is_some_and(|s| s != "secretsmanager.amazonaws.com")
    {
        return Ok(Input::Ignored {
            meta,
            reason: Reason::UnsupportedEvent,
        });
    }
    if detail.error_code.as_ref().is_some_and(|c| !c.is_null()) {
        return Ok(Input::Ignored {
            meta,
            reason: Reason::FailedCall,
        });
    }
    if !meta
        .event_name
        .as_deref()
        .is_some_and(|n| HANDLED_EVENTS.contains(&n))
    {
        return Ok(Input::Ignored {
            meta,
            reason: Reason::UnsupportedEventName,
        });
    }

    let response = detail.response_elements.unwrap_or_default();
    let request = detail.request_parameters.unwrap_or_default();
    let secret_id = response
        .arn
        .or(response.legacy_arn)
        .or(request.secret_id)
        .or(request.name);
    Ok(api_call(
        meta,
        secret_id,
        "`responseElements.arn`, `requestParameters.secretId` or `requestParameters.name`",
    ))
}

/// A Secrets Manager service event: `RotationSucceeded` names its secret in
/// `additionalEventData.SecretId`.
fn read_service_event(meta: EventMeta, detail: Detail) -> Input {
    if detail
        .event_source
        .as_deref()
        .is_some_and(|s| s != "secretsmanager.amazonaws.com")
    {
        return Input::Ignored {
            meta,
            reason: Reason::UnsupportedEvent,
        };
    }
    if !meta
        .event_name
        .as_deref()
        .is_some_and(|n| SERVICE_EVENTS.contains(&n))
    {
        return Input::Ignored {
            meta,
            reason: Reason::UnsupportedEventName,
        };
    }
    let secret_id = detail.additional_event_data.and_then(|d| d.secret_id);
    api_call(meta, secret_id, "`additionalEventData.SecretId`")
}

/// The call on `secret_id` (read from `fields`), in the secret's own account and region.
fn api_call(meta: EventMeta, secret_id: Option<String>, fields: &str) -> Input {
    let Some(secret_id) = secret_id else {
        return Input::Malformed {
            meta,
            reason: Reason::MalformedEvent,
            detail: format!("the record names no secret ({fields})"),
        };
    };
    if let Some(problem) = secret_id_problem(&secret_id) {
        return Input::Malformed {
            meta,
            reason: Reason::MalformedEvent,
            detail: problem,
        };
    }

    let (account, region) = match Arn::secret(&secret_id) {
        Some(arn) => (Some(arn.account.to_owned()), Some(arn.region.to_owned())),
        None => (meta.account.clone(), meta.region.clone()),
    };
    let account = account.filter(|a| crate::arn::is_account_id(a));
    let region = region.filter(|r| crate::arn::is_region(r));
    let (Some(account), Some(region)) = (account, region) else {
        return Input::Malformed {
            meta,
            reason: Reason::MalformedEvent,
            detail: "the record has no valid `account` or `detail.awsRegion`".into(),
        };
    };
    Input::ApiCall(ApiCall {
        meta,
        secret_id,
        account,
        region,
    })
}

/// A KMS call: the four that change whether a key can decrypt, on a key named by CloudTrail's
/// `resources` (else `requestParameters.keyId`), in the event's account and region.
fn read_key_call(meta: EventMeta, detail: Detail) -> Input {
    let ignored = |meta, reason| Input::Ignored { meta, reason };
    if detail
        .event_source
        .as_deref()
        .is_some_and(|s| s != "kms.amazonaws.com")
    {
        return ignored(meta, Reason::UnsupportedEvent);
    }
    if detail.error_code.as_ref().is_some_and(|c| !c.is_null()) {
        return ignored(meta, Reason::FailedCall);
    }
    if !meta
        .event_name
        .as_deref()
        .is_some_and(|n| KEY_EVENTS.contains(&n))
    {
        return ignored(meta, Reason::UnsupportedEventName);
    }
    let malformed = |meta, detail: &str| Input::Malformed {
        meta,
        reason: Reason::MalformedEvent,
        detail: detail.to_owned(),
    };
    let from_resources = detail
        .resources
        .as_ref()
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("ARN").and_then(Value::as_str))
        .find(|arn| Arn::kms_key(arn).is_some())
        .map(str::to_owned);
    let Some(key_id) = from_resources.or(detail.request_parameters.and_then(|r| r.key_id)) else {
        return malformed(
            meta,
            "the record names no key (`resources[].ARN` or `requestParameters.keyId`)",
        );
    };
    if Arn::kms_key(&key_id).is_none() && !is_key_id(&key_id) {
        return malformed(meta, "the key is neither a key ARN nor a key id");
    }
    let account = meta
        .account
        .clone()
        .filter(|a| crate::arn::is_account_id(a));
    let region = meta.region.clone().filter(|r| crate::arn::is_region(r));
    let (Some(account), Some(region)) = (account, region) else {
        return malformed(
            meta,
            "the record has no valid `account` or `detail.awsRegion`",
        );
    };
    Input::KeyCall(KeyCall {
        meta,
        key_id,
        account,
        region,
    })
}

/// A bare key id: a UUID, or a multi-Region key's `mrk-` and 32 hex digits.
fn is_key_id(id: &str) -> bool {
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    if let Some(rest) = id.strip_prefix("mrk-") {
        return rest.len() == 32 && hex(rest);
    }
    let parts: Vec<&str> = id.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12]) && parts.iter().all(|p| hex(p))
}

/// Why a secret id from a record cannot be a secret, if it cannot.
fn secret_id_problem(id: &str) -> Option<String> {
    const MAX_ID: usize = 2048;
    if id.len() > MAX_ID {
        return Some(format!(
            "the secret id is {} bytes long (at most {MAX_ID})",
            id.len()
        ));
    }
    if id.starts_with("arn:") && Arn::secret(id).is_none() {
        return Some(format!(
            "`{}` is not a Secrets Manager secret ARN",
            crate::text::shorten(id)
        ));
    }
    if id.chars().any(char::is_control) {
        return Some("the secret id holds control characters".into());
    }
    None
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn call(detail: Value) -> Value {
        json!({
            "version": "0", "id": "eb-id", "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.secretsmanager", "account": "123456789012", "region": "us-east-1",
            "detail": detail,
        })
    }

    #[test]
    fn names_the_secret_by_arn_then_legacy_arn_then_secret_id_then_name() {
        let arn = "arn:aws:secretsmanager:us-west-2:123456789012:secret:a-AbCdEf";
        for (detail, want) in [
            (
                json!({"eventName": "CreateSecret", "awsRegion": "us-east-1", "responseElements": {"arn": arn}, "requestParameters": {"name": "x"}}),
                arn,
            ),
            (
                json!({"eventName": "CreateSecret", "awsRegion": "us-east-1", "responseElements": {"aRN": arn}, "requestParameters": {"name": "x"}}),
                arn,
            ),
            (
                json!({"eventName": "UpdateSecret", "awsRegion": "us-east-1", "requestParameters": {"secretId": "by-id", "name": "x"}}),
                "by-id",
            ),
            (
                json!({"eventName": "CreateSecret", "awsRegion": "us-east-1", "responseElements": null, "requestParameters": {"name": "x"}}),
                "x",
            ),
        ] {
            let Input::ApiCall(call) = read(&call(detail)).unwrap() else {
                panic!("not a call")
            };
            assert_eq!(call.secret_id, want);
            assert_eq!(call.account, "123456789012");
        }
    }

    #[test]
    fn takes_account_and_region_from_the_secret_arn() {
        let arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:a-AbCdEf";
        let event = call(
            json!({"eventName": "RestoreSecret", "awsRegion": "us-east-1", "requestParameters": {"secretId": arn}}),
        );
        let Input::ApiCall(call) = read(&event).unwrap() else {
            panic!("not a call")
        };
        assert_eq!(
            (call.account.as_str(), call.region.as_str()),
            ("111122223333", "eu-west-1")
        );
    }

    #[test]
    fn ignores_failed_calls_other_events_and_other_sources() {
        let failed = call(
            json!({"eventName": "CreateSecret", "errorCode": "AccessDenied", "requestParameters": {"name": "x"}}),
        );
        assert!(matches!(
            read(&failed).unwrap(),
            Input::Ignored {
                reason: Reason::FailedCall,
                ..
            }
        ));
        let delete =
            call(json!({"eventName": "DeleteSecret", "requestParameters": {"secretId": "x"}}));
        assert!(matches!(
            read(&delete).unwrap(),
            Input::Ignored {
                reason: Reason::UnsupportedEventName,
                ..
            }
        ));
        assert!(matches!(
            read(&json!({"source": "aws.s3"})).unwrap(),
            Input::Ignored { .. }
        ));
        assert!(matches!(read(&json!({})).unwrap(), Input::Ignored { .. }));
    }

    #[test]
    fn wrong_types_count_as_absent() {
        let event = json!({"detail-type": "AWS API Call via CloudTrail", "source": "aws.secretsmanager",
            "account": 7, "detail": {"eventName": "CreateSecret", "awsRegion": ["x"], "userIdentity": "me",
            "responseElements": "nope", "requestParameters": {"name": {"a": 1}}}});
        assert!(matches!(
            read(&event).unwrap(),
            Input::Malformed {
                reason: Reason::MalformedEvent,
                ..
            }
        ));
        assert!(matches!(
            read(&json!({"detail": 3})).unwrap(),
            Input::Ignored { .. }
        ));
    }

    #[test]
    fn rejects_arns_of_other_services() {
        let event = call(
            json!({"eventName": "CreateSecret", "awsRegion": "us-east-1", "responseElements": {"arn": "arn:aws:s3:::bucket"}}),
        );
        let Input::Malformed { detail, .. } = read(&event).unwrap() else {
            panic!("accepted an S3 ARN")
        };
        assert!(detail.contains("arn:aws:s3:::bucket"), "{detail}");
    }

    #[test]
    fn bad_json_is_an_error_that_says_so() {
        assert!(matches!(
            read_bytes(b"{\"detail\": "),
            Err(EventError::NotJson(_))
        ));
        assert_eq!(read_bytes(b"[1]"), Err(EventError::NotObject("an array")));
        assert!(
            read_bytes(b"\"x\"")
                .unwrap_err()
                .to_string()
                .contains("expected a JSON object")
        );
    }

    #[test]
    fn scheduled_events_are_sweeps() {
        let event = json!({"id": "s1", "detail-type": "Scheduled Event", "source": "aws.events", "account": "123456789012", "region": "us-east-1", "detail": {}});
        let Input::Scheduled(meta) = read(&event).unwrap() else {
            panic!("not a sweep")
        };
        assert_eq!(meta.event_id.as_deref(), Some("s1"));
    }
}
