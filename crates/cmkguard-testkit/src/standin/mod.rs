//! A small, fast stand-in for the AWS APIs an organization-wide audit calls (STS, Organizations,
//! Account, Secrets Manager, KMS), for benchmarks at thousands of accounts: moto answers ~150
//! requests/s and keeps every secret in memory, this answers as fast as hyper does and generates
//! its world on the fly.
//!
//! The AWS SDK for Rust reaches it through `AWS_ENDPOINT_URL` (every service at one endpoint). A
//! request is placed by its SigV4 `Authorization` header: the credential scope names the region
//! and the service, the access key id the caller's account. Base credentials (any key id this
//! server did not hand out) act in the management account; `AssumeRole` hands out key ids that
//! encode the target account. Signatures are not checked.
//!
//! The world is a function of (account, region, index): each account-region has the same number
//! of secrets, the first on the AWS managed default key and the others on one customer managed
//! key of that account-region. Only writes (`TagResource`, `UntagResource`, `UpdateSecret`) are
//! stored, per secret written, so memory stays small at 5,000 accounts x 17 regions.
//!
//! `server` places each request (`call`), counts it and routes it to its service's module
//! (`sts`, `organizations`, `account`, `secretsmanager`, `kms`); `world` makes the world's names
//! and keeps its writes; `json` shapes the JSON protocols' answers and pages.

mod account;
mod call;
mod json;
mod kms;
mod organizations;
mod secretsmanager;
mod server;
mod sts;
mod world;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_sts::config::Credentials;

use crate::bucket::TokenBucket;
use crate::serve::Server;
use server::{Counts, Shared, answer};
use world::{World, key_arn, member_account, secret_arn};

pub use account::REGIONS;
pub use secretsmanager::MOVED_BY_OTHERS;
pub use world::MANAGEMENT_ACCOUNT;

/// The access key id of the base credentials in [`Standin::env`] (any key id not handed out by
/// `AssumeRole` acts in the management account).
pub const BASE_ACCESS_KEY_ID: &str = "AKIDSTANDIN";

/// Options of a [`Standin`]; [`StandinBuilder::start`] serves them.
#[derive(Debug, Clone)]
pub struct StandinBuilder {
    members: usize,
    secrets: usize,
    delay: Duration,
    sts_rate: Option<(f64, f64)>,
    designated_alias: Option<String>,
}

impl Default for StandinBuilder {
    fn default() -> Self {
        StandinBuilder {
            members: 10,
            secrets: 3,
            delay: Duration::ZERO,
            sts_rate: None,
            designated_alias: None,
        }
    }
}

impl StandinBuilder {
    /// Member accounts in the organization, besides the management account (default 10).
    pub fn members(mut self, n: usize) -> Self {
        self.members = n;
        self
    }

    /// Secrets in each account-region (default 3): index 0 on the default key, the others on the
    /// account-region's customer managed key.
    pub fn secrets_per_region(mut self, n: usize) -> Self {
        self.secrets = n;
        self
    }

    /// Held before every answer (default none), as a network round trip to AWS takes.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// `AssumeRole` at most `per_second` with bursts of `burst` (a token bucket); over it the
    /// answer is HTTP 400 `Throttling`, as STS answers.
    pub fn sts_rate_limit(mut self, per_second: f64, burst: f64) -> Self {
        self.sts_rate = Some((per_second, burst));
        self
    }

    /// Makes `alias` (say `alias/cmkguard/secrets`) name each account-region's customer managed
    /// key; without it, `DescribeKey` on any alias but `alias/aws/secretsmanager` is not found.
    pub fn designated_alias(mut self, alias: &str) -> Self {
        self.designated_alias = Some(alias.to_owned());
        self
    }

