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
//!   SQLite; the relay serves nothing staged before its commit.

use std::time::Duration;

use automerge::{AutoCommit, ChangeHash};
use postgres::{Client, NoTls};
use r2d2_postgres::PostgresConnectionManager;
use r2d2_postgres::r2d2::{Pool, PooledConnection};
use social_sync_model::vetting::ChangeSig;
use social_sync_protocol::{BlobHash, DocId, UserId};

use super::{Accepted, RelayStore, Staged, StoreError, StoreUrl, with_causes};

mod documents;
mod group;
mod schema;

use group::Group;

type Manager = PostgresConnectionManager<NoTls>;

/// Connections the pool keeps at most (one in use at a time, see the module's notes).
const POOL_SIZE: u32 = 4;
/// How long to wait for a connection before the call fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
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

/// `uid` columns hold user ids as text, as on SQLite.
fn users(rows: &[postgres::Row]) -> Vec<UserId> {
    rows.iter()
        .filter_map(|r| r.get::<_, &str>(0).parse().ok())
        .collect()
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl RelayStore for PgStore {
    fn load(&mut self, doc: &DocId) -> Result<Option<AutoCommit>, StoreError> {
        self.with(|c, _| documents::load(c, doc))
    }

    fn put_signatures(
        &mut self,
        doc: &DocId,
        signed: &[(ChangeHash, ChangeSig)],
    ) -> Result<(), StoreError> {
        self.with(|c, group| {
            group.flush(c)?;
            let mut tx = c.transaction()?;
            documents::put_signatures(&mut tx, doc, signed)?;
            tx.commit()?;
            Ok(())
        })
    }

    fn signatures_for(
        &mut self,
        doc: &DocId,
        changes: &[Vec<u8>],
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        self.with(|c, _| documents::signatures_for(c, doc, changes))
    }

    fn stored_bytes(&mut self, doc: &DocId) -> Result<u64, StoreError> {
        self.with(|c, _| {
            let row = c.query_opt(
                "SELECT octet_length(snapshot) + (SELECT COALESCE(SUM(octet_length(bytes)), 0)
                     FROM document_changes WHERE doc_id = $1)::BIGINT
                 FROM documents WHERE doc_id = $1",
                &[&doc.to_string()],
            )?;
            Ok(row.map_or(0, |r| to_u64(r.get(0))))
        })
    }

    fn accept(&mut self, am: &mut AutoCommit, a: &Accepted<'_>) -> Result<Staged, StoreError> {
        let (seq, group) = self.with(|conn, group| {
            group.stage(conn, |tx| {
                documents::append(tx, a.doc, a.changes)?;
                documents::put_signatures(tx, a.doc, a.signatures)?;
                documents::compact_if_due(tx, a.doc, am)?;
                for (follower, followee, on) in &a.routing.follows {
                    let (follower, followee) = (follower.to_string(), followee.to_string());
                    if *on {
                        tx.execute(
                            "INSERT INTO follows (follower, followee) VALUES ($1, $2)
                             ON CONFLICT DO NOTHING",
                            &[&follower, &followee],
                        )?;
                    } else {
                        tx.execute(
                            "DELETE FROM follows WHERE follower = $1 AND followee = $2",
                            &[&follower, &followee],
                        )?;
                    }
                }
                if let Some((uid, key)) = &a.routing.name {
                    register_name(tx, *uid, key)?;
                }
                let seq: i64 = tx.query_one("SELECT nextval('news_seq')", &[])?.get(0);
                // One row for the document, whatever the number of people it concerns.
                tx.execute(
                    "INSERT INTO news (doc_id, owner, is_thread, seq) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (doc_id) DO UPDATE SET seq = excluded.seq",
                    &[
                        &a.doc.to_string(),
                        &a.doc.owner().to_string(),
                        &matches!(a.doc, DocId::Thread(_)),
                        &seq,
                    ],
                )?;
                Ok(to_u64(seq))
            })
        })?;
        Ok(Staged { seq, group })
    }

    fn commit(&mut self, group: u64) -> Result<(), StoreError> {
        // A group whose connection broke is failed (by `client`) before a fresh
        // connection is taken: committing there would find no transaction.
        self.with(|c, g| g.commit(c, group))
    }

    fn followers(&mut self, user: UserId) -> Result<Vec<UserId>, StoreError> {
        self.with(|c, _| {
            let rows = c.query(
                "SELECT follower FROM follows WHERE followee = $1",
                &[&user.to_string()],
            )?;
            Ok(users(&rows))
        })
    }

    fn following(&mut self, user: UserId) -> Result<Vec<UserId>, StoreError> {
        self.with(|c, _| {
            let rows = c.query(
                "SELECT followee FROM follows WHERE follower = $1",
                &[&user.to_string()],
            )?;
            Ok(users(&rows))
        })
    }

    fn follows(&mut self, follower: UserId, followee: UserId) -> Result<bool, StoreError> {
        self.with(|c, _| {
            Ok(c.query_opt(
                "SELECT 1 FROM follows WHERE followee = $1 AND follower = $2",
                &[&followee.to_string(), &follower.to_string()],
            )?
            .is_some())
        })
    }

    fn inbox(&mut self, user: UserId, device: &str) -> Result<(Vec<DocId>, u64), StoreError> {
        self.with(|c, _| {
            let uid = user.to_string();
            let cursor: i64 = c
                .query_opt(
                    "SELECT seq FROM cursors WHERE uid = $1 AND device = $2",
                    &[&uid, &device],
                )?
                .map_or(0, |r| r.get(0));
            // As on SQLite: their own documents, those of people they follow and their
            // posts' threads, their followers' user documents; news after the cursor. The
            // numbers may skip (gap-tolerant): only `seq > cursor` is ever asked.
            let rows = c.query(
                "SELECT doc_id, seq FROM news WHERE seq > $2 AND (
                     owner = $1
                     OR owner IN (SELECT followee FROM follows WHERE follower = $1)
                     OR (NOT is_thread AND owner IN (SELECT follower FROM follows WHERE followee = $1))
                 ) ORDER BY seq",
                &[&uid, &cursor],
            )?;
            let mut docs = Vec::new();
            let mut newest = to_u64(cursor);
            for row in rows {
                if let Ok(doc) = row.get::<_, &str>(0).parse() {
                    docs.push(doc);
                }
                newest = newest.max(to_u64(row.get(1)));
            }
            Ok((docs, newest))
        })
    }

    fn ack_inbox(&mut self, user: UserId, device: &str, seq: u64) -> Result<(), StoreError> {
        self.with(|c, group| {
            group.flush(c)?;
            c.execute(
                "INSERT INTO cursors (uid, device, seq) VALUES ($1, $2, $3)
                 ON CONFLICT (uid, device) DO UPDATE SET seq = GREATEST(cursors.seq, excluded.seq)",
                &[&user.to_string(), &device, &to_i64(seq)],
            )?;
            Ok(())
        })
    }

    fn name_holder(&mut self, key: &str) -> Result<Option<UserId>, StoreError> {
        self.with(|c, _| {
            let row = c.query_opt("SELECT uid FROM names WHERE name = $1", &[&key])?;
            Ok(row.and_then(|r| r.get::<_, &str>(0).parse().ok()))
        })
    }

    fn put_blob(
        &mut self,
        hash: &BlobHash,
        mime: &str,
        bytes: &[u8],
        uploader: UserId,
    ) -> Result<(), StoreError> {
        self.with(|c, group| {
            group.flush(c)?;
            c.execute(
                "INSERT INTO blobs (hash, mime, bytes, uploader) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
                &[&hash.to_string(), &mime, &bytes, &uploader.to_string()],
            )?;
            Ok(())
        })
    }

    fn has_blob(&mut self, hash: &BlobHash) -> Result<bool, StoreError> {
        self.with(|c, _| {
            Ok(
                c.query_opt("SELECT 1 FROM blobs WHERE hash = $1", &[&hash.to_string()])?
                    .is_some(),
            )
        })
    }

    fn blob_bytes_of(&mut self, uploader: UserId) -> Result<u64, StoreError> {
        self.with(|c, _| {
            let row = c.query_one(
                "SELECT COALESCE(SUM(octet_length(bytes)), 0)::BIGINT FROM blobs WHERE uploader = $1",
                &[&uploader.to_string()],
            )?;
            Ok(to_u64(row.get(0)))
        })
    }

    fn get_blob(&mut self, hash: &BlobHash) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        self.with(|c, _| {
            let row = c.query_opt(
                "SELECT mime, bytes FROM blobs WHERE hash = $1",
                &[&hash.to_string()],
            )?;
            Ok(row.map(|r| (r.get(0), r.get(1))))
        })
    }

    fn counts(&mut self) -> Result<(u64, u64), StoreError> {
        self.with(|c, _| {
            let row = c.query_one(
                "SELECT (SELECT COUNT(*) FROM documents), (SELECT COUNT(*) FROM news)",
                &[],
            )?;
            Ok((to_u64(row.get(0)), to_u64(row.get(1))))
        })
    }
}

/// Registers `key` to `uid` if it is free or already theirs (a user holds one name: the
/// new one replaces theirs). Group transactions hold the writer lock, so no other node
/// registers a name between the check and the insert; the primary key on `names.name`
/// would refuse a second holder anyway, and `ON CONFLICT DO NOTHING` keeps that refusal
/// from failing the document's changes (the name is then just not registered, as when the
/// check finds it taken).
fn register_name(tx: &mut Client, uid: UserId, key: &str) -> Result<(), Fail> {
    let uid = uid.to_string();
    let holder: Option<String> = tx
        .query_opt("SELECT uid FROM names WHERE name = $1", &[&key])?
        .map(|r| r.get(0));
    if holder.is_none_or(|h| h == uid) {
        tx.execute("DELETE FROM names WHERE uid = $1", &[&uid])?;
        tx.execute(
            "INSERT INTO names (name, uid) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&key, &uid],
        )?;
    }
    Ok(())
}
