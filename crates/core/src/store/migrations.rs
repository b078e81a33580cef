//! The schema of the profile database, one migration per step. A step, once released, is
//! never edited: a change of schema is a new step at the end.

use rusqlite_migration::{M, Migrations};

/// Every migration, oldest first.
pub(crate) fn migrations() -> Migrations<'static> {
    Migrations::from_slice(STEPS)
}

/// How many steps there are: the schema version of a fully migrated database.
pub(crate) const LATEST: usize = STEPS.len();

const STEPS: &[M<'static>] = &[
    M::up(concat!(
        // Automerge documents: the last compacted snapshot, plus the changes received since.
        social_sync_model::document_tables_sql!(),
        r#"
    -- The derived index: always rebuildable from the documents alone.
    CREATE TABLE profiles (
        uid        TEXT PRIMARY KEY,
        name       TEXT NOT NULL,
        bio        TEXT NOT NULL,
        avatar     TEXT
    );
    CREATE INDEX profiles_by_name ON profiles(name COLLATE NOCASE);
    CREATE TABLE posts (
        post_id    TEXT PRIMARY KEY,
        author     TEXT NOT NULL,
        text       TEXT NOT NULL,
        media      TEXT NOT NULL,        -- JSON array of blob hashes
        created_at INTEGER NOT NULL
    );
    CREATE INDEX posts_by_author ON posts(author, created_at DESC, post_id DESC);
    CREATE TABLE likes (
        post_id    TEXT NOT NULL,
        uid        TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (post_id, uid)
    ) WITHOUT ROWID;
    CREATE TABLE comments (
        comment_id TEXT PRIMARY KEY,
        post_id    TEXT NOT NULL,
        author     TEXT NOT NULL,
        text       TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX comments_by_post ON comments(post_id, created_at, comment_id);
    CREATE TABLE follows (
        follower   TEXT NOT NULL,
        followee   TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (follower, followee)
    ) WITHOUT ROWID;
    CREATE INDEX follows_by_followee ON follows(followee, follower);
    -- The local user's feed, materialized: their own posts and those of users they follow.
    -- A feed page is then a walk of this table's key, whatever the ratio of followed posts
    -- to held posts.
    CREATE TABLE timeline (
        created_at INTEGER NOT NULL,
        post_id    TEXT NOT NULL,
        author     TEXT NOT NULL,
        PRIMARY KEY (created_at, post_id)
    ) WITHOUT ROWID;
    CREATE INDEX timeline_by_author ON timeline(author);

    -- Full-text search over post text, kept in step with `posts` by triggers.
    CREATE VIRTUAL TABLE posts_fts USING fts5(text, content='posts', content_rowid='rowid');
    CREATE TRIGGER posts_fts_insert AFTER INSERT ON posts BEGIN
        INSERT INTO posts_fts(rowid, text) VALUES (new.rowid, new.text);
    END;
    CREATE TRIGGER posts_fts_delete AFTER DELETE ON posts BEGIN
        INSERT INTO posts_fts(posts_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
    END;
    CREATE TRIGGER posts_fts_update AFTER UPDATE ON posts BEGIN
        INSERT INTO posts_fts(posts_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
        INSERT INTO posts_fts(rowid, text) VALUES (new.rowid, new.text);
    END;

    -- Images, content-addressed by SHA-256.
    CREATE TABLE blobs (
        hash       TEXT PRIMARY KEY,
        mime       TEXT NOT NULL,
        bytes      BLOB NOT NULL
    );

    -- The user's own state: not derived, kept across reindex.
    CREATE TABLE settings (
        key        TEXT PRIMARY KEY,
        value      TEXT NOT NULL
    );
    CREATE TABLE notifications (
        id         TEXT PRIMARY KEY,     -- hash of kind + actor + target
        kind       TEXT NOT NULL,
        actor      TEXT NOT NULL,
        post_id    TEXT,
        comment_id TEXT,
        created_at INTEGER NOT NULL,
        read       INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX notifications_by_time ON notifications(created_at DESC);
    CREATE INDEX notifications_unread ON notifications(read, created_at DESC);
    "#,
    )),
    M::up(
        r#"
    -- Automerge sync state with the relay, per document (what both sides are known to share),
    -- so that a reconnect resumes instead of starting over.
    CREATE TABLE sync_states (
        doc_id     TEXT PRIMARY KEY,
        state      BLOB NOT NULL
    );
    -- Documents with local edits the relay has not confirmed yet, and how many changes.
    CREATE TABLE outbox (
        doc_id     TEXT PRIMARY KEY,
        changes    INTEGER NOT NULL
    );
    -- Images this profile has handed to the relay.
    CREATE TABLE uploaded_blobs (
        hash       TEXT PRIMARY KEY
    );
    "#,
    ),
    M::up(
        r#"
    -- The user's own choices, private to this profile (never synced, kept by reindex).
    CREATE TABLE blocked (
        uid        TEXT PRIMARY KEY,
        since      INTEGER NOT NULL
    );
    CREATE TABLE muted_posts (
        post_id    TEXT PRIMARY KEY,
        since      INTEGER NOT NULL
    );
    "#,
    ),
    M::up(
        r#"
    -- Search finds comments too: the text of every comment, kept in step with `comments`.
    CREATE VIRTUAL TABLE comments_fts USING fts5(text, content='comments', content_rowid='rowid');
    CREATE TRIGGER comments_fts_insert AFTER INSERT ON comments BEGIN
        INSERT INTO comments_fts(rowid, text) VALUES (new.rowid, new.text);
    END;
    CREATE TRIGGER comments_fts_delete AFTER DELETE ON comments BEGIN
        INSERT INTO comments_fts(comments_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
    END;
    CREATE TRIGGER comments_fts_update AFTER UPDATE ON comments BEGIN
        INSERT INTO comments_fts(comments_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
        INSERT INTO comments_fts(rowid, text) VALUES (new.rowid, new.text);
    END;
    INSERT INTO comments_fts(comments_fts) VALUES ('rebuild');
    "#,
    ),
    M::up(
        r#"
    -- Posts this profile held and then saw deleted by their author (see
    -- `crate::store::deletes`): kept across reindex, like notifications, so that a like or
    -- comment on one is told "deleted", not "never received".
    CREATE TABLE deleted_posts (
        post_id    TEXT PRIMARY KEY,
        author     TEXT NOT NULL
    );
    "#,
    ),
    // Every change's author's signature (see `crate::store::signatures`); a profile's own
    // older changes are signed when it is next opened (`crate::replica`).
    M::up(social_sync_model::change_signatures_sql!()),
    // Regression (catch-up took 9 s for 10,000 posts): indexing a post deletes its
    // timeline row by post id, which scanned the whole timeline without this index.
    M::up("CREATE INDEX timeline_by_post ON timeline(post_id);"),
    // Regression (found in review): a running app shows the notifications another process
    // stored after the last row it saw; when the newest row was deleted (its post was), the
    // next one took its number again and was never shown. Row numbers are never reused now.
    M::up(
        r#"
    CREATE TABLE notifications_numbered (
        row        INTEGER PRIMARY KEY AUTOINCREMENT,
        id         TEXT NOT NULL UNIQUE,  -- hash of kind + actor + target
        kind       TEXT NOT NULL,
        actor      TEXT NOT NULL,
        post_id    TEXT,
        comment_id TEXT,
        created_at INTEGER NOT NULL,
        read       INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO notifications_numbered (row, id, kind, actor, post_id, comment_id, created_at, read)
        SELECT rowid, id, kind, actor, post_id, comment_id, created_at, read FROM notifications;
    DROP TABLE notifications;
    ALTER TABLE notifications_numbered RENAME TO notifications;
    CREATE INDEX notifications_by_time ON notifications(created_at DESC);
    CREATE INDEX notifications_unread ON notifications(read, created_at DESC);
    "#,
    ),
];

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_are_valid() {
        super::migrations().validate().unwrap();
    }

    /// Regression (review): deleting the newest notification let the next one take its
    /// row number, at or below what a running app had seen, so it was never shown.
    #[test]
    fn a_deleted_newest_notification_s_number_is_not_taken_again() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        super::migrations().to_latest(&mut conn).unwrap();
        let add = |conn: &rusqlite::Connection, id: &str| {
            conn.execute(
                "INSERT INTO notifications (id, kind, actor, post_id, created_at) VALUES (?1, 'like', 'a', 'p', 0)",
                [id],
            )
            .unwrap();
            conn.last_insert_rowid()
        };
        add(&conn, "one");
        let newest = add(&conn, "two");
        conn.execute("DELETE FROM notifications WHERE id = 'two'", [])
            .unwrap();
        assert!(add(&conn, "three") > newest);
    }

    /// Regression: catch-up of 10,000 posts took 9 s because indexing each post deleted its
    /// timeline row by post id with a scan of the whole timeline.
    #[test]
    fn a_post_s_timeline_row_is_found_by_index() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        super::migrations().to_latest(&mut conn).unwrap();
        let plan: Vec<String> = conn
            .prepare("EXPLAIN QUERY PLAN DELETE FROM timeline WHERE post_id = 'p'")
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(
            plan.iter().any(|step| step.contains("timeline_by_post")),
            "{plan:?}"
        );
    }
}
