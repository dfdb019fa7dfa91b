//! Sweeping every secret of accounts and regions, decided from `ListSecrets` pages alone (each
//! entry carries `KmsKeyId`, tags and `OwningService`, so no `DescribeSecret` per secret), with
//! one `DescribeKey` per distinct key. The Lambda's scheduled sweep and `cmkguard audit` both run
//! [`sweep_scope`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use futures_util::StreamExt;
use futures_util::stream;
use serde::Serialize;

use crate::act::Unfinished;
use crate::arn::Arn;
use crate::config::{Action, KeyPolicyMode};
use crate::event::EventMeta;
use crate::facts::{KeyFacts, SecretFacts};
use crate::finding::Finding;
use crate::guard::{Context, Decided, Guard};
use crate::keyfindings::KeysSeen;
use crate::ports::{AwsError, Ports, Scope};
use crate::record::{ActionRecord, Outcome, Record, Verdict};

use crate::guard::DEADLINE_MARGIN;

/// How much runs at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Account and region pairs swept at the same time (each has its own API quotas).
    pub scopes: usize,
    /// Secrets of one page decided (and acted on) at the same time. Reads come from the page and
    /// the key cache, so this only bounds the writes, which the SDK's adaptive retry paces.
    pub secrets: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            scopes: 8,
            secrets: 8,
        }
    }
}

impl Limits {
    /// The Lambda's scheduled sweep over many accounts: one warm process, its region, account
    /// after account in parallel, each account-region with its own quotas.
    pub fn accounts() -> Self {
        Limits {
            scopes: 16,
            ..Limits::default()
        }
    }
}

/// How far a sweep got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// `ListSecrets` pages read.
    pub pages: usize,
    /// Secrets decided (one record each).
    pub secrets: usize,
    /// Every page was read and every secret on them decided.
    pub complete: bool,
    /// A sweep over many accounts: how many there are, and how many were finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accounts: Option<AccountCount>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AccountCount {
    pub total: usize,
    pub done: usize,
}

/// Why a sweep of one account and region ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    Complete,
    /// The scope could not be listed (access denied, a foreign account without a role, ...):
    /// an `error` record says why.
    Refused,
    /// The invocation deadline came near; what was decided so far was reported.
    Deadline,
    /// A transient failure outlasted the SDK's retries.
    Transient(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeReport {
    pub progress: Progress,
    pub end: End,
}

/// Sweeps one account and region: pages are read one after another (each needs the previous
/// token) while the secrets of the page before are decided. Records go to `emit` in listing order.
pub async fn sweep_scope<P: Ports>(
    guard: &Guard<P>,
    scope: &Scope,
    meta: &EventMeta,
    ctx: &Context,
    parallel: usize,
    emit: &mut impl FnMut(Record),
) -> ScopeReport {
    Listing::new(guard, scope, meta, ctx, parallel)
        .sweep(None, emit)
        .await
}

/// Sweeps the secrets of one account and region that are on `key` (named by key id, key ARN,
/// alias name or alias ARN), deciding them with `key` as it is now (`fresh`: read for this
/// event, not from the cache). The others are listed, not described and not decided.
pub async fn sweep_key<P: Ports>(
    guard: &Guard<P>,
    scope: &Scope,
    key_arn: &str,
    fresh: Option<&KeyFacts>,
    meta: &EventMeta,
    ctx: &Context,
    emit: &mut impl FnMut(Record),
) -> ScopeReport {
    let mut on_key = OnKey {
        arn: key_arn,
        fresh,
        aliases: HashMap::new(),
        designated: false,
    };
    let parallel = Limits::default().secrets;
    Listing::new(guard, scope, meta, ctx, parallel)
        .sweep(Some(&mut on_key), emit)
        .await
}

/// Which secrets of a listing are on one key.
struct OnKey<'a> {
    arn: &'a str,
    fresh: Option<&'a KeyFacts>,
    /// Each alias's key ARN, described once per event (`None`: no such alias).
    aliases: HashMap<String, Option<String>>,
    /// The designated key was looked up (so a finding can say when it is the one at stake).
    designated: bool,
}

