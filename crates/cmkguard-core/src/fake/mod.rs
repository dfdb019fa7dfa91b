//! An in-memory AWS for unit tests of the engine: secrets, keys and aliases per account and
//! region, every call counted, and chosen operations made to fail.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::facts::{KeyFacts, KeyState, SecretFacts, SecretVersion};
use crate::finding::{Finding, RefusedFinding};
use crate::ports::{
    AwsError, AwsResult, DescribeKey, DescribeSecret, ImportFindings, ListAccounts,
    ListSecretVersions, ListSecrets, Notification, Publish, ReencryptSecret, ResolveAlias,
    RotateSecret, Scope, SecretPage, SweepCursor, TagSecret,
};

mod keypolicy;

pub use keypolicy::clean_policy;

#[derive(Default)]
struct World {
    secrets: BTreeMap<(Scope, String), SecretFacts>,
    keys: HashMap<(Scope, String), KeyFacts>,
    aliases: HashMap<(Scope, String), String>,
    published: Vec<Notification>,
    /// Security Hub's findings by id, as last imported, per account and region.
    findings: BTreeMap<(Scope, String), Finding>,
    /// Every `BatchImportFindings` request, by its number of findings.
    imports: Vec<usize>,
    /// When set, Security Hub refuses every finding with this code (e.g. `InvalidAccess`).
    refuse_findings: Option<String>,
    calls: Vec<String>,
    failures: HashMap<String, AwsError>,
    /// Calls of an operation that still succeed before its failure begins.
    passes: HashMap<String, usize>,
    /// How long each call of an operation takes.
    delays: HashMap<String, std::time::Duration>,
    /// The organization's accounts, as `ListAccounts` answers.
    organization: Vec<String>,
    /// The sweep cursor per scope.
    cursors: HashMap<Scope, String>,
    /// The keys of each version, by secret ARN, as `ListSecretVersionIds` reports them (what
    /// moto cannot give); a secret without an entry lists its versions with no keys.
    version_keys: HashMap<String, BTreeMap<String, Vec<String>>>,
    /// Versions made so far (`RotateSecret`, [`FakeAws::new_version`]), for their ids.
    versions_made: usize,
    /// Every version of a secret (by ARN) and when it was made: the `versions_made` count at
    /// the time, in seconds after the epoch (a secret's first versions: 0).
    version_history: HashMap<String, BTreeMap<String, u64>>,
    /// Key policies by key ARN; a key without one has a policy with no finding
    /// ([`keypolicy::clean_policy`]).
    key_policies: HashMap<String, String>,
    /// Grants by key ARN.
    grants: HashMap<String, Vec<crate::keypolicy::Grant>>,
}

// Long: every port in memory, and the controls the engine's tests need (faults, delays, counts).
#[derive(Default)]
pub struct FakeAws {
    world: Mutex<World>,
}

impl FakeAws {
    pub fn new() -> Self {
        Self::default()
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn put_secret(&self, scope: &Scope, facts: SecretFacts) {
        self.world()
            .secrets
            .insert((scope.clone(), facts.arn.clone()), facts);
    }

    pub fn secret(&self, scope: &Scope, arn: &str) -> Option<SecretFacts> {
        self.world()
            .secrets
            .get(&(scope.clone(), arn.to_owned()))
            .cloned()
    }

    /// Adds a key, reachable by its ARN and its bare id.
    pub fn put_key(&self, scope: &Scope, facts: KeyFacts) {
        let mut world = self.world();
        let id = facts.arn.rsplit('/').next().unwrap_or_default().to_owned();
        world.keys.insert((scope.clone(), id), facts.clone());
        world.keys.insert((scope.clone(), facts.arn.clone()), facts);
    }

    pub fn put_alias(&self, scope: &Scope, alias: &str, key_arn: &str) {
        self.world()
            .aliases
            .insert((scope.clone(), alias.to_owned()), key_arn.to_owned());
    }

    /// `keys` are the `KmsKeyIds` of `version` of the secret `arn`, as `ListSecretVersionIds`
    /// lists them.
    pub fn put_version_keys(&self, arn: &str, version: &str, keys: &[&str]) {
        self.world()
            .version_keys
            .entry(arn.to_owned())
            .or_default()
            .insert(
                version.to_owned(),
                keys.iter().map(|k| (*k).to_owned()).collect(),
            );
    }

    /// A new value for the secret, as its owner writes one: a new version takes `AWSCURRENT`, under
    /// the secret's key alone. Returns its id.
    pub fn new_version(&self, scope: &Scope, arn: &str) -> Option<String> {
        new_current(&mut self.world(), scope, arn, "version")
    }

    /// The organization's accounts, as `ListAccounts` answers.
    pub fn put_organization(&self, accounts: &[&str]) {
        self.world().organization = accounts.iter().map(|a| (*a).to_owned()).collect();
    }

    /// The sweep cursor saved in `scope`.
    pub fn cursor(&self, scope: &Scope) -> Option<String> {
        self.world().cursors.get(scope).cloned()
    }
}

// Faults, delays, and what was called.
impl FakeAws {
    /// Makes every later call of `operation` (e.g. `TagResource`) fail with `error`.
    pub fn fail(&self, operation: &str, error: AwsError) {
        self.world().failures.insert(operation.to_owned(), error);
    }

