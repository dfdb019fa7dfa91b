//! One secret's decision: describe its key (and its replicas' keys), decide with the policy,
//! then act ([`crate::act`]). Events and sweeps reach it through [`crate::dispatch`] and
//! [`crate::sweep`]; it knows neither.

use std::time::Instant;

use crate::act::{Actor, Moved, Unfinished};
use crate::cache::KeyCache;
use crate::config::{Action, Config};
use crate::event::EventMeta;
use crate::facts::{KeyFacts, SecretFacts};
use crate::finding::Finding;
use crate::keypolicy::KeyReview;
use crate::policy::{self, Decision, KeyFinding, is_foreign_key};
use crate::ports::{AwsError, Ports, Scope};
use crate::reason::Reason;
use crate::record::{ActionRecord, Record, Verdict};

/// The one deadline margin: no work starts later than this before the invocation deadline (a
/// sweep stops between secrets, a transient failure is no longer retried), so the invocation can
/// still report; the Lambda's handler itself gives up at half of it.
pub const DEADLINE_MARGIN: std::time::Duration = std::time::Duration::from_secs(3);

/// What the caller knows about where the guard runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// The guard's own account (from the function ARN, or STS for the CLI).
    pub own_account: String,
    /// The region a sweep covers.
    pub region: String,
    pub deadline: Option<Instant>,
    /// The Lambda request id, carried into every record (none for the CLI).
    pub request_id: Option<String>,
}

/// A decision whose finding is still to be imported (see [`Guard::decide`]).
pub(crate) struct Decided {
    record: Record,
    facts: SecretFacts,
    moved: Option<Moved>,
    pub(crate) finding: Option<Finding>,
    /// Nothing more to do (the key could not be read): the record is final.
    finished: bool,
}

// Long: the engine's one entry point, its blocks by layer: dispatch.rs (events, sweeps, key
// events) and guard.rs (one secret's decision); the acting is in act/, outside the type.
pub struct Guard<P> {
    config: Config,
    ports: P,
    keys: KeyCache,
    reviews: KeyCache<KeyReview>,
}

impl<P: Ports> Guard<P> {
    pub fn new(config: Config, ports: P) -> Self {
        Guard {
            config,
            ports,
            keys: KeyCache::default(),
            reviews: KeyCache::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn ports(&self) -> &P {
        &self.ports
    }

    fn actor(&self) -> Actor<'_, P> {
        Actor {
            config: &self.config,
            ports: &self.ports,
            keys: &self.keys,
            reviews: &self.reviews,
        }
    }

    /// A record of `meta`'s event, with this configuration's dry-run flag.
    pub(crate) fn record(
        &self,
        meta: &EventMeta,
        secret_arn: Option<String>,
        verdict: Verdict,
        reason: Reason,
        detail: Option<String>,
    ) -> Record {
        Record::new(
            meta,
            secret_arn,
            verdict,
            reason,
            detail,
            self.config.dry_run,
        )
    }

    /// Decisions about `key_id` in `scope` use `facts` (a key event's fresh read of the key).
    pub(crate) fn remember_key(&self, scope: &Scope, key_id: &str, facts: &KeyFacts) {
        self.keys.put(scope, key_id, facts);
    }

    /// Decisions about the key `key` use its policy and grants read now (a key event); an AWS
    /// managed key has no policy of its own to review.
    pub(crate) async fn review_key_fresh(
        &self,
        scope: &Scope,
        key: &KeyFacts,
    ) -> Result<(), AwsError> {
        let reviewed = self.config.key_policy != crate::config::KeyPolicyMode::Off
            && key.manager == crate::facts::KeyManager::Customer;
        if reviewed {
            self.actor().review_key_fresh(scope, &key.arn).await?;
        }
        Ok(())
    }

    /// The designated key of `scope`'s region (cached).
    pub(crate) async fn designated_key(&self, scope: &Scope) -> Result<Option<KeyFacts>, AwsError> {
        self.actor().designated_key(scope).await
    }

    /// A secret in another account can only be reached through `CMKGUARD_ASSUME_ROLE_NAME`.
    pub(crate) fn foreign_account_error(
        &self,
        scope: &Scope,
        meta: &EventMeta,
        secret_arn: Option<String>,
        ctx: &Context,
    ) -> Option<Record> {
        (scope.account != ctx.own_account && self.config.assume_role_name.is_none()).then(|| {
            let detail = format!(
                "the secret is in account `{}`, not the guard's `{}`; set `CMKGUARD_ASSUME_ROLE_NAME` to a role the guard may assume there",
                scope.account, ctx.own_account
            );
            self.record(meta, secret_arn, Verdict::Error, Reason::ForeignAccount, Some(detail))
        })
    }
}

// One secret: decide, then act.
impl<P: Ports> Guard<P> {
    /// Decides on a described secret and acts on the decision.
    pub(crate) async fn evaluate(
        &self,
        scope: &Scope,
        facts: SecretFacts,
        meta: &EventMeta,
    ) -> Result<Record, (Unfinished, Record)> {
        let decided = self.decide(scope, facts, meta).await?;
        let imported = match &decided.finding {
            Some(finding) => self
                .import_findings(scope, std::slice::from_ref(finding))
                .await
                .pop(),
            None => None,
        };
        self.report(scope, decided, imported).await
    }

