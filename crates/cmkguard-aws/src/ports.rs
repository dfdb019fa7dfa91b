//! The engine's ports, implemented with the SDK.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use aws_config::SdkConfig;
use aws_sdk_kms::types::{KeyManagerType, KeyState as SdkKeyState};
use aws_sdk_secretsmanager::types::Tag;
use aws_sdk_sns::types::MessageAttributeValue;
use aws_types::region::Region;
use cmkguard_core::bounded::Bounded;
use cmkguard_core::facts::{KeyFacts, KeyState, Replica, SecretFacts, SecretVersion};
use cmkguard_core::ports::{
    AwsResult, DescribeKey, DescribeSecret, ListSecretVersions, ListSecrets, Publish,
    ReencryptSecret, ResolveAlias, RotateSecret, SecretPage, TagSecret,
};
use cmkguard_core::{AwsError, Notification, Scope};

use crate::accounts::{ACCOUNTS_KEPT, Sessions};
use crate::errors::classify;
use crate::retry::RetryBudget;

/// The clients for one account and region. Security Hub's is made on first use: most
/// account-regions of an audit never import a finding, and each client holds its own copy of the
/// SDK's endpoint rules (about 10 KiB), times every account-region in flight.
#[derive(Clone, Debug)]
pub struct Clients {
    pub secrets: aws_sdk_secretsmanager::Client,
    pub kms: aws_sdk_kms::Client,
    securityhub: Arc<OnceLock<aws_sdk_securityhub::Client>>,
    /// The account's configuration in this region, for the clients made on first use.
    config: SdkConfig,
}

impl Clients {
    pub fn new(config: &SdkConfig, region: &str) -> Self {
        let config = config
            .to_builder()
            .region(Region::new(region.to_owned()))
            .build();
        Clients {
            secrets: aws_sdk_secretsmanager::Client::new(&config),
            kms: aws_sdk_kms::Client::new(&config),
            securityhub: Arc::default(),
            config,
        }
    }

    /// These clients, with `securityhub` for Security Hub (tests hand in mocked clients).
    pub fn with_securityhub(self, securityhub: aws_sdk_securityhub::Client) -> Self {
        let _ = self.securityhub.set(securityhub);
        self
    }

    pub fn securityhub(&self) -> aws_sdk_securityhub::Client {
        self.securityhub
            .get_or_init(|| aws_sdk_securityhub::Client::new(&self.config))
            .clone()
    }
}

/// Scopes (account and region) whose clients are kept. Clients share the process's one HTTP
/// client and their account's session, so making them again costs no request.
pub const SCOPES_KEPT: usize = 64;

/// The AWS implementation of every port. Clients are made lazily per account and region, and the
/// ones used last are kept; another account's credentials come from assuming `assume_role_name`
/// there, once per account (see [`crate::accounts`]).
// Long: every port of the engine with the SDK, each one try and its retry in a block of its own.
pub struct AwsPorts {
    base: SdkConfig,
    own_account: String,
    sessions: Sessions,
    clients: Mutex<Bounded<Scope, Clients>>,
    sns: Mutex<HashMap<String, aws_sdk_sns::Client>>,
    retry: RetryBudget,
}

impl AwsPorts {
    pub fn new(
        base: SdkConfig,
        own_account: impl Into<String>,
        assume_role_name: Option<String>,
    ) -> Self {
        AwsPorts {
            sessions: Sessions::new(&base, assume_role_name, ACCOUNTS_KEPT),
            base,
            own_account: own_account.into(),
            clients: Mutex::new(Bounded::new(SCOPES_KEPT)),
            sns: Mutex::default(),
            retry: RetryBudget::default(),
        }
    }

    /// Keeps the credentials of at most `accounts` accounts and the clients of at most `scopes`
    /// account-regions (an audit keeps one set per account-region in flight).
    pub fn with_capacity(mut self, accounts: usize, scopes: usize) -> Self {
        self.sessions = Sessions::new(&self.base, self.sessions_role(), accounts);
        self.clients = Mutex::new(Bounded::new(scopes));
        self
    }

    fn sessions_role(&self) -> Option<String> {
        self.sessions.role_name().map(str::to_owned)
    }

    /// Retries each transient failure for at most `per_call` (see [`crate::retry`]).
    pub fn with_retry_budget(mut self, per_call: std::time::Duration) -> Self {
        self.retry = RetryBudget::new(per_call);
        self
    }

