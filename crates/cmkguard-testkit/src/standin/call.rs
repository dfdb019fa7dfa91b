//! Who asks what, where: a request placed by its SigV4 credential scope and access key id.

use super::world::MANAGEMENT_ACCOUNT;
use crate::http::{form_value, header};
use crate::serve::Received;

/// Session key ids are `ASIA` + the 12-digit account + this (20 characters, as AWS's are).
pub(super) const SESSION_KEY_SUFFIX: &str = "STND";

/// Who asks what, where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Call {
    pub(super) service: String,
    pub(super) operation: String,
    pub(super) region: String,
    pub(super) account: String,
}

impl Call {
    pub(super) fn of(request: &Received) -> Call {
        // `Credential=AKID/DATE/REGION/SERVICE/aws4_request`
        let scope: Vec<&str> = header(&request.headers, "authorization")
            .and_then(|a| a.split("Credential=").nth(1))
            .and_then(|c| c.split([',', ' ']).next())
            .map(|c| c.split('/').collect())
            .unwrap_or_default();
        let field = |i: usize| scope.get(i).copied().unwrap_or_default();
        let service = match field(3) {
            "" => "unknown",
            s => s,
        };
        let region = match field(2) {
            "" => "us-east-1",
            r => r,
        };
        let operation = if let Some(target) = header(&request.headers, "x-amz-target") {
            // JSON 1.1: `TrentService.DescribeKey`, `secretsmanager.ListSecrets`.
            target.rsplit('.').next().unwrap_or(target).to_owned()
        } else if request.method == "POST"
            && let Some(action) = form_value(&request.body, "Action")
        {
            // Query protocol (STS).
            action
        } else {
            // REST (Account): `POST /listRegions` is `ListRegions`.
            let mut name = request.path().trim_start_matches('/').to_owned();
            if let Some(first) = name.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            name
        };
        Call {
            service: service.to_owned(),
            operation,
            region: region.to_owned(),
            account: account_of_key(field(0)),
        }
    }

    pub(super) fn key(&self) -> String {
        format!("{}:{}", self.service, self.operation)
    }
}

/// The account a key id acts in: the one a session key id encodes, else the management account.
fn account_of_key(access_key_id: &str) -> String {
    access_key_id
        .strip_prefix("ASIA")
        .and_then(|rest| rest.strip_suffix(SESSION_KEY_SUFFIX))
        .filter(|account| account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or(MANAGEMENT_ACCOUNT)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_key_ids_name_their_account() {
        assert_eq!(account_of_key("ASIA100000000007STND"), "100000000007");
        assert_eq!(account_of_key("AKIDSTANDIN"), MANAGEMENT_ACCOUNT);
        assert_eq!(account_of_key("ASIA1000STND"), MANAGEMENT_ACCOUNT);
    }
}
