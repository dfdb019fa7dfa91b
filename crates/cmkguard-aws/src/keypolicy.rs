//! The `ReadKeyPolicy` port: a key's policy (`GetKeyPolicy`) and grants (`ListGrants`), for the
//! engine's key policy review. Read only; the guard never changes either.

use cmkguard_core::keypolicy::Grant;
use cmkguard_core::ports::{AwsResult, ReadKeyPolicy};
use cmkguard_core::{AwsError, Scope};

use crate::errors::classify;
use crate::ports::AwsPorts;

/// The only key policy name KMS has.
const POLICY_NAME: &str = "default";

/// One try of each call (see [`crate::retry`]).
impl AwsPorts {
    async fn key_policy_once(&self, scope: &Scope, key_arn: &str) -> AwsResult<String> {
        let clients = self.clients(scope).await?;
        let out = clients
            .kms
            .get_key_policy()
            .key_id(key_arn)
            .policy_name(POLICY_NAME)
            .send()
            .await
            .map_err(classify)?;
        out.policy().map(str::to_owned).ok_or_else(|| {
            AwsError::Other(format!("`GetKeyPolicy` on `{key_arn}` returned no policy"))
        })
    }

    async fn key_grants_once(
        &self,
        scope: &Scope,
        key_arn: &str,
        marker: Option<String>,
    ) -> AwsResult<(Vec<Grant>, Option<String>)> {
        let clients = self.clients(scope).await?;
        let out = clients
            .kms
            .list_grants()
            .key_id(key_arn)
            .set_marker(marker)
            .send()
            .await
            .map_err(classify)?;
        let grants = out
            .grants()
            .iter()
            .map(|g| Grant {
                id: g.grant_id().unwrap_or_default().to_owned(),
                grantee_principal: g.grantee_principal().map(str::to_owned),
                operations: g
                    .operations()
                    .iter()
                    .map(|o| o.as_str().to_owned())
                    .collect(),
            })
            .collect();
        let next = out
            .truncated()
            .then(|| {
                out.next_marker()
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
            })
            .flatten();
        Ok((grants, next))
    }
}

impl ReadKeyPolicy for AwsPorts {
    async fn key_policy(&self, scope: &Scope, key_arn: &str) -> AwsResult<String> {
        self.retry()
            .run(|| self.key_policy_once(scope, key_arn))
            .await
    }

    async fn key_grants(&self, scope: &Scope, key_arn: &str) -> AwsResult<Vec<Grant>> {
        let mut grants = Vec::new();
        let mut marker = None;
        loop {
            let (page, next) = self
                .retry()
                .run(|| self.key_grants_once(scope, key_arn, marker.clone()))
                .await?;
            grants.extend(page);
            match next {
                // A marker that comes back unchanged would never end: stop there.
                Some(next) if marker.as_ref() != Some(&next) => marker = Some(next),
                _ => return Ok(grants),
            }
        }
    }
}
