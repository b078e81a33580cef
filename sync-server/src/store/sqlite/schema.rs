//! The relay database's schema, one migration per step (a released step is never edited).

use rusqlite::params;
use rusqlite_migration::{M, Migrations};
use social_sync_model::name::name_key;

pub(super) const SCHEMA: &str = concat!(
    // Documents, kept as the client keeps them (see `social_sync_model::documents`).
    social_sync_model::document_tables_sql!(),
    r#"
    -- Who follows whom, from the user documents; routes posts to followers.
    CREATE TABLE follows (
        follower   TEXT NOT NULL,
        followee   TEXT NOT NULL,
        PRIMARY KEY (followee, follower)
    ) WITHOUT ROWID;
    -- Display names, first come first served (lowercased).
    CREATE TABLE names (
        name       TEXT PRIMARY KEY,
        uid        TEXT NOT NULL UNIQUE
    );
    -- Per user, the documents with news, each with the sequence number of its latest news.
    CREATE TABLE inbox (
        uid        TEXT NOT NULL,
        doc_id     TEXT NOT NULL,
        seq        INTEGER NOT NULL,
        PRIMARY KEY (uid, doc_id)
    ) WITHOUT ROWID;
    CREATE INDEX inbox_by_seq ON inbox(uid, seq);
    -- How far each device has stored its inbox.
    CREATE TABLE cursors (
        uid        TEXT NOT NULL,
        device     TEXT NOT NULL,
        seq        INTEGER NOT NULL,
        PRIMARY KEY (uid, device)
    ) WITHOUT ROWID;
    CREATE TABLE counters (
        name       TEXT PRIMARY KEY,
        value      INTEGER NOT NULL
    );
    INSERT INTO counters (name, value) VALUES ('inbox_seq', 0);
    CREATE TABLE blobs (
        hash       TEXT PRIMARY KEY,
        mime       TEXT NOT NULL,
        bytes      BLOB NOT NULL
    );
    "#,
);

/// Blobs record who uploaded them, for the per-user image quota (blobs stored before have
/// no uploader and count against nobody); names are keyed by `social_sync_model::name`
/// rather than lowercased, so the stored keys are computed again.
const UPLOADERS_AND_NAME_KEYS: &str = r#"
    ALTER TABLE blobs ADD COLUMN uploader TEXT;
    CREATE INDEX blobs_by_uploader ON blobs(uploader);
    "#;

pub(super) fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(SCHEMA),
        M::up_with_hook(UPLOADERS_AND_NAME_KEYS, |tx: &rusqlite::Transaction<'_>| {
            rekey_names(tx)?;
            Ok(())
        }),
        // The authors' signatures of the changes (`social_sync_model::signatures`).
        // Changes stored before have none until their author's client hands them in
        // (`ClientMessage::Signatures`); clients refuse them unsigned meanwhile.
        M::up(social_sync_model::change_signatures_sql!()),
        M::up(NEWS_PER_DOCUMENT),
    ])
}

/// News for offline devices, one row per document instead of one per recipient (issue
/// 12): a post by someone with 10,000 followers was 10,000 inbox upserts inside the
/// commit; now it is one. A device catches up by asking which documents it cares about
/// (its own, those of people it follows and their posts' threads, its followers' user
/// documents) have news after its cursor, as a Nostr relay answers `REQ since`. Pending
/// inbox rows become the documents' latest news, so nothing waiting is lost.
const NEWS_PER_DOCUMENT: &str = r#"
    CREATE TABLE news (
        doc_id     TEXT PRIMARY KEY,
        owner      TEXT NOT NULL,     -- the user of user/<uid>, the author of thread/<post>
        is_thread  INTEGER NOT NULL,
        seq        INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX news_by_seq ON news(seq);
    CREATE INDEX news_by_owner ON news(owner, seq);
    INSERT INTO news (doc_id, owner, is_thread, seq)
        SELECT doc_id,
               CASE WHEN doc_id LIKE 'thread/%' THEN substr(doc_id, 8, 52) ELSE substr(doc_id, 6) END,
               doc_id LIKE 'thread/%',
               MAX(seq)
        FROM inbox GROUP BY doc_id;
    DROP TABLE inbox;
    "#;

/// Recomputes every stored name key; where two names now share a key, the older row
/// (lower rowid: registered first) keeps it and the other is dropped.
fn rekey_names(tx: &rusqlite::Transaction<'_>) -> Result<(), rusqlite::Error> {
    let rows: Vec<(i64, String)> = {
        let mut stmt = tx.prepare("SELECT rowid, name FROM names ORDER BY rowid")?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?
    };
    let mut seen = std::collections::HashSet::new();
    for (rowid, name) in rows {
        match name_key(&name) {
            Ok(key) if seen.insert(key.clone()) => {
                tx.execute(
                    "UPDATE names SET name = ?1 WHERE rowid = ?2",
                    params![format!("\u{1}{key}"), rowid],
                )?;
            }
            _ => {
                tx.execute("DELETE FROM names WHERE rowid = ?1", [rowid])?;
            }
        }
    }
    // Keys were written with a marker first so that no update hit a key not yet moved.
    tx.execute("UPDATE names SET name = substr(name, 2)", [])?;
    Ok(())
}
