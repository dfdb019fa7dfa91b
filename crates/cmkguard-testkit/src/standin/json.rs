//! Answers and pages of the JSON protocols (Organizations, Account, Secrets Manager, KMS).

use serde_json::{Value, json};

use crate::serve::{Reply, respond};

pub(super) fn json_reply(id: &str, content_type: &str, body: &Value) -> Reply {
    respond(
        200,
        &[("Content-Type", content_type), ("x-amzn-RequestId", id)],
        body.to_string(),
    )
}

/// A JSON-protocol error: the code in `__type` and in `x-amzn-ErrorType` (REST JSON reads the
/// header).
pub(super) fn json_error(id: &str, status: u16, code: &str, message: &str) -> Reply {
    respond(
        status,
        &[
            ("Content-Type", "application/x-amz-json-1.1"),
            ("x-amzn-RequestId", id),
            ("x-amzn-ErrorType", code),
        ],
        json!({"__type": code, "message": message}).to_string(),
    )
}

/// Page tokens are the index of the page's first item: `standin-<n>`.
pub(super) fn next_token(start: usize) -> Value {
    format!("standin-{start}").into()
}

/// Where the page starts: 0 without a token, `None` for a token not made here.
pub(super) fn page_start(input: &Value) -> Option<usize> {
    match input["NextToken"].as_str() {
        None => Some(0),
        Some(token) => token.strip_prefix("standin-")?.parse().ok(),
    }
}

/// `MaxResults`, at most `max` (as the services cap it), else `max`.
pub(super) fn page_size(input: &Value, max: usize) -> usize {
    input["MaxResults"]
        .as_u64()
        .map_or(max, |n| (n as usize).clamp(1, max))
}
