//! Account (REST JSON): `ListRegions`.

use serde_json::{Value, json};

use super::json::{json_error, json_reply, next_token, page_size, page_start};
use crate::serve::Reply;

/// The 17 commercial regions enabled by default in every account (`account:ListRegions`).
pub const REGIONS: [&str; 17] = [
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ca-central-1",
    "eu-central-1",
    "eu-north-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
];

pub(super) fn list_regions(input: &Value, id: &str) -> Reply {
    // Every region is enabled by default: a filter without that status matches none.
    let wanted = input["RegionOptStatusContains"]
        .as_array()
        .is_none_or(|statuses| statuses.iter().any(|s| s == "ENABLED_BY_DEFAULT"));
    let Some(start) = page_start(input) else {
        return json_error(id, 400, "ValidationException", "invalid `NextToken`");
    };
    let regions: Vec<&str> = if wanted { REGIONS.to_vec() } else { Vec::new() };
    let size = page_size(input, regions.len().max(1));
    let page: Vec<Value> = regions
        .iter()
        .skip(start)
        .take(size)
        .map(|r| json!({"RegionName": r, "RegionOptStatus": "ENABLED_BY_DEFAULT"}))
        .collect();
    let mut output = json!({ "Regions": page });
    if start + size < regions.len() {
        output["NextToken"] = next_token(start + size);
    }
    json_reply(id, "application/json", &output)
}
