//! Organizations (JSON 1.1): `ListAccounts`, for the management account only.

use serde_json::{Value, json};

use super::call::Call;
use super::json::{json_error, json_reply, next_token, page_size, page_start};
use super::world::{CREATED, MANAGEMENT_ACCOUNT, World};
use crate::serve::Reply;

/// Organizations' page size for `ListAccounts` (its maximum `MaxResults`).
const ACCOUNTS_PAGE: usize = 20;
const ORGANIZATION_ID: &str = "o-standin0001";

pub(super) fn list_accounts(world: &World, call: &Call, input: &Value, id: &str) -> Reply {
    if call.account != MANAGEMENT_ACCOUNT {
        let message = "only the management account can list the organization's accounts";
        return json_error(id, 400, "AccessDeniedException", message);
    }
    let Some(start) = page_start(input) else {
        return json_error(id, 400, "InvalidInputException", "invalid `NextToken`");
    };
    let size = page_size(input, ACCOUNTS_PAGE);
    let accounts: Vec<Value> = (start..start + size)
        .map_while(|position| world.account(position))
        .map(|account| {
            let name = if account == MANAGEMENT_ACCOUNT {
                "management".to_owned()
            } else {
                format!("member-{account}")
            };
            json!({
                "Id": account,
                "Arn": format!("arn:aws:organizations::{MANAGEMENT_ACCOUNT}:account/{ORGANIZATION_ID}/{account}"),
                "Email": format!("standin+{account}@example.com"),
                "Name": name,
                "Status": "ACTIVE",
                "State": "ACTIVE",
                "JoinedMethod": "CREATED",
                "JoinedTimestamp": CREATED,
            })
        })
        .collect();
    let mut output = json!({ "Accounts": accounts });
    if world.account(start + size).is_some() {
        output["NextToken"] = next_token(start + size);
    }
    json_reply(id, "application/x-amz-json-1.1", &output)
}
