//! What a delivered event asks for: one secret's check ([`crate::guard`]) or a sweep of the
//! region in the accounts it covers ([`crate::sweep`]); and `cmkguard check`'s secret named by
//! hand.

use serde_json::Value;

use crate::act::{Unfinished, finish};
use crate::config::{Action, SweepAccounts};
use crate::event::{self, ApiCall, EventMeta, Input, KeyCall};
use crate::finding::{Change, Finding};
use crate::guard::{Context, Guard};
use crate::ports::{AwsError, Ports, Scope};
use crate::reason::Reason;
use crate::record::{Record, Verdict};
use crate::sweep;

/// A secret to check by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    pub secret_id: String,
    pub account: String,
    pub region: String,
}

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error(transparent)]
    Event(#[from] event::EventError),
    /// A transient AWS failure outlasted the retries: retry the event. The records made so far
    /// (with the failed action in them) come along so they can still be logged.
    #[error("transient aws failure: {message}")]
    Transient {
        message: String,
        records: Vec<Record>,
    },
    /// A sweep stopped before the invocation deadline. Not a failure: the next sweep covers the
    /// rest, and what this one wrote is not written again, so each sweep gets further.
    #[error(
        "the sweep stopped before the invocation deadline after {} secrets ({} pages); the next sweep covers the rest",
        progress.secrets,
        progress.pages
    )]
    Stopped {
        progress: sweep::Progress,
        records: Vec<Record>,
    },
}

impl GuardError {
    pub fn records(&self) -> &[Record] {
        match self {
            GuardError::Transient { records, .. } | GuardError::Stopped { records, .. } => records,
            GuardError::Event(_) => &[],
        }
    }

    /// Puts `before` (records made earlier in the same event) in front of this error's own.
    fn after(mut self, mut before: Vec<Record>) -> Self {
        if let GuardError::Transient { records, .. } | GuardError::Stopped { records, .. } =
            &mut self
        {
            before.append(records);
            *records = before;
        }
        self
    }

    /// A transient failure before any record was made.
    fn transient(message: impl Into<String>) -> Self {
        GuardError::Transient {
            message: message.into(),
            records: Vec::new(),
        }
    }

    fn unfinished(Unfinished(message): Unfinished, record: Record) -> Self {
        GuardError::Transient {
            message,
            records: vec![record],
        }
    }
}

impl<P: Ports> Guard<P> {
    /// Handles one delivered event (EventBridge JSON).
    pub async fn handle(&self, event: &Value, ctx: &Context) -> Result<Vec<Record>, GuardError> {
        let mut records = Vec::new();
        match self
            .handle_each(event, ctx, &mut |record| records.push(record))
            .await
        {
            Ok(()) => Ok(records),
            Err(e) => Err(e.after(records)),
        }
    }

    /// Handles one delivered event, handing each record to `emit` as soon as it is final (a
    /// sweep of a whole organization is not held in memory). An error carries the records not
    /// handed to `emit`.
    pub async fn handle_each(
        &self,
        event: &Value,
        ctx: &Context,
        emit: &mut (impl FnMut(Record) + Send),
    ) -> Result<(), GuardError> {
        let input = event::read(event)?;
        let input = input.with_request_id(ctx.request_id.clone());
        match input {
            Input::ApiCall(call) => emit(self.check_call(&call, ctx).await?),
            Input::KeyCall(call) => self.key_event(&call, ctx, emit).await?,
            Input::Scheduled(meta) => self.scheduled_sweep(&meta, ctx, emit).await?,
            Input::Ignored { meta, reason } => {
                emit(self.record(&meta, None, Verdict::Ignored, reason, None));
            }
            Input::Malformed {
                meta,
                reason,
                detail,
            } => emit(self.record(&meta, None, Verdict::Error, reason, Some(detail))),
        }
        Ok(())
    }

    /// Checks one secret named by hand.
    pub async fn check(&self, target: &SecretRef, ctx: &Context) -> Result<Record, GuardError> {
        let call = ApiCall {
            meta: EventMeta {
                event_name: Some("Check".into()),
                account: Some(target.account.clone()),
                region: Some(target.region.clone()),
                request_id: ctx.request_id.clone(),
                ..EventMeta::default()
            },
            secret_id: target.secret_id.clone(),
            account: target.account.clone(),
            region: target.region.clone(),
        };
        self.check_call(&call, ctx).await
    }
}

