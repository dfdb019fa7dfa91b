//! What the warm process knows about keys: their facts (`DescribeKey`) and the review of their
//! policy and grants. Whether a key is AWS managed never changes, so that is kept for good; the
//! rest (a customer managed key's state, its review) is kept for a few minutes only. Secrets
//! decided concurrently share one read per key: the first caller reads, the others wait for its
//! answer. Both are bounded: a warm process serving a whole organization keeps the keys it used
//! last, not every key it has seen.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::bounded::Bounded;
use crate::facts::{KeyFacts, KeyManager};
use crate::keypolicy::KeyReview;
use crate::ports::{AwsResult, Scope};

/// What may be cached about a key.
pub trait Cached: Clone {
    /// Kept for good (never changes), rather than for [`STATE_TTL`].
    fn lasts(&self) -> bool {
        false
    }
}

impl Cached for KeyFacts {
    fn lasts(&self) -> bool {
        self.manager == KeyManager::Aws
    }
}

impl Cached for KeyReview {}

/// How long a customer managed key's state, or its review, is trusted (the contract allows at
/// most 5 minutes).
pub const STATE_TTL: Duration = Duration::from_secs(300);

/// How many keys (as a scope names them) a process keeps: an organization's worth of accounts in
/// flight, each with a few keys, and the designated key of each of their regions.
pub const CAPACITY: usize = 2048;

/// A key as a scope names it.
type KeyRef = (Scope, String);

pub struct KeyCache<V = KeyFacts> {
    entries: Mutex<Bounded<KeyRef, (V, Instant)>>,
    /// One lock per key being looked up, removed when the last lookup of it ends (see [`Gate`]).
    in_flight: Gates,
}

impl<V: Cached> Default for KeyCache<V> {
    fn default() -> Self {
        KeyCache::new(CAPACITY)
    }
}

impl<V: Cached> KeyCache<V> {
    pub fn new(capacity: usize) -> Self {
        KeyCache {
            entries: Mutex::new(Bounded::new(capacity)),
            in_flight: Mutex::default(),
        }
    }

    pub fn get(&self, scope: &Scope, key_id: &str) -> Option<V> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (facts, at) = entries.get(&(scope.clone(), key_id.to_owned()))?;
        let fresh = facts.lasts() || at.elapsed() < STATE_TTL;
        fresh.then(|| facts.clone())
    }

    pub fn put(&self, scope: &Scope, key_id: &str, facts: &V) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.insert(
            (scope.clone(), key_id.to_owned()),
            (facts.clone(), Instant::now()),
        );
    }

    /// Drops what is held about the key (a key event: it is read again).
    pub fn forget(&self, scope: &Scope, key_id: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(&(scope.clone(), key_id.to_owned()));
    }

    /// The cached facts, or those `describe` finds (cached when found); one `describe` at a time
    /// per key, so concurrent callers do not describe the same key twice.
    pub async fn get_or_describe<F, Fut>(
        &self,
        scope: &Scope,
        key_id: &str,
        describe: F,
    ) -> AwsResult<V>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = AwsResult<V>>,
    {
        if let Some(facts) = self.get(scope, key_id) {
            return Ok(facts);
        }
        let gate = Gate::enter(&self.in_flight, (scope.clone(), key_id.to_owned()));
        let _turn = gate.turn().await;
        match self.get(scope, key_id) {
            Some(facts) => Ok(facts),
            None => describe()
                .await
                .inspect(|facts| self.put(scope, key_id, facts)),
        }
    }

    /// How many keys are held, and how many are being described (for tests of the bounds).
    #[cfg(test)]
    pub fn sizes(&self) -> (usize, usize) {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner()).len();
        let in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len();
        (entries, in_flight)
    }
}

/// The gate of each key being looked up, with how many lookups hold it.
type Gates = Mutex<HashMap<KeyRef, (Arc<tokio::sync::Mutex<()>>, usize)>>;

/// A lookup's hold on its key's gate. Dropped when the lookup ends, or when it is cancelled
/// midway (a timeout drops the future), the last hold removes the gate: the map keeps only the
/// keys being looked up.
struct Gate<'a> {
    gates: &'a Gates,
    key: KeyRef,
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl<'a> Gate<'a> {
    fn enter(gates: &'a Gates, key: KeyRef) -> Self {
        let mut map = gates.lock().unwrap_or_else(|e| e.into_inner());
        let (gate, holders) = map.entry(key.clone()).or_default();
        *holders += 1;
        let gate = Arc::clone(gate);
        Gate { gates, key, gate }
    }

    /// Waits for the lookups before this one to end.
    async fn turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.gate.lock().await
    }
}

impl Drop for Gate<'_> {
    fn drop(&mut self) {
        let mut map = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, holders)) = map.get_mut(&self.key) {
            *holders -= 1;
            if *holders == 0 {
                map.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::KeyState;

    #[tokio::test]
    async fn the_cache_keeps_the_keys_used_last_and_no_gate_behind() {
        let cache: KeyCache = KeyCache::new(8);
        for account in 0..100u32 {
            let scope = Scope::new(format!("{account:012}"), "us-east-1");
            let facts = cache
                .get_or_describe(&scope, "k", || async {
                    Ok(KeyFacts::customer("arn:k", KeyState::Enabled))
                })
                .await
                .unwrap();
            assert_eq!(facts.arn, "arn:k");
        }
        assert_eq!(cache.sizes(), (8, 0));
        let last = Scope::new(format!("{:012}", 99), "us-east-1");
        assert!(cache.get(&last, "k").is_some());
        assert!(
            cache
                .get(&Scope::new(format!("{:012}", 0), "us-east-1"), "k")
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_cancelled_lookup_leaves_no_gate_behind() {
        let cache: KeyCache = KeyCache::new(8);
        let scope = Scope::new("111111111111", "us-east-1");
        let found = || async { Ok(KeyFacts::customer("arn:k", KeyState::Enabled)) };
        // The first lookup describes and never finishes; the second waits for it at the gate.
        let mut lookups = Box::pin(futures_util::future::join(
            cache.get_or_describe(&scope, "k", std::future::pending),
            cache.get_or_describe(&scope, "k", found),
        ));
        let timeout = Duration::from_millis(20);
        assert!(tokio::time::timeout(timeout, &mut lookups).await.is_err());
        assert_eq!(cache.sizes(), (0, 1), "both lookups hold one gate");
        // Cancelled, as a timeout around the lookups cancels them.
        drop(lookups);
        assert_eq!(cache.sizes(), (0, 0));
        let facts = cache.get_or_describe(&scope, "k", found).await.unwrap();
        assert_eq!(facts.arn, "arn:k");
        assert_eq!(cache.sizes(), (1, 0));
    }
}
