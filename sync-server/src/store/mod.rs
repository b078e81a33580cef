//! Where the relay keeps what must survive a restart: documents, the follow graph, display
//! names, offline inboxes, device cursors and blobs. One trait, one module per backend:
//! the embedded SQLite backend ([`sqlite`]) is the default; [`postgres`] is for several
//! relay nodes sharing one database (`--store postgres://…`). [`open`] picks one.

pub mod postgres;
pub mod sqlite;
mod url;

pub use url::StoreUrl;

use automerge::{AutoCommit, Change, ChangeHash};
use social_sync_model::vetting::ChangeSig;
use social_sync_protocol::{BlobHash, DocId, UserId};

/// A store failure; the relay answers the client with `internal` and logs it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// From SQLite.
    #[error("relay database error: {0}; check the data folder's disk and permissions")]
    Sqlite(#[from] rusqlite::Error),
    /// From the document storage shared with the client (`social_sync_model::documents`).
    #[error(transparent)]
    Model(#[from] social_sync_model::ModelError),
    /// The group transaction holding these changes failed to commit (another connection's
    /// commit of the same group reported why); nothing of them was kept.
    #[error(
        "the relay could not commit group {group} to disk; nothing of it was kept: send it again"
    )]
    Uncommitted {
        /// The group.
        group: u64,
    },
    /// A worker task running a store call failed.
    #[error("a relay worker task failed ({0}); try again")]
    Task(String),
    /// The database file could not be opened for writing.
    #[error(
        "cannot open the relay database {path}: {detail}; check that its folder (--data) is on a writable disk with free space and that the relay may write there"
    )]
    Open {
        /// The database file.
        path: String,
        /// What SQLite said.
        detail: String,
    },
    /// The schema could not be brought up to date.
    #[error("cannot migrate the relay database {path}: {detail}")]
    Migration {
        /// The database file, or the PostgreSQL URL (without its password).
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// From PostgreSQL.
    #[error(
        "relay database error at {url}: {detail}; check that PostgreSQL is running and reachable"
    )]
    Postgres {
        /// The database, without its password.
        url: String,
        /// What PostgreSQL or the connection said, with its causes.
        detail: String,
        /// The error.
        source: ::postgres::Error,
    },
    /// No connection to PostgreSQL could be had from the pool.
    #[error(
        "cannot connect to the relay database at {url}: {detail}; check that PostgreSQL is running and reachable, and the URL's user, password and database"
    )]
    Connect {
        /// The database, without its password.
        url: String,
        /// What the pool said (its last connection error).
        detail: String,
    },
    /// `--store` names no store the relay knows.
    #[error(
        "--store {given}: {why}; give postgres://user@host:port/database, or leave --store out for the embedded SQLite database in --data"
    )]
    UnsupportedStore {
        /// The value given (without a password).
        given: String,
        /// What is wrong with it.
        why: String,
    },
}

impl StoreError {
    /// What a client is told of this failure: that nothing was kept and it is sent again;
    /// the details (the database's address, its errors) are the operator's business and
    /// are logged here instead.
    pub fn for_client(&self) -> String {
        tracing::error!(error = %self, "a store call failed; the client was told to send again");
        "the relay could not store or read this right now (its database is unavailable); \
         nothing of it was kept: your app sends it again by itself"
            .into()
    }
}

/// What to write for newly accepted changes of one document, in one transaction.
#[derive(Debug)]
pub struct Accepted<'a> {
    /// The document.
    pub doc: &'a DocId,
    /// The new changes, already applied to the document.
    pub changes: &'a [Change],
    /// Who they concern and what they change in the follow graph and names.
    pub routing: Routing,
    /// The authors' signatures of every change of the message (verified), applied or
    /// still waiting for a dependency.
    pub signatures: &'a [(ChangeHash, ChangeSig)],
}

/// Accepted changes staged in a group transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Staged {
    /// The sequence number of the document's news.
    pub seq: u64,
    /// The sequence number the document's news had before (0 if none): its version when
    /// these changes were staged. A node whose copy was of another version worked on a
    /// stale copy (another node wrote in between) and must not cache the result.
    pub previous: u64,
    /// The group to commit.
    pub group: u64,
}

/// Who accepted changes concern, and what they change besides the document.
#[derive(Debug, Default)]
pub struct Routing {
    /// Follows the changes touched: (follower, followee, following now?).
    pub follows: Vec<(UserId, UserId, bool)>,
    /// The owner and the key of the display name to register to them, if the changes set
    /// a name that is free or already theirs (see [`crate::names`]).
    pub name: Option<(UserId, String)>,
    /// Users whose connected devices get this document live (offline ones catch up from
    /// the document's news).
    pub recipients: Vec<UserId>,
}

/// The relay's durable state.
pub trait RelayStore: Send {
    /// Loads a document, if stored.
    fn load(&mut self, doc: &DocId) -> Result<Option<AutoCommit>, StoreError>;