    /// The retry budget; the Lambda sets each invocation's deadline on it.
    pub fn retry(&self) -> &RetryBudget {
        &self.retry
    }

    /// Uses these clients for `scope` (tests hand in mocked clients this way).
    pub fn insert_clients(&self, scope: Scope, clients: Clients) {
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(scope, clients);
    }

    /// Uses this SNS client for topics in `region`.
    pub fn insert_sns(&self, region: &str, client: aws_sdk_sns::Client) {
        self.sns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(region.to_owned(), client);
    }

    /// The configuration of the guard's own account.
    pub fn base(&self) -> &SdkConfig {
        &self.base
    }

    pub fn own_account(&self) -> &str {
        &self.own_account
    }

    /// Drops what is kept for `account` (an audit is done with its regions).
    pub fn release(&self, account: &str) {
        self.sessions.release(account);
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|scope, _| scope.account != account);
    }

    /// How many accounts' credentials and account-regions' clients are kept (for tests).
    pub fn kept(&self) -> (usize, usize) {
        let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner()).len();
        (self.sessions.len(), clients)
    }

    pub(crate) async fn clients(&self, scope: &Scope) -> AwsResult<Clients> {
        if let Some(clients) = self
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(scope)
        {
            return Ok(clients.clone());
        }
        let config = self.account_config(&scope.account).await?;
        let clients = Clients::new(&config, &scope.region);
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(scope.clone(), clients.clone());
        Ok(clients)
    }

    /// The configuration acting in `account`: the base one for the own account, else the
    /// account's session, with credentials already assumed (so a refusal or a throttled
    /// `AssumeRole` is classified and retried here, not hidden in a later call's error).
    pub(crate) async fn account_config(&self, account: &str) -> AwsResult<SdkConfig> {
        if account == self.own_account {
            return Ok(self.base.clone());
        }
        let session = self.sessions.get(account)?;
        self.retry.run(|| session.credentials()).await?;
        Ok(session.config(&self.base))
    }

    fn sns(&self, region: &str) -> aws_sdk_sns::Client {
        let mut clients = self.sns.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .entry(region.to_owned())
            .or_insert_with(|| {
                let config = aws_sdk_sns::config::Builder::from(&self.base)
                    .region(Region::new(region.to_owned()))
                    .build();
                aws_sdk_sns::Client::from_conf(config)
            })
            .clone()
    }
}

fn tags_of(tags: &[Tag]) -> std::collections::BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_owned(),
                t.value().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

/// One try of the `DescribeSecret` port (see [`crate::retry`]).
impl AwsPorts {
    async fn describe_secret_once(&self, scope: &Scope, secret_id: &str) -> AwsResult<SecretFacts> {
        let clients = self.clients(scope).await?;
        let out = clients
            .secrets
            .describe_secret()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(classify)?;
        let mut facts = SecretFacts {
            arn: out.arn().unwrap_or(secret_id).to_owned(),
            name: out.name().unwrap_or_default().to_owned(),
            kms_key_id: out.kms_key_id().map(str::to_owned),
            tags: tags_of(out.tags()),
            owning_service: out.owning_service().map(str::to_owned),
            created: out
                .created_date()
                .and_then(|d| std::time::SystemTime::try_from(*d).ok()),
            replicas: out
                .replication_status()
                .iter()
                .filter_map(|r| {
                    Some(Replica {
                        region: r.region()?.to_owned(),
                        kms_key_id: r.kms_key_id().map(str::to_owned),
                    })
                })
                .collect(),
            ..SecretFacts::default()
        };
        facts.rotation_enabled = out.rotation_enabled() == Some(true);
        facts.set_version_stages(
            out.version_ids_to_stages()
                .into_iter()
                .flatten()
                .map(|(id, labels)| (id.as_str(), labels.as_slice())),
        );
        Ok(facts)
    }
}

