//! The AWS SDK side of cmkguard: one `SdkConfig` for the process, clients cached per account and
//! region (other accounts through an assumed role), and SDK errors classified at the edge.

pub mod accounts;
mod cursor;
mod directory;
mod errors;
mod keypolicy;
mod ports;
pub mod retry;
pub mod securityhub;

pub use cursor::CURSOR_PARAMETER;
pub use directory::{enabled_regions, organization_accounts, organization_pages};
pub use errors::classify;
pub use ports::{AwsPorts, Clients};
pub use retry::{RETRY_BUDGET_MS, RetryBudget, retry_budget};

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use cmkguard_core::AwsError;

/// Per-attempt timeout of every AWS call, in milliseconds (default 10000). The SDK retries an
/// attempt that times out (`AWS_MAX_ATTEMPTS` attempts in all); tests shorten it to stay fast.
pub const ATTEMPT_TIMEOUT_MS: &str = "CMKGUARD_AWS_ATTEMPT_TIMEOUT_MS";

const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The SDK's first retry backoff (doubling, jittered, per attempt).
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);

/// The per-attempt timeout from [`ATTEMPT_TIMEOUT_MS`]; an invalid value names the variable.
pub fn attempt_timeout(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Duration, cmkguard_core::ConfigError> {
    let Some(value) = lookup(ATTEMPT_TIMEOUT_MS).filter(|v| !v.trim().is_empty()) else {
        return Ok(DEFAULT_ATTEMPT_TIMEOUT);
    };
    match value.trim().parse::<u64>() {
        Ok(ms @ 1..=300_000) => Ok(Duration::from_millis(ms)),
        _ => Err(cmkguard_core::ConfigError {
            variable: ATTEMPT_TIMEOUT_MS,
            message: format!("`{value}` is not a number of milliseconds from 1 to 300000"),
        }),
    }
}

/// The one configuration every client derives from. Honours the standard AWS variables,
/// `AWS_ENDPOINT_URL` and `AWS_MAX_ATTEMPTS` included (how tests point the guard at a local
/// emulator), and [`ATTEMPT_TIMEOUT_MS`].
pub async fn sdk_config() -> Result<SdkConfig, cmkguard_core::ConfigError> {
    let attempt = attempt_timeout(|name| std::env::var(name).ok())?;
    Ok(sdk_config_with(attempt).await)
}

/// [`sdk_config`] with an attempt timeout already read (and validated) by the caller.
pub async fn sdk_config_with(attempt: Duration) -> SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3).min(attempt))
        .operation_attempt_timeout(attempt)
        .operation_timeout(Duration::from_secs(30).max(attempt * 3))
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts)
        .http_client(shared_http_client());
    // Standard mode unless `AWS_RETRY_MODE` says otherwise (`AWS_MAX_ATTEMPTS`, default 3,
    // applies), then the retry budget (crate::retry). Not the SDK's adaptive mode: it is
    // experimental, and its client-side rate limiter, which starts from nothing in every new
    // process, held a burst of 300 events at 1.64x the quota floor through `cmkguard
    // handle-event` (`just bench-burst`). Audits, one long-lived process, keep it
    // ([`with_adaptive_retry`]).
    if std::env::var_os("AWS_RETRY_MODE").is_none() {
        let attempts = std::env::var("AWS_MAX_ATTEMPTS")
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(3);
        // The SDK's first backoff is 1 s (then 2 s, ...): under a burst that leaves the quota
        // idle while every caller waits; the retry budget (crate::retry) paces what follows.
        loader = loader.retry_config(
            RetryConfig::standard()
                .with_max_attempts(attempts)
                .with_initial_backoff(INITIAL_BACKOFF),
        );
    }
    loader.load().await
}

/// One HTTP client (connection pools, TLS roots) for every SDK client of the process. Without
/// it, each client the SDK makes builds its own: three per account and region, each loading the
/// TLS roots, which is how a warm process grew with every member account it saw. This is the
/// SDK's own default client (rustls with aws-lc, proxies from the environment), made once.
fn shared_http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
    use aws_smithy_http_client::{Builder, ConnectorBuilder};
    Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector =
            ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attempt_timeout_is_validated_and_named() {
        let at = |v: &str| {
            let v = v.to_owned();
            attempt_timeout(move |_| Some(v.clone()))
        };
        assert_eq!(attempt_timeout(|_| None).unwrap(), DEFAULT_ATTEMPT_TIMEOUT);
        assert_eq!(at("250").unwrap(), Duration::from_millis(250));
        for bad in ["0", "-1", "1.5", "soon", "300001"] {
            let err = at(bad).unwrap_err();
            assert_eq!(err.variable, ATTEMPT_TIMEOUT_MS);
            assert!(err.to_string().contains(ATTEMPT_TIMEOUT_MS), "{err}");
        }
    }
}
