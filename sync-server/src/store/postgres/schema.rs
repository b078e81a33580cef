//! The PostgreSQL schema, one migration per step (a released step is never edited, only
//! followed by a new one), applied at start by [`migrate`] and recorded in
//! `schema_version`.
//!
//! The tables mirror the SQLite backend's (`store/sqlite/schema.rs`) at its latest
//! version, with PostgreSQL types: `bytea` for bytes, `boolean`, `bigint` sequence numbers.
//!
//! **The news sequence is gap-tolerant, not gap-free.** News numbers come from the
//! PostgreSQL sequence `news_seq`; a number taken by a group transaction that then rolls
//! back is never handed out again, so numbers can skip. Catch-up only ever asks for news
//! `seq > cursor` and moves the cursor to the newest number it was given, so a missing
//! number loses nothing. What catch-up does need, that no committed number is ever smaller
//! than one a device has already seen, holds because group transactions take the writer
//! lock (`group.rs`) before their first number and keep it until they commit: groups
//! commit one at a time, cluster-wide, in number order.
//!
//! **Images are `bytea` rows in the `blobs` table**, not files: every relay node sharing
//! the database sees every image at once, with one backup and one source of truth, and an
//! image and the quota it counts against are written in one statement. Images are capped
//! at `--max-blob-bytes` (10 MiB by default), well under `bytea`'s 1 GiB; an object store
//! behind the same trait is the way out if they ever crowd the database.

use postgres::Client;

/// The migrations, in order; the version of each is its position, from 1.
const MIGRATIONS: &[&str] = &[SCHEMA];

/// The advisory lock key of migrations ("SSMIGRAT" in ASCII): two nodes starting together
/// migrate one after the other, and the second finds nothing left to do.
const MIGRATION_LOCK: i64 = 0x5353_4d49_4752_4154;

/// Version 1: everything the SQLite backend holds at its latest version.
const SCHEMA: &str = r#"
    -- Documents, as `social_sync_model::documents` keeps them: a snapshot, plus the
    -- changes received since, one row each.
    CREATE TABLE documents (
        doc_id     TEXT PRIMARY KEY,
        snapshot   BYTEA NOT NULL DEFAULT '\x'
    );
    CREATE TABLE document_changes (
        seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        doc_id     TEXT NOT NULL REFERENCES documents(doc_id),
        hash       BYTEA NOT NULL,
        bytes      BYTEA NOT NULL,
        UNIQUE (doc_id, hash)
    );
    -- The authors' signatures of the changes (`social_sync_model::signatures`).
    CREATE TABLE change_signatures (
        doc_id     TEXT NOT NULL,
        hash       BYTEA NOT NULL,
        signature  BYTEA NOT NULL,
        PRIMARY KEY (doc_id, hash)
    );
    -- Who follows whom, from the user documents; routes posts to followers.
    CREATE TABLE follows (
        follower   TEXT NOT NULL,
        followee   TEXT NOT NULL,
        PRIMARY KEY (followee, follower)
    );
    CREATE INDEX follows_by_follower ON follows(follower);
    -- Display names by key (`social_sync_model::name`), first come first served. Both
    -- columns are unique: a name is held by one user, and a user holds one name, whichever
    -- relay node registered it.
    CREATE TABLE names (
        name       TEXT PRIMARY KEY,
        uid        TEXT NOT NULL UNIQUE
    );
    -- News for offline devices, one row per document with the number of its latest news.
    CREATE TABLE news (
        doc_id     TEXT PRIMARY KEY,
        owner      TEXT NOT NULL,     -- the user of user/<uid>, the author of thread/<post>
        is_thread  BOOLEAN NOT NULL,
        seq        BIGINT NOT NULL
    );
    CREATE INDEX news_by_seq ON news(seq);
    CREATE INDEX news_by_owner ON news(owner, seq);
    -- Gap-tolerant (see the module's documentation).
    CREATE SEQUENCE news_seq AS BIGINT;
    -- How far each device has stored its news.
    CREATE TABLE cursors (
        uid        TEXT NOT NULL,
        device     TEXT NOT NULL,
        seq        BIGINT NOT NULL,
        PRIMARY KEY (uid, device)
    );
    -- Images, with who uploaded them for the per-user quota.
    CREATE TABLE blobs (
        hash       TEXT PRIMARY KEY,
        mime       TEXT NOT NULL,
        bytes      BYTEA NOT NULL,
        uploader   TEXT
    );
    CREATE INDEX blobs_by_uploader ON blobs(uploader);
"#;

/// Brings the database up to the latest version, in one transaction under
/// [`MIGRATION_LOCK`]; returns how many migrations it applied (0 when it was up to date).
pub(super) fn migrate(conn: &mut Client) -> Result<usize, postgres::Error> {
    let mut tx = conn.transaction()?;
    // A node starting while another migrates waits for it, however long it takes (the
    // session's lock_timeout is for the writers of accepted changes).
    tx.batch_execute("SET LOCAL lock_timeout = 0")?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (
            version     INTEGER PRIMARY KEY,
            applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )?;
    let current: i32 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])?
        .get(0);
    let mut applied = 0;
    for (version, sql) in (1i32..).zip(MIGRATIONS) {
        if version <= current {
            continue;
        }
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&version],
        )?;
        applied += 1;
    }
    tx.commit()?;
    Ok(applied)
}