/// One try of the `ListSecrets` port (see [`crate::retry`]).
impl AwsPorts {
    async fn list_secrets_once(
        &self,
        scope: &Scope,
        next_token: Option<String>,
    ) -> AwsResult<SecretPage> {
        let clients = self.clients(scope).await?;
        let out = clients
            .secrets
            .list_secrets()
            .max_results(100)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(classify)?;
        let secrets = out
            .secret_list()
            .iter()
            .filter_map(|s| {
                let mut facts = SecretFacts {
                    arn: s.arn()?.to_owned(),
                    name: s.name().unwrap_or_default().to_owned(),
                    kms_key_id: s.kms_key_id().map(str::to_owned),
                    tags: tags_of(s.tags()),
                    owning_service: s.owning_service().map(str::to_owned),
                    created: s
                        .created_date()
                        .and_then(|d| std::time::SystemTime::try_from(*d).ok()),
                    ..SecretFacts::default()
                };
                facts.rotation_enabled = s.rotation_enabled() == Some(true);
                facts.set_version_stages(
                    s.secret_versions_to_stages()
                        .into_iter()
                        .flatten()
                        .map(|(id, labels)| (id.as_str(), labels.as_slice())),
                );
                Some(facts)
            })
            .collect();
        Ok(SecretPage {
            secrets,
            next_token: out.next_token().map(str::to_owned),
        })
    }
}

