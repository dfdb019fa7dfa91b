//! A map that holds at most a fixed number of entries, dropping the least recently used one to
//! make room: what a warm process keeps per account, region or key stays bounded however many it
//! has seen. Eviction looks at every entry (capacities are a few hundred, and an insert that
//! evicts is followed by an AWS call that costs far more); no extra crate for it.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

#[derive(Debug)]
pub struct Bounded<K, V> {
    capacity: usize,
    /// Each value with the tick of its last use.
    entries: HashMap<K, (V, u64)>,
    tick: u64,
}

impl<K: Hash + Eq + Clone, V> Bounded<K, V> {
    /// A map of at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        Bounded {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            tick: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// The value of `key`, marked as just used.
    pub fn get<Q>(&mut self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let tick = self.next_tick();
        let (value, used) = self.entries.get_mut(key)?;
        *used = tick;
        Some(value)
    }

    /// Inserts (or replaces) `key`, first dropping the least recently used entry when full.
    pub fn insert(&mut self, key: K, value: V) {
        let tick = self.next_tick();
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(key, (value, tick));
    }

    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.remove(key).map(|(value, _)| value)
    }

    /// Keeps only the entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        self.entries.retain(|k, (v, _)| keep(k, v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_entry_makes_room() {
        let mut map = Bounded::new(2);
        map.insert("a", 1);
        map.insert("b", 2);
        assert_eq!(map.get("a"), Some(&1)); // `b` is now the oldest
        map.insert("c", 3);
        assert_eq!(map.len(), 2);
        assert_eq!(map.get("b"), None);
        assert_eq!(map.get("a"), Some(&1));
        assert_eq!(map.get("c"), Some(&3));
        // Replacing a key does not evict another.
        map.insert("c", 4);
        assert_eq!(map.len(), 2);
        assert_eq!(map.get("a"), Some(&1));
        assert_eq!(map.remove("c"), Some(4));
        map.retain(|k, _| *k != "a");
        assert!(map.is_empty());
        assert_eq!(Bounded::<u8, u8>::new(0).capacity(), 1);
    }

    #[test]
    fn it_never_holds_more_than_its_capacity() {
        let mut map = Bounded::new(100);
        for i in 0..10_000u32 {
            map.insert(i, i);
            assert!(map.len() <= 100);
        }
        // The last hundred are what is left.
        assert!((9_900..10_000).all(|i| map.get(&i) == Some(&i)));
    }
}
