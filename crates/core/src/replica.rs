//! [`Replica`]: one user's profile folder, opened. Every operation of the product goes
//! through here: edits become Automerge changes stored and indexed in one transaction;
//! changes from elsewhere are checked, merged, indexed and turned into notifications in
//! one transaction too.

use std::fs;
use std::path::{Path, PathBuf};

use automerge::sync::{State as SyncState, SyncDoc};
use automerge::{ActorId, AutoCommit, Change, ChangeHash, transaction::CommitOptions};
use rusqlite::{Connection, OptionalExtension};
use social_sync_protocol::{BlobHash, CommentId, DocId, PostId, UserId};

use crate::export_folder::{self, ExportSummary, ImportSummary};
use crate::identity::{Identity, KEY_FILE};
use crate::model::{self, CommentEntry, PostEntry, ProfileFields, ThreadDoc, UserDoc, vetting};
use crate::store::blobs::{self, Blob};
use crate::store::deletes::{self, Undelivered};
use crate::store::index::{self, RebuildReport};
use crate::store::queries::{self, FeedCursor, FeedItem, FeedPage, ProfileView, ThreadView};
use crate::store::{Store, blocks, documents, mutes, notifications, settings};
use crate::{Env, Error, Notification, NotificationKind, Result};

/// Limits on what a user can write.
pub mod limits {
    /// Display name length, in characters.
    pub const NAME: (usize, usize) = (1, 64);
    /// Bio length.
    pub const BIO: (usize, usize) = (0, 500);
    /// Post text length (a post with images may have no text).
    pub const POST_TEXT: (usize, usize) = (0, 5_000);
    /// Comment length.
    pub const COMMENT: (usize, usize) = (1, 2_000);
    /// Images per post.
    pub const IMAGES_PER_POST: usize = 8;
    /// Bytes per image.
    pub const IMAGE_BYTES: u64 = 10 * 1024 * 1024;
}

/// What merging a batch of changes did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeOutcome {
    /// Changes newly applied.
    pub applied: usize,
    /// Changes stored but waiting for a change they depend on.
    pub waiting: usize,
    /// Notifications this merge caused for the local user, each new.
    pub notifications: Vec<Notification>,
}

/// One user's profile folder: key, documents, index, settings.
#[derive(Debug)]
pub struct Replica {
    dir: PathBuf,
    identity: Identity,
    device: [u8; 8],
    me: UserId,
    actor: ActorId,
    store: Store,
    env: Env,
}

