//! The PostgreSQL backend (`--store postgres://…`): the relay's state in a database that
//! several relay nodes may share. Same tables and semantics as the SQLite backend; what
//! differs is said where it is done:
//!
//! - Driver: `postgres`, the blocking client of the rust-postgres project (over
//!   `tokio-postgres`, same authors), because [`RelayStore`] is synchronous and already
//!   runs on tokio's blocking threads ([`crate::blocking`]); an async driver would only be
//!   driven back to blocking with `block_on` there. Pool: `r2d2_postgres`. The store sits
//!   behind one mutex (`documents`), so it holds one connection at a time and the pool
//!   gives no parallelism yet; it hands out a fresh connection when the held one breaks
//!   (PostgreSQL restarted, a network cut), so the relay recovers without a restart.
//! - Group commit: as on SQLite (`group.rs`), plus a cluster-wide writer lock that keeps
//!   news numbers in commit order.
//! - Names: `names.name` is the primary key, so a name is held by one user whichever node
//!   registered it; registration re-checks the holder inside the locked transaction.
//! - News numbers: a PostgreSQL sequence, gap-tolerant (`schema.rs`).
//! - Images: `bytea` rows (`schema.rs` says why).
//! - No TLS to PostgreSQL (`NoTls`): it is meant to be on loopback or a private network.
//! - Reads use the same connection as the open group, so they see staged changes, as on
//!   SQLite; the relay serves nothing staged before its commit. Unlike SQLite, an error
//!   inside a PostgreSQL transaction aborts it: a group so aborted is reported lost.
//! - Durability: sessions run with `synchronous_commit=on` whatever the server's default,
//!   so a COMMIT is on PostgreSQL's disk before the relay answers (as SQLite's
//!   `synchronous=FULL`).
//! - Cost: each statement is prepared and executed (two round trips; no statement cache
//!   yet), so an accept is a dozen or so loopback round trips inside the group.

use std::time::Duration;

use postgres::{Client, NoTls};
use r2d2_postgres::PostgresConnectionManager;
use r2d2_postgres::r2d2::{Pool, PooledConnection};

use super::{StoreError, StoreUrl, with_causes};

mod documents;
mod group;
mod queries;
mod schema;

use group::Group;

type Manager = PostgresConnectionManager<NoTls>;

/// Connections the pool keeps at most (one in use at a time, see the module's notes).
const POOL_SIZE: u32 = 4;
/// How long to wait for a connection before the call fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Settings of the relay's sessions. A node that stalls (stopped, swapping) between
/// staging a group and committing it would hold the writer lock, and so every node's
/// writes, for as long as its connection lives: PostgreSQL ends a session idle inside a
/// transaction for this long (a group is idle there for milliseconds), and a node waiting
/// for the writer lock (or a row) this long gives up; the client is told `internal` and
/// sends again. Commits wait for the disk (see the module's notes).
const SESSION_OPTIONS: &str = "-c idle_in_transaction_session_timeout=15s -c lock_timeout=15s \
     -c synchronous_commit=on";
/// The `application_name` the relay's connections show in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "sync-server";

/// A failure inside the backend, before it is told which database it came from.
#[derive(Debug)]
pub(crate) enum Fail {
    /// From PostgreSQL or the connection to it.
    Db(postgres::Error),
    /// Anything else.
    Store(StoreError),
}