// Sweeps: one account and region, or the scheduled sweep over the accounts it covers.
impl<P: Ports> Guard<P> {
    /// Every secret of one account and region, from `ListSecrets` pages alone (see
    /// [`crate::sweep`]). Near the deadline it stops and says how far it got.
    pub async fn sweep(
        &self,
        scope: &Scope,
        meta: &EventMeta,
        ctx: &Context,
    ) -> Result<Vec<Record>, GuardError> {
        let mut records = Vec::new();
        match self
            .sweep_one(scope, meta, ctx, &mut |record| records.push(record))
            .await
        {
            Ok(()) => Ok(records),
            Err(e) => Err(e.after(records)),
        }
    }

    async fn sweep_one(
        &self,
        scope: &Scope,
        meta: &EventMeta,
        ctx: &Context,
        emit: &mut (impl FnMut(Record) + Send),
    ) -> Result<(), GuardError> {
        let report = sweep::sweep_scope(
            self,
            scope,
            meta,
            ctx,
            sweep::Limits::default().secrets,
            emit,
        )
        .await;
        match report.end {
            sweep::End::Complete | sweep::End::Refused => Ok(()),
            sweep::End::Transient(message) => Err(GuardError::transient(message)),
            sweep::End::Deadline => Err(GuardError::Stopped {
                progress: report.progress,
                records: Vec::new(),
            }),
        }
    }

    /// The scheduled sweep: the function's region in each account of `CMKGUARD_SWEEP_ACCOUNTS`.
    /// Over many accounts it starts with the account the last sweep did not finish (the cursor
    /// kept in the own account), so a large organization is covered over a few invocations.
    async fn scheduled_sweep(
        &self,
        meta: &EventMeta,
        ctx: &Context,
        emit: &mut (impl FnMut(Record) + Send),
    ) -> Result<(), GuardError> {
        let own = Scope::new(&ctx.own_account, &ctx.region);
        let mut accounts: Vec<String> = match &self.config().sweep_accounts {
            SweepAccounts::Own => return self.sweep_one(&own, meta, ctx, emit).await,
            SweepAccounts::Listed(ids) => ids.iter().cloned().collect(),
            SweepAccounts::Organization => match self.ports().list_accounts().await {
                Ok(ids) => ids,
                Err(AwsError::Transient(message)) => {
                    return Err(GuardError::transient(message));
                }
                Err(e) => {
                    let detail = format!(
                        "cannot list the organization's accounts (`organizations:ListAccounts`): {e}"
                    );
                    emit(self.record(meta, None, Verdict::Error, e.reason(), Some(detail)));
                    return Ok(());
                }
            },
        };
        accounts.sort();
        accounts.dedup();
        if accounts == [ctx.own_account.as_str()] {
            return self.sweep_one(&own, meta, ctx, emit).await;
        }
        // A cursor that cannot be read or written costs coverage order, not the sweep.
        let cursor = self.ports().load_cursor(&own).await.unwrap_or_else(|e| {
            tracing::warn!("cannot read the sweep cursor; starting from the first account: {e}");
            None
        });
        let start = cursor
            .as_deref()
            .and_then(|next| accounts.iter().position(|a| a.as_str() >= next))
            .unwrap_or(0);
        accounts.rotate_left(start);
        let report = sweep::sweep_accounts(
            self,
            &accounts,
            &ctx.region,
            meta,
            ctx,
            sweep::Limits::accounts(),
            emit,
        )
        .await;
        if report.next != cursor
            && let Err(e) = self.ports().save_cursor(&own, report.next.as_deref()).await
        {
            tracing::warn!("cannot save the sweep cursor: {e}");
        }
        match (report.transient, report.progress.complete) {
            (_, true) => Ok(()),
            (Some(message), false) => Err(GuardError::transient(message)),
            (None, false) => Err(GuardError::Stopped {
                progress: report.progress,
                records: Vec::new(),
            }),
        }
    }
}

