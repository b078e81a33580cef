//! Changes in and out of a profile: what the relay is sent (sync messages, each change
//! with its author's signature), what comes back (vetted, signatures verified, merged,
//! indexed and notified in one transaction), and the bookkeeping around it (sync states,
//! outbox, threads and images still to fetch).

use automerge::sync::{State as SyncState, SyncDoc};
use automerge::{AutoCommit, Change, ChangeHash};
use rusqlite::{Connection, OptionalExtension};
use serde_bytes::ByteBuf;
use social_sync_protocol::{BlobHash, DocId, SyncItem, UserId};

use super::{MergeOutcome, Replica, limits};
use crate::model::vetting::{self, ChangeSig};
use crate::store::deletes::{self, Undelivered};
use crate::store::{blobs, blocks, documents, index, signatures};
use crate::{Error, Result};

impl Replica {
    /// Every document this profile holds.
    pub fn documents(&self) -> Result<Vec<DocId>> {
        Ok(documents::list(self.store.conn())?)
    }

    /// The current heads of a document (empty if unknown).
    pub fn heads(&self, doc: &DocId) -> Result<Vec<ChangeHash>> {
        Ok(documents::load(self.store.conn(), doc)?
            .map(|mut am| am.get_heads())
            .unwrap_or_default())
    }

    /// The changes of `doc` that are not ancestors of `since` (all of them for an empty
    /// `since`), encoded.
    pub fn changes(&self, doc: &DocId, since: &[ChangeHash]) -> Result<Vec<Vec<u8>>> {
        let Some(mut am) = documents::load(self.store.conn(), doc)? else {
            return Ok(Vec::new());
        };
        Ok(am
            .get_changes(since)
            .into_iter()
            .map(|c| c.raw_bytes().to_vec())
            .collect())
    }

    /// The kept signatures of encoded changes of `doc` (from [`Self::changes`]), one per
    /// change in order; empty where none is kept.
    pub fn signatures_of(&self, doc: &DocId, changes: &[Vec<u8>]) -> Result<Vec<Vec<u8>>> {
        Ok(signatures::for_encoded(self.store.conn(), doc, changes)?)
    }

    /// Merges another replica's changes to `doc`, one author's signature per change, in
    /// order. Every change is decoded, its signature verified and checked against the write
    /// rules first; if any fails, nothing is merged. Returns what was applied and the
    /// notifications it caused for the local user.
    pub fn merge<S: AsRef<[u8]>>(
        &mut self,
        doc: &DocId,
        changes: &[Vec<u8>],
        signatures: &[S],
    ) -> Result<MergeOutcome> {
        let changes = decode_checked(doc, changes)?;
        let signatures = vetting::signature::verify_all(doc, &changes, signatures)?;
        let me = self.me;
        // A panic inside (Automerge on input no check foresaw) rolls the transaction back
        // and becomes an error naming the document.
        let store = &mut self.store;
        vetting::contained(doc, || {
            store.write(|conn| merge_in(conn, me, doc, changes, &signatures))
        })?
    }