/// One try of the `TagSecret` port (see [`crate::retry`]).
impl AwsPorts {
    async fn tag_secret_once(
        &self,
        scope: &Scope,
        arn: &str,
        tags: &[(String, String)],
    ) -> AwsResult<()> {
        let clients = self.clients(scope).await?;
        let tags = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        clients
            .secrets
            .tag_resource()
            .secret_id(arn)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn untag_secret_once(&self, scope: &Scope, arn: &str, keys: &[String]) -> AwsResult<()> {
        let clients = self.clients(scope).await?;
        clients
            .secrets
            .untag_resource()
            .secret_id(arn)
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}

/// One try of the `ReencryptSecret` port (see [`crate::retry`]).
impl AwsPorts {
    async fn set_secret_key_once(&self, scope: &Scope, arn: &str, key_arn: &str) -> AwsResult<()> {
        let clients = self.clients(scope).await?;
        clients
            .secrets
            .update_secret()
            .secret_id(arn)
            .kms_key_id(key_arn)
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}

/// One try of the `ListSecretVersions` port, one page (see [`crate::retry`]).
impl AwsPorts {
    async fn list_secret_versions_once(
        &self,
        scope: &Scope,
        arn: &str,
        next_token: Option<String>,
    ) -> AwsResult<(Vec<SecretVersion>, Option<String>)> {
        let clients = self.clients(scope).await?;
        let out = clients
            .secrets
            .list_secret_version_ids()
            .secret_id(arn)
            // The moved version may have lost its labels since: it is listed all the same.
            .include_deprecated(true)
            .max_results(100)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(classify)?;
        let versions = out
            .versions()
            .iter()
            .filter_map(|v| {
                Some(SecretVersion {
                    id: v.version_id()?.to_owned(),
                    stages: v.version_stages().to_vec(),
                    kms_key_ids: v.kms_key_ids().to_vec(),
                    created: v
                        .created_date()
                        .and_then(|d| std::time::SystemTime::try_from(*d).ok()),
                })
            })
            .collect();
        // moto answers `"NextToken": ""` on the last page: an empty token ends the listing.
        let next = out
            .next_token()
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        Ok((versions, next))
    }
}

/// One try of the `RotateSecret` port (see [`crate::retry`]).
impl AwsPorts {
    async fn rotate_secret_once(&self, scope: &Scope, arn: &str) -> AwsResult<()> {
        let clients = self.clients(scope).await?;
        // Only the id: the secret's own rotation function and schedule, now (AWS's default
        // `RotateImmediately`). No value is read or written.
        clients
            .secrets
            .rotate_secret()
            .secret_id(arn)
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}

/// One try of the `DescribeKey` port (see [`crate::retry`]).
impl AwsPorts {
    async fn describe_key_once(&self, scope: &Scope, key_id: &str) -> AwsResult<KeyFacts> {
        let clients = self.clients(scope).await?;
        let out = clients
            .kms
            .describe_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(classify)?;
        let meta = out.key_metadata().ok_or_else(|| {
            AwsError::Other(format!("`DescribeKey` on `{key_id}` returned no metadata"))
        })?;
        let arn = meta.arn().unwrap_or(key_id);
        if meta.key_manager() == Some(&KeyManagerType::Aws) {
            return Ok(KeyFacts::aws(arn));
        }
        let state = match meta.key_state() {
            Some(SdkKeyState::Enabled) => KeyState::Enabled,
            Some(SdkKeyState::Disabled) => KeyState::Disabled,
            Some(SdkKeyState::PendingDeletion) => KeyState::PendingDeletion,
            Some(other) => KeyState::Other(other.as_str().to_owned()),
            None => KeyState::Other("Unknown".into()),
        };
        let deletion_date = meta
            .deletion_date()
            .and_then(|d| std::time::SystemTime::try_from(*d).ok());
        Ok(KeyFacts::customer(arn, state).deleted_at(deletion_date))
    }
}

impl ResolveAlias for AwsPorts {
    async fn resolve_alias(&self, scope: &Scope, alias: &str) -> AwsResult<Option<KeyFacts>> {
        match self.describe_key(scope, alias).await {
            Ok(key) => Ok(Some(key)),
            Err(AwsError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// One try of the `Publish` port (see [`crate::retry`]).
impl AwsPorts {
    async fn publish_once(&self, notification: &Notification) -> AwsResult<()> {
        let region =
            cmkguard_core::arn::Arn::parse(&notification.topic_arn).map(|a| a.region.to_owned());
        let client = self.sns(region.as_deref().unwrap_or("us-east-1"));
        // SNS message structure: every protocol but e-mail gets `default`, the record unchanged.
        let message = serde_json::json!({
            "default": notification.message,
            "email": notification.email,
        });
        let mut request = client
            .publish()
            .topic_arn(&notification.topic_arn)
            .subject(&notification.subject)
            .message_structure("json")
            .message(message.to_string());
        for (name, value) in &notification.attributes {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| AwsError::Other(e.to_string()))?;
            request = request.message_attributes(name, value);
        }
        request.send().await.map_err(classify)?;
        Ok(())
    }
}

// Every port retries transient failures within the budget.

impl DescribeSecret for AwsPorts {
    async fn describe_secret(&self, scope: &Scope, secret_id: &str) -> AwsResult<SecretFacts> {
        self.retry
            .run(|| self.describe_secret_once(scope, secret_id))
            .await
    }
}

impl ListSecrets for AwsPorts {
    async fn list_secrets(
        &self,
        scope: &Scope,
        next_token: Option<String>,
    ) -> AwsResult<SecretPage> {
        self.retry
            .run(|| self.list_secrets_once(scope, next_token.clone()))
            .await
    }
}

impl TagSecret for AwsPorts {
    async fn tag_secret(
        &self,
        scope: &Scope,
        arn: &str,
        tags: &[(String, String)],
    ) -> AwsResult<()> {
        self.retry
            .run(|| self.tag_secret_once(scope, arn, tags))
            .await
    }

    async fn untag_secret(&self, scope: &Scope, arn: &str, keys: &[String]) -> AwsResult<()> {
        self.retry
            .run(|| self.untag_secret_once(scope, arn, keys))
            .await
    }
}

impl ReencryptSecret for AwsPorts {
    async fn set_secret_key(&self, scope: &Scope, arn: &str, key_arn: &str) -> AwsResult<()> {
        self.retry
            .run(|| self.set_secret_key_once(scope, arn, key_arn))
            .await
    }
}

impl ListSecretVersions for AwsPorts {
    async fn list_secret_versions(
        &self,
        scope: &Scope,
        arn: &str,
    ) -> AwsResult<Vec<SecretVersion>> {
        let mut versions = Vec::new();
        let mut next_token = None;
        loop {
            let (page, next) = self
                .retry
                .run(|| self.list_secret_versions_once(scope, arn, next_token.clone()))
                .await?;
            versions.extend(page);
            match next {
                // A token that comes back unchanged would never end: stop there.
                Some(token) if next_token.as_ref() != Some(&token) => next_token = Some(token),
                _ => return Ok(versions),
            }
        }
    }
}

impl RotateSecret for AwsPorts {
    async fn rotate_secret(&self, scope: &Scope, arn: &str) -> AwsResult<()> {
        // A rotation asked twice is refused while one is under way: a transient failure is
        // retried like any call, and the engine asks at most once per move.
        self.retry.run(|| self.rotate_secret_once(scope, arn)).await
    }
}

impl DescribeKey for AwsPorts {
    async fn describe_key(&self, scope: &Scope, key_id: &str) -> AwsResult<KeyFacts> {
        self.retry
            .run(|| self.describe_key_once(scope, key_id))
            .await
    }
}

impl Publish for AwsPorts {
    async fn publish(&self, notification: &Notification) -> AwsResult<()> {
        self.retry.run(|| self.publish_once(notification)).await
    }
}
