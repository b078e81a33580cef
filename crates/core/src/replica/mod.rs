//! [`Replica`]: one user's profile folder, opened. Every operation of the product goes
//! through here: edits become Automerge changes stored and indexed in one transaction;
//! changes from elsewhere are checked, merged, indexed and turned into notifications in
//! one transaction too.

use std::fs;
use std::path::{Path, PathBuf};

use automerge::{ActorId, AutoCommit, transaction::CommitOptions};
use rusqlite::{Connection, OptionalExtension};
use social_sync_protocol::{BlobHash, CommentId, DocId, PostId, UserId};

use crate::export_folder::{self, ExportSummary, ImportSummary};
use crate::identity::{Identity, KEY_FILE};
use crate::model::{self, CommentEntry, PostEntry, ProfileFields, ThreadDoc, UserDoc};
use crate::store::blobs::{self, Blob};
use crate::store::index::{self, RebuildReport};
use crate::store::queries::{self, FeedCursor, FeedItem, FeedPage, ProfileView, ThreadView};
use crate::store::{Store, blocks, documents, mutes, notifications, settings, signatures};
use crate::{Env, Error, Notification, NotificationKind, Result};

mod signing;
mod sync;

/// Limits on what a user can write (kept with the write rules that enforce them).
pub use social_sync_model::limits;

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
    /// Counts the edits committed through this replica: fired after each, so a running
    /// sync engine sends them at once instead of looking for them now and then.
    edits: tokio::sync::watch::Sender<u64>,
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
        let mut replica = Self {
            dir: dir.to_owned(),
            identity,
            device,
            me,
            actor: model::actor_id(me, device),
            store,
            env,
            edits: tokio::sync::watch::Sender::new(0),
        };
        replica.sign_own_changes()?;
        Ok(replica)
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

    /// A signal that changes after each edit committed through this replica (a post, a
    /// like, a follow...): what a running sync engine awaits to send it at once. Edits made
    /// by other processes on the profile do not fire it (see [`Store::data_version`]).
    pub fn local_edits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.edits.subscribe()
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
        let identity = &self.identity;
        let mut committed = false;
        let out = self.store.write(|conn| {
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
                let signed: Vec<_> = new
                    .iter()
                    .map(|c| (c.hash(), identity.sign_change(&doc, c)))
                    .collect();
                signatures::put(conn, &doc, signed.iter().map(|(h, s)| (h, s)))?;
                // Waits here until the relay confirms it holds the document.
                conn.execute(
                    "INSERT INTO outbox (doc_id, changes) VALUES (?1, ?2)
                     ON CONFLICT (doc_id) DO UPDATE SET changes = changes + excluded.changes",
                    rusqlite::params![doc.to_string(), new.len()],
                )?;
                index::update(conn, me, &doc, &mut am, &before)?;
                documents::compact_if_due(conn, &doc, &mut am)?;
                committed = true;
            }
            Ok(out)
        })?;
        if committed {
            self.edits.send_modify(|n| *n = n.wrapping_add(1));
        }
        Ok(out)
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
            for (doc, changes, signatures) in folder.documents {
                let outcome = sync::merge_in(conn, me, &doc, changes, &signatures)?;
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
