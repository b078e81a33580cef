//! A one-shot sync ([`SyncEngine::sync_once`]) and the connection of a one-off question
//! asked without a running session: each tries every relay of the list, from the last
//! one that answered, before giving up.

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

use super::error::{crashed, retry_one_shot};
use super::session::{Mode, Session};
use super::{Link, ONE_SHOT_ATTEMPTS, ONE_SHOT_MAX_DELAY, SyncEngine, SyncError, SyncSummary};

impl SyncEngine {
    /// The error for a round in which every relay failed: with one relay, its own.
    pub(super) fn every_relay_failed(mut failures: Vec<(String, SyncError)>) -> SyncError {
        if failures.len() == 1
            && let Some((_, e)) = failures.pop()
        {
            return e;
        }
        SyncError::EveryRelayFailed { failures }
    }

    /// Connects to the first relay that answers, from the last one that did, trying each
    /// once: one-off questions asked without a running session.
    pub(super) async fn connect(&self) -> Result<Link, SyncError> {
        let mut rotation = self.rotation(ONE_SHOT_MAX_DELAY);
        let mut failures = Vec::new();
        loop {
            let url = self.relays.get(rotation.current()).to_owned();
            match self.connect_to(&url).await {
                Ok(link) => {
                    self.answered(&mut rotation);
                    return Ok(link);
                }
                Err(e @ SyncError::Local(_)) => return Err(e),
                Err(e) => {
                    tracing::info!(relay = %url, error = %e, "relay not usable");
                    failures.push((url, e));
                    if rotation.failed().is_some() {
                        return Err(Self::every_relay_failed(failures));
                    }
                }
            }
        }
    }

    /// Connects, syncs until both sides hold the same documents, and disconnects. Each
    /// relay of the list is tried in turn (from the last that answered) before giving up.
    /// When every relay failed and one of them had connected and then lost (or cut) the
    /// connection, the whole round is tried again with backoff, up to
    /// [`ONE_SHOT_ATTEMPTS`] rounds in all, then [`SyncError::GaveUp`]; otherwise it fails
    /// at once (one relay: its own error, such as [`SyncError::Unreachable`]; several:
    /// [`SyncError::EveryRelayFailed`]).
    pub async fn sync_once(&self) -> Result<SyncSummary, SyncError> {
        let mut rotation = self.rotation(ONE_SHOT_MAX_DELAY);
        let mut rounds = 1;
        let mut failures: Vec<(String, SyncError)> = Vec::new();
        loop {
            let url = self.relays.get(rotation.current()).to_owned();
            let e = match self.sync_one_try(&url).await {
                Ok(summary) => {
                    self.answered(&mut rotation);
                    return Ok(summary);
                }
                Err(e @ SyncError::Local(_)) => return Err(e),
                Err(e) => e,
            };
            tracing::info!(relay = %url, error = %e, "sync with this relay failed");
            failures.push((url, e));
            let Some(delay) = rotation.failed() else {
                continue;
            };
            if !failures.iter().any(|(_, e)| retry_one_shot(e)) {
                return Err(Self::every_relay_failed(failures));
            }
            if rounds >= ONE_SHOT_ATTEMPTS {
                let last = failures.pop().map(|(_, e)| e);
                return Err(SyncError::GaveUp {
                    url: self.relays.to_string(),
                    attempts: rounds,
                    last: Box::new(last.unwrap_or_else(|| SyncError::Lost("no try".into()))),
                });
            }
            rounds += 1;
            failures.clear();
            tracing::info!(?delay, rounds, "sync interrupted; trying again");
            tokio::time::sleep(delay).await;
        }
    }

    async fn sync_one_try(&self, url: &str) -> Result<SyncSummary, SyncError> {
        let once = async {
            let link = self.connect_to(url).await?;
            let mut session = Session::new(self, link);
            session.start().await?;
            session
                .run(Mode::UntilSettled, std::future::pending())
                .await?;
            let mut summary = session.finish().await?;
            summary.relay = url.to_owned();
            Ok(summary)
        };
        AssertUnwindSafe(once)
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Err(crashed(panic.as_ref())))
    }
}
