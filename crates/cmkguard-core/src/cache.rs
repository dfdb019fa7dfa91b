//! Key facts cached in the warm process: whether a key is AWS managed never changes, so that is
//! kept for good; the state of a customer managed key is kept for a few minutes only.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::facts::{KeyFacts, KeyManager};
use crate::ports::Scope;

/// How long a customer managed key's state is trusted (the contract allows at most 5 minutes).
pub const STATE_TTL: Duration = Duration::from_secs(300);

#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<(Scope, String), (KeyFacts, Instant)>>,
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
}