    /// Lets the next `passes` calls of `operation` succeed, then fails every later one.
    pub fn fail_after(&self, operation: &str, passes: usize, error: AwsError) {
        let mut world = self.world();
        world.passes.insert(operation.to_owned(), passes);
        world.failures.insert(operation.to_owned(), error);
    }

    /// Makes every later call of `operation` (e.g. `ListSecrets`) take `delay` first.
    pub fn delay(&self, operation: &str, delay: std::time::Duration) {
        self.world().delays.insert(operation.to_owned(), delay);
    }

    /// Waits as long as a call of `operation` takes (see [`FakeAws::delay`]).
    async fn take_time(&self, operation: &str) {
        let delay = self.world().delays.get(operation).copied();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
    }

    pub fn heal(&self, operation: &str) {
        let mut world = self.world();
        world.failures.remove(operation);
        world.passes.remove(operation);
    }

    /// Every call so far, as `Operation` names.
    pub fn calls(&self) -> Vec<String> {
        self.world().calls.clone()
    }

    pub fn count(&self, operation: &str) -> usize {
        self.world()
            .calls
            .iter()
            .filter(|c| *c == operation)
            .count()
    }

    pub fn writes(&self) -> usize {
        self.world()
            .calls
            .iter()
            .filter(|c| {
                [
                    "TagResource",
                    "UntagResource",
                    "UpdateSecret",
                    "RotateSecret",
                    "Publish",
                ]
                .contains(&c.as_str())
            })
            .count()
    }

    pub fn published(&self) -> Vec<Notification> {
        self.world().published.clone()
    }

    /// Security Hub's findings, as last imported.
    pub fn findings(&self) -> Vec<Finding> {
        self.world().findings.values().cloned().collect()
    }

    /// The size of each `BatchImportFindings` request so far.
    pub fn imports(&self) -> Vec<usize> {
        self.world().imports.clone()
    }

    /// Security Hub refuses every finding from now on, with `code` (as where it is not enabled).
    pub fn refuse_findings(&self, code: &str) {
        self.world().refuse_findings = Some(code.to_owned());
    }

    fn enter(&self, operation: &str) -> AwsResult<std::sync::MutexGuard<'_, World>> {
        let mut world = self.world();
        world.calls.push(operation.to_owned());
        if let Some(passes) = world.passes.get_mut(operation)
            && *passes > 0
        {
            *passes -= 1;
            return Ok(world);
        }
        match world.failures.get(operation) {
            Some(error) => Err(error.clone()),
            None => Ok(world),
        }
    }
}

/// Finds a secret by name, full ARN or partial ARN (an ARN without the 7-character suffix).
fn find<'a>(world: &'a mut World, scope: &Scope, id: &str) -> Option<&'a mut SecretFacts> {
    world.secrets.iter_mut().find_map(|((s, arn), facts)| {
        let partial = arn.len() == id.len() + 7 && arn.starts_with(id) && id.starts_with("arn:");
        (s == scope && (arn == id || facts.name == id || partial)).then_some(facts)
    })
}