    /// Keeps verified signatures of changes of `doc` (those already kept stay).
    fn put_signatures(
        &mut self,
        doc: &DocId,
        signatures: &[(ChangeHash, ChangeSig)],
    ) -> Result<(), StoreError>;

    /// The signatures of encoded changes of `doc`, one per change in order, empty where
    /// none is kept (changes stored before signatures, until their author hands them in).
    fn signatures_for(
        &mut self,
        doc: &DocId,
        changes: &[Vec<u8>],
    ) -> Result<Vec<Vec<u8>>, StoreError>;

    /// Bytes `doc` takes in the store (0 if never stored): how the document cache weighs it.
    fn stored_bytes(&mut self, doc: &DocId) -> Result<u64, StoreError>;

    /// Stages accepted changes, the follow graph and names they change, and the document's
    /// news for offline devices (one entry per document, whatever the number of people it
    /// concerns), atomically, into the open group transaction; returns the sequence number
    /// the news got and the group, which is not durable until [`Self::commit`]ted.
    fn accept(
        &mut self,
        am: &mut AutoCommit,
        accepted: &Accepted<'_>,
    ) -> Result<Staged, StoreError>;

    /// Makes `group` durable (committing it, and everything staged with it, unless another
    /// connection's commit did already). Nothing staged may be acknowledged or passed on
    /// before this returns.
    fn commit(&mut self, group: u64) -> Result<(), StoreError>;

    /// Users who follow `user`.
    fn followers(&mut self, user: UserId) -> Result<Vec<UserId>, StoreError>;

    /// Users `user` follows.
    fn following(&mut self, user: UserId) -> Result<Vec<UserId>, StoreError>;

    /// Whether `follower` follows `followee`.
    fn follows(&mut self, follower: UserId, followee: UserId) -> Result<bool, StoreError>;

    /// The documents `user` cares about (their own, those of the people they follow and
    /// their posts' threads, their followers' user documents) with news newer than what
    /// `device` has acknowledged, and the newest sequence number among them.
    fn inbox(&mut self, user: UserId, device: &str) -> Result<(Vec<DocId>, u64), StoreError>;

    /// `device` of `user` has stored its inbox up to `seq`.
    fn ack_inbox(&mut self, user: UserId, device: &str, seq: u64) -> Result<(), StoreError>;

    /// Who holds the display name with this key (see `social_sync_model::name`).
    fn name_holder(&mut self, key: &str) -> Result<Option<UserId>, StoreError>;

    /// Stores a blob uploaded by `uploader` (a no-op if the hash is stored already).
    fn put_blob(
        &mut self,
        hash: &BlobHash,
        mime: &str,
        bytes: &[u8],
        uploader: UserId,
    ) -> Result<(), StoreError>;

    /// Whether a blob is stored.
    fn has_blob(&mut self, hash: &BlobHash) -> Result<bool, StoreError>;

    /// Bytes of the blobs `uploader` stored.
    fn blob_bytes_of(&mut self, uploader: UserId) -> Result<u64, StoreError>;

    /// Reads a blob.
    fn get_blob(&mut self, hash: &BlobHash) -> Result<Option<(String, Vec<u8>)>, StoreError>;

    /// Figures for metrics: (documents, documents with news).
    fn counts(&mut self) -> Result<(u64, u64), StoreError>;

    /// Whether other relay nodes write to this store too (PostgreSQL): a node's cached
    /// documents are then checked against [`Self::version`] before use.
    fn shared(&self) -> bool {
        false
    }

    /// The version of `doc` in the store: the sequence number of its latest news (0 if it
    /// has none). Every accepted change moves it.
    fn version(&mut self, doc: &DocId) -> Result<u64, StoreError>;

    /// The newest news sequence number handed out (0 if none).
    fn news_seq(&mut self) -> Result<u64, StoreError>;

    /// Up to `limit` documents with news after `seq`, oldest first, each with its news
    /// number: what a relay node that missed live messages (its bus was down) passes on.
    fn news_after(&mut self, seq: u64, limit: usize) -> Result<Vec<(DocId, u64)>, StoreError>;
}

/// Opens the store `config` names: PostgreSQL with `--store postgres://…`, else the embedded
/// SQLite database in `--data`; migrates it. Blocks (network and disk): call it from a
/// blocking thread ([`crate::blocking::run`]), never from an async task.
pub fn open(config: &crate::Config) -> Result<Box<dyn RelayStore>, StoreError> {
    Ok(match &config.store {
        None => Box::new(sqlite::SqliteStore::open(&config.data)?),
        Some(url @ StoreUrl::Postgres(_)) => Box::new(postgres::PgStore::open(url)?),
    })
}

/// An error with its causes, `: `-separated (the PostgreSQL client's own message leaves
/// them out: "error connecting to server" without "Connection refused").
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}
