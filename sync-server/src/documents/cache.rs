//! Documents kept in memory: least recently used first out, within a count and a budget of
//! stored bytes. A document is taken out while someone works on it and put back after, so
//! a refused message's half-changed copy is simply dropped (the store keeps the truth).

use std::num::NonZeroUsize;

use automerge::AutoCommit;
use lru::LruCache;
use social_sync_protocol::DocId;

/// The cache. Callers hold it only to take or put (never while Automerge works).
pub(crate) struct DocCache {
    /// Documents, each with its weight: the bytes it takes in the store.
    docs: LruCache<DocId, (AutoCommit, u64)>,
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

    /// Takes `doc` out, with its weight.
    pub(crate) fn take(&mut self, doc: &DocId) -> Option<(AutoCommit, u64)> {
        let (am, weight) = self.docs.pop(doc)?;
        self.bytes = self.bytes.saturating_sub(weight);
        Some((am, weight))
    }

    /// Whether `doc` is held.
    pub(crate) fn contains(&self, doc: &DocId) -> bool {
        self.docs.contains(doc)
    }

    /// `f` of `doc` if it is held (without moving it in the LRU order).
    pub(crate) fn peek<T>(&self, doc: &DocId, f: impl FnOnce(&AutoCommit) -> T) -> Option<T> {
        self.docs.peek(doc).map(|(am, _)| f(am))
    }

    /// Puts `doc` back, dropping the least recently used ones while over the byte budget (a
    /// document larger than the whole budget is not kept at all).
    pub(crate) fn put(&mut self, doc: &DocId, am: AutoCommit, weight: u64) {
        if weight > self.max_bytes {
            return;
        }
        if let Some((_, (_, old))) = self.docs.push(doc.clone(), (am, weight)) {
            self.bytes = self.bytes.saturating_sub(old);
        }
        self.bytes += weight;
        while self.bytes > self.max_bytes {
            match self.docs.pop_lru() {
                Some((_, (_, w))) => self.bytes = self.bytes.saturating_sub(w),
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

    #[test]
    fn the_byte_budget_drops_the_least_recently_used() {
        let mut cache = DocCache::new(10, 100);
        cache.put(&doc(1), AutoCommit::new(), 60);
        cache.put(&doc(2), AutoCommit::new(), 30);
        assert_eq!(cache.bytes(), 90);
        cache.put(&doc(3), AutoCommit::new(), 30);
        assert!(!cache.contains(&doc(1)), "the oldest went");
        assert_eq!(cache.bytes(), 60);
        cache.put(&doc(4), AutoCommit::new(), 101);
        assert!(!cache.contains(&doc(4)), "larger than the budget: not kept");
        assert_eq!(cache.take(&doc(2)).unwrap().1, 30);
        assert_eq!(cache.bytes(), 30);
    }
}
