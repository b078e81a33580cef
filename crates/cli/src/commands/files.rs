//! Commands that read or write the user's own files: the key backup (`export-key`,
//! `init --from-backup`) and saved images (`image`).

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

use serde_json::json;
use social_sync_core::{BlobHash, Env, Replica};

use crate::Error;
use crate::output::Printer;

/// Most bytes read for a passphrase or a key backup: far over any real one.
const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// `export-key`: the key, protected by a passphrase, in a new file only the owner can read.
pub(super) fn export_key(
    r: &mut Replica,
    out: &Path,
    passphrase_file: Option<&Path>,
    p: &mut Printer<'_>,
) -> Result<(), Error> {
    refuse_existing(out)?;
    let passphrase = read_passphrase(passphrase_file)?;
    let pem = r.export_key(&passphrase)?;
    write_new(out, pem.as_bytes(), true)?;
    let uid = r.user_id();
    p.value(&json!({"uid": uid, "path": out}), |w| {
        writeln!(
            w,
            "Wrote the key of {uid} to {}: keep it and its passphrase apart; `init --from-backup` makes a second device with them",
            out.display()
        )
    })
}

/// `init --from-backup`: a second device of the user whose key backup `backup` is.
pub(super) fn init_from_backup(
    dir: &Path,
    backup: &Path,
    passphrase_file: Option<&Path>,
    relay: Option<&str>,
    p: &mut Printer<'_>,
) -> Result<(), Error> {
    let text = read_small(backup, "it is not a key backup (not text)").map_err(|detail| {
        Error::ReadBackup {
            path: backup.display().to_string(),
            detail,
        }
    })?;
    let passphrase = read_passphrase(passphrase_file)?;
    let r = Replica::create_from_backup(dir, &text, &passphrase, relay, Env::system())?;
    let uid = r.user_id();
    p.value(
        &json!({"uid": uid, "profile": dir, "restored": true}),
        |w| {
            writeln!(
                w,
                "Made a second device of user {uid} in {}: sync to bring its name, posts and follows",
                dir.display()
            )
        },
    )
}

/// `image HASH --out PATH`: an image from the local cache, into a new file.
pub(super) fn save_image(
    r: &Replica,
    hash: &BlobHash,
    out: &Path,
    p: &mut Printer<'_>,
) -> Result<(), Error> {
    let blob = r
        .blob(hash)?
        .ok_or_else(|| Error::UnknownImage(hash.to_string()))?;
    refuse_existing(out)?;
    write_new(out, &blob.bytes, false)?;
    let bytes = blob.bytes.len();
    p.value(
        &json!({"hash": hash, "mime": blob.mime, "bytes": bytes, "path": out}),
        |w| {
            writeln!(
                w,
                "Saved {hash} ({}, {bytes} bytes) to {}",
                blob.mime,
                out.display()
            )
        },
    )
}

/// Fails early, before asking for a passphrase, when `path` exists.
fn refuse_existing(path: &Path) -> Result<(), Error> {
    if path.symlink_metadata().is_ok() {
        return Err(Error::FileExists(path.display().to_string()));
    }
    Ok(())
}

/// Writes `bytes` to a file that must not exist yet; `private` makes it readable by its
/// owner only (mode 0600, on Unix). A half-written file is removed.
fn write_new(path: &Path, bytes: &[u8], private: bool) -> Result<(), Error> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let failed = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::AlreadyExists => Error::FileExists(path.display().to_string()),
        _ => Error::WriteFile {
            path: path.display().to_string(),
            detail: e.to_string(),
        },
    };
    let mut file = options.open(path).map_err(failed)?;
    if let Err(e) = file.write_all(bytes).and_then(|()| file.sync_all()) {
        drop(file);
        drop(fs::remove_file(path));
        return Err(failed(e));
    }
    Ok(())
}

/// The passphrase: the first line of `file`, or of standard input.
fn read_passphrase(file: Option<&Path>) -> Result<String, Error> {
    let (source_name, text) = match file {
        Some(path) => (
            path.display().to_string(),
            read_small(path, "it is not text"),
        ),
        None => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                // A prompt for a person at a terminal; a failed write only loses the prompt.
                let mut stderr = std::io::stderr().lock();
                drop(write!(
                    stderr,
                    "Passphrase (shown as you type; --passphrase-file avoids that): "
                ));
                drop(stderr.flush());
            }
            let mut bytes = Vec::new();
            let text = std::io::stdin()
                .lock()
                .take(MAX_SECRET_BYTES)
                .read_to_end(&mut bytes)
                .map_err(|e| e.to_string())
                .and_then(|_| String::from_utf8(bytes).map_err(|_| "it is not text".to_owned()));
            ("standard input".to_owned(), text)
        }
    };
    let text = text.map_err(|detail| Error::Passphrase {
        source_name: source_name.clone(),
        detail,
    })?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(Error::Passphrase {
            source_name,
            detail: "its first line is empty".to_owned(),
        });
    }
    Ok(line.to_owned())
}

/// A small text file, or what is wrong with it.
fn read_small(path: &Path, not_text: &str) -> Result<String, String> {
    let file = fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_SECRET_BYTES {
        return Err(format!("it holds more than {MAX_SECRET_BYTES} bytes"));
    }
    String::from_utf8(bytes).map_err(|_| not_text.to_owned())
}