// One secret named by an event or by hand.
impl<P: Ports> Guard<P> {
    async fn check_call(&self, call: &ApiCall, ctx: &Context) -> Result<Record, GuardError> {
        let scope = Scope::new(&call.account, &call.region);
        let meta = EventMeta {
            account: Some(call.account.clone()),
            region: Some(call.region.clone()),
            ..call.meta.clone()
        };
        let id_arn = crate::arn::Arn::secret(&call.secret_id).map(|_| call.secret_id.clone());
        if let Some(record) = self.foreign_account_error(&scope, &meta, id_arn.clone(), ctx) {
            return Ok(record);
        }
        let facts = match self.ports().describe_secret(&scope, &call.secret_id).await {
            Ok(facts) => facts,
            Err(AwsError::NotFound(_)) => {
                let detail = format!(
                    "no secret `{}` in `{}`",
                    crate::text::shorten(&call.secret_id),
                    call.region
                );
                let mut record = self.record(
                    &meta,
                    id_arn,
                    Verdict::NotFound,
                    Reason::SecretNotFound,
                    Some(detail),
                );
                return match self.archive_deleted(&scope, &mut record).await {
                    Ok(()) => Ok(record),
                    Err(unfinished) => Err(GuardError::unfinished(unfinished, record)),
                };
            }
            Err(AwsError::Transient(message)) => {
                let record = self.record(
                    &meta,
                    id_arn,
                    Verdict::Error,
                    Reason::TransientFailure,
                    Some(message.clone()),
                );
                return Err(GuardError::unfinished(Unfinished(message), record));
            }
            Err(e) => {
                return Ok(self.record(
                    &meta,
                    id_arn,
                    Verdict::Error,
                    e.reason(),
                    Some(e.to_string()),
                ));
            }
        };
        self.evaluate(&scope, facts, &meta)
            .await
            .map_err(|(unfinished, record)| GuardError::unfinished(unfinished, record))
    }

    /// A deleted secret's finding is archived (the ARN is known when the event named it).
    async fn archive_deleted(&self, scope: &Scope, record: &mut Record) -> Result<(), Unfinished> {
        if !self.config().acts(Action::SecurityHub) {
            return Ok(());
        }
        let Some(finding) = Finding::new(Change::Deleted, record, None, None) else {
            return Ok(());
        };
        if let Some(imported) = self.import_findings(scope, &[finding]).await.pop() {
            finish(record, Action::SecurityHub, imported)?;
        }
        Ok(())
    }
}

// The key's own events.
impl<P: Ports> Guard<P> {
    /// A key's own event (`DisableKey`, `EnableKey`, `ScheduleKeyDeletion`, `CancelKeyDeletion`,
    /// and the policy and grant changes `PutKeyPolicy`, `CreateGrant`, `RevokeGrant`,
    /// `RetireGrant`): the key's state, policy and grants are read fresh, then every secret of the account and region on that key,
    /// and only those, is decided and acted on with it (see [`sweep::sweep_key`]). A key no
    /// secret uses makes no record and no write.
    async fn key_event(
        &self,
        call: &KeyCall,
        ctx: &Context,
        emit: &mut (impl FnMut(Record) + Send),
    ) -> Result<(), GuardError> {
        let scope = Scope::new(&call.account, &call.region);
        let meta = EventMeta {
            account: Some(call.account.clone()),
            region: Some(call.region.clone()),
            ..call.meta.clone()
        };
        if let Some(record) = self.foreign_account_error(&scope, &meta, None, ctx) {
            emit(record);
            return Ok(());
        }
        let (arn, fresh) = match self.ports().describe_key(&scope, &call.key_id).await {
            Ok(key) => (key.arn.clone(), Some(key)),
            // Deleted already: its secrets are found by its ARN, and their own `DescribeKey`
            // says `key-not-found`.
            Err(AwsError::NotFound(_)) => match crate::arn::Arn::kms_key(&call.key_id) {
                Some(_) => (call.key_id.clone(), None),
                None => (
                    crate::arn::kms_key_arn(&call.region, &call.account, &call.key_id),
                    None,
                ),
            },
            Err(AwsError::Transient(message)) => {
                return Err(GuardError::transient(message));
            }
            Err(e) => {
                let detail = format!(
                    "cannot describe key `{}`: {e}",
                    crate::text::shorten(&call.key_id)
                );
                emit(self.record(&meta, None, Verdict::Error, e.reason(), Some(detail)));
                return Ok(());
            }
        };
        if let Some(key) = &fresh
            && let Err(e) = self.review_key_fresh(&scope, key).await
        {
            return Err(GuardError::transient(e.to_string()));
        }
        let mut decided = 0;
        let report = sweep::sweep_key(self, &scope, &arn, fresh.as_ref(), &meta, ctx, &mut |r| {
            decided += 1;
            emit(r);
        })
        .await;
        if decided == 0 {
            tracing::info!(key_arn = %arn, "no secret of the account and region is on the key");
        }
        match report.end {
            sweep::End::Complete | sweep::End::Refused => Ok(()),
            sweep::End::Transient(message) => Err(GuardError::transient(message)),
            // Unlike a scheduled sweep, the event is retried: what was decided is marked and
            // needs no write again, so the retry gets further.
            sweep::End::Deadline => Err(GuardError::transient(format!(
                "the deadline came before every secret on key `{arn}` was checked ({} so far); the retry finishes them",
                report.progress.secrets
            ))),
        }
    }
}
