//! Which connections each recent bus message reached here, so a message that comes on
//! several channels (its owner's and its document's) is queued on each connection once.
//! Bounded twice: in messages remembered and in connection numbers held in all (a busy
//! author's message may reach tens of thousands of connections on one node).

use std::collections::HashSet;
use std::num::NonZeroUsize;

use lru::LruCache;

use crate::hub::ConnId;

/// A message: (origin node, its number there).
type Key = (u64, u64);

/// The memory of recent messages.
pub(super) struct Seen {
    messages: LruCache<Key, HashSet<ConnId>>,
    held: usize,
    max_held: usize,
}

impl Seen {
    /// Remembers at most `max_messages` messages and `max_held` connection numbers.
    pub(super) fn new(max_messages: usize, max_held: usize) -> Self {
        Self {
            messages: LruCache::new(NonZeroUsize::new(max_messages).unwrap_or(NonZeroUsize::MIN)),
            held: 0,
            max_held,
        }
    }

    /// Whether `key` was not seen yet.
    pub(super) fn is_new(&self, key: Key) -> bool {
        self.messages.peek(&key).is_none()
    }

    /// Runs `deliver` with the connections `key` reached so far (it adds those it queues
    /// on), then forgets the oldest messages while over either bound.
    pub(super) fn deliver(&mut self, key: Key, deliver: impl FnOnce(&mut HashSet<ConnId>)) {
        if self.messages.len() == self.messages.cap().get()
            && !self.messages.contains(&key)
            && let Some((_, old)) = self.messages.pop_lru()
        {
            self.held -= old.len();
        }
        let done = self.messages.get_or_insert_mut(key, HashSet::new);
        let before = done.len();
        deliver(done);
        self.held += done.len() - before;
        while self.held > self.max_held && self.messages.len() > 1 {
            match self.messages.pop_lru() {
                Some((_, old)) => self.held -= old.len(),
                None => break,
            }
        }
    }

    /// Connection numbers held now.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_reaches_a_connection_once_and_memory_stays_bounded() {
        let mut seen = Seen::new(3, 10);
        seen.deliver((1, 1), |d| {
            assert!(d.insert(7));
        });
        seen.deliver((1, 1), |d| {
            assert!(
                !d.insert(7),
                "the same message, the same connection: not again"
            );
        });
        assert!(!seen.is_new((1, 1)));
        for n in 2..6 {
            seen.deliver((1, n), |d| {
                d.insert(n);
            });
        }
        assert!(
            seen.is_new((1, 1)),
            "past three messages the oldest is forgotten"
        );
        assert_eq!(seen.held(), 3);
        seen.deliver((2, 1), |d| d.extend(100..120));
        assert_eq!(
            seen.held(),
            20,
            "over the bound, older messages go; the newest stays"
        );
        assert!(seen.is_new((1, 5)));
    }
}
