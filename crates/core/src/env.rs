//! Where time and randomness come from. Production uses the system clock and the OS's
//! random source; tests pass a [`ManualClock`] and a seeded generator, so every id and
//! timestamp a test sees is the same on every run.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use rand::{RngCore, SeedableRng, rngs::StdRng};

/// A source of wall-clock time.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
    }
}

/// A clock that only moves when told to; each reading advances it by one millisecond so
/// that successive events stay ordered.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock reading `start_ms` first.
    pub fn new(start_ms: i64) -> Self {
        Self(AtomicI64::new(start_ms))
    }

    /// Moves the clock forward.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.fetch_add(1, Ordering::SeqCst)
    }
}

/// Time and randomness for a [`crate::Replica`].
pub struct Env {
    /// Wall-clock time.
    pub clock: Arc<dyn Clock>,
    /// Random bytes for keys and ids.
    pub rng: Box<dyn RngCore + Send>,
}

impl Env {
    /// The system clock and the operating system's random source.
    pub fn system() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            rng: Box::new(StdRng::from_os_rng()),
        }
    }

    /// A manual clock starting at `start_ms` and a generator seeded with `seed`.
    pub fn deterministic(seed: u64, start_ms: i64) -> Self {
        Self {
            clock: Arc::new(ManualClock::new(start_ms)),
            rng: Box::new(StdRng::seed_from_u64(seed)),
        }
    }

    /// `n` random bytes.
    pub fn random_bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut bytes = [0; N];
        self.rng.fill_bytes(&mut bytes);
        bytes
    }
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env").finish_non_exhaustive()
    }
}
