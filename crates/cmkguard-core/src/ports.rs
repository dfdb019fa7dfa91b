//! The narrow capabilities the engine needs from AWS, one trait each. Every call names the
//! account and region it is for; the implementation picks (and caches) the right client.

use std::future::Future;

use crate::facts::{KeyFacts, SecretFacts, SecretVersion};
use crate::finding::{Finding, RefusedFinding};
use crate::keypolicy::Grant;
use crate::reason::Reason;

/// Where a call goes: an account and a region.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    pub account: String,
    pub region: String,
}

impl Scope {
    pub fn new(account: impl Into<String>, region: impl Into<String>) -> Self {
        Scope {
            account: account.into(),
            region: region.into(),
        }
    }
}

/// An AWS failure, classified at the edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwsError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// Throttling, 5xx, timeouts, dropped connections, after the SDK's own retries.
    #[error("transient failure: {0}")]
    Transient(String),
    #[error("{0}")]
    Other(String),
}

impl AwsError {
    pub fn is_transient(&self) -> bool {
        matches!(self, AwsError::Transient(_))
    }

    /// The reason of an `error` record for this failure.
    pub fn reason(&self) -> Reason {
        match self {
            AwsError::AccessDenied(_) => Reason::AccessDenied,
            AwsError::NotFound(_) => Reason::NotFound,
            AwsError::Transient(_) => Reason::TransientFailure,
            AwsError::Other(_) => Reason::AwsError,
        }
    }
}

pub type AwsResult<T> = Result<T, AwsError>;

/// One page of `ListSecrets`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretPage {
    pub secrets: Vec<SecretFacts>,
    pub next_token: Option<String>,
}

/// An SNS message: the audit record as the body (and in plain words for e-mail), attributes for
/// subscription filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub topic_arn: String,
    pub subject: String,
    /// The audit record, one JSON object: what every subscriber gets (SNS's `default`).
    pub message: String,
    /// The same finding in plain words, for e-mail subscribers (SNS's `email`).
    pub email: String,
    pub attributes: Vec<(String, String)>,
}

pub trait DescribeSecret {
    /// `secret_id` is a name, a full ARN or a partial ARN.
    fn describe_secret(
        &self,
        scope: &Scope,
        secret_id: &str,
    ) -> impl Future<Output = AwsResult<SecretFacts>> + Send;
}

pub trait ListSecrets {
    fn list_secrets(
        &self,
        scope: &Scope,
        next_token: Option<String>,
    ) -> impl Future<Output = AwsResult<SecretPage>> + Send;
}

pub trait TagSecret {
    fn tag_secret(
        &self,
        scope: &Scope,
        arn: &str,
        tags: &[(String, String)],
    ) -> impl Future<Output = AwsResult<()>> + Send;
    fn untag_secret(
        &self,
        scope: &Scope,
        arn: &str,
        keys: &[String],
    ) -> impl Future<Output = AwsResult<()>> + Send;
}

pub trait ReencryptSecret {
    /// `UpdateSecret` with only `KmsKeyId`: no new version, values untouched.
    fn set_secret_key(
        &self,
        scope: &Scope,
        arn: &str,
        key_arn: &str,
    ) -> impl Future<Output = AwsResult<()>> + Send;
}

pub trait ListSecretVersions {
    /// `ListSecretVersionIds` (every page; versions with a staging label): each version's
    /// labels and the keys it is encrypted under.
    fn list_secret_versions(
        &self,
        scope: &Scope,
        arn: &str,
    ) -> impl Future<Output = AwsResult<Vec<SecretVersion>>> + Send;
}

pub trait RotateSecret {
    /// `RotateSecret` with only the secret's id: its configured rotation, now. Never a value.
    fn rotate_secret(&self, scope: &Scope, arn: &str)
    -> impl Future<Output = AwsResult<()>> + Send;
}

pub trait DescribeKey {
    /// `key_id` is a key id, key ARN, alias name or alias ARN.
    fn describe_key(
        &self,
        scope: &Scope,
        key_id: &str,
    ) -> impl Future<Output = AwsResult<KeyFacts>> + Send;
}

/// A key's policy and grants, for the key policy review ([`crate::keypolicy`]).
pub trait ReadKeyPolicy {
    /// `GetKeyPolicy` with policy name `default`: the policy document, as JSON text.
    fn key_policy(
        &self,
        scope: &Scope,
        key_arn: &str,
    ) -> impl Future<Output = AwsResult<String>> + Send;
    /// `ListGrants` (every page).
    fn key_grants(
        &self,
        scope: &Scope,
        key_arn: &str,
    ) -> impl Future<Output = AwsResult<Vec<Grant>>> + Send;
}

pub trait ResolveAlias {
    /// The key an alias points to in the scope's region; `None` when there is no such alias.
    fn resolve_alias(
        &self,
        scope: &Scope,
        alias: &str,
    ) -> impl Future<Output = AwsResult<Option<KeyFacts>>> + Send;
}

pub trait Publish {
    fn publish(&self, notification: &Notification) -> impl Future<Output = AwsResult<()>> + Send;
}

pub trait ImportFindings {
    /// `BatchImportFindings` in `scope` (the findings' own account and region), at most 100 at
    /// a time; the findings Security Hub refused come back, the others were imported.
    fn import_findings(
        &self,
        scope: &Scope,
        findings: &[Finding],
    ) -> impl Future<Output = AwsResult<Vec<RefusedFinding>>> + Send;
}

pub trait ListAccounts {
    /// The active accounts of the organization, as `organizations:ListAccounts` lists them,
    /// asked with the guard's own credentials (the management account or a delegated
    /// administrator).
    fn list_accounts(&self) -> impl Future<Output = AwsResult<Vec<String>>> + Send;
}

/// Where a sweep over many accounts left off, kept between invocations in the function's own
/// account and region (`scope`).
pub trait SweepCursor {
    /// The account the next sweep starts with; `None` when the last one finished (or none ran).
    fn load_cursor(&self, scope: &Scope) -> impl Future<Output = AwsResult<Option<String>>> + Send;
    fn save_cursor(
        &self,
        scope: &Scope,
        next: Option<&str>,
    ) -> impl Future<Output = AwsResult<()>> + Send;
}

/// `Ports` (everything the guard uses, in one bound) and its blanket impl, from one list: a new
/// port is added here once, and its IAM actions next to it in `iam.json` (the engine's tests
/// check the two name the same ports; the template tests check the roles grant the actions).
macro_rules! ports {
    ($($port:ident),+ $(,)?) => {
        /// Everything the guard uses, in one bound.
        pub trait Ports: $($port +)+ Send + Sync {}

        impl<T> Ports for T where T: $($port +)+ Send + Sync {}
    };
}

ports!(
    DescribeSecret,
    ListSecrets,
    TagSecret,
    ReencryptSecret,
    ListSecretVersions,
    RotateSecret,
    DescribeKey,
    ReadKeyPolicy,
    ResolveAlias,
    Publish,
    ImportFindings,
    ListAccounts,
    SweepCursor,
);
