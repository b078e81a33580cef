//! [`RelayStore`] on PostgreSQL: the same statements as the SQLite backend's, in
//! PostgreSQL's dialect (`ON CONFLICT DO NOTHING` for `INSERT OR IGNORE`, `$n` parameters,
//! `GREATEST`, `octet_length`), each through [`PgStore::with`].

use automerge::{AutoCommit, ChangeHash};
use postgres::Client;
use social_sync_model::vetting::ChangeSig;
use social_sync_protocol::{BlobHash, DocId, UserId};

use super::{Fail, PgStore, documents};
use crate::store::{Accepted, RelayStore, Staged, StoreError};

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
        let ((seq, previous), group) = self.with(|conn, group| {
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
                // Read under the writer lock: no other node moves it until this commits.
                let previous: i64 = tx
                    .query_opt(
                        "SELECT seq FROM news WHERE doc_id = $1",
                        &[&a.doc.to_string()],
                    )?
                    .map_or(0, |r| r.get(0));
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
                Ok((to_u64(seq), to_u64(previous)))
            })
        })?;
        Ok(Staged {
            seq,
            previous,
            group,
        })
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

    fn shared(&self) -> bool {
        true
    }

    fn version(&mut self, doc: &DocId) -> Result<u64, StoreError> {
        self.with(|c, _| {
            let row = c.query_opt(
                "SELECT seq FROM news WHERE doc_id = $1",
                &[&doc.to_string()],
            )?;
            Ok(row.map_or(0, |r| to_u64(r.get(0))))
        })
    }

    fn news_seq(&mut self) -> Result<u64, StoreError> {
        self.with(|c, _| {
            let row = c.query_one("SELECT COALESCE(MAX(seq), 0) FROM news", &[])?;
            Ok(to_u64(row.get(0)))
        })
    }

    fn news_after(&mut self, seq: u64, limit: usize) -> Result<Vec<(DocId, u64)>, StoreError> {
        self.with(|c, _| {
            let rows = c.query(
                "SELECT doc_id, seq FROM news WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&to_i64(seq), &i64::try_from(limit).unwrap_or(i64::MAX)],
            )?;
            Ok(rows
                .iter()
                .filter_map(|r| Some((r.get::<_, &str>(0).parse().ok()?, to_u64(r.get(1)))))
                .collect())
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