impl Replica {
    /// Makes a new profile in `dir` (created if missing): a key pair, a database, and a
    /// profile document with the display name `name`.
    pub fn create(dir: &Path, name: &str, relay_url: Option<&str>, mut env: Env) -> Result<Self> {
        let name = checked_text("name", name.trim(), limits::NAME)?;
        crate::model::name::name_key(name)?;
        not_a_file(dir)?;
        if dir.join(KEY_FILE).exists() {
            return Err(Error::ProfileExists {
                path: dir.to_owned(),
            });
        }
        fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_owned(),
            source,
        })?;
        let identity = Identity::generate(&mut env);
        identity.save_new(dir)?;
        let mut replica = Self::with_identity(dir, identity, env)?;
        if let Some(url) = relay_url {
            replica
                .store
                .write(|c| settings::set(c, settings::RELAY_URL, url))?;
        }
        replica.set_profile(Some(name), None)?;
        Ok(replica)
    }

    /// Makes a profile in `dir` for an existing user, from a key backup exported on
    /// another device ([`Replica::export_key`]). The user's name, posts and follows arrive
    /// with the first sync.
    pub fn create_from_backup(
        dir: &Path,
        backup: &str,
        passphrase: &str,
        relay_url: Option<&str>,
        env: Env,
    ) -> Result<Self> {
        if dir.join(KEY_FILE).exists() {
            return Err(Error::ProfileExists {
                path: dir.to_owned(),
            });
        }
        let identity = Identity::import_protected(backup, passphrase)?;
        fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_owned(),
            source,
        })?;
        identity.save_new(dir)?;
        let mut replica = Self::with_identity(dir, identity, env)?;
        if let Some(url) = relay_url {
            replica
                .store
                .write(|c| settings::set(c, settings::RELAY_URL, url))?;
        }
        Ok(replica)
    }

    /// The user's key as a passphrase-protected backup (PEM text), for another device.
    pub fn export_key(&mut self, passphrase: &str) -> Result<String> {
        self.identity.export_protected(passphrase, &mut self.env)
    }

    /// Opens the profile in `dir`.
    pub fn open(dir: &Path, env: Env) -> Result<Self> {
        not_a_file(dir)?;
        if !dir.join(KEY_FILE).exists() {
            return Err(Error::NoProfile {
                path: dir.to_owned(),
            });
        }
        let identity = Identity::load(dir)?;
        Self::with_identity(dir, identity, env)
    }

    fn with_identity(dir: &Path, identity: Identity, mut env: Env) -> Result<Self> {
        let mut store = Store::open(dir, true)?;
        let device = match store.write(|c| settings::get(c, settings::DEVICE_ID))? {
            Some(hex) => data_encoding::HEXLOWER
                .decode(hex.as_bytes())
                .ok()
                .and_then(|b| <[u8; 8]>::try_from(b).ok()),
            None => None,
        };
        let device = match device {
            Some(d) => d,
            None => {
                let d: [u8; 8] = env.random_bytes();
                let hex = data_encoding::HEXLOWER.encode(&d);
                store.write(|c| settings::set(c, settings::DEVICE_ID, &hex))?;
                d
            }
        };
        let me = identity.user_id();
        Ok(Self {
            dir: dir.to_owned(),
            identity,
            device,
            me,
            actor: model::actor_id(me, device),
            store,
            env,
        })
    }

    /// The local user.
    pub fn user_id(&self) -> UserId {
        self.me
    }

    /// Random bytes from the profile's [`Env`] (deterministic in tests).
    pub(crate) fn random_bytes<const N: usize>(&mut self) -> [u8; N] {
        self.env.random_bytes()
    }

    /// This device's id, as 16 hex digits.
    pub fn device(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.device)
    }

    /// The user's key, to prove who this profile is to a relay.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The profile folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The database, for read-only queries beyond the ones here.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The relay URL this profile syncs with, if set.
    pub fn relay_url(&self) -> Result<Option<String>> {
        settings::get(self.store.conn(), settings::RELAY_URL)
    }

    /// Sets the relay URL.
    pub fn set_relay_url(&mut self, url: &str) -> Result<()> {
        self.store
            .write(|c| settings::set(c, settings::RELAY_URL, url))
    }

    /// The extra trusted root (PEM) for a `wss://` relay with a private CA, if set.
    pub fn relay_ca(&self) -> Result<Option<String>> {
        settings::get(self.store.conn(), settings::RELAY_CA)
    }

    /// Sets the extra trusted root (PEM) for the relay's certificate.
    pub fn set_relay_ca(&mut self, pem: &str) -> Result<()> {
        self.store
            .write(|c| settings::set(c, settings::RELAY_CA, pem))
    }

    // ----- edits -------------------------------------------------------------------

    /// Changes the display name and/or bio.
    pub fn set_profile(&mut self, name: Option<&str>, bio: Option<&str>) -> Result<()> {
        let name = name
            .map(|n| checked_text("name", n.trim(), limits::NAME))
            .transpose()?;
        if let Some(name) = name {
            crate::model::name::name_key(name)?;
        }
        let bio = bio
            .map(|b| checked_text("bio", b, limits::BIO))
            .transpose()?;
        self.edit(DocId::User(self.me), |am, _| {
            let mut fields = UserDoc(am).profile();
            if let Some(name) = name {
                fields.name = name.to_owned();
            }
            if let Some(bio) = bio {
                fields.bio = bio.to_owned();
            }
            UserDoc::set_profile(am, &fields)?;
            Ok(())
        })
    }

    /// Sets the avatar from an image file.
    pub fn set_avatar(&mut self, image: &Path) -> Result<BlobHash> {
        let (mime, bytes) = read_image(image)?;
        self.set_avatar_checked(mime, bytes)
    }

    /// Sets the avatar from an image's bytes (a file picked in the desktop app).
    pub fn set_avatar_bytes(&mut self, bytes: Vec<u8>) -> Result<BlobHash> {
        let (mime, bytes) = checked_image(Path::new("avatar image"), bytes)?;
        self.set_avatar_checked(mime, bytes)
    }

    /// Removes the avatar: others see the initial of the name again.
    pub fn remove_avatar(&mut self) -> Result<()> {
        self.edit(DocId::User(self.me), |am, _| {
            let fields = ProfileFields {
                avatar: None,
                ..UserDoc(am).profile()
            };
            UserDoc::set_profile(am, &fields)?;
            Ok(())
        })
    }

    fn set_avatar_checked(&mut self, mime: &'static str, bytes: Vec<u8>) -> Result<BlobHash> {
        self.edit(DocId::User(self.me), |am, conn| {
            let hash = blobs::put(conn, mime, &bytes)?;
            let fields = ProfileFields {
                avatar: Some(hash),
                ..UserDoc(am).profile()
            };
            UserDoc::set_profile(am, &fields)?;
            Ok(hash)
        })
    }

    /// Posts `text` with images read from the files `images`; returns the new post's id.
    pub fn post(&mut self, text: &str, images: &[PathBuf]) -> Result<PostId> {
        self.check_image_count(images.len())?;
        let images = images
            .iter()
            .map(|p| read_image(p))
            .collect::<Result<Vec<_>>>()?;
        self.post_checked(text, images)
    }

    /// Posts `text` with images given as bytes (pasted or dropped in the app); returns the
    /// new post's id.
    pub fn post_with_image_bytes(&mut self, text: &str, images: Vec<Vec<u8>>) -> Result<PostId> {
        self.check_image_count(images.len())?;
        let images = images
            .into_iter()
            .enumerate()
            .map(|(i, bytes)| checked_image(Path::new(&format!("image {}", i + 1)), bytes))
            .collect::<Result<Vec<_>>>()?;
        self.post_checked(text, images)
    }

    fn check_image_count(&self, count: usize) -> Result<()> {
        if count > limits::IMAGES_PER_POST {
            return Err(Error::TooManyImages {
                count,
                max: limits::IMAGES_PER_POST,
            });
        }
        Ok(())
    }

    fn post_checked(&mut self, text: &str, images: Vec<(&'static str, Vec<u8>)>) -> Result<PostId> {
        let text = checked_text("post", text, limits::POST_TEXT)?;
        if text.trim().is_empty() && images.is_empty() {
            // Whitespace alone is no text: said as empty, like an empty comment.
            return Err(Error::TextLength {
                what: "post",
                len: 0,
                min: 1,
                max: limits::POST_TEXT.1,
            });
        }
        let id = PostId::new(self.me, &self.env.random_bytes::<10>());
        let created_at = self.env.clock.now_ms();
        self.edit(DocId::User(self.me), |am, conn| {
            let media = images
                .iter()
                .map(|(mime, bytes)| blobs::put(conn, mime, bytes))
                .collect::<Result<Vec<_>>>()?;
            let entry = PostEntry {
                id: id.clone(),
                text: text.to_owned(),
                media,
                created_at,
            };
            UserDoc::add_post(am, &entry)?;
            Ok(())
        })?;
        Ok(id)
    }

    /// An app setting (free-form text by key), if set.
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        settings::get(self.store.conn(), key)
    }

    /// Sets an app setting.
    pub fn set_setting(&mut self, key: &str, value: &str) -> Result<()> {
        self.store.write(|c| settings::set(c, key, value))
    }

    /// Deletes one of the user's own posts.
    pub fn delete_post(&mut self, id: &PostId) -> Result<()> {
        if id.author() != self.me {
            return Err(Error::NotYours {
                what: format!("post {id}"),
                author: id.author().to_string(),
            });
        }
        self.edit(DocId::User(self.me), |am, conn| {
            if UserDoc::remove_post(am, id)? {
                Ok(())
            } else {
                Err(queries::missing_post(conn, id))
            }
        })
    }

    /// Likes a post (nothing happens if already liked).
    pub fn like(&mut self, post: &PostId) -> Result<()> {
        self.require_post(post)?;
        let (me, at) = (self.me, self.env.clock.now_ms());
        self.edit(DocId::Thread(post.clone()), |am, _| {
            Ok(ThreadDoc::like(am, me, at)?)
        })
    }

    /// Takes a like back (nothing happens if not liked).
    pub fn unlike(&mut self, post: &PostId) -> Result<()> {
        self.require_post(post)?;
        let me = self.me;
        self.edit(DocId::Thread(post.clone()), |am, _| {
            Ok(ThreadDoc::unlike(am, me).map(drop)?)
        })
    }

    /// Comments on a post; returns the new comment's id.
    pub fn comment(&mut self, post: &PostId, text: &str) -> Result<CommentId> {
        let text = checked_text("comment", text.trim(), limits::COMMENT)?;
        self.require_post(post)?;
        let id = CommentId::new(self.me, &self.env.random_bytes::<10>());
        let entry = CommentEntry {
            id: id.clone(),
            text: text.to_owned(),
            created_at: self.env.clock.now_ms(),
        };
        self.edit(DocId::Thread(post.clone()), |am, _| {
            Ok(ThreadDoc::add_comment(am, &entry)?)
        })?;
        Ok(id)
    }

    /// Deletes one of the user's own comments.
    pub fn delete_comment(&mut self, id: &CommentId) -> Result<()> {
        if id.author() != self.me {
            return Err(Error::NotYours {
                what: format!("comment {id}"),
                author: id.author().to_string(),
            });
        }
        let post: Option<String> = self
            .store
            .conn()
            .query_row(
                "SELECT post_id FROM comments WHERE comment_id = ?1",
                [id.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        let post: PostId = post
            .ok_or_else(|| Error::UnknownComment(id.clone()))?
            .parse()?;
        self.edit(DocId::Thread(post), |am, _| {
            if ThreadDoc::remove_comment(am, id)? {
                Ok(())
            } else {
                Err(Error::UnknownComment(id.clone()))
            }
        })
    }

    /// Follows a user (nothing happens if already following).
    pub fn follow(&mut self, uid: UserId) -> Result<()> {
        if uid == self.me {
            return Err(Error::FollowSelf);
        }
        let at = self.env.clock.now_ms();
        self.edit(DocId::User(self.me), |am, _| {
            Ok(UserDoc::follow(am, uid, at)?)
        })
    }

    /// Stops following a user (nothing happens if not following).
    pub fn unfollow(&mut self, uid: UserId) -> Result<()> {
        self.edit(DocId::User(self.me), |am, _| {
            Ok(UserDoc::unfollow(am, uid).map(drop)?)
        })
    }

    /// Blocks a user: stops following them; from now on their likes, comments and follows
    /// never notify, and they are left out of the feed, threads, counts, search and the
    /// notifications list. Private to this profile: nothing is synced.
    pub fn block(&mut self, uid: UserId) -> Result<()> {
        if uid == self.me {
            return Err(Error::BlockSelf);
        }
        self.unfollow(uid)?;
        let now = self.env.clock.now_ms();
        self.store.write(|c| blocks::block(c, uid, now)).map(drop)
    }

    /// Unblocks a user (nothing happens if not blocked). Following them again is up to the
    /// user.
    pub fn unblock(&mut self, uid: UserId) -> Result<()> {
        self.store.write(|c| blocks::unblock(c, uid)).map(drop)
    }

    /// Blocked users with their display names when known, most recent first.
    pub fn blocked(&self) -> Result<Vec<(UserId, Option<String>)>> {
        blocks::list(self.store.conn())
    }

    /// Mutes the notifications of a post: its likes and comments no longer notify.
    pub fn mute_post(&mut self, post: &PostId) -> Result<()> {
        self.require_post(post)?;
        let now = self.env.clock.now_ms();
        self.store.write(|c| mutes::mute(c, post, now)).map(drop)
    }

    /// Lets a muted post notify again.
    pub fn unmute_post(&mut self, post: &PostId) -> Result<()> {
        self.store.write(|c| mutes::unmute(c, post)).map(drop)
    }

    /// Runs `f` on document `doc` and, if it changed anything, stores the new change,
    /// updates the index and compacts when due, all in one transaction.
    fn edit<T>(
        &mut self,
        doc: DocId,
        f: impl FnOnce(&mut AutoCommit, &Connection) -> Result<T>,
    ) -> Result<T> {
        let (me, actor, now) = (self.me, self.actor.clone(), self.env.clock.now_ms());
        self.store.write(|conn| {
            let mut am = documents::load(conn, &doc)?.unwrap_or_default();
            am.set_actor(actor);
            let before = am.get_heads();
            let out = f(&mut am, conn)?;
            if am
                .commit_with(CommitOptions::default().with_time(now))
                .is_some()
            {
                let new = am.get_changes(&before);
                documents::append(conn, &doc, &new)?;
                // Waits here until the relay confirms it holds the document.
                conn.execute(
                    "INSERT INTO outbox (doc_id, changes) VALUES (?1, ?2)
                     ON CONFLICT (doc_id) DO UPDATE SET changes = changes + excluded.changes",
                    rusqlite::params![doc.to_string(), new.len()],
                )?;
                index::update(conn, me, &doc, &mut am, &before)?;
                documents::compact_if_due(conn, &doc, &mut am)?;
            }
            Ok(out)
        })
    }

    fn require_post(&self, post: &PostId) -> Result<()> {
        queries::post(self.store.conn(), self.me, post).map(drop)
    }

    // ----- queries -----------------------------------------------------------------

    /// A page of the feed: own and followed users' posts, newest first.
    pub fn feed(&self, after: Option<&FeedCursor>, limit: usize) -> Result<FeedPage> {
        queries::feed(self.store.conn(), self.me, after, limit)
    }

    /// One post.
    pub fn post_view(&self, id: &PostId) -> Result<FeedItem> {
        queries::post(self.store.conn(), self.me, id)
    }

    /// A post and its comments.
    pub fn thread(&self, id: &PostId) -> Result<ThreadView> {
        queries::thread(self.store.conn(), self.me, id)
    }

    /// A user's profile.
    pub fn profile(&self, uid: UserId) -> Result<ProfileView> {
        queries::profile(self.store.conn(), self.me, uid)
    }

    /// A user's posts, newest first.
    pub fn posts_by(&self, author: UserId, limit: usize) -> Result<Vec<FeedItem>> {
        queries::posts_by(self.store.conn(), self.me, author, limit)
    }

    /// People this profile holds whose name starts with `prefix`.
    pub fn people(&self, prefix: &str, limit: usize) -> Result<Vec<queries::PersonHit>> {
        queries::people(self.store.conn(), self.me, prefix, limit)
    }

    /// Full-text search over every post this profile holds.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<FeedItem>> {
        queries::search(self.store.conn(), self.me, query, limit)
    }

    /// Notifications, newest first.
    pub fn notifications(&self, unread_only: bool, limit: usize) -> Result<Vec<Notification>> {
        notifications::list(self.store.conn(), unread_only, limit)
    }

    /// Notifications of the given kinds only (every kind when `kinds` is empty), newest
    /// first.
    pub fn notifications_of_kinds(
        &self,
        unread_only: bool,
        kinds: &[NotificationKind],
        limit: usize,
    ) -> Result<Vec<Notification>> {
        notifications::list_of_kinds(self.store.conn(), unread_only, kinds, limit)
    }

    /// Where [`Replica::notifications_stored_after`] starts: the newest notification's row
    /// number (0 when there is none).
    pub fn last_notification_row(&self) -> Result<i64> {
        notifications::last_row(self.store.conn())
    }

    /// Notifications stored after row `after`, oldest first, and the row to ask after next
    /// time. A running client uses it to show what another process on the same profile
    /// (a one-shot `sync` beside the app) stored.
    pub fn notifications_stored_after(&self, after: i64) -> Result<(Vec<Notification>, i64)> {
        notifications::stored_after(self.store.conn(), after)
    }

    /// How many notifications are unread.
    pub fn unread_count(&self) -> Result<u64> {
        notifications::unread_count(self.store.conn())
    }

    /// Marks one notification read.
    pub fn mark_read(&mut self, id: &str) -> Result<()> {
        self.store.write(|c| notifications::mark_read(c, id))
    }

    /// Marks every notification read; returns how many were unread.
    pub fn mark_all_read(&mut self) -> Result<usize> {
        self.store.write(notifications::mark_all_read)
    }

    /// An image from the local cache.
    pub fn blob(&self, hash: &BlobHash) -> Result<Option<Blob>> {
        blobs::get(self.store.conn(), hash)
    }

    // ----- changes in and out ------------------------------------------------------

    /// Every document this profile holds.
    pub fn documents(&self) -> Result<Vec<DocId>> {
        documents::list(self.store.conn())
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

    /// Merges another replica's changes to `doc`. Every change is decoded and checked
    /// against the write rules first; if any fails, nothing is merged. Returns what was
    /// applied and the notifications it caused for the local user.
    pub fn merge(&mut self, doc: &DocId, changes: &[Vec<u8>]) -> Result<MergeOutcome> {
        let changes = decode_checked(doc, changes)?;
        let me = self.me;
        // A panic inside (Automerge on input no check foresaw) rolls the transaction back
        // and becomes an error naming the document.
        let store = &mut self.store;
        vetting::contained(doc, || store.write(|conn| merge_in(conn, me, doc, changes)))?
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
    /// or `None` when there is nothing to say. An unknown document syncs as an empty one
    /// (which asks the peer for all of it).
    pub fn generate_sync_message(
        &self,
        doc: &DocId,
        state: &mut SyncState,
    ) -> Result<Option<Vec<u8>>> {
        let mut am = documents::load(self.store.conn(), doc)?.unwrap_or_default();
        let message = vetting::contained(doc, || am.sync().generate_sync_message(state))
            .inspect_err(|_| *state = SyncState::new())?;
        Ok(message.map(vetting::encode_outgoing))
    }

    /// Takes a sync message from the relay for `doc`: applies its changes, checks each
    /// against the write rules (if one fails, nothing is stored), stores and indexes them,
    /// saves the sync state, and returns the notifications they cause. On error the caller
    /// should start over with [`Self::sync_state`].
    pub fn receive_sync_message(
        &mut self,
        doc: &DocId,
        state: &mut SyncState,
        message: &[u8],
    ) -> Result<MergeOutcome> {
        // Every change in the message is vetted (chunk kind, size, write rules), whether or
        // not it can apply yet; Automerge's own panics are contained.
        let vetted = vetting::vet_sync_message(doc, message)?;
        let me = self.me;
        let store = &mut self.store;
        vetting::contained(doc, || {
            store.write(|conn| {
                let mut am = documents::load(conn, doc)?.unwrap_or_default();
                vetting::check_op_order_before(doc, &mut am, &vetted.changes)?;
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

    /// Rebuilds the index from the documents alone. Damaged documents are listed in the
    /// report; everything else is indexed.
    pub fn reindex(&mut self) -> Result<RebuildReport> {
        let me = self.me;
        self.store.write(|conn| index::rebuild(conn, me))
    }

    /// Writes every document and image into the folder `dir`, for offline exchange.
    pub fn export(&self, dir: &Path) -> Result<ExportSummary> {
        export_folder::export(self.store.conn(), self.me, self.env.clock.now_ms(), dir)
    }

    /// Reads an export folder and merges all of it. The folder is checked in full first:
    /// if anything in it is malformed, nothing is changed.
    pub fn import(&mut self, dir: &Path) -> Result<ImportSummary> {
        let folder = export_folder::read(dir)?;
        let me = self.me;
        self.store.write(|conn| {
            let mut summary = ImportSummary {
                documents: folder.documents.len(),
                ..Default::default()
            };
            for (doc, changes) in folder.documents {
                let outcome = merge_in(conn, me, &doc, changes)?;
                summary.changes_applied += outcome.applied;
                summary.notifications.extend(outcome.notifications);
            }
            for blob in &folder.blobs {
                blobs::put(conn, &blob.mime, &blob.bytes)?;
            }
            summary.blobs = folder.blobs.len();
            Ok(summary)
        })
    }
}

/// Decodes encoded changes and vets each (chunk kind, write rules) for `doc`.
pub(crate) fn decode_checked(doc: &DocId, changes: &[Vec<u8>]) -> Result<Vec<Change>> {
    changes
        .iter()
        .enumerate()
        .map(|(index, bytes)| Ok(vetting::vet_change(doc, index, bytes)?))
        .collect()
}

/// Applies checked changes to `doc` inside the caller's transaction.
fn merge_in(
    conn: &Connection,
    me: UserId,
    doc: &DocId,
    changes: Vec<Change>,
) -> Result<MergeOutcome> {
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

/// A profile path must be a folder (or not exist yet).
fn not_a_file(dir: &Path) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        return Err(Error::NotAFolder {
            path: dir.to_owned(),
        });
    }
    Ok(())
}

fn checked_text<'a>(
    what: &'static str,
    text: &'a str,
    (min, max): (usize, usize),
) -> Result<&'a str> {
    let len = text.chars().count();
    if (min..=max).contains(&len) {
        Ok(text)
    } else {
        Err(Error::TextLength {
            what,
            len,
            min,
            max,
        })
    }
}

/// Reads an image file, checking its size and that it is a PNG, JPEG, GIF or WebP.
fn read_image(path: &Path) -> Result<(&'static str, Vec<u8>)> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let size = fs::metadata(path).map_err(io)?.len();
    if size > limits::IMAGE_BYTES {
        return Err(Error::ImageTooLarge {
            path: path.to_owned(),
            size,
            max: limits::IMAGE_BYTES,
        });
    }
    checked_image(path, fs::read(path).map_err(io)?)
}

/// Checks an image's size and kind; `name` names it in errors.
fn checked_image(name: &Path, bytes: Vec<u8>) -> Result<(&'static str, Vec<u8>)> {
    let size = bytes.len() as u64;
    if size > limits::IMAGE_BYTES {
        return Err(Error::ImageTooLarge {
            path: name.to_owned(),
            size,
            max: limits::IMAGE_BYTES,
        });
    }
    let mime = blobs::image_type(&bytes).ok_or_else(|| Error::NotAnImage {
        path: name.to_owned(),
    })?;
    Ok((mime, bytes))
}