impl OnKey<'_> {
    /// The secrets of `secrets` on the key; the fresh state of the key is what they are decided
    /// with.
    async fn keep<P: Ports>(
        &mut self,
        guard: &Guard<P>,
        scope: &Scope,
        secrets: Vec<SecretFacts>,
    ) -> Result<Vec<SecretFacts>, AwsError> {
        let mut kept = Vec::new();
        for secret in secrets {
            let Some(id) = secret.kms_key_id.clone() else {
                continue;
            };
            if self.key_arn(guard, scope, &id).await?.as_deref() == Some(self.arn) {
                if let Some(fresh) = self.fresh {
                    guard.remember_key(scope, &id, fresh);
                }
                kept.push(secret);
            }
        }
        if !kept.is_empty() && !self.designated {
            self.designated = true;
            if let Err(AwsError::Transient(message)) = guard.designated_key(scope).await {
                return Err(AwsError::Transient(message));
            }
        }
        Ok(kept)
    }

    /// The ARN of the key a secret names: a key ARN as it is, a bare key id in the scope's
    /// account and region, an alias through `DescribeKey` (once per alias).
    async fn key_arn<P: Ports>(
        &mut self,
        guard: &Guard<P>,
        scope: &Scope,
        id: &str,
    ) -> Result<Option<String>, AwsError> {
        if Arn::kms_key(id).is_some() {
            return Ok(Some(id.to_owned()));
        }
        if crate::arn::is_aws_managed_alias(id) {
            return Ok(None);
        }
        if !id.starts_with("alias/") && Arn::kms_alias(id).is_none() {
            return Ok(Some(crate::arn::kms_key_arn(
                &scope.region,
                &scope.account,
                id,
            )));
        }
        if let Some(known) = self.aliases.get(id) {
            return Ok(known.clone());
        }
        let arn = match guard.ports().describe_key(scope, id).await {
            Ok(key) => Some(key.arn),
            Err(AwsError::NotFound(_) | AwsError::AccessDenied(_)) => None,
            Err(e) => return Err(e),
        };
        self.aliases.insert(id.to_owned(), arn.clone());
        Ok(arn)
    }
}

/// What every step of sweeping one account and region's listing needs.
struct Listing<'a, P> {
    guard: &'a Guard<P>,
    scope: &'a Scope,
    /// The event's, with the scope's account and region.
    meta: EventMeta,
    ctx: &'a Context,
    /// Secrets decided at the same time.
    parallel: usize,
}

impl<'a, P: Ports> Listing<'a, P> {
    fn new(
        guard: &'a Guard<P>,
        scope: &'a Scope,
        meta: &EventMeta,
        ctx: &'a Context,
        parallel: usize,
    ) -> Self {
        let meta = EventMeta {
            account: Some(scope.account.clone()),
            region: Some(scope.region.clone()),
            ..meta.clone()
        };
        Listing {
            guard,
            scope,
            meta,
            ctx,
            parallel: parallel.max(1),
        }
    }

    /// [`sweep_scope`], or [`sweep_key`] when `on_key` is given; then, when the listing was
    /// complete, the Security Hub findings of the keys the secrets are on.
    async fn sweep(
        &self,
        on_key: Option<&mut OnKey<'_>>,
        emit: &mut impl FnMut(Record),
    ) -> ScopeReport {
        let mut keys = KeysSeen::default();
        let mut report = self
            .sweep_listing(on_key, &mut |record| {
                keys.see(&record);
                emit(record);
            })
            .await;
        if report.end == End::Complete
            && let Err(message) = self.import_key_findings(&keys).await
        {
            report.progress.complete = false;
            report.end = End::Transient(message);
        }
        report
    }

