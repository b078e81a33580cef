//! What reading stored documents can report.

use social_sync_protocol::DocId;

/// Why a stored document could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A stored snapshot or change does not load.
    #[error(
        "the stored document {doc} is damaged ({detail}); rebuild the index or sync it again from the relay"
    )]
    DamagedDocument {
        /// The document.
        doc: DocId,
        /// What Automerge said.
        detail: String,
    },
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
}

impl ModelError {
    /// A stable, machine-readable name for this kind of error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::DamagedDocument { .. } => "damaged_document",
            Self::Database(_) => "database",
        }
    }
}

/// A result with [`ModelError`].
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
