//! Which relay of a [`super::RelayList`] to try next, and when.
//!
//! Round robin from the last good relay: a relay that cannot be reached, refuses, or
//! loses the connection is followed at once by the next one in the list; only when a whole
//! round (every relay once) has failed does the engine wait, with exponential backoff and
//! jitter, and then starts the next round from the last relay that worked. With one relay
//! every failure ends a round: the backoff applies between tries, as it always did.
//!
//! The jitter is seeded (from the engine's instance, drawn from the profile's randomness),
//! so the waits are the same on every run of a test.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// The first wait after a failed round.
const MIN_DELAY: Duration = Duration::from_millis(250);

/// A walk through the relay list for one run of the engine (or one one-shot sync).
#[derive(Debug)]
pub(super) struct Rotation {
    len: usize,
    /// The relay being tried, or connected.
    at: usize,
    /// The last relay that worked: where each round starts.
    good: usize,
    /// Failures since the round began.
    failed: usize,
    max_delay: Duration,
    seed: u64,
    backoff: ExponentialBackoff,
}

impl Rotation {
    /// A walk through `len` relays starting at `good` (the last one that worked), waiting
    /// at most `max_delay` between rounds, its jitter drawn from `seed`.
    pub(super) fn new(len: usize, good: usize, max_delay: Duration, seed: u64) -> Self {
        let len = len.max(1);
        Self {
            len,
            at: good % len,
            good: good % len,
            failed: 0,
            max_delay,
            seed,
            backoff: backoff(max_delay, seed),
        }
    }

    /// The index of the relay to try now.
    pub(super) fn current(&self) -> usize {
        self.at
    }

    /// The current relay answered: it is the last good one, and a new round begins there.
    pub(super) fn connected(&mut self) {
        self.good = self.at;
        self.failed = 0;
    }

    /// The current relay failed. `None`: try the next one now. `Some(delay)`: every relay
    /// of the round failed; wait `delay`, then begin again from the last good one.
    pub(super) fn failed(&mut self) -> Option<Duration> {
        self.failed += 1;
        if self.failed < self.len {
            self.at = (self.at + 1) % self.len;
            return None;
        }
        self.failed = 0;
        self.at = self.good;
        Some(self.backoff.next().unwrap_or(self.max_delay))
    }

    /// Starts the backoff over (after a connection that lasted).
    pub(super) fn reset_backoff(&mut self) {
        self.backoff = backoff(self.max_delay, self.seed);
    }
}

fn backoff(max_delay: Duration, seed: u64) -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(MIN_DELAY)
        .with_max_delay(max_delay)
        .with_jitter()
        .with_jitter_seed(seed)
        .without_max_times()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_secs(30);

    /// The relays tried and the waits, for `failures` failures in a row.
    fn walk(rotation: &mut Rotation, failures: usize) -> (Vec<usize>, Vec<Option<Duration>>) {
        let mut tried = Vec::new();
        let mut waits = Vec::new();
        for _ in 0..failures {
            tried.push(rotation.current());
            waits.push(rotation.failed());
        }
        (tried, waits)
    }

    #[test]
    fn the_next_relay_is_tried_at_once_and_a_failed_round_waits() {
        let mut rotation = Rotation::new(3, 0, MAX, 7);
        let (tried, waits) = walk(&mut rotation, 6);
        assert_eq!(tried, [0, 1, 2, 0, 1, 2]);
        assert!(waits[0].is_none() && waits[1].is_none(), "{waits:?}");
        assert!(waits[3].is_none() && waits[4].is_none(), "{waits:?}");
        let (first, second) = (waits[2].unwrap(), waits[5].unwrap());
        assert!(first >= MIN_DELAY && first <= MIN_DELAY * 2, "{first:?}");
        assert!(
            second > first,
            "the backoff grows: {first:?}, then {second:?}"
        );
    }

    #[test]
    fn a_round_starts_from_the_last_good_relay_and_moves_on_when_it_is_lost() {
        let mut rotation = Rotation::new(3, 0, MAX, 7);
        assert_eq!(rotation.failed(), None);
        assert_eq!(rotation.current(), 1);
        rotation.connected();
        // Relay 1 is lost: the reconnect goes to relay 2, then 0; then the round has
        // failed and the next one starts from relay 1 again.
        let (tried, waits) = walk(&mut rotation, 4);
        assert_eq!(tried, [1, 2, 0, 1]);
        assert_eq!(&waits[..2], [None, None]);
        assert!(waits[2].is_some() && waits[3].is_none(), "{waits:?}");
        assert_eq!(rotation.current(), 2);
    }

    #[test]
    fn one_relay_waits_after_every_failure_as_before() {
        let mut rotation = Rotation::new(1, 0, MAX, 7);
        let (tried, waits) = walk(&mut rotation, 8);
        assert_eq!(tried, [0; 8]);
        let waits: Vec<Duration> = waits.into_iter().map(Option::unwrap).collect();
        assert!(waits.windows(2).all(|w| w[0] <= w[1]), "{waits:?}");
        // The jitter adds up to the delay itself, at the cap too (as backon does).
        assert!(*waits.last().unwrap() <= MAX * 2, "{waits:?}");
        rotation.reset_backoff();
        assert!(rotation.failed().unwrap() <= MIN_DELAY * 2);
    }

    #[test]
    fn the_waits_are_the_same_for_the_same_seed() {
        let waits = |seed| walk(&mut Rotation::new(2, 1, MAX, seed), 10).1;
        assert_eq!(waits(42), waits(42));
        assert_ne!(waits(42), waits(43));
    }
}
