//! A request quota as a token bucket, for the fault proxy's AWS quotas and the stand-in's STS
//! limit: `governor`'s GCRA admits what a token bucket of the same rate and burst admits.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// At most `rate` requests a second, in bursts of at most `burst`; it starts full.
#[derive(Debug)]
pub(crate) struct TokenBucket(DefaultDirectRateLimiter);

impl TokenBucket {
    /// `burst` is rounded to whole requests, at least one; a rate of 0 refills one token in a
    /// million seconds (never, within a test).
    pub(crate) fn new(rate: f64, burst: f64) -> Self {
        let period = Duration::from_secs_f64(1.0 / rate.max(1e-6)).max(Duration::from_nanos(1));
        let burst = NonZeroU32::new(burst.round() as u32).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)
            .expect("a period above zero")
            .allow_burst(burst);
        TokenBucket(RateLimiter::direct(quota))
    }

    /// Takes a token; `false` when the bucket is empty.
    pub(crate) fn admit(&self) -> bool {
        self.0.check().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_a_burst_then_the_rate() {
        let bucket = TokenBucket::new(20.0, 3.0);
        let burst = (0..10).filter(|_| bucket.admit()).count();
        assert_eq!(burst, 3);
        std::thread::sleep(Duration::from_millis(60));
        assert!(bucket.admit(), "a token every 50 ms");
        let never = TokenBucket::new(0.0, 0.0);
        assert!(never.admit());
        assert!(!never.admit());
    }
}
