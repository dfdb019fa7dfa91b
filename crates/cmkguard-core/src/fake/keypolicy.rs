//! Key policies and grants in memory: what `GetKeyPolicy` and `ListGrants` answer.

use crate::keypolicy::Grant;
use crate::ports::{AwsError, AwsResult, ReadKeyPolicy, Scope};

use super::FakeAws;

/// A policy the review finds nothing in, as the project's own key template writes it: the
/// account root administers the key, and any use IAM grants goes through Secrets Manager.
pub fn clean_policy(key_arn: &str) -> String {
    let arn = crate::arn::Arn::kms_key(key_arn);
    let (partition, region, account) = arn.map(|a| (a.partition, a.region, a.account)).unwrap_or((
        "aws",
        "us-east-1",
        "123456789012",
    ));
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "KeyAdministrationThroughIam",
                "Effect": "Allow",
                "Principal": {"AWS": format!("arn:{partition}:iam::{account}:root")},
                "Action": ["kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*",
                           "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*",
                           "kms:TagResource", "kms:UntagResource", "kms:ScheduleKeyDeletion",
                           "kms:CancelKeyDeletion"],
                "Resource": "*"
            },
            {
                "Sid": "UseThroughSecretsManager",
                "Effect": "Allow",
                "Principal": {"AWS": format!("arn:{partition}:iam::{account}:root")},
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"],
                "Resource": "*",
                "Condition": {"StringEquals": {
                    "kms:ViaService": format!("secretsmanager.{region}.amazonaws.com"),
                    "kms:CallerAccount": account
                }}
            }
        ]
    })
    .to_string()
}

impl FakeAws {
    /// The key `key_arn`'s policy document, as `GetKeyPolicy` returns it.
    pub fn put_key_policy(&self, key_arn: &str, policy: &str) {
        self.world()
            .key_policies
            .insert(key_arn.to_owned(), policy.to_owned());
    }

    /// A grant on the key `key_arn`.
    pub fn put_grant(&self, key_arn: &str, grant: Grant) {
        self.world()
            .grants
            .entry(key_arn.to_owned())
            .or_default()
            .push(grant);
    }
}

impl ReadKeyPolicy for FakeAws {
    async fn key_policy(&self, scope: &Scope, key_arn: &str) -> AwsResult<String> {
        self.take_time("GetKeyPolicy").await;
        let world = self.enter("GetKeyPolicy")?;
        if super::key_of(&world, scope, key_arn).is_none() {
            return Err(AwsError::NotFound(key_arn.to_owned()));
        }
        Ok(world
            .key_policies
            .get(key_arn)
            .cloned()
            .unwrap_or_else(|| clean_policy(key_arn)))
    }

    async fn key_grants(&self, scope: &Scope, key_arn: &str) -> AwsResult<Vec<Grant>> {
        self.take_time("ListGrants").await;
        let world = self.enter("ListGrants")?;
        if super::key_of(&world, scope, key_arn).is_none() {
            return Err(AwsError::NotFound(key_arn.to_owned()));
        }
        Ok(world.grants.get(key_arn).cloned().unwrap_or_default())
    }
}