    /// Serves on `127.0.0.1:<free port>`.
    pub fn start(self) -> Standin {
        let profile = tempfile::tempdir().expect("a folder for empty AWS profile files");
        for name in ["aws-config", "aws-credentials"] {
            std::fs::write(profile.path().join(name), "").expect("an empty AWS profile file");
        }
        let world = World::new(self.members, self.secrets, self.designated_alias);
        let sts_bucket = self
            .sts_rate
            .map(|(rate, burst)| TokenBucket::new(rate, burst));
        let shared = Arc::new(Shared::new(world, self.delay, sts_bucket));
        let handler_shared = Arc::clone(&shared);
        let server = Server::start(move |request, _| answer(Arc::clone(&handler_shared), request));
        Standin {
            shared,
            server,
            profile,
        }
    }
}

/// The stand-in server; dropping it closes every connection.
#[derive(Debug)]
pub struct Standin {
    shared: Arc<Shared>,
    server: Server,
    /// Empty profile files, so a child process reads none of the host's.
    profile: tempfile::TempDir,
}

impl Standin {
    /// Options, from the defaults: 10 members, 3 secrets per account-region, no delay, no limit.
    pub fn builder() -> StandinBuilder {
        StandinBuilder::default()
    }

    /// `http://127.0.0.1:PORT`: the value for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// Environment for a child process (a cmkguard binary) to reach this server with base
    /// credentials (the management account) in `us-east-1`, reading no profile files and no
    /// instance metadata.
    pub fn env(&self) -> Vec<(String, String)> {
        crate::moto::local_env(self.endpoint(), &base_credentials(), self.profile.path())
    }

    /// SDK configuration for this server in `region` with base credentials (the management
    /// account). Reads neither the environment nor the profile files.
    pub async fn sdk_config(&self, region: &str) -> SdkConfig {
        self.sdk_config_with(base_credentials(), region).await
    }

    /// SDK configuration for this server in `region` with `credentials` (say, `AssumeRole`'s).
    pub async fn sdk_config_with(&self, credentials: Credentials, region: &str) -> SdkConfig {
        crate::moto::local_sdk_config(&self.endpoint(), credentials, region).await
    }

    /// The member accounts, in order.
    pub fn member_accounts(&self) -> impl Iterator<Item = String> + use<> {
        (1..=self.shared.world.members).map(member_account)
    }

    /// The `index`-th secret of `account` in `region` (a name `standin/secret-NNNN`).
    pub fn secret_arn(&self, account: &str, region: &str, index: usize) -> String {
        secret_arn(account, region, index)
    }

    /// The customer managed key that secrets 1.. of `account` in `region` are on.
    pub fn key_arn(&self, account: &str, region: &str) -> String {
        key_arn(account, region)
    }

    /// Requests received per `service:Operation` (e.g. `sts:AssumeRole`), unknown and throttled
    /// ones included.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.shared.counts().by_operation.clone()
    }

    /// Requests received for `operation` (`service:Operation`).
    pub fn count(&self, operation: &str) -> usize {
        self.shared
            .counts()
            .by_operation
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// Requests received in all.
    pub fn total(&self) -> usize {
        self.shared.counts().by_operation.values().sum()
    }

    /// `AssumeRole` requests answered with `Throttling`.
    pub fn throttled(&self) -> usize {
        self.shared.counts().throttled
    }

    /// The most requests received and not yet answered at any one time.
    pub fn peak_in_flight(&self) -> usize {
        self.shared.peak_in_flight.load(Ordering::SeqCst)
    }

    /// Forgets the counts; the peak in flight starts again from the requests in flight now.
    pub fn reset_counts(&self) {
        *self.shared.counts() = Counts::default();
        let now = self.shared.in_flight.load(Ordering::SeqCst);
        self.shared.peak_in_flight.store(now, Ordering::SeqCst);
    }
}

/// The base credentials: [`BASE_ACCESS_KEY_ID`], acting in the management account.
fn base_credentials() -> Credentials {
    Credentials::new(BASE_ACCESS_KEY_ID, "standin-secret", None, None, "standin")
}