    async fn sweep_listing(
        &self,
        mut on_key: Option<&mut OnKey<'_>>,
        emit: &mut impl FnMut(Record),
    ) -> ScopeReport {
        let Listing {
            guard,
            scope,
            meta,
            ctx,
            ..
        } = self;
        let (guard, scope, ctx) = (*guard, *scope, *ctx);
        let mut progress = Progress::default();
        let end = |progress: Progress, end: End| ScopeReport {
            progress: Progress {
                complete: end == End::Complete,
                ..progress
            },
            end,
        };
        if let Some(record) = guard.foreign_account_error(scope, meta, None, ctx) {
            emit(record);
            return end(progress, End::Refused);
        }
        if near_deadline(ctx) {
            return end(progress, End::Deadline);
        }
        let mut listed = guard.ports().list_secrets(scope, None).await;
        loop {
            let mut page = match listed {
                Ok(page) => page,
                Err(AwsError::Transient(message)) => return end(progress, End::Transient(message)),
                Err(e) => {
                    let reason = e.reason();
                    emit(guard.record(meta, None, Verdict::Error, reason, Some(e.to_string())));
                    return end(progress, End::Refused);
                }
            };
            if let Some(on_key) = on_key.as_deref_mut() {
                match on_key
                    .keep(guard, scope, std::mem::take(&mut page.secrets))
                    .await
                {
                    Ok(kept) => page.secrets = kept,
                    Err(AwsError::Transient(message)) => {
                        return end(progress, End::Transient(message));
                    }
                    Err(e) => {
                        let reason = e.reason();
                        emit(guard.record(meta, None, Verdict::Error, reason, Some(e.to_string())));
                        return end(progress, End::Refused);
                    }
                }
            }
            let token = page.next_token.take();
            let more = token.is_some();
            let next = async {
                match token {
                    Some(token) if !near_deadline(ctx) => {
                        Some(guard.ports().list_secrets(scope, Some(token)).await)
                    }
                    _ => None,
                }
            };
            let decide = self.decide_page(page.secrets);
            let ((records, stopped, transient), next) =
                futures_util::future::join(decide, next).await;
            progress.secrets += records.len();
            progress.pages += usize::from(!stopped);
            records.into_iter().for_each(&mut *emit);
            if let Some(message) = transient {
                return end(progress, End::Transient(message));
            }
            if stopped {
                return end(progress, End::Deadline);
            }
            listed = match next {
                Some(listed) => listed,
                None if more => return end(progress, End::Deadline),
                None => return end(progress, End::Complete),
            };
        }
    }
}