/// A new version of the secret `arn` takes `AWSCURRENT`, dated after every version before it.
fn new_current(world: &mut World, scope: &Scope, arn: &str, prefix: &str) -> Option<String> {
    world.versions_made += 1;
    let made = world.versions_made;
    let id = format!("{prefix}-{made}");
    let facts = find(world, scope, arn)?;
    facts.current_version = Some(id.clone());
    facts.pending_version = None;
    let arn = facts.arn.clone();
    world
        .version_history
        .entry(arn)
        .or_default()
        .insert(id.clone(), made as u64);
    Some(id)
}

fn key_of(world: &World, scope: &Scope, key_id: &str) -> Option<KeyFacts> {
    let key_id = world
        .aliases
        .get(&(scope.clone(), key_id.to_owned()))
        .map_or(key_id, String::as_str);
    world.keys.get(&(scope.clone(), key_id.to_owned())).cloned()
}

impl DescribeSecret for FakeAws {
    async fn describe_secret(&self, scope: &Scope, secret_id: &str) -> AwsResult<SecretFacts> {
        self.take_time("DescribeSecret").await;
        let mut world = self.enter("DescribeSecret")?;
        find(&mut world, scope, secret_id)
            .map(|f| f.clone())
            .ok_or_else(|| AwsError::NotFound(secret_id.to_owned()))
    }
}

impl ListSecrets for FakeAws {
    async fn list_secrets(
        &self,
        scope: &Scope,
        next_token: Option<String>,
    ) -> AwsResult<SecretPage> {
        const PAGE: usize = 100;
        self.take_time("ListSecrets").await;
        let world = self.enter("ListSecrets")?;
        let start: usize = next_token.and_then(|t| t.parse().ok()).unwrap_or(0);
        let all: Vec<_> = world
            .secrets
            .iter()
            .filter(|((s, _), _)| s == scope)
            .map(|(_, f)| f.clone())
            .collect();
        let end = (start + PAGE).min(all.len());
        Ok(SecretPage {
            secrets: all[start.min(end)..end].to_vec(),
            next_token: (end < all.len()).then(|| end.to_string()),
        })
    }
}

impl TagSecret for FakeAws {
    async fn tag_secret(
        &self,
        scope: &Scope,
        arn: &str,
        tags: &[(String, String)],
    ) -> AwsResult<()> {
        self.take_time("TagResource").await;
        let mut world = self.enter("TagResource")?;
        let facts =
            find(&mut world, scope, arn).ok_or_else(|| AwsError::NotFound(arn.to_owned()))?;
        facts.tags.extend(tags.iter().cloned());
        Ok(())
    }

    async fn untag_secret(&self, scope: &Scope, arn: &str, keys: &[String]) -> AwsResult<()> {
        self.take_time("UntagResource").await;
        let mut world = self.enter("UntagResource")?;
        let facts =
            find(&mut world, scope, arn).ok_or_else(|| AwsError::NotFound(arn.to_owned()))?;
        facts.tags.retain(|k, _| !keys.contains(k));
        Ok(())
    }
}

impl ReencryptSecret for FakeAws {
    async fn set_secret_key(&self, scope: &Scope, arn: &str, key_arn: &str) -> AwsResult<()> {
        self.take_time("UpdateSecret").await;
        let mut world = self.enter("UpdateSecret")?;
        let facts =
            find(&mut world, scope, arn).ok_or_else(|| AwsError::NotFound(arn.to_owned()))?;
        facts.kms_key_id = Some(key_arn.to_owned());
        Ok(())
    }
}

impl ListSecretVersions for FakeAws {
    async fn list_secret_versions(
        &self,
        scope: &Scope,
        arn: &str,
    ) -> AwsResult<Vec<SecretVersion>> {
        self.take_time("ListSecretVersionIds").await;
        let mut world = self.enter("ListSecretVersionIds")?;
        let facts = find(&mut world, scope, arn)
            .ok_or_else(|| AwsError::NotFound(arn.to_owned()))?
            .clone();
        let keys = world.version_keys.get(&facts.arn);
        let history = world.version_history.get(&facts.arn);
        let mut versions: BTreeMap<String, Vec<String>> = history
            .into_iter()
            .flatten()
            .map(|(id, _)| (id.clone(), Vec::new()))
            .collect();
        for (id, stage) in [
            (&facts.current_version, "AWSCURRENT"),
            (&facts.pending_version, "AWSPENDING"),
        ] {
            if let Some(id) = id {
                versions
                    .entry(id.clone())
                    .or_default()
                    .push(stage.to_owned());
            }
        }
        for (id, labels) in &facts.custom_label_versions {
            versions
                .entry(id.clone())
                .or_default()
                .extend(labels.iter().cloned());
        }
        Ok(versions
            .into_iter()
            .map(|(id, stages)| SecretVersion {
                kms_key_ids: keys.and_then(|k| k.get(&id)).cloned().unwrap_or_default(),
                created: Some(
                    std::time::UNIX_EPOCH
                        + std::time::Duration::from_secs(
                            history.and_then(|h| h.get(&id)).copied().unwrap_or(0),
                        ),
                ),
                id,
                stages,
            })
            .collect())
    }
}

