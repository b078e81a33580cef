//! One lock per document: work on one document waits for earlier work on the same
//! document, never for other documents (the relay's Automerge work runs on every core).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use social_sync_protocol::DocId;
use tokio::sync::OwnedMutexGuard;

/// One queue per document being worked on (or waited for); a document nobody works on has
/// no entry.
///
/// Each document has a lock of its own, first come first served, and only the workers
/// waiting for that document wake when it is freed. (It was one condition variable for all
/// documents: every release woke every waiting worker, and a like storm on one post, a
/// thousand workers waiting for its thread, spent a quarter of the relay's time waking
/// them.)
#[derive(Default)]
pub(crate) struct DocLocks {
    docs: Mutex<HashMap<DocId, Arc<tokio::sync::Mutex<()>>>>,
}

/// Held while a document is worked on; frees it when dropped.
pub(crate) struct DocGuard<'a> {
    locks: &'a DocLocks,
    doc: DocId,
    held: Option<OwnedMutexGuard<()>>,
}

impl DocLocks {
    /// Waits until nobody works on `doc`, then holds it until the guard drops. Called from
    /// the relay's blocking threads (`crate::blocking`), never from async code.
    pub(crate) fn lock(&self, doc: &DocId) -> DocGuard<'_> {
        let queue = Arc::clone(
            self.docs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(doc.clone())
                .or_default(),
        );
        DocGuard {
            locks: self,
            doc: doc.clone(),
            held: Some(queue.blocking_lock_owned()),
        }
    }

    /// Documents with an entry (worked on or waited for), for tests.
    #[cfg(test)]
    fn entries(&self) -> usize {
        self.docs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for DocGuard<'_> {
    fn drop(&mut self) {
        drop(self.held.take());
        // The entry goes once nobody holds or waits for it (clones are taken under the map's
        // lock, so a worker about to wait is counted here).
        let mut docs = self
            .locks
            .docs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if docs
            .get(&self.doc)
            .is_some_and(|q| Arc::strong_count(q) == 1)
        {
            docs.remove(&self.doc);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use social_sync_protocol::UserId;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn one_document_at_a_time_other_documents_alongside() {
        let locks = Arc::new(DocLocks::default());
        let (a, b) = (
            DocId::User(UserId::from_bytes([1; 32])),
            DocId::User(UserId::from_bytes([2; 32])),
        );
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let (locks, a, inside, most) =
                    (locks.clone(), a.clone(), inside.clone(), most.clone());
                std::thread::spawn(move || {
                    let _g = locks.lock(&a);
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        // Another document is never held up by them.
        drop(locks.lock(&b));
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(
            most.load(Ordering::SeqCst),
            1,
            "never two at once on one document"
        );
        assert_eq!(
            locks.entries(),
            0,
            "no entry left for documents nobody works on"
        );
    }
}
