//! The Lambda handler: a plain `async fn` over the guard, so tests call it with fakes.

pub mod metrics;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cmkguard_core::{Context, Guard, GuardError, Ports, Record, Verdict};
use serde_json::{Value, json};

/// The handler gives up this long before the invocation deadline (half the engine's one margin,
/// [`cmkguard_core::DEADLINE_MARGIN`], after which no work starts), so Lambda gets a retryable
/// error from us instead of killing the process mid-write.
pub const HANDLER_MARGIN: Duration =
    Duration::from_millis(cmkguard_core::DEADLINE_MARGIN.as_millis() as u64 / 2);

/// What one invocation knows about itself.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    /// The function's own account: from the invoked function ARN, or from STS where the ARN names
    /// none (see [`account_of_function_arn`]).
    pub own_account: String,
    pub deadline: SystemTime,
    /// The function's region (`AWS_REGION`): what a scheduled sweep covers.
    pub region: String,
}

/// The account in a function ARN (`arn:aws:lambda:REGION:ACCOUNT:function:NAME`). Local Runtime
/// API emulators (`cargo lambda watch` hands out `function-arn`) name none.
pub fn account_of_function_arn(function_arn: &str) -> Option<&str> {
    function_arn
        .split(':')
        .nth(4)
        .filter(|a| cmkguard_core::arn::is_account_id(a))
}

/// Any real `Lambda-Runtime-Deadline-Ms` (milliseconds since the epoch) is later than this
/// (September 2001).
const EPOCH_MS_FLOOR: u64 = 1_000_000_000_000;

/// The invocation deadline from `Lambda-Runtime-Deadline-Ms`. Lambda sends a time since the
/// epoch; `cargo lambda watch` sends the function timeout instead (`600000`), so a value too
/// small to be a time since the epoch is taken as a duration from `now`.
pub fn deadline_from_header(deadline_ms: u64, now: SystemTime) -> SystemTime {
    if deadline_ms < EPOCH_MS_FLOOR {
        now + Duration::from_millis(deadline_ms)
    } else {
        UNIX_EPOCH + Duration::from_millis(deadline_ms)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("{0}")]
    Guard(#[from] GuardError),
    #[error("the invocation deadline is near; the event will be retried")]
    Deadline,
}

/// Handles one event; the records are handed to `emit` as they are final, error or not.
pub async fn handle<P: Ports>(
    guard: &Guard<P>,
    event: &Value,
    invocation: &Invocation,
    emit: &mut (impl FnMut(&Record) + Send),
) -> Result<Value, HandlerError> {
    let own_account = invocation.own_account.clone();
    let remaining = invocation
        .deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    let ctx = Context {
        own_account,
        region: invocation.region.clone(),
        deadline: Some(Instant::now() + remaining),
        request_id: Some(invocation.request_id.clone()),
    };

    if remaining <= HANDLER_MARGIN {
        return Err(HandlerError::Deadline);
    }
    let budget = remaining - HANDLER_MARGIN;
    let mut verdicts = Verdicts::default();
    let mut each = |record: Record| {
        verdicts.add(&record);
        emit(&record);
    };
    let handled = tokio::time::timeout(budget, guard.handle_each(event, &ctx, &mut each)).await;
    match handled {
        Err(_elapsed) => Err(HandlerError::Deadline),
        // A sweep that ran out of time is not retried: the next scheduled sweep covers the rest.
        Ok(Err(GuardError::Stopped { progress, records })) => {
            records.into_iter().for_each(&mut each);
            tracing::warn!(
                secrets = progress.secrets,
                pages = progress.pages,
                complete = progress.complete,
                accounts = ?progress.accounts,
                "the sweep stopped before the invocation deadline; the next sweep covers the rest"
            );
            let mut response = verdicts.summary();
            response["sweep"] = json!(progress);
            Ok(response)
        }
        Ok(Err(e)) => {
            e.records().iter().cloned().for_each(&mut each);
            Err(e.into())
        }
        Ok(Ok(())) => Ok(verdicts.summary()),
    }
}

/// Records counted by verdict as they are made.
#[derive(Debug, Default)]
struct Verdicts {
    records: usize,
    counts: std::collections::BTreeMap<&'static str, usize>,
}

impl Verdicts {
    fn add(&mut self, record: &Record) {
        self.records += 1;
        *self.counts.entry(record.verdict.as_str()).or_default() += 1;
    }

    fn summary(&self) -> Value {
        let mut verdicts = serde_json::Map::new();
        for verdict in [
            Verdict::Compliant,
            Verdict::NonCompliant,
            Verdict::Exempt,
            Verdict::Managed,
            Verdict::NotFound,
            Verdict::Ignored,
            Verdict::Error,
        ] {
            if let Some(n) = self.counts.get(verdict.as_str()) {
                verdicts.insert(verdict.as_str().into(), (*n).into());
            }
        }
        json!({ "records": self.records, "verdicts": verdicts })
    }
}