impl RotateSecret for FakeAws {
    /// Like moto without a rotation function: a new version is current at once.
    async fn rotate_secret(&self, scope: &Scope, arn: &str) -> AwsResult<()> {
        self.take_time("RotateSecret").await;
        let mut world = self.enter("RotateSecret")?;
        let facts =
            find(&mut world, scope, arn).ok_or_else(|| AwsError::NotFound(arn.to_owned()))?;
        if !facts.rotation_enabled {
            return Err(AwsError::Other(
                "InvalidRequestException: no rotation function is configured".into(),
            ));
        }
        new_current(&mut world, scope, arn, "rotated");
        Ok(())
    }
}

impl DescribeKey for FakeAws {
    async fn describe_key(&self, scope: &Scope, key_id: &str) -> AwsResult<KeyFacts> {
        self.take_time("DescribeKey").await;
        let world = self.enter("DescribeKey")?;
        key_of(&world, scope, key_id).ok_or_else(|| AwsError::NotFound(key_id.to_owned()))
    }
}

impl ResolveAlias for FakeAws {
    async fn resolve_alias(&self, scope: &Scope, alias: &str) -> AwsResult<Option<KeyFacts>> {
        self.take_time("ResolveAlias").await;
        let world = self.enter("ResolveAlias")?;
        Ok(world
            .aliases
            .contains_key(&(scope.clone(), alias.to_owned()))
            .then(|| key_of(&world, scope, alias))
            .flatten())
    }
}

impl Publish for FakeAws {
    async fn publish(&self, notification: &Notification) -> AwsResult<()> {
        self.take_time("Publish").await;
        let mut world = self.enter("Publish")?;
        world.published.push(notification.clone());
        Ok(())
    }
}

impl ImportFindings for FakeAws {
    async fn import_findings(
        &self,
        scope: &Scope,
        findings: &[Finding],
    ) -> AwsResult<Vec<RefusedFinding>> {
        self.take_time("BatchImportFindings").await;
        let mut world = self.enter("BatchImportFindings")?;
        world.imports.push(findings.len());
        if let Some(code) = world.refuse_findings.clone() {
            return Ok(findings
                .iter()
                .map(|f| RefusedFinding {
                    id: f.id.clone(),
                    code: code.clone(),
                    message: "Security Hub is not enabled for this account".into(),
                })
                .collect());
        }
        for f in findings {
            world
                .findings
                .insert((scope.clone(), f.id.clone()), f.clone());
        }
        Ok(Vec::new())
    }
}

impl ListAccounts for FakeAws {
    async fn list_accounts(&self) -> AwsResult<Vec<String>> {
        self.take_time("ListAccounts").await;
        let world = self.enter("ListAccounts")?;
        Ok(world.organization.clone())
    }
}

impl SweepCursor for FakeAws {
    async fn load_cursor(&self, scope: &Scope) -> AwsResult<Option<String>> {
        self.take_time("GetParameter").await;
        let world = self.enter("GetParameter")?;
        Ok(world.cursors.get(scope).cloned())
    }

    async fn save_cursor(&self, scope: &Scope, next: Option<&str>) -> AwsResult<()> {
        self.take_time("PutParameter").await;
        let mut world = self.enter("PutParameter")?;
        match next {
            Some(next) => world.cursors.insert(scope.clone(), next.to_owned()),
            None => world.cursors.remove(scope),
        };
        Ok(())
    }
}

/// A customer managed key in `scope`.
pub fn customer_key(scope: &Scope, id: &str, state: KeyState) -> KeyFacts {
    KeyFacts::customer(
        crate::arn::kms_key_arn(&scope.region, &scope.account, id),
        state,
    )
}

pub mod cases;
