//! The adapter with mocked SDK clients (aws-smithy-mocks), shared by the wire tests.

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_mocks::{Rule, RuleMode, mock_client};
use cmkguard_aws::{AwsPorts, Clients};
use cmkguard_core::Scope;

/// Ports whose clients for `scope` answer from the rules of each service (a call no rule matches
/// fails), with the SDK's standard retries (3 attempts, 1 ms apart) and no retry budget beyond
/// them: a test of the budget sets its own.
pub fn mocked_ports(
    scope: &Scope,
    secrets: &[&Rule],
    kms: &[&Rule],
    securityhub: &[&Rule],
) -> AwsPorts {
    let retries = RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(std::time::Duration::from_millis(1));
    let secrets = mock_client!(
        aws_sdk_secretsmanager,
        RuleMode::MatchAny,
        secrets.iter().copied(),
        |c| c.retry_config(retries.clone())
    );
    let kms = mock_client!(aws_sdk_kms, RuleMode::MatchAny, kms.iter().copied(), |c| c
        .retry_config(retries.clone()));
    let securityhub = mock_client!(
        aws_sdk_securityhub,
        RuleMode::MatchAny,
        securityhub.iter().copied(),
        |c| c.retry_config(retries.clone())
    );
    let base = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(scope.region.clone()))
        .build();
    let mut clients = Clients::new(&base, &scope.region).with_securityhub(securityhub);
    clients.secrets = secrets;
    clients.kms = kms;
    let ports = AwsPorts::new(base, scope.account.clone(), None)
        .with_retry_budget(std::time::Duration::ZERO);
    ports.insert_clients(scope.clone(), clients);
    ports
}
