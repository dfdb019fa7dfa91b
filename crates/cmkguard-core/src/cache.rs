//! Key facts cached in the warm process: whether a key is AWS managed never changes, so that is
//! kept for good; the state of a customer managed key is kept for a few minutes only. Secrets
//! decided concurrently share one `DescribeKey` per key: the first caller describes, the others
//! wait for its answer.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::facts::{KeyFacts, KeyManager};
use crate::ports::{AwsResult, Scope};

/// How long a customer managed key's state is trusted (the contract allows at most 5 minutes).
pub const STATE_TTL: Duration = Duration::from_secs(300);

/// A key as a scope names it.
type KeyRef = (Scope, String);

#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<KeyRef, (KeyFacts, Instant)>>,
    /// One lock per key, held while it is being described.
    in_flight: Mutex<HashMap<KeyRef, Arc<tokio::sync::Mutex<()>>>>,
}

impl KeyCache {
    pub fn get(&self, scope: &Scope, key_id: &str) -> Option<KeyFacts> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (facts, at) = entries.get(&(scope.clone(), key_id.to_owned()))?;
        let fresh = facts.manager == KeyManager::Aws || at.elapsed() < STATE_TTL;
        fresh.then(|| facts.clone())
    }

    pub fn put(&self, scope: &Scope, key_id: &str, facts: &KeyFacts) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.insert(
            (scope.clone(), key_id.to_owned()),
            (facts.clone(), Instant::now()),
        );
    }

    /// The cached facts, or those `describe` finds (cached when found); one `describe` at a time
    /// per key, so concurrent callers do not describe the same key twice.
    pub async fn get_or_describe<F, Fut>(
        &self,
        scope: &Scope,
        key_id: &str,
        describe: F,
    ) -> AwsResult<KeyFacts>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = AwsResult<KeyFacts>>,
    {
        if let Some(facts) = self.get(scope, key_id) {
            return Ok(facts);
        }
        let gate = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(
                in_flight
                    .entry((scope.clone(), key_id.to_owned()))
                    .or_default(),
            )
        };
        let _turn = gate.lock().await;
        if let Some(facts) = self.get(scope, key_id) {
            return Ok(facts);
        }
        let facts = describe().await?;
        self.put(scope, key_id, &facts);
        Ok(facts)
    }
}
