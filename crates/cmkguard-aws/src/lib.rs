//! The AWS SDK side of cmkguard: one `SdkConfig` for the process, clients cached per account and
//! region (other accounts through an assumed role), and SDK errors classified at the edge.

mod directory;
mod errors;
mod ports;

pub use directory::{enabled_regions, list_organization, organization_accounts};
pub use errors::classify;
pub use ports::{AwsPorts, Clients};

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use cmkguard_core::AwsError;

/// The one configuration every client derives from. Honours the standard AWS variables,
/// `AWS_ENDPOINT_URL` included (how tests point the guard at a local emulator).
pub async fn sdk_config() -> SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(10))
        .operation_timeout(Duration::from_secs(30))
        .build();
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts)
        .load()
        .await
}

/// `config` with the SDK's adaptive retry, for audits: when AWS throttles (`ListSecrets` 100/s,
/// `TagResource`/`UpdateSecret` 50/s per account and region) the clients slow down and retry
/// instead of failing the account and region.
pub fn with_adaptive_retry(config: SdkConfig) -> SdkConfig {
    config
        .into_builder()
        .retry_config(RetryConfig::adaptive().with_max_attempts(8))
        .build()
}

/// The account of the caller's credentials (`sts:GetCallerIdentity`).
pub async fn caller_account(config: &SdkConfig) -> Result<String, AwsError> {
    let out = aws_sdk_sts::Client::new(config)
        .get_caller_identity()
        .send()
        .await
        .map_err(classify)?;
    out.account()
        .map(str::to_owned)
        .ok_or_else(|| AwsError::Other("`GetCallerIdentity` returned no account".into()))
}
