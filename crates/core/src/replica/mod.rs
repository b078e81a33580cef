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
use crate::{Env, Error, Notification, NotificationKind, RelayList, Result};

mod edits;
mod signing;
mod sync;
mod views;

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

    /// The relay address (or list of addresses, see [`Replica::relays`]) this profile
    /// syncs with, as saved, if set.
    pub fn relay_url(&self) -> Result<Option<String>> {
        settings::get(self.store.conn(), settings::RELAY_URL)
    }

    /// Saves the relay address (or list of addresses), as it is.
    pub fn set_relay_url(&mut self, url: &str) -> Result<()> {
        self.store
            .write(|c| settings::set(c, settings::RELAY_URL, url))
    }

    /// The relays this profile syncs through, if set: the saved address, or list of
    /// addresses, parsed ([`Error::RelayList`] if it cannot be used).
    pub fn relays(&self) -> Result<Option<RelayList>> {
        let saved = self.relay_url()?;
        Ok(saved.as_deref().map(RelayList::parse).transpose()?)
    }

    /// Saves `relays` as the relays this profile syncs through.
    pub fn set_relays(&mut self, relays: &RelayList) -> Result<()> {
        self.set_relay_url(&relays.to_string())
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
