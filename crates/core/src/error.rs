//! [`Error`]: everything an operation of the core can report. Each message carries the
//! values involved and says what to do; [`Error::code`] is the stable name the UI matches
//! on (never the message).

use std::path::PathBuf;

use social_sync_protocol::{CommentId, DocId, IdError, PostId};

use crate::model::rules::RuleViolation;

/// A result with the core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The folder holds no profile.
    #[error("there is no profile in {path}: create one there first")]
    NoProfile {
        /// The profile folder.
        path: PathBuf,
    },
    /// A profile path that is a file.
    #[error(
        "{path} is a file, not a profile folder: choose a folder (an existing profile, or a new path to create one in)"
    )]
    NotAFolder {
        /// The path.
        path: PathBuf,
    },
    /// `init` on a folder that already holds a profile.
    #[error("{path} already holds a profile: use it as it is, or choose another folder")]
    ProfileExists {
        /// The profile folder.
        path: PathBuf,
    },
    /// A file could not be read or written.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The key file is not a PKCS#8 Ed25519 key.
    #[error(
        "the key file {path} is damaged ({detail}): restore it from a backup; without it this profile cannot write"
    )]
    BadKeyFile {
        /// The key file.
        path: PathBuf,
        /// What the parser said.
        detail: String,
    },
    /// A key backup's passphrase is too short.
    #[error("the passphrase is {len} characters; use at least {min} to protect your key")]
    WeakPassphrase {
        /// Its length.
        len: usize,
        /// The minimum.
        min: usize,
    },
    /// The text given is not a Social Sync key backup.
    #[error(
        "this is not a key backup ({detail}): choose the .pem file exported from your other device"
    )]
    BadKeyBackup {
        /// What the parser said.
        detail: String,
    },
    /// The passphrase does not open the key backup.
    #[error(
        "the passphrase does not open this key backup: type the one chosen when it was exported"
    )]
    WrongPassphrase,
    /// The SQLite file is not a database, or is damaged.
    #[error(
        "the profile database {path} is damaged ({detail}): restore it from a backup, or move it away and import an export or sync again to rebuild it"
    )]
    DamagedDatabase {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        detail: String,
    },
    /// The database was written by a newer Social Sync.
    #[error(
        "the profile database {path} has schema version {found}, newer than this program knows ({known}): update Social Sync"
    )]
    NewerDatabase {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        found: usize,
        /// The newest this build knows.
        known: usize,
    },
    /// One stored document could not be loaded; the others are unaffected.
    #[error(
        "the stored document {doc} is damaged ({detail}); other documents are unaffected: receive it again by sync or import, or rebuild the index to see every damaged document"
    )]
    DamagedDocument {
        /// The document.
        doc: DocId,
        /// What Automerge said.
        detail: String,
    },
    /// A change given to merge is not an Automerge change.
    #[error(
        "change #{index} for {doc} is not a valid Automerge change ({detail}); nothing was merged"
    )]
    InvalidChange {
        /// The document.
        doc: DocId,
        /// Position of the change in the batch, from 0.
        index: usize,
        /// What Automerge said.
        detail: String,
    },
    /// A change breaks the write rules.
    #[error("{0}; nothing was merged")]
    Forbidden(#[from] RuleViolation),
    /// Input from elsewhere refused before it reached a document (see
    /// [`crate::model::vetting`]).
    #[error("{0}; nothing was merged")]
    Unvetted(crate::model::vetting::Unvetted),
    /// A malformed id.
    #[error(transparent)]
    InvalidId(#[from] IdError),
    /// The post is not in this profile.
    #[error("post {0} is not in this profile: check the id, or sync to receive it")]
    UnknownPost(PostId),
    /// The post was deleted by its author (this profile held it and saw it go): it can no
    /// longer be shown, liked or commented on.
    #[error("post {0} was deleted by its author: it can no longer be shown, liked or commented on")]
    DeletedPost(PostId),
    /// The comment is not in this profile.
    #[error("comment {0} is not in this profile: check the id, or sync to receive it")]
    UnknownComment(CommentId),
    /// Deleting someone else's post or comment.
    #[error("{what} belongs to {author}: you can only delete your own")]
    NotYours {
        /// "post <id>" or "comment <id>".
        what: String,
        /// Its author.
        author: String,
    },
    /// The notification id is unknown.
    #[error("there is no notification {0}: list them with `notifications`")]
    UnknownNotification(String),
    /// Following oneself.
    #[error("you cannot follow yourself")]
    FollowSelf,
    /// Blocking oneself.
    #[error("you cannot block yourself")]
    BlockSelf,
    /// Text over a limit, or empty where content is required. One wording for every
    /// field: "the comment is empty: write something first", "the post text is 5001
    /// characters; at most 5000 are allowed: shorten it".
    #[error("{}", describe_length(what, *len, *min, *max))]
    TextLength {
        /// "post text", "comment", "name", ...
        what: &'static str,
        /// Its length in characters.
        len: usize,
        /// Smallest allowed.
        min: usize,
        /// Largest allowed.
        max: usize,
    },
    /// A display name that cannot be registered (invisible characters, nothing visible).
    #[error(transparent)]
    BadName(#[from] crate::model::name::NameError),
    /// More images than a post may carry.
    #[error("a post may carry at most {max} images, not {count}: remove some")]
    TooManyImages {
        /// How many were given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A file that is not a supported image.
    #[error("{path} is not a PNG, JPEG, GIF or WebP image: choose an image file")]
    NotAnImage {
        /// The file.
        path: PathBuf,
    },
    /// An image over the size limit.
    #[error("{path} is {size} bytes; images may be at most {max} bytes: shrink it first")]
    ImageTooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// An export or import folder problem.
    #[error("{0}")]
    Export(#[from] crate::export_folder::ExportError),
    /// Automerge refused an edit this program made: a bug.
    #[error("the document edit failed ({0}): nothing was saved; please report this bug")]
    Edit(#[from] automerge::AutomergeError),
    /// A relay list that cannot be used (given, or saved in the profile).
    #[error("{0}")]
    RelayList(#[from] crate::sync_engine::RelayListError),
    /// The profile's disk could not take a write: full, read-only, or failing. SQLite
    /// rolled the transaction back: nothing of it was kept.
    #[error(
        "the profile's disk cannot take this write ({detail}): free some disk space or make the profile folder writable, then try again; nothing of it was kept"
    )]
    Disk {
        /// What SQLite said.
        detail: String,
    },
    /// Any other SQLite failure.
    #[error("database error: {0}; if it persists, rebuild the index")]
    Database(rusqlite::Error),
}

impl From<rusqlite::Error> for Error {
    /// A full, read-only or failing disk is told apart from other database errors: the
    /// user can do something about it, and rebuilding the index would not help.
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::{CannotOpen, DiskFull, ReadOnly, SystemIoFailure};
        match &e {
            rusqlite::Error::SqliteFailure(f, _)
                if matches!(f.code, DiskFull | ReadOnly | SystemIoFailure | CannotOpen) =>
            {
                Self::Disk {
                    detail: e.to_string(),
                }
            }
            _ => Self::Database(e),
        }
    }
}

impl Error {
    /// A stable, machine-readable name for this kind of error, for the UI to match on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoProfile { .. } => "no_profile",
            Self::NotAFolder { .. } => "not_a_folder",
            Self::ProfileExists { .. } => "profile_exists",
            Self::Io { .. } => "io",
            Self::BadKeyFile { .. } => "bad_key_file",
            Self::WeakPassphrase { .. } => "weak_passphrase",
            Self::BadKeyBackup { .. } => "bad_key_backup",
            Self::WrongPassphrase => "wrong_passphrase",
            Self::DamagedDatabase { .. } => "damaged_database",
            Self::NewerDatabase { .. } => "newer_database",
            Self::DamagedDocument { .. } => "damaged_document",
            Self::InvalidChange { .. } => "invalid_change",
            Self::Forbidden(_) => "forbidden",
            Self::Unvetted(crate::model::vetting::Unvetted::Rule(_)) => "forbidden",
            Self::Unvetted(_) => "invalid_change",
            Self::InvalidId(_) => "invalid_id",
            Self::UnknownPost(_) => "unknown_post",
            Self::DeletedPost(_) => "deleted_post",
            Self::UnknownComment(_) => "unknown_comment",
            Self::NotYours { .. } => "not_yours",
            Self::UnknownNotification(_) => "unknown_notification",
            Self::FollowSelf => "follow_self",
            Self::BlockSelf => "block_self",
            Self::TextLength { .. } => "text_length",
            Self::BadName(_) => "bad_name",
            Self::TooManyImages { .. } => "too_many_images",
            Self::NotAnImage { .. } => "not_an_image",
            Self::ImageTooLarge { .. } => "image_too_large",
            Self::Export(_) => "export",
            Self::Edit(_) => "edit",
            Self::RelayList(_) => "bad_relay_list",
            Self::Disk { .. } => "disk",
            Self::Database(_) => "database",
        }
    }
}

impl From<crate::model::ModelError> for Error {
    fn from(e: crate::model::ModelError) -> Self {
        match e {
            crate::model::ModelError::DamagedDocument { doc, detail } => {
                Self::DamagedDocument { doc, detail }
            }
            crate::model::ModelError::Database(e) => Self::from(e),
        }
    }
}

impl From<crate::model::vetting::Unvetted> for Error {
    fn from(e: crate::model::vetting::Unvetted) -> Self {
        match e {
            crate::model::vetting::Unvetted::Rule(violation) => Self::Forbidden(violation),
            other => Self::Unvetted(other),
        }
    }
}

/// The sentence of [`Error::TextLength`].
fn describe_length(what: &str, len: usize, min: usize, max: usize) -> String {
    if len == 0 || len < min {
        format!("the {what} is empty: write something first")
    } else {
        format!("the {what} is {len} characters; at most {max} are allowed: shorten it")
    }
}