    /// The first half of [`Self::evaluate`]: the verdict, and the re-encryption when one is due.
    /// A sweep runs it for a whole page, imports the page's findings in one batch, then runs
    /// [`Self::report`] for each secret.
    pub(crate) async fn decide(
        &self,
        scope: &Scope,
        mut facts: SecretFacts,
        meta: &EventMeta,
    ) -> Result<Decided, (Unfinished, Record)> {
        let arn = Some(facts.arn.clone());
        let failed = |e: AwsError| {
            let (reason, detail) = match &e {
                AwsError::Transient(message) => (Reason::TransientFailure, message.clone()),
                AwsError::AccessDenied(_) => (Reason::KeyAccessDenied, e.to_string()),
                _ => (Reason::KeyLookupFailed, e.to_string()),
            };
            let mut record = self.record(meta, arn.clone(), Verdict::Error, reason, Some(detail));
            record.key_id = facts.kms_key_id.clone();
            record
        };

        // The key's review, when due, comes after `DescribeKey` (in `Self::review`), not beside
        // it: reading the three at once saved no measurable time in an organization's audit,
        // but held three requests in flight per account-region instead of two at most, and
        // their memory with them (`just bench-org`; README, "At organization scale").
        let key = self.find_key(scope, facts.kms_key_id.as_deref()).await;
        let key = match key {
            Ok(key) => key,
            Err(AwsError::Transient(message)) => {
                let record = failed(AwsError::Transient(message.clone()));
                return Err((Unfinished(message), record));
            }
            Err(e) => {
                let record = failed(e);
                return Ok(Decided::finished(record, facts));
            }
        };
        let mut replicas = Vec::new();
        for replica in &facts.replicas {
            let replica_scope = Scope::new(&scope.account, &replica.region);
            match self
                .find_key(&replica_scope, replica.kms_key_id.as_deref())
                .await
            {
                Ok(finding) => replicas.push((replica.region.clone(), finding)),
                Err(AwsError::Transient(message)) => {
                    let mut record = failed(AwsError::Transient(message.clone()));
                    record.key_manager = key.manager();
                    return Err((Unfinished(message), record));
                }
                // An unreadable replica key is not a finding on its own; the primary decides.
                Err(_) => {}
            }
        }

        let review = match self.review(scope, &key).await {
            Ok(review) => review,
            Err(e) => {
                let message = e.to_string();
                let mut record = failed(e);
                record.key_manager = key.manager();
                return Err((Unfinished(message), record));
            }
        };
        let decision = match self
            .with_versions(scope, &mut facts, &key, review.as_ref(), &replicas)
            .await
        {
            Ok(decision) => decision,
            Err(e) => {
                let detail = format!("`ListSecretVersionIds` failed: {e}");
                let mut record = self.record(meta, arn, Verdict::Error, e.reason(), Some(detail));
                record.key_id = facts.kms_key_id.clone();
                record.key_manager = key.manager();
                if let AwsError::Transient(message) = e {
                    return Err((Unfinished(message), record));
                }
                return Ok(Decided::finished(record, facts));
            }
        };
        let Decision {
            verdict,
            reason,
            detail,
        } = decision;
        let detail = self.designated_note(scope, &key, reason, detail);
        let mut record = self.record(meta, arn, verdict, reason, detail);
        record.key_id = facts.kms_key_id.clone();
        record.key_arn = key.arn().map(str::to_owned);
        if let KeyFinding::Described(key) = &key
            && reason == Reason::KeyPendingDeletion
        {
            record.deletion_date = key.deletion_date;
        }
        record.key_manager = key.manager();
        record.key_policy = review;
        let actor = self.actor();
        let moved = crate::act::remediate_if_due(&actor, scope, &facts, &mut record)
            .await
            .map_err(|t| (t, record.clone()))?;
        let finding = crate::act::finding_due(&actor, scope, &record, &facts, moved.as_ref());
        Ok(Decided {
            record,
            facts,
            moved,
            finding,
            finished: false,
        })
    }
}

// One secret, after the decision: the finding, the mark, the notification.
impl<P: Ports> Guard<P> {
    /// The second half of [`Self::evaluate`]: the outcome of the finding's import (when one was
    /// due), then the mark and the notification.
    pub(crate) async fn report(
        &self,
        scope: &Scope,
        decided: Decided,
        imported: Option<Result<ActionRecord, AwsError>>,
    ) -> Result<Record, (Unfinished, Record)> {
        let Decided {
            mut record,
            facts,
            moved,
            finished,
            ..
        } = decided;
        if finished {
            return Ok(record);
        }
        if let Some(imported) = imported {
            crate::act::finish(&mut record, Action::SecurityHub, imported)
                .map_err(|t| (t, record.clone()))?;
        }
        crate::act::mark_and_notify(&self.actor(), scope, &facts, &mut record, moved.as_ref())
            .await
            .map_err(|t| (t, record.clone()))?;
        Ok(record)
    }

