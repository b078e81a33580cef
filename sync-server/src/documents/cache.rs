//! Documents kept in memory: least recently used first out, within a count and a budget of
//! stored bytes. A document is taken out while someone works on it and put back after, so
//! a refused message's half-changed copy is simply dropped (the store keeps the truth).

use std::num::NonZeroUsize;

use automerge::AutoCommit;
use lru::LruCache;
use social_sync_protocol::DocId;

/// A document as held in memory.
pub(crate) struct Held {
    /// The document.
    pub(crate) am: AutoCommit,
    /// The bytes it takes in the store.
    pub(crate) weight: u64,
    /// The store's version of it this copy is (see `RelayStore::version`; only checked
    /// when other relay nodes share the store).
    pub(crate) version: u64,
}

/// The cache. Callers hold it only to take or put (never while Automerge works).
pub(crate) struct DocCache {
    /// Documents held.
    docs: LruCache<DocId, Held>,
    /// Sum of the cached documents' weights.
    bytes: u64,
    /// The most `bytes` may reach before the least recently used are dropped.
    max_bytes: u64,
}

impl DocCache {
    /// At most `max_docs` documents and `max_bytes` stored bytes.
    pub(crate) fn new(max_docs: usize, max_bytes: u64) -> Self {
        let cap = NonZeroUsize::new(max_docs.max(1)).unwrap_or(NonZeroUsize::MIN);
        Self {
            docs: LruCache::new(cap),
            bytes: 0,
            max_bytes,
        }
    }

    /// Stored bytes of the documents held.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Takes `doc` out.
    pub(crate) fn take(&mut self, doc: &DocId) -> Option<Held> {
        let held = self.docs.pop(doc)?;
        self.bytes = self.bytes.saturating_sub(held.weight);
        Some(held)
    }

    /// Whether `doc` is held.
    pub(crate) fn contains(&self, doc: &DocId) -> bool {
        self.docs.contains(doc)
    }

    /// `f` of `doc` if it is held (without moving it in the LRU order).
    pub(crate) fn peek<T>(&self, doc: &DocId, f: impl FnOnce(&AutoCommit) -> T) -> Option<T> {
        self.docs.peek(doc).map(|held| f(&held.am))
    }

    /// Puts `doc` back, dropping the least recently used ones while over the byte budget (a
    /// document larger than the whole budget is not kept at all).
    pub(crate) fn put(&mut self, doc: &DocId, held: Held) {
        let weight = held.weight;
        if weight > self.max_bytes {
            return;
        }
        if let Some((_, old)) = self.docs.push(doc.clone(), held) {
            self.bytes = self.bytes.saturating_sub(old.weight);
        }
        self.bytes += weight;
        while self.bytes > self.max_bytes {
            match self.docs.pop_lru() {
                Some((_, old)) => self.bytes = self.bytes.saturating_sub(old.weight),
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use social_sync_protocol::UserId;

    fn doc(n: u8) -> DocId {
        DocId::User(UserId::from_bytes([n; 32]))
    }

    fn held(weight: u64) -> Held {
        Held {
            am: AutoCommit::new(),
            weight,
            version: 0,
        }
    }

    #[test]
    fn the_byte_budget_drops_the_least_recently_used() {
        let mut cache = DocCache::new(10, 100);
        cache.put(&doc(1), held(60));
        cache.put(&doc(2), held(30));
        assert_eq!(cache.bytes(), 90);
        cache.put(&doc(3), held(30));
        assert!(!cache.contains(&doc(1)), "the oldest went");
        assert_eq!(cache.bytes(), 60);
        cache.put(&doc(4), held(101));
        assert!(!cache.contains(&doc(4)), "larger than the budget: not kept");
        assert_eq!(cache.take(&doc(2)).unwrap().weight, 30);
        assert_eq!(cache.bytes(), 30);
    }
}
