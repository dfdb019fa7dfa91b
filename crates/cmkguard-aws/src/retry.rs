//! Transient AWS failures (throttling, 5xx, timeouts, dropped connections) retried inside the
//! invocation's time budget: a burst of events that meets AWS's request quotas slows down
//! instead of turning into invocation errors. Each call first gets the SDK's own attempts
//! (standard mode, 100 ms first backoff); when they are spent, the call is tried again after a
//! jittered, growing pause, until the budget would pass.
//! Only then does the transient error reach the engine (and Lambda retries the event).

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cmkguard_core::{AwsError, ConfigError};

use cmkguard_core::ports::AwsResult;

/// How long one call may keep retrying a transient failure, in milliseconds: the CLI's budget
/// (default 60000); in the Lambda a cap under the invocation deadline. `0`: the SDK's attempts only.
pub const RETRY_BUDGET_MS: &str = "CMKGUARD_RETRY_BUDGET_MS";

pub const DEFAULT_RETRY_BUDGET: Duration = Duration::from_secs(60);

const FIRST_PAUSE: Duration = Duration::from_millis(100);
// Short enough that a throttled caller is back while the quota's bucket refills, long enough
// that 30 contending callers do not flood it (`just bench-burst`: 4 s left the quota idle,
// 1.81x the floor through the CLI; 1 s and 2 s both keep it at the floor, 2 s with fewer
// throttled requests).
const LONGEST_PAUSE: Duration = Duration::from_secs(2);

/// The retry budget from [`RETRY_BUDGET_MS`]; an invalid value names the variable.
pub fn retry_budget(lookup: impl Fn(&str) -> Option<String>) -> Result<Duration, ConfigError> {
    let Some(value) = lookup(RETRY_BUDGET_MS).filter(|v| !v.trim().is_empty()) else {
        return Ok(DEFAULT_RETRY_BUDGET);
    };
    match value.trim().parse::<u64>() {
        Ok(ms @ 0..=900_000) => Ok(Duration::from_millis(ms)),
        _ => Err(ConfigError {
            variable: RETRY_BUDGET_MS,
            message: format!("`{value}` is not a number of milliseconds from 0 to 900000"),
        }),
    }
}

/// When a call must stop retrying: its budget from now, and never past the invocation's deadline.
#[derive(Debug)]
pub struct RetryBudget {
    per_call: Duration,
    deadline: Mutex<Option<Instant>>,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget::new(DEFAULT_RETRY_BUDGET)
    }
}

impl RetryBudget {
    pub fn new(per_call: Duration) -> Self {
        RetryBudget {
            per_call,
            deadline: Mutex::new(None),
        }
    }

    /// The Lambda sets this for each invocation: no retry pause ends after it.
    pub fn set_deadline(&self, deadline: Option<Instant>) {
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner()) = deadline;
    }

    fn until(&self, now: Instant) -> Instant {
        let own = now + self.per_call;
        match *self.deadline.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(deadline) => deadline.min(own),
            None => own,
        }
    }

    /// Runs `op`, again after a pause while it fails transiently and the budget allows.
    ///
    /// Each try is boxed: an SDK call's future is several KiB, and an idle caller (a sweep
    /// between its listing and its keys, a page's decisions waiting their turn) would otherwise
    /// hold room for every call it might make. Boxed, it is held only while in flight.
    pub async fn run<T, F, Fut>(&self, mut op: F) -> AwsResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = AwsResult<T>>,
    {
        let until = self.until(Instant::now());
        let mut tries = 0u32;
        loop {
            match Box::pin(op()).await {
                Err(AwsError::Transient(message)) => {
                    let wait = pause(tries);
                    tries += 1;
                    if Instant::now() + wait >= until {
                        return Err(AwsError::Transient(if tries > 1 {
                            format!("{message} (still failing after {tries} tries)")
                        } else {
                            message
                        }));
                    }
                    tracing::debug!(tries, ?wait, "transient aws failure, retrying: {message}");
                    tokio::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }
}

/// The pause after the `tries`-th failure: doubling from [`FIRST_PAUSE`] up to [`LONGEST_PAUSE`],
/// half of it fixed and half random, so that concurrent callers that were throttled together do
/// not come back together.
fn pause(tries: u32) -> Duration {
    let full = FIRST_PAUSE
        .saturating_mul(1u32 << tries.min(16))
        .min(LONGEST_PAUSE);
    let half = full / 2;
    half + half.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn pauses_grow_with_jitter_up_to_the_longest() {
        for tries in 0..20 {
            let full = FIRST_PAUSE
                .saturating_mul(1 << tries.min(16))
                .min(LONGEST_PAUSE);
            let p = pause(tries);
            assert!(p >= full / 2 && p <= full, "{tries}: {p:?}");
        }
        assert_ne!(
            (0..10).map(|_| pause(5)).collect::<Vec<_>>(),
            vec![pause(5); 10]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_transient_failure_is_retried_until_it_clears() {
        let calls = AtomicUsize::new(0);
        let budget = RetryBudget::new(Duration::from_secs(30));
        let result = budget
            .run(|| async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0..=4 => Err(AwsError::Transient("ThrottlingException".into())),
                    _ => Ok(7),
                }
            })
            .await;
        assert_eq!(result, Ok(7));
        assert_eq!(calls.load(Ordering::SeqCst), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_and_the_deadline_end_the_retries() {
        let budget = RetryBudget::new(Duration::from_secs(10));
        let started = Instant::now();
        let calls = AtomicUsize::new(0);
        let result: AwsResult<()> = budget
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(AwsError::Transient("ThrottlingException".into()))
            })
            .await;
        assert!(matches!(result, Err(AwsError::Transient(m)) if m.contains("still failing")));
        assert!(started.elapsed() <= Duration::from_secs(10));
        assert!(calls.load(Ordering::SeqCst) > 3);

        // A deadline nearer than the budget wins.
        budget.set_deadline(Some(Instant::now() + Duration::from_millis(500)));
        let started = Instant::now();
        let _: AwsResult<()> = budget
            .run(|| async { Err(AwsError::Transient("503".into())) })
            .await;
        assert!(started.elapsed() <= Duration::from_millis(500));

        // Permanent failures are not retried.
        let calls = AtomicUsize::new(0);
        let result: AwsResult<()> = RetryBudget::default()
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(AwsError::AccessDenied("no".into()))
            })
            .await;
        assert!(matches!(result, Err(AwsError::AccessDenied(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn the_budget_is_validated_and_named() {
        let at = |v: &str| {
            let v = v.to_owned();
            retry_budget(move |_| Some(v.clone()))
        };
        assert_eq!(retry_budget(|_| None).unwrap(), DEFAULT_RETRY_BUDGET);
        assert_eq!(at("0").unwrap(), Duration::ZERO);
        assert_eq!(at("1500").unwrap(), Duration::from_millis(1500));
        for bad in ["-1", "soon", "900001", "1.5"] {
            let err = at(bad).unwrap_err();
            assert_eq!(err.variable, RETRY_BUDGET_MS, "{bad}");
        }
    }
}
