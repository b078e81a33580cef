//! What a command can fail with.

/// A command's failure; printed to stderr as one sentence.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From the core library, with what to do said in the CLI's own terms.
    #[error("{}", in_cli_terms(.0))]
    Core(#[from] social_sync_core::Error),
    /// A `--relay` that is not one or more relay addresses.
    #[error("--relay: {0}")]
    Relays(#[from] social_sync_core::RelayListError),
    /// A `--ca-cert` file that is not a PEM certificate.
    #[error(
        "cannot use {path} as a trusted CA certificate ({detail}): give --ca-cert a PEM file holding the CA's certificate (-----BEGIN CERTIFICATE-----)"
    )]
    CaCert {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// A feed cursor that does not name a post in the feed.
    #[error(
        "cannot page after {0}: it is not a post in this profile; use a post_id printed by `feed`"
    )]
    Cursor(String),
    /// No `--profile` and no `SOCIAL_SYNC_PROFILE`.
    #[error("say which profile folder to use: --profile DIR (or set SOCIAL_SYNC_PROFILE)")]
    NoProfileArg,
    /// From the sync engine.
    #[error("{}", sync_in_cli_terms(.0))]
    Sync(#[from] social_sync_core::SyncError),
    /// `follow @NAME` for a name nobody has.
    #[error("nobody on the relay is called @{0}: check the spelling, or follow by user id")]
    UnknownName(String),
    /// Neither a user id nor `@NAME`.
    #[error(
        "'{0}' is neither a user id nor @NAME: use the id printed by `whoami`, or @ and a display name"
    )]
    Who(String),
    /// The profile was still in use by the sync engine (a bug).
    #[error("the profile is still in use by the sync engine; please report this bug")]
    Busy,
    /// A post or comment text that could not be read.
    #[error(
        "cannot read the text from {source_name}: {detail}; give the text as an argument, `-` for standard input, or --file PATH"
    )]
    TextSource {
        /// The file, or "standard input".
        source_name: String,
        /// What went wrong.
        detail: String,
    },
    /// Nothing to mark read.
    #[error("say which notification to mark read (its id), or pass --all")]
    MarkWhat,
    /// A passphrase that could not be read.
    #[error(
        "cannot read the passphrase from {source_name}: {detail}; put it on the first line of a file given with --passphrase-file PATH, or of standard input"
    )]
    Passphrase {
        /// The file, or "standard input".
        source_name: String,
        /// What went wrong.
        detail: String,
    },
    /// A key backup file that could not be read.
    #[error("cannot read the key backup {path}: {detail}; give the file written by `export-key`")]
    ReadBackup {
        /// The file.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// An output file that is already there.
    #[error(
        "{0} already exists: give --out a path that does not exist yet (nothing is overwritten)"
    )]
    FileExists(String),
    /// An output file that could not be written.
    #[error("cannot write {path}: {detail}; check that its folder exists and is writable")]
    WriteFile {
        /// The file.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// An image hash this profile holds no image for.
    #[error(
        "image {0} is not in this profile: check the hash (shown in posts and profiles with --json), or sync to receive it"
    )]
    UnknownImage(String),
    /// Writing the output failed (e.g. a closed pipe).
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

/// A core error's sentence, with the CLI's way to do what it asks (the core's words suit
/// every front end; the command to type is the CLI's to say).
fn in_cli_terms(e: &social_sync_core::Error) -> String {
    match e.code() {
        "no_profile" => format!("{e} (`social-sync-cli --profile DIR init --name NAME`)"),
        "damaged_document" | "database" => format!("{e} (`social-sync-cli --profile DIR reindex`)"),
        _ => e.to_string(),
    }
}

fn sync_in_cli_terms(e: &social_sync_core::SyncError) -> String {
    match e {
        social_sync_core::SyncError::NoRelay => {
            format!("{e}: pass --relay ws://HOST:PORT (it is saved once the relay answers)")
        }
        social_sync_core::SyncError::Local(inner) => in_cli_terms(inner),
        social_sync_core::SyncError::Tls { problem, .. } => match problem {
            social_sync_core::TlsProblem::Untrusted => format!(
                "{e} (or `social-sync-cli sync --ca-cert CA.pem`, which also saves it with the relay)"
            ),
            social_sync_core::TlsProblem::NotTls | social_sync_core::TlsProblem::TlsRequired => {
                format!("{e} (`social-sync-cli sync --relay URL` saves the new address)")
            }
            _ => e.to_string(),
        },
        _ => e.to_string(),
    }
}
