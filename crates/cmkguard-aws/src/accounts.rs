//! Other accounts, reached by assuming a role there. Each account's credentials are assumed once
//! and kept until five minutes before they expire; callers that need them at the same time wait
//! for the one `AssumeRole` in flight. What is kept per account is small and bounded, so a warm
//! process that has served a thousand member accounts holds no more than one that served twenty.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_config::identity::IdentityCache;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{
    ProvideCredentials, SharedCredentialsProvider, error::CredentialsError, future,
};
use cmkguard_core::AwsError;
use cmkguard_core::arn::partition_of;
use cmkguard_core::bounded::Bounded;
use cmkguard_core::ports::AwsResult;

use crate::errors::classify;

/// Credentials are renewed this long before they expire, so no call starts with nearly expired
/// ones.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// Accounts whose credentials are kept (a few hundred bytes each). A process that sees more
/// assumes the role again in the one it dropped longest ago, when that account comes back.
pub const ACCOUNTS_KEPT: usize = 512;

/// One account's role and its current credentials.
#[derive(Debug)]
pub struct Session {
    account: String,
    role_arn: String,
    sts: aws_sdk_sts::Client,
    current: tokio::sync::Mutex<Option<Credentials>>,
}

impl Session {
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The current credentials, assumed when there are none or they are about to expire.
    pub async fn credentials(&self) -> AwsResult<Credentials> {
        let mut current = self.current.lock().await;
        if let Some(credentials) = current.as_ref().filter(|c| fresh(c, SystemTime::now())) {
            return Ok(credentials.clone());
        }
        let credentials = self.assume().await?;
        *current = Some(credentials.clone());
        Ok(credentials)
    }

    async fn assume(&self) -> AwsResult<Credentials> {
        tracing::debug!(account = %self.account, role_arn = %self.role_arn, "assuming the role");
        let out = self
            .sts
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name("cmkguard")
            .send()
            .await
            .map_err(classify)?;
        let c = out.credentials().ok_or_else(|| {
            AwsError::Other(format!(
                "`AssumeRole` of `{}` returned no credentials",
                self.role_arn
            ))
        })?;
        let expiry = SystemTime::try_from(*c.expiration()).ok();
        Ok(Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_owned()),
            expiry,
            "cmkguard-assume-role",
        ))
    }

    /// A configuration acting in this account: `base` with these credentials. The SDK's identity
    /// cache is off for it (the session is the cache); the SDK's lazy cache would keep a
    /// partition for every provider ever made.
    pub fn config(self: &Arc<Self>, base: &SdkConfig) -> SdkConfig {
        base.clone()
            .into_builder()
            .credentials_provider(SharedCredentialsProvider::new(Provider(Arc::clone(self))))
            .identity_cache(IdentityCache::no_cache())
            .build()
    }
}

fn fresh(credentials: &Credentials, now: SystemTime) -> bool {
    credentials
        .expiry()
        .is_none_or(|expiry| expiry > now + RENEW_BEFORE)
}

/// The session as the SDK's credentials provider.
#[derive(Debug)]
struct Provider(Arc<Session>);

impl ProvideCredentials for Provider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            self.0
                .credentials()
                .await
                .map_err(CredentialsError::provider_error)
        })
    }
}

/// The sessions of the accounts used last.
pub struct Sessions {
    role_name: Option<String>,
    partition: &'static str,
    sts: aws_sdk_sts::Client,
    kept: Mutex<Bounded<String, Arc<Session>>>,
}

impl Sessions {
    pub fn new(base: &SdkConfig, role_name: Option<String>, capacity: usize) -> Self {
        let region = base.region().map_or("us-east-1", |r| r.as_ref());
        Sessions {
            role_name,
            partition: partition_of(region),
            sts: aws_sdk_sts::Client::new(base),
            kept: Mutex::new(Bounded::new(capacity)),
        }
    }

    /// The session of `account` (kept, or new: nothing is assumed until credentials are asked).
    pub fn get(&self, account: &str) -> AwsResult<Arc<Session>> {
        let Some(role_name) = &self.role_name else {
            return Err(AwsError::Other(format!(
                "account `{account}` is not the guard's own; set `CMKGUARD_ASSUME_ROLE_NAME`"
            )));
        };
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(session) = kept.get(account) {
            return Ok(Arc::clone(session));
        }
        let session = Arc::new(Session {
            account: account.to_owned(),
            role_arn: format!("arn:{}:iam::{account}:role/{role_name}", self.partition),
            sts: self.sts.clone(),
            current: tokio::sync::Mutex::new(None),
        });
        kept.insert(account.to_owned(), Arc::clone(&session));
        Ok(session)
    }

    pub fn role_name(&self) -> Option<&str> {
        self.role_name.as_deref()
    }

    /// Forgets `account` (an audit is done with it).
    pub fn release(&self, account: &str) {
        self.kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(account);
    }

    /// How many accounts are kept.
    pub fn len(&self) -> usize {
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_renewed_five_minutes_before_they_expire() {
        let now = SystemTime::now();
        let expiring = |in_secs| {
            Credentials::new(
                "a",
                "s",
                None,
                Some(now + Duration::from_secs(in_secs)),
                "t",
            )
        };
        assert!(fresh(&expiring(3600), now));
        assert!(!fresh(&expiring(299), now));
        assert!(fresh(&Credentials::new("a", "s", None, None, "t"), now));
    }
}