// The findings of the keys the listing's secrets are on.
impl<P: Ports> Listing<'_, P> {
    /// Imports the findings of the keys seen (with `securityhub`, the review on, and not in a
    /// dry run): a `FAILED` one per key and word; except in the scheduled sweep, which runs
    /// often, a `PASSED`, archived one per word a key does not have, which closes a finding
    /// fixed since. A refused import is logged (the next sweep imports it again); a transient
    /// failure comes back.
    async fn import_key_findings(&self, keys: &KeysSeen) -> Result<(), String> {
        let config = self.guard.config();
        let wanted = config.acts(Action::SecurityHub)
            && config.key_policy != KeyPolicyMode::Off
            && !keys.is_empty();
        if !wanted {
            return Ok(());
        }
        let resolve = self.meta.event_name.as_deref() != Some(crate::event::SCHEDULED_EVENT);
        for (scope, findings) in keys.findings(resolve) {
            if config.dry_run {
                tracing::info!(account = %scope.account, region = %scope.region, findings = findings.len(), "would import the key policy findings");
                continue;
            }
            for (finding, outcome) in findings
                .iter()
                .zip(self.guard.import_findings(&scope, &findings).await)
            {
                match outcome {
                    Ok(action) if action.outcome == Outcome::Done => {}
                    Ok(action) => {
                        tracing::warn!(finding_id = %finding.id, detail = %action.detail, "key policy finding not imported");
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
        if keys.left_out > 0 {
            tracing::warn!(
                keys = keys.left_out,
                "more keys than a sweep keeps: their findings wait for the next sweep"
            );
        }
        Ok(())
    }
}

// One page of the listing.
impl<P: Ports> Listing<'_, P> {
    /// Decides the secrets of one page, `parallel` at a time, in order: first every verdict and
    /// re-encryption, then the page's findings in one `BatchImportFindings` (up to 100), then each
    /// secret's mark and notification. Returns the records, whether the deadline stopped it, and the
    /// first transient failure.
    async fn decide_page(&self, secrets: Vec<SecretFacts>) -> (Vec<Record>, bool, Option<String>) {
        let Listing {
            guard,
            scope,
            meta,
            ctx,
            parallel,
        } = self;
        let (guard, scope, ctx, parallel) = (*guard, *scope, *ctx, *parallel);
        let decided: Vec<_> = stream::iter(secrets)
            .map(|facts| async move {
                if near_deadline(ctx) {
                    return None;
                }
                Some(guard.decide(scope, facts, meta).await)
            })
            .buffered(parallel)
            .collect()
            .await;
        let findings: Vec<Finding> = decided
            .iter()
            .filter_map(|d| match d {
                Some(Ok(decided)) => decided.finding.clone(),
                _ => None,
            })
            .collect();
        let mut imported = guard.import_findings(scope, &findings).await.into_iter();
        let mut steps = Vec::with_capacity(decided.len());
        for d in decided {
            steps.push(match d {
                None => Step::Stopped,
                Some(Err(failed)) => Step::Failed(Box::new(failed)),
                Some(Ok(decided)) => {
                    let import = decided.finding.as_ref().and_then(|_| imported.next());
                    Step::Decided(Box::new(decided), import)
                }
            });
        }
        let results: Vec<_> = stream::iter(steps)
            .map(|step| async move {
                match step {
                    Step::Stopped => None,
                    Step::Failed(failed) => Some(Err(*failed)),
                    Step::Decided(decided, import) => {
                        Some(guard.report(scope, *decided, import).await)
                    }
                }
            })
            .buffered(parallel)
            .collect()
            .await;
        let mut records = Vec::with_capacity(results.len());
        let mut stopped = false;
        let mut transient = None;
        for result in results {
            match result {
                Some(Ok(record)) => records.push(record),
                Some(Err((Unfinished(message), record))) => {
                    records.push(record);
                    transient.get_or_insert(message);
                }
                None => stopped = true,
            }
        }
        (records, stopped, transient)
    }
}

/// A secret of a page between [`Guard::decide`] and [`Guard::report`].
enum Step {
    /// Not decided: the deadline came near.
    Stopped,
    Failed(Box<(Unfinished, Record)>),
    Decided(Box<Decided>, Option<Result<ActionRecord, AwsError>>),
}

fn near_deadline(ctx: &Context) -> bool {
    ctx.deadline
        .is_some_and(|d| d.saturating_duration_since(Instant::now()) < DEADLINE_MARGIN)
}

/// Sweeps many accounts and regions, `limits.scopes` at a time. `emit` gets each record with the
/// index of its scope in `scopes` (records of one scope in listing order, scopes interleaved);
/// `done` gets each scope's report as it ends.
pub async fn sweep_scopes<P: Ports>(
    guard: &Guard<P>,
    scopes: &[Scope],
    meta: &EventMeta,
    ctx: &Context,
    limits: Limits,
    emit: &mut impl FnMut(usize, Record),
    done: &mut impl FnMut(usize, &ScopeReport),
) {
    let scopes = stream::iter(scopes.iter().cloned());
    sweep_stream(
        guard,
        scopes,
        meta,
        ctx,
        limits,
        emit,
        &mut |index, _, report| done(index, report),
    )
    .await;
}

/// [`sweep_scopes`] over scopes that arrive as they are found (an organization's accounts page
/// by page, each account's regions once listed): each scope starts as soon as it arrives and a
/// place is free. Indexes count the scopes in arrival order.
pub async fn sweep_stream<P: Ports>(
    guard: &Guard<P>,
    scopes: impl futures_util::Stream<Item = Scope>,
    meta: &EventMeta,
    ctx: &Context,
    limits: Limits,
    emit: &mut impl FnMut(usize, Record),
    done: &mut impl FnMut(usize, &Scope, &ScopeReport),
) {
    // Both callbacks reach the caller's sink; they run one at a time.
    let sink = Mutex::new((emit, done));
    let sink = &sink;
    scopes
        .enumerate()
        .map(|(index, scope)| async move {
            let emitted = AtomicUsize::new(0);
            let mut emit = |record| {
                emitted.fetch_add(1, Ordering::Relaxed);
                let mut sink = sink.lock().unwrap_or_else(|e| e.into_inner());
                (sink.0)(index, record);
            };
            let sweep = sweep_scope(guard, &scope, meta, ctx, limits.secrets, &mut emit);
            // A call still in flight at the deadline is given up, so the other scopes can
            // report how far they got; the next sweep starts with this one.
            let stop = ctx
                .deadline
                .and_then(|d| d.checked_sub(DEADLINE_MARGIN))
                .map(tokio::time::Instant::from_std);
            let report = match stop {
                Some(stop) => tokio::time::timeout_at(stop, sweep)
                    .await
                    .unwrap_or(ScopeReport {
                        progress: Progress {
                            secrets: emitted.load(Ordering::Relaxed),
                            ..Progress::default()
                        },
                        end: End::Deadline,
                    }),
                None => sweep.await,
            };
            let mut sink = sink.lock().unwrap_or_else(|e| e.into_inner());
            (sink.1)(index, &scope, &report);
        })
        .buffer_unordered(limits.scopes.max(1))
        .collect::<()>()
        .await;
}

/// How a sweep over many accounts ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountsReport {
    pub progress: Progress,
    /// The first account (in sweep order) the sweep did not finish: where the next one starts.
    pub next: Option<String>,
    /// The first transient failure that stopped an account.
    pub transient: Option<String>,
}

/// Sweeps `region` in each of `accounts`, `limits.scopes` accounts at a time, in this order
/// (the caller puts first those the last sweep did not reach). Records go to `emit` as they are
/// final. An account counts as done when it was swept to the end or refused (an `error` record
/// says why); the deadline or a transient failure leaves it for the next sweep.
pub async fn sweep_accounts<P: Ports>(
    guard: &Guard<P>,
    accounts: &[String],
    region: &str,
    meta: &EventMeta,
    ctx: &Context,
    limits: Limits,
    emit: &mut (impl FnMut(Record) + Send),
) -> AccountsReport {
    let scopes: Vec<Scope> = accounts.iter().map(|a| Scope::new(a, region)).collect();
    let mut ends: Vec<Option<ScopeReport>> = vec![None; scopes.len()];
    sweep_scopes(
        guard,
        &scopes,
        meta,
        ctx,
        limits,
        &mut |_, record| emit(record),
        &mut |index, report| ends[index] = Some(report.clone()),
    )
    .await;
    let mut report = AccountsReport {
        progress: Progress {
            accounts: Some(AccountCount {
                total: accounts.len(),
                done: 0,
            }),
            ..Progress::default()
        },
        next: None,
        transient: None,
    };
    let mut done = 0;
    for (account, end) in accounts.iter().zip(ends) {
        let Some(end) = end else {
            report.next.get_or_insert_with(|| account.clone());
            continue;
        };
        report.progress.pages += end.progress.pages;
        report.progress.secrets += end.progress.secrets;
        match end.end {
            End::Complete | End::Refused => done += 1,
            End::Deadline => {
                report.next.get_or_insert_with(|| account.clone());
            }
            End::Transient(message) => {
                report.next.get_or_insert_with(|| account.clone());
                report.transient.get_or_insert(message);
            }
        }
    }
    report.progress.complete = report.next.is_none();
    report.progress.accounts = Some(AccountCount {
        total: accounts.len(),
        done,
    });
    report
}