    /// Imports `findings` (all of `scope`), 100 per request; one outcome per finding, in order.
    pub(crate) async fn import_findings(
        &self,
        scope: &Scope,
        findings: &[Finding],
    ) -> Vec<Result<ActionRecord, AwsError>> {
        crate::act::import_findings(&self.actor(), scope, findings).await
    }
}

impl<P: Ports> Guard<P> {
    /// The policy's decision. The versions are read (one `ListSecretVersionIds`) only where they
    /// decide: with `CMKGUARD_CHECK_VERSIONS`, for a secret that would be compliant on a customer
    /// managed key (a move made by others); and for a move by the guard whose version is no
    /// longer current, to tell a new version from one older than the move.
    async fn with_versions(
        &self,
        scope: &Scope,
        facts: &mut SecretFacts,
        key: &KeyFinding,
        review: Option<&KeyReview>,
        replicas: &[(String, KeyFinding)],
    ) -> Result<Decision, AwsError> {
        if policy::needs_version_dates(facts) {
            facts.versions = Some(self.ports.list_secret_versions(scope, &facts.arn).await?);
        }
        let decision = policy::decide(facts, key, review, replicas, &self.config);
        let worth_reading = self.config.check_versions
            && decision.verdict == Verdict::Compliant
            && facts.versions.is_none()
            && key.manager() == Some(crate::facts::KeyManager::Customer);
        if !worth_reading {
            return Ok(decision);
        }
        facts.versions = Some(self.ports.list_secret_versions(scope, &facts.arn).await?);
        Ok(policy::decide(facts, key, review, replicas, &self.config))
    }

    /// The review of a customer managed key's policy and grants, unless `CMKGUARD_KEY_POLICY`
    /// is `off` (AWS managed keys have no policy of their own to review). Only a transient
    /// failure is an error.
    async fn review(&self, scope: &Scope, key: &KeyFinding) -> Result<Option<KeyReview>, AwsError> {
        let reviewed = self.config.key_policy != crate::config::KeyPolicyMode::Off
            && key.manager() == Some(crate::facts::KeyManager::Customer);
        match key.arn() {
            Some(arn) if reviewed => self.actor().review_key(scope, arn).await.map(Some),
            _ => Ok(None),
        }
    }

    /// When the key that cannot decrypt is the region's designated key (known when it is
    /// cached: a key event looks it up), the detail says what is at stake.
    fn designated_note(
        &self,
        scope: &Scope,
        key: &KeyFinding,
        reason: Reason,
        detail: Option<String>,
    ) -> Option<String> {
        let KeyFinding::Described(key) = key else {
            return detail;
        };
        let at_stake = matches!(reason, Reason::KeyDisabled | Reason::KeyPendingDeletion)
            && self
                .keys
                .get(scope, &self.config.key_alias)
                .is_some_and(|designated| designated.arn == key.arn);
        if !at_stake {
            return detail;
        }
        let note = format!(
            "it is the designated key of `{}` (`{}`): every secret the guard re-encrypted there is on it",
            scope.region, self.config.key_alias
        );
        Some(match detail {
            Some(detail) => format!("{detail}; {note}"),
            None => note,
        })
    }

    /// What the key `key_id` (as the secret reports it) is; a transient failure comes back as
    /// the error, any other failure to read it too (the caller records it).
    async fn find_key(&self, scope: &Scope, key_id: Option<&str>) -> Result<KeyFinding, AwsError> {
        let Some(key_id) = key_id else {
            return Ok(KeyFinding::DefaultKey);
        };
        if crate::arn::is_aws_managed_alias(key_id) {
            return Ok(KeyFinding::AwsAlias);
        }
        let described = self
            .keys
            .get_or_describe(scope, key_id, || self.ports.describe_key(scope, key_id))
            .await;
        match described {
            Ok(facts) => Ok(KeyFinding::Described(facts)),
            Err(AwsError::NotFound(_)) => Ok(KeyFinding::NotFound),
            Err(AwsError::AccessDenied(_)) if is_foreign_key(key_id, &scope.account) => {
                Ok(KeyFinding::ForeignKeyUndescribed {
                    arn: key_id.to_owned(),
                })
            }
            Err(e) => Err(e),
        }
    }
}

impl Decided {
    fn finished(record: Record, facts: SecretFacts) -> Self {
        Decided {
            record,
            facts,
            moved: None,
            finding: None,
            finished: true,
        }
    }
}
