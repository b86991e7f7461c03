//! A small time-bounded cache for read-mostly data kept per isolate (ARCHITECTURE.md: upstreams
//! are "cached per isolate"). Pure: the caller passes the clock. Nothing that must be exact
//! (keys, revocation, tokens) goes through it; those live in the subject's Durable Object.

use std::collections::HashMap;

pub struct TtlCache<V> {
    ttl_ms: u64,
    capacity: usize,
    entries: HashMap<String, (u64, V)>,
    /// Bumped by every write, so a read that started before it cannot store what it read.
    generation: u64,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(ttl_ms: u64, capacity: usize) -> Self {
        TtlCache { ttl_ms, capacity, entries: HashMap::new(), generation: 0 }
    }

    /// The value stored for `key` less than the TTL ago.
    pub fn get(&self, key: &str, now_ms: u64) -> Option<V> {
        match self.entries.get(key) {
            Some((stored, v)) if now_ms.saturating_sub(*stored) < self.ttl_ms && now_ms >= *stored => {
                Some(v.clone())
            }
            _ => None,
        }
    }

    /// Taken before reading from the source; hand it to `fill`.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Stores what a read found, unless something was written since the read began (its answer
    /// may be older than that write).
    pub fn fill(&mut self, key: &str, value: V, now_ms: u64, read_began: u64) {
        if read_began == self.generation {
            self.insert(key, value, now_ms);
        }
    }

    /// Stores what was just written (`None`-like values for a deletion).
    pub fn write(&mut self, key: &str, value: V, now_ms: u64) {
        self.generation += 1;
        self.insert(key, value, now_ms);
    }

    /// When full, expired entries go first, then everything (a cache this small refills in one
    /// request per entry).
    fn insert(&mut self, key: &str, value: V, now_ms: u64) {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(key) {
            let ttl = self.ttl_ms;
            self.entries.retain(|_, (stored, _)| now_ms.saturating_sub(*stored) < ttl);
            if self.entries.len() >= self.capacity {
                self.entries.clear();
            }
        }
        self.entries.insert(key.to_string(), (now_ms, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_live_for_the_ttl_only() {
        let mut c = TtlCache::new(1_000, 4);
        c.fill("a", 1, 10_000, c.generation());
        assert_eq!(c.get("a", 10_000), Some(1));
        assert_eq!(c.get("a", 10_999), Some(1));
        assert_eq!(c.get("a", 11_000), None);
        assert_eq!(c.get("b", 10_000), None);
    }

    #[test]
    fn a_clock_that_goes_back_misses() {
        let mut c = TtlCache::new(1_000, 4);
        c.fill("a", 1, 10_000, 0);
        assert_eq!(c.get("a", 9_999), None);
    }

    #[test]
    fn a_write_wins_over_a_read_that_began_before_it() {
        let mut c = TtlCache::new(1_000, 4);
        let read_began = c.generation();
        c.write("a", Some("new"), 5);
        c.fill("a", Some("old"), 6, read_began);
        assert_eq!(c.get("a", 7), Some(Some("new")));
        c.write("a", None, 8);
        assert_eq!(c.get("a", 9), Some(None), "a deletion is cached as absent");
        let read_began = c.generation();
        c.fill("b", Some("read"), 10, read_began);
        assert_eq!(c.get("b", 11), Some(Some("read")));
    }

    #[test]
    fn never_grows_past_its_capacity() {
        let mut c = TtlCache::new(1_000, 3);
        for i in 0..3 {
            c.fill(&i.to_string(), i, 0, 0);
        }
        c.fill("late", 9, 2_000, 0); // the others have expired: they go
        assert_eq!(c.entries.len(), 1);
        for i in 0..10 {
            c.fill(&format!("k{i}"), i, 2_001, 0);
            assert!(c.entries.len() <= 3);
        }
        c.write("k9", 10, 2_002); // replacing an entry never evicts
        assert_eq!(c.get("k9", 2_002), Some(10));
    }
}