    /// The saved sync state with the relay for `doc` (a fresh one if none).
    pub fn sync_state(&self, doc: &DocId) -> Result<SyncState> {
        let saved: Option<Vec<u8>> = self
            .store
            .conn()
            .query_row(
                "SELECT state FROM sync_states WHERE doc_id = ?1",
                [doc.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(saved
            .and_then(|b| SyncState::decode(&b).ok())
            .unwrap_or_default())
    }

    /// The next Automerge sync message for `doc` towards the peer whose state is `state`,
    /// with the signature of each change it carries, or `None` when there is nothing to
    /// say. An unknown document syncs as an empty one (which asks the peer for all of it).
    pub fn generate_sync_message(
        &self,
        doc: &DocId,
        state: &mut SyncState,
    ) -> Result<Option<SyncItem>> {
        let conn = self.store.conn();
        let mut am = documents::load(conn, doc)?.unwrap_or_default();
        let message = vetting::contained(doc, || am.sync().generate_sync_message(state))
            .inspect_err(|_| *state = SyncState::new())?;
        let Some(message) = message else {
            return Ok(None);
        };
        let chunks: Vec<Vec<u8>> = message.changes.iter().map(<[u8]>::to_vec).collect();
        let signatures = signatures::for_encoded(conn, doc, &chunks)?;
        Ok(Some(SyncItem {
            doc: doc.clone(),
            message: ByteBuf::from(vetting::encode_outgoing(message)),
            signatures: signatures.into_iter().map(ByteBuf::from).collect(),
        }))
    }

    /// Takes a sync message from the relay for `doc`: applies its changes, checks each
    /// against the write rules (if one fails, nothing is stored), stores and indexes them,
    /// saves the sync state, and returns the notifications they cause. On error the caller
    /// should start over with [`Self::sync_state`].
    pub fn receive_sync_message<S: AsRef<[u8]>>(
        &mut self,
        doc: &DocId,
        state: &mut SyncState,
        message: &[u8],
        signatures: &[S],
    ) -> Result<MergeOutcome> {
        // Every change in the message is vetted (chunk kind, size, signature, write rules),
        // whether or not it can apply yet; Automerge's own panics are contained.
        let vetted = vetting::vet_sync_message(doc, message, signatures)?;
        let me = self.me;
        let store = &mut self.store;
        vetting::contained(doc, || {
            store.write(|conn| {
                let mut am = documents::load(conn, doc)?.unwrap_or_default();
                vetting::check_op_order_before(doc, &mut am, &vetted.changes)?;
                // Kept before applying: a change waiting for a dependency applies later,
                // and is handed on with its signature then.
                let hashes: Vec<ChangeHash> = vetted.changes.iter().map(Change::hash).collect();
                signatures::put(conn, doc, hashes.iter().zip(&vetted.signatures))?;
                let before = am.get_heads();
                vetting::contained(doc, || {
                    am.sync().receive_sync_message(state, vetted.message)
                })?
                .map_err(|e| Error::InvalidChange {
                    doc: doc.clone(),
                    index: 0,
                    detail: e.to_string(),
                })?;
                let outcome = settle(conn, me, doc, &mut am, &before)?;
                conn.execute(
                    "INSERT INTO sync_states (doc_id, state) VALUES (?1, ?2)
                 ON CONFLICT (doc_id) DO UPDATE SET state = excluded.state",
                    rusqlite::params![doc.to_string(), state.encode()],
                )?;
                Ok(outcome)
            })
        })?
    }

    /// Saves the sync state of `doc` (also marks a document asked for, so it is not asked
    /// for again at every connect).
    pub fn save_sync_state(&mut self, doc: &DocId, state: &SyncState) -> Result<()> {
        self.store.write(|conn| {
            conn.execute(
                "INSERT INTO sync_states (doc_id, state) VALUES (?1, ?2)
                 ON CONFLICT (doc_id) DO UPDATE SET state = excluded.state",
                rusqlite::params![doc.to_string(), state.encode()],
            )?;
            Ok(())
        })
    }

    /// Documents with local edits the relay has not confirmed, and how many changes wait.
    pub fn outbox(&self) -> Result<Vec<(DocId, u64)>> {
        let mut stmt = self
            .store
            .conn()
            .prepare_cached("SELECT doc_id, changes FROM outbox ORDER BY doc_id")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (doc, n) = row?;
            out.push((doc.parse()?, n));
        }
        Ok(out)
    }

    /// How many local changes the relay has not confirmed yet.
    pub fn changes_waiting(&self) -> Result<u64> {
        Ok(self.store.conn().query_row(
            "SELECT COALESCE(SUM(changes), 0) FROM outbox",
            [],
            |r| r.get(0),
        )?)
    }

    /// The relay has confirmed it holds `heads` of `doc`: if those are the local heads, the
    /// document leaves the outbox.
    pub fn confirm_synced(&mut self, doc: &DocId, their_heads: &[ChangeHash]) -> Result<bool> {
        let mut ours = self.heads(doc)?;
        let mut theirs = their_heads.to_vec();
        ours.sort();
        theirs.sort();
        if ours != theirs {
            return Ok(false);
        }
        self.store.write(|c| {
            c.execute("DELETE FROM outbox WHERE doc_id = ?1", [doc.to_string()])?;
            Ok(true)
        })
    }

    /// Takes out of the outbox the local likes and comments on posts this profile has since
    /// seen deleted, and returns them: they will never reach anyone, and the user should be
    /// told so (see [`crate::store::deletes`]).
    pub fn settle_deleted(&mut self) -> Result<Vec<Undelivered>> {
        self.store.write(deletes::settle_outbox)
    }

    /// Posts of `author` whose thread this profile has neither stored nor asked the relay
    /// for.
    pub fn threads_never_asked(&self, author: UserId) -> Result<Vec<DocId>> {
        let mut stmt = self.store.conn().prepare_cached(
            "SELECT 'thread/' || post_id FROM posts WHERE author = ?1
               AND 'thread/' || post_id NOT IN (SELECT doc_id FROM sync_states)
               AND 'thread/' || post_id NOT IN (SELECT doc_id FROM documents)",
        )?;
        let rows = stmt.query_map([author.to_string()], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?.parse()?);
        }
        Ok(out)
    }

