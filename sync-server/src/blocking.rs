//! The one way the relay's async code hands blocking work (SQLite calls, Automerge merges and
//! sync messages) to tokio's blocking threads, so the async workers (one per core) keep
//! reading and writing sockets while documents are worked on. A worker that panicked or was
//! cancelled is a [`StoreError::Task`]: the client is told `internal`, the relay goes on.

use crate::store::StoreError;

/// Runs `work` on a blocking thread and waits for its result.
pub async fn run<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Task(e.to_string()))
}
