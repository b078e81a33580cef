//! One lock per document: work on one document waits for earlier work on the same
//! document, never for other documents (the relay's Automerge work runs on every core).

use std::collections::HashSet;
use std::sync::{Condvar, Mutex, PoisonError};

use social_sync_protocol::DocId;

/// Documents being worked on now.
#[derive(Default)]
pub(crate) struct DocLocks {
    busy: Mutex<HashSet<DocId>>,
    freed: Condvar,
}

/// Held while a document is worked on; frees it when dropped.
pub(crate) struct DocGuard<'a> {
    locks: &'a DocLocks,
    doc: DocId,
}

impl DocLocks {
    /// Waits until nobody works on `doc`, then marks it busy until the guard drops.
    pub(crate) fn lock(&self, doc: &DocId) -> DocGuard<'_> {
        let mut busy = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        while busy.contains(doc) {
            busy = self
                .freed
                .wait(busy)
                .unwrap_or_else(PoisonError::into_inner);
        }
        busy.insert(doc.clone());
        DocGuard {
            locks: self,
            doc: doc.clone(),
        }
    }
}

impl Drop for DocGuard<'_> {
    fn drop(&mut self) {
        let mut busy = self
            .locks
            .busy
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        busy.remove(&self.doc);
        drop(busy);
        self.locks.freed.notify_all();
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
    }
}