impl From<postgres::Error> for Fail {
    fn from(e: postgres::Error) -> Self {
        Self::Db(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<social_sync_model::ModelError> for Fail {
    fn from(e: social_sync_model::ModelError) -> Self {
        Self::Store(e.into())
    }
}

/// The relay's state in PostgreSQL.
pub struct PgStore {
    /// `None` only while dropping (see [`Drop`]).
    pool: Option<Pool<Manager>>,
    /// The connection in use: the open group's, if one is open.
    conn: Option<PooledConnection<Manager>>,
    /// Accepted changes share one transaction per group.
    group: Group,
    /// The database, without its password, for messages.
    url: String,
    /// Migrations applied when this store opened.
    migrated: usize,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("url", &self.url).finish()
    }
}

impl PgStore {
    /// Connects to `url` and brings its schema up to date. Blocks: call it from a blocking
    /// thread.
    pub fn open(url: &StoreUrl) -> Result<Self, StoreError> {
        let shown = url.to_string();
        let unsupported = |e: postgres::Error| StoreError::UnsupportedStore {
            given: shown.clone(),
            why: format!("not a PostgreSQL URL ({e})"),
        };
        let mut config: postgres::Config = url.secret().parse().map_err(unsupported)?;
        config.application_name(APPLICATION_NAME);
        // Options given in the URL (`?options=…`) come after ours, so they win.
        let options = match config.get_options() {
            Some(given) => format!("{SESSION_OPTIONS} {given}"),
            None => SESSION_OPTIONS.to_owned(),
        };
        config.options(&options);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        // One connection first, for a prompt and precise error (the pool retries until its
        // timeout and then reports the bare "error connecting to server").
        let probe = config.connect(NoTls).map_err(|e| StoreError::Connect {
            url: shown.clone(),
            detail: with_causes(&e),
        })?;
        drop(probe);
        let pool = Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(1))
            .connection_timeout(CONNECT_TIMEOUT)
            .error_handler(Box::new(PoolErrors))
            .build(PostgresConnectionManager::new(config, NoTls))
            .map_err(|e| StoreError::Connect {
                url: shown.clone(),
                detail: e.to_string(),
            })?;
        let mut store = Self {
            pool: Some(pool),
            conn: None,
            group: Group::default(),
            url: shown,
            migrated: 0,
        };
        let url = store.url.clone();
        let migrated = schema::migrate(store.client()?).map_err(|e| StoreError::Migration {
            path: url,
            detail: with_causes(&e),
        })?;
        if migrated > 0 {
            tracing::info!(url = %store.url, migrated, "relay database migrated");
        }
        store.migrated = migrated;
        Ok(store)
    }

    /// How many migrations opening this store applied (0: the schema was up to date).
    pub fn migrations_applied(&self) -> usize {
        self.migrated
    }

    /// The connection in use, or a fresh one from the pool if there is none or it broke
    /// (a group open on a broken connection is lost: PostgreSQL rolled it back).
    fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.conn.as_ref().is_some_and(|c| c.is_closed()) {
            self.conn = None;
            self.group.lost();
        }
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => self
                .pool
                .as_ref()
                .ok_or_else(|| StoreError::Task("the store is closing".into()))?
                .get()
                .map_err(|e| StoreError::Connect {
                    url: self.url.clone(),
                    detail: e.to_string(),
                })?,
        };
        Ok(&mut **self.conn.insert(conn))
    }

    /// Runs `f` with the connection and the group state; names the database in errors.
    fn with<T>(
        &mut self,
        f: impl FnOnce(&mut Client, &mut Group) -> Result<T, Fail>,
    ) -> Result<T, StoreError> {
        self.client()?;
        let (Some(conn), group) = (self.conn.as_mut(), &mut self.group) else {
            return Err(StoreError::Task("no database connection".into()));
        };
        match f(conn, group) {
            Ok(out) => Ok(out),
            Err(Fail::Store(e)) => Err(e),
            Err(Fail::Db(source)) => {
                if source.is_closed() {
                    // The next call takes a fresh connection; an open group is lost.
                    self.conn = None;
                    self.group.lost();
                } else if self.group.is_open()
                    && conn
                        .batch_execute("SAVEPOINT healthy; RELEASE healthy")
                        .is_err()
                {
                    // An error outside a staged job's savepoint (a read while a group is
                    // open) aborted the group's transaction, and COMMIT would then roll it
                    // back without an error: the group is lost, and those waiting to
                    // commit it are told so. (SQLite keeps a transaction after an error.)
                    let _ = conn.batch_execute("ROLLBACK");
                    self.group.lost();
                }
                Err(StoreError::Postgres {
                    url: self.url.clone(),
                    detail: with_causes(&source),
                    source,
                })
            }
        }
    }
}

/// Connections are closed on a thread of their own: the blocking client runs a small
/// runtime of its own, which must not be dropped inside the relay's async tasks (where the
/// last reference to the store may go).
impl Drop for PgStore {
    fn drop(&mut self) {
        let conn = self.conn.take();
        let pool = self.pool.take();
        let _ = std::thread::spawn(move || drop((conn, pool))).join();
    }
}

/// The pool's own connection errors, at debug level: while PostgreSQL is away the pool
/// retries every connection it keeps (several a second), and the store already logs each
/// failed call once, with the database and what to check.
#[derive(Debug)]
struct PoolErrors;

impl r2d2_postgres::r2d2::HandleError<postgres::Error> for PoolErrors {
    fn handle_error(&self, error: postgres::Error) {
        tracing::debug!(error = %with_causes(&error), "the PostgreSQL pool could not make a connection");
    }
}