    /// The threads of every post of `author` this profile knows, whether stored, asked for
    /// while still empty, or never asked.
    pub fn threads_of(&self, author: UserId) -> Result<Vec<DocId>> {
        let mut stmt = self
            .store
            .conn()
            .prepare_cached("SELECT 'thread/' || post_id FROM posts WHERE author = ?1")?;
        let rows = stmt.query_map([author.to_string()], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?.parse()?);
        }
        Ok(out)
    }

    /// Users the local user follows.
    pub fn following(&self) -> Result<Vec<UserId>> {
        let mut stmt = self
            .store
            .conn()
            .prepare_cached("SELECT followee FROM follows WHERE follower = ?1 ORDER BY followee")?;
        let rows = stmt.query_map([self.me.to_string()], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?.parse()?);
        }
        Ok(out)
    }

    /// Users who follow the local user, among the user documents this profile holds (it
    /// knows of a follow only once it has synced the follower's document), blocked users
    /// left out.
    pub fn followers(&self) -> Result<Vec<UserId>> {
        let mut stmt = self.store.conn().prepare_cached(concat!(
            "SELECT follower FROM follows WHERE followee = ?1 AND ",
            blocks::not_blocked!("follower"),
            " ORDER BY follower"
        ))?;
        let rows = stmt.query_map([self.me.to_string()], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?.parse()?);
        }
        Ok(out)
    }

    /// Images of the user's own posts and avatar not yet handed to the relay.
    pub fn blobs_to_upload(&self) -> Result<Vec<BlobHash>> {
        let mut stmt = self.store.conn().prepare_cached(
            "SELECT b.hash FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM uploaded_blobs u WHERE u.hash = b.hash)",
        )?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.filter_map(|h| h.ok()?.parse().ok()).collect())
    }

    /// Records that the relay has stored an image.
    pub fn blob_uploaded(&mut self, hash: &BlobHash) -> Result<()> {
        self.store.write(|c| {
            c.execute(
                "INSERT OR IGNORE INTO uploaded_blobs (hash) VALUES (?1)",
                [hash.to_string()],
            )?;
            Ok(())
        })
    }

    /// Images that posts or avatars held here name but that are not in the local cache.
    pub fn missing_blobs(&self) -> Result<Vec<BlobHash>> {
        let mut stmt = self.store.conn().prepare_cached(
            "SELECT DISTINCT j.value FROM posts p, json_each(p.media) j
             WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.hash = j.value)
             UNION
             SELECT avatar FROM profiles WHERE avatar IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.hash = avatar)",
        )?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.filter_map(|h| h.ok()?.parse().ok()).collect())
    }

    /// Stores an image received from the relay, if its bytes match its hash, it is within
    /// [`limits::IMAGE_BYTES`] and its bytes are a PNG, JPEG, GIF or WebP; it is stored
    /// with the type read from its bytes (whatever the sender claimed). Returns whether it
    /// was stored.
    pub fn store_blob(&mut self, hash: &BlobHash, bytes: &[u8]) -> Result<bool> {
        if bytes.len() as u64 > limits::IMAGE_BYTES || blobs::hash_of(bytes) != *hash {
            return Ok(false);
        }
        let Some(mime) = blobs::image_type(bytes) else {
            return Ok(false);
        };
        self.store.write(|c| {
            blobs::put(c, mime, bytes)?;
            c.execute(
                "INSERT OR IGNORE INTO uploaded_blobs (hash) VALUES (?1)",
                [hash.to_string()],
            )?;
            Ok(true)
        })
    }
}

/// Decodes encoded changes and vets each (chunk kind, write rules) for `doc`.
fn decode_checked(doc: &DocId, changes: &[Vec<u8>]) -> Result<Vec<Change>> {
    changes
        .iter()
        .enumerate()
        .map(|(index, bytes)| Ok(vetting::vet_change(doc, index, bytes)?))
        .collect()
}

/// Applies checked changes to `doc` inside the caller's transaction.
pub(super) fn merge_in(
    conn: &Connection,
    me: UserId,
    doc: &DocId,
    changes: Vec<Change>,
    signatures: &[ChangeSig],
) -> Result<MergeOutcome> {
    let hashes: Vec<ChangeHash> = changes.iter().map(Change::hash).collect();
    signatures::put(conn, doc, hashes.iter().zip(signatures))?;
    let mut am = documents::load(conn, doc)?.unwrap_or_default();
    let before = am.get_heads();
    let fresh: Vec<Change> = changes
        .into_iter()
        .filter(|c| vetting::max_op_in(&mut am, &c.hash()).is_none())
        .collect();
    if fresh.is_empty() {
        return Ok(MergeOutcome::default());
    }
    vetting::check_op_order_before(doc, &mut am, &fresh)?;
    vetting::contained(doc, || am.apply_changes(fresh.clone()))?.map_err(|e| {
        Error::InvalidChange {
            doc: doc.clone(),
            index: 0,
            detail: e.to_string(),
        }
    })?;
    // Changes still waiting for a dependency are stored too, so none is lost.
    documents::append(conn, doc, &fresh)?;
    let mut outcome = settle(conn, me, doc, &mut am, &before)?;
    outcome.waiting = fresh.len().saturating_sub(outcome.applied);
    Ok(outcome)
}

/// After changes were applied to `am` (from `before`): stores them, updates the index,
/// compacts when due, and says what happened.
fn settle(
    conn: &Connection,
    me: UserId,
    doc: &DocId,
    am: &mut AutoCommit,
    before: &[ChangeHash],
) -> Result<MergeOutcome> {
    let applied = am.get_changes(before);
    if applied.is_empty() {
        return Ok(MergeOutcome::default());
    }
    vetting::check_op_order_after(doc, am, &applied)?;
    documents::append(conn, doc, &applied)?;
    let notifications = index::update(conn, me, doc, am, before)?;
    documents::compact_if_due(conn, doc, am)?;
    Ok(MergeOutcome {
        applied: applied.len(),
        waiting: 0,
        notifications,
    })
}
