//! The user's Ed25519 key pair, kept in the profile folder as a PKCS#8 PEM file that only
//! its owner can read (mode 0600 on Unix). The user id is the public key.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding};
use social_sync_protocol::UserId;

use crate::{Env, Error, Result};

/// The key file's name inside a profile folder.
pub const KEY_FILE: &str = "identity.pem";

/// Shortest passphrase a key backup accepts.
pub const MIN_PASSPHRASE: usize = 8;

/// PEM label of a key backup.
const BACKUP_LABEL: &str = "ENCRYPTED PRIVATE KEY";

/// scrypt cost: 2^15 rounds, 32 MiB of memory (OWASP's recommended minimum); a fraction of
/// a second in a release build, and the same again for each guess of an attacker.
const SCRYPT_LOG_N: u8 = 15;

/// A user's signing key.
#[derive(Clone)]
pub struct Identity {
    key: SigningKey,
}

impl Identity {
    /// Makes a new key from the environment's randomness.
    pub fn generate(env: &mut Env) -> Self {
        Self {
            key: SigningKey::from_bytes(&env.random_bytes::<32>()),
        }
    }

    /// The user id: the public key.
    pub fn user_id(&self) -> UserId {
        UserId::from_bytes(self.key.verifying_key().to_bytes())
    }

    /// Signs `message` with the user's key (the relay's challenge, for instance).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.key.sign(message).to_bytes()
    }

    /// Signs `change`, made by this user, as a change of `doc` (see
    /// [`crate::model::vetting::signature`]).
    pub fn sign_change(
        &self,
        doc: &social_sync_protocol::DocId,
        change: &automerge::Change,
    ) -> crate::model::vetting::ChangeSig {
        crate::model::vetting::signature::sign(&self.key, doc, change)
    }

    /// Reads the key file of the profile folder `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(KEY_FILE);
        let pem = fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let key = SigningKey::from_pkcs8_pem(&pem).map_err(|e| Error::BadKeyFile {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        warn_if_readable_by_others(&path);
        Ok(Self { key })
    }

    /// Writes the key file of the profile folder `dir`; refuses to replace an existing one.
    pub fn save_new(&self, dir: &Path) -> Result<()> {
        let path = dir.join(KEY_FILE);
        let pem = self
            .key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| Error::BadKeyFile {
                path: path.clone(),
                detail: e.to_string(),
            })?;
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let mut file = owner_only_options().open(&path).map_err(io)?;
        file.write_all(pem.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(())
    }

    /// The key as a passphrase-protected backup, to carry to another device: a PEM
    /// "ENCRYPTED PRIVATE KEY" (PKCS#8 with PBES2: scrypt, then AES-256-CBC), which
    /// OpenSSL reads too. Salt and IV come from `env`.
    pub fn export_protected(&self, passphrase: &str, env: &mut Env) -> Result<String> {
        let len = passphrase.chars().count();
        if len < MIN_PASSPHRASE {
            return Err(Error::WeakPassphrase {
                len,
                min: MIN_PASSPHRASE,
            });
        }
        let failed = |detail: String| Error::BadKeyBackup { detail };
        let der = self.key.to_pkcs8_der().map_err(|e| failed(e.to_string()))?;
        let info =
            pkcs8::PrivateKeyInfo::try_from(der.as_bytes()).map_err(|e| failed(e.to_string()))?;
        let salt = env.random_bytes::<16>();
        let iv = env.random_bytes::<16>();
        let params = pkcs8::pkcs5::scrypt::Params::new(SCRYPT_LOG_N, 8, 1, 32)
            .map_err(|e| failed(e.to_string()))?;
        let pbes2 = pkcs8::pkcs5::pbes2::Parameters::scrypt_aes256cbc(params, &salt, &iv)
            .map_err(|e| failed(e.to_string()))?;
        let encrypted = info
            .encrypt_with_params(pbes2, passphrase.as_bytes())
            .map_err(|e| failed(e.to_string()))?;
        let pem = encrypted
            .to_pem(BACKUP_LABEL, LineEnding::LF)
            .map_err(|e| failed(e.to_string()))?;
        Ok(pem.to_string())
    }

    /// Opens a backup made by [`Identity::export_protected`].
    pub fn import_protected(backup: &str, passphrase: &str) -> Result<Self> {
        let failed = |detail: String| Error::BadKeyBackup { detail };
        let (label, doc) =
            pkcs8::SecretDocument::from_pem(backup.trim()).map_err(|e| failed(e.to_string()))?;
        if label != BACKUP_LABEL {
            return Err(failed(format!(
                "it holds a {label:?}, not an {BACKUP_LABEL:?}"
            )));
        }
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(doc.as_bytes())
            .map_err(|e| failed(e.to_string()))?;
        let plain = info
            .decrypt(passphrase.as_bytes())
            .map_err(|_| Error::WrongPassphrase)?;
        let key =
            SigningKey::from_pkcs8_der(plain.as_bytes()).map_err(|e| failed(e.to_string()))?;
        Ok(Self { key })
    }

    /// Where the key file of `dir` lives.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(KEY_FILE)
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        write!(f, "Identity({})", self.user_id())
    }
}

#[cfg(unix)]
fn owner_only_options() -> fs::OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true).mode(0o600);
    options
}

#[cfg(not(unix))]
fn owner_only_options() -> fs::OpenOptions {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    options
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            "the key file can be read by other users of this machine: run `chmod 600` on it"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_key_loads_back_with_the_same_user_id() {
        let dir = tempfile::tempdir().unwrap();
        let mut env = Env::deterministic(1, 0);
        let id = Identity::generate(&mut env);
        id.save_new(dir.path()).unwrap();
        assert_eq!(Identity::load(dir.path()).unwrap().user_id(), id.user_id());
        assert!(
            matches!(id.save_new(dir.path()), Err(Error::Io { .. })),
            "never overwrites a key"
        );
    }

    #[test]
    fn a_key_backup_opens_with_its_passphrase_only() {
        let mut env = Env::deterministic(3, 0);
        let id = Identity::generate(&mut env);
        let backup = id.export_protected("correct horse", &mut env).unwrap();
        assert!(backup.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        let back = Identity::import_protected(&backup, "correct horse").unwrap();
        assert_eq!(back.user_id(), id.user_id());
        assert_eq!(
            Identity::import_protected(&backup, "wrong horse")
                .unwrap_err()
                .code(),
            "wrong_passphrase"
        );
        assert_eq!(
            id.export_protected("short", &mut env).unwrap_err().code(),
            "weak_passphrase"
        );
        let plain = id.key.to_pkcs8_pem(LineEnding::LF).unwrap();
        for not_a_backup in ["", "hello", plain.as_str(), &backup[..backup.len() / 2]] {
            assert_eq!(
                Identity::import_protected(not_a_backup, "correct horse")
                    .unwrap_err()
                    .code(),
                "bad_key_backup",
                "{not_a_backup:?}"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn the_key_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        Identity::generate(&mut Env::deterministic(2, 0))
            .save_new(dir.path())
            .unwrap();
        let mode = fs::metadata(Identity::path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_damaged_key_file_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(Identity::path(dir.path()), "not a key").unwrap();
        let err = Identity::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains(KEY_FILE), "{err}");
    }
}
