//! Envelope encryption of secrets at rest.
//!
//! Every secret column is sealed on its own: a fresh random 32-byte data key (DEK) encrypts the
//! value with AES-256-GCM, and the DEK itself is wrapped with AES-256-GCM under the master key
//! (KEK). The associated data of both layers binds the blob format version, the table, the row's
//! key and the column, so a blob copied into another row, column or table fails to open.
//!
//! Blob layout, version 1 (all nonces 12 bytes, all tags 16 bytes):
//!
//! ```text
//! [0]        version (1)
//! [1..13]    nonce of the wrapped DEK
//! [13..61]   wrapped DEK (32 bytes of ciphertext + tag)
//! [61..73]   nonce of the data
//! [73..]     ciphertext of the data + tag
//! ```
//!
//! The master key comes from the environment variable [`MASTER_KEY_ENV`] (base64 of 32 bytes)
//! when it is set, otherwise from the file [`MASTER_KEY_FILE`] in the data directory, which is
//! created on first use with mode 0600 and refused when group or others may access it.

use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine as _;
use zeroize::Zeroizing;

/// Name of the environment variable that holds the master key (base64 of 32 bytes). When set,
/// it takes precedence over the key file.
pub const MASTER_KEY_ENV: &str = "CERTHUB_MASTER_KEY";

/// Name of the master key file inside the data directory.
pub const MASTER_KEY_FILE: &str = "master.key";

/// Length of the master key and of every data key, in bytes.
pub const KEY_LEN: usize = 32;

/// The current blob format version.
const VERSION: u8 = 1;
const TAG_LEN: usize = 16;
const WRAPPED_DEK_LEN: usize = KEY_LEN + TAG_LEN;
const WRAP_NONCE_AT: usize = 1;
const WRAPPED_DEK_AT: usize = WRAP_NONCE_AT + NONCE_LEN;
const DATA_NONCE_AT: usize = WRAPPED_DEK_AT + WRAPPED_DEK_LEN;
const CIPHERTEXT_AT: usize = DATA_NONCE_AT + NONCE_LEN;
/// The shortest valid blob: an empty plaintext still carries its tag.
const MIN_BLOB_LEN: usize = CIPHERTEXT_AT + TAG_LEN;

/// Errors of the encryption layer and of loading the master key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The master key file exists but group or others have access to it.
    #[error(
        "master key file {path} is accessible by group or others (mode {mode:o}); restrict it with `chmod 600`"
    )]
    InsecureKeyFile {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A file or directory operation on the master key failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done, e.g. "read the master key file".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The master key is not valid base64.
    #[error("master key from {origin} is not valid base64")]
    KeyEncoding {
        /// Where the key came from (the environment variable's name).
        origin: String,
    },
    /// The master key has the wrong length.
    #[error("master key from {origin} is {len} bytes long; it must be exactly {KEY_LEN} bytes")]
    KeyLength {
        /// Where the key came from (a file path or the environment variable's name).
        origin: String,
        /// The length found.
        len: usize,
    },
    /// The master key does not open the database's key check: it is not the key the data was
    /// encrypted with.
    #[error(
        "the master key does not match this database; it was encrypted with another key (check {MASTER_KEY_ENV} and {MASTER_KEY_FILE})"
    )]
    WrongMasterKey,
    /// A stored blob has an unknown version or a truncated layout.
    #[error("the encrypted {column} of {table} row {row:?} is malformed: {reason}")]
    Malformed {
        /// The table.
        table: String,
        /// The row's key.
        row: String,
        /// The column.
        column: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A stored blob failed authentication: wrong master key, or the blob was altered or moved
    /// from another row or column.
    #[error(
        "the encrypted {column} of {table} row {row:?} cannot be decrypted: wrong master key, or the value was altered or copied from elsewhere"
    )]
    Open {
        /// The table.
        table: String,
        /// The row's key.
        row: String,
        /// The column.
        column: String,
    },
    /// Encryption or random number generation failed inside the crypto library.
    #[error("encrypting the {column} of {table} row {row:?} failed in the crypto library")]
    Seal {
        /// The table.
        table: String,
        /// The row's key.
        row: String,
        /// The column.
        column: String,
    },
    /// The operating system's random number generator failed.
    #[error("the random number generator failed")]
    Random,
}

/// Where a sealed value lives: the associated data of its blob.
#[derive(Clone, Copy, Debug)]
pub struct Binding<'a> {
    /// The table, e.g. `accounts`.
    pub table: &'a str,
    /// The row's key, e.g. the account name or the numeric id as decimal text.
    pub row: &'a str,
    /// The column, e.g. `key_pkcs8`.
    pub column: &'a str,
}

impl<'a> Binding<'a> {
    /// A binding for `column` of the row `row` in `table`.
    pub fn new(table: &'a str, row: &'a str, column: &'a str) -> Self {
        Self { table, row, column }
    }

    /// The associated data for one layer (`purpose` is "dek" or "data"). Every part is
    /// length-prefixed so that no two bindings encode to the same bytes.
    fn aad(&self, purpose: &str) -> Vec<u8> {
        let mut aad = Vec::with_capacity(
            16 + purpose.len() + self.table.len() + self.row.len() + self.column.len(),
        );
        aad.extend_from_slice(b"certhub");
        aad.push(VERSION);
        for part in [purpose, self.table, self.row, self.column] {
            // Parts are table/column names and row keys, far below 4 GiB.
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            aad.extend_from_slice(&len.to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        aad
    }

    fn open_error(&self) -> Error {
        Error::Open {
            table: self.table.to_owned(),
            row: self.row.to_owned(),
            column: self.column.to_owned(),
        }
    }

    fn seal_error(&self) -> Error {
        Error::Seal {
            table: self.table.to_owned(),
            row: self.row.to_owned(),
            column: self.column.to_owned(),
        }
    }

    fn malformed(&self, reason: &'static str) -> Error {
        Error::Malformed {
            table: self.table.to_owned(),
            row: self.row.to_owned(),
            column: self.column.to_owned(),
            reason,
        }
    }
}

/// The master key (KEK) that wraps every data key. `Debug` never shows it.
pub struct MasterKey {
    key: RandomizedNonceKey,
    /// Keys the audit log's hash chain, so only a holder of the master key can extend it.
    audit: aws_lc_rs::hmac::Key,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// A master key from its 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        Self::from_bytes_from(bytes, "the caller")
    }

    fn from_bytes_from(bytes: &[u8], origin: &str) -> Result<Self, Error> {
        if bytes.len() != KEY_LEN {
            return Err(Error::KeyLength { origin: origin.to_owned(), len: bytes.len() });
        }
        let key = RandomizedNonceKey::new(&AES_256_GCM, bytes)
            .map_err(|_| Error::KeyLength { origin: origin.to_owned(), len: bytes.len() })?;
        // A key of its own for the audit chain, derived so it never equals the master key.
        let derived = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, bytes),
            b"certhub audit chain v1",
        );
        let audit = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, derived.as_ref());
        Ok(Self { key, audit })
    }

    /// A master key from standard base64 (as in [`MASTER_KEY_ENV`]); surrounding whitespace
    /// is ignored.
    pub fn from_base64(text: &str) -> Result<Self, Error> {
        Self::from_base64_from(text, "base64 text")
    }

    fn from_base64_from(text: &str, origin: &str) -> Result<Self, Error> {
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| Error::KeyEncoding { origin: origin.to_owned() })?,
        );
        Self::from_bytes_from(&bytes, origin)
    }

    /// HMAC-SHA256 of `data` under the audit chain's key, hex.
    pub(crate) fn audit_mac(&self, data: &[u8]) -> String {
        let tag = aws_lc_rs::hmac::sign(&self.audit, data);
        hex(tag.as_ref())
    }

    /// A new random master key, not stored anywhere.
    pub fn generate() -> Result<Self, Error> {
        let bytes = random_key()?;
        Self::from_bytes(bytes.as_slice())
    }

    /// The master key as the process environment and the data directory define it: the
    /// [`MASTER_KEY_ENV`] variable when set, otherwise [`MasterKey::load_or_create`] on
    /// `data_dir/master.key`.
    pub fn from_env_or_file(data_dir: &Path) -> Result<Self, Error> {
        Self::resolve(data_dir, std::env::var_os(MASTER_KEY_ENV).as_deref())
    }

    /// Like [`MasterKey::from_env_or_file`] with the environment variable's value passed in:
    /// `env_value` (base64 of 32 bytes) wins when present, and then the key file is neither
    /// read nor created.
    pub fn resolve(data_dir: &Path, env_value: Option<&OsStr>) -> Result<Self, Error> {
        match env_value {
            Some(value) => {
                let text = value
                    .to_str()
                    .ok_or_else(|| Error::KeyEncoding { origin: MASTER_KEY_ENV.to_owned() })?;
                Self::from_base64_from(text, MASTER_KEY_ENV)
            }
            None => Self::load_or_create(&data_dir.join(MASTER_KEY_FILE)),
        }
    }

    /// Reads the raw 32-byte key file at `path`, or creates it with a new random key and mode
    /// 0600 when it does not exist. An existing file that group or others may access, or that
    /// does not hold exactly 32 bytes, is refused.
    ///
    /// Creation is atomic: the key is written and synced to a private temporary file (created
    /// with `O_EXCL` and mode 0600) that is then hard-linked to `path`, so a concurrent reader
    /// sees either no file or the complete key, and two racing creators agree on one key.
    pub fn load_or_create(path: &Path) -> Result<Self, Error> {
        match File::open(path) {
            Ok(file) => Self::read_key_file(file, path),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Self::create_key_file(path),
            Err(source) => {
                Err(Error::Io { action: "open the master key file", path: path.to_owned(), source })
            }
        }
    }

    fn read_key_file(mut file: File, path: &Path) -> Result<Self, Error> {
        let io_err = |action, source| Error::Io { action, path: path.to_owned(), source };
        let meta = file.metadata().map_err(|e| io_err("inspect the master key file", e))?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(Error::InsecureKeyFile { path: path.to_owned(), mode });
        }
        if !meta.is_file() {
            return Err(io_err(
                "read the master key file",
                io::Error::other("it is not a regular file"),
            ));
        }
        // Read at most one byte more than a key, so an oversized file is reported, not loaded.
        let mut bytes = Zeroizing::new(Vec::with_capacity(KEY_LEN + 1));
        (&mut file)
            .take(KEY_LEN as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| io_err("read the master key file", e))?;
        if bytes.len() != KEY_LEN {
            let len = if bytes.len() > KEY_LEN {
                usize::try_from(meta.len()).unwrap_or(usize::MAX)
            } else {
                bytes.len()
            };
            return Err(Error::KeyLength { origin: path.display().to_string(), len });
        }
        Self::from_bytes_from(&bytes, &path.display().to_string())
    }

    fn create_key_file(path: &Path) -> Result<Self, Error> {
        let io_err =
            |action, path: &Path, source| Error::Io { action, path: path.to_owned(), source };
        let key = random_key()?;
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        let suffix = random_suffix()?;
        let tmp = dir.join(format!(".{MASTER_KEY_FILE}.{}.{suffix}.tmp", std::process::id()));
        let written = (|| {
            let mut file =
                OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            file.write_all(key.as_slice())?;
            file.sync_all()
        })();
        if let Err(source) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io_err("write a new master key file", &tmp, source));
        }
        let linked = fs::hard_link(&tmp, path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                // Make the new directory entry durable; failure here only weakens durability.
                if let Ok(dir) = File::open(dir) {
                    let _ = dir.sync_all();
                }
                Self::from_bytes(key.as_slice())
            }
            // Another process or task created it first: use that key.
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                let file =
                    File::open(path).map_err(|e| io_err("open the master key file", path, e))?;
                Self::read_key_file(file, path)
            }
            Err(source) => Err(io_err("create the master key file", path, source)),
        }
    }

    /// Seals `plaintext` for the place `binding` names, returning the blob to store.
    pub fn seal(&self, binding: &Binding<'_>, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let dek_bytes = random_key()?;
        let dek = RandomizedNonceKey::new(&AES_256_GCM, dek_bytes.as_slice())
            .map_err(|_| binding.seal_error())?;

        // Capacity for the tag up front, so sealing in place never reallocates and leaves a
        // plaintext copy behind in freed memory.
        let mut data = Zeroizing::new(Vec::with_capacity(plaintext.len() + TAG_LEN));
        data.extend_from_slice(plaintext);
        let data_nonce = dek
            .seal_in_place_append_tag(Aad::from(binding.aad("data")), &mut *data)
            .map_err(|_| binding.seal_error())?;

        let mut wrapped = Zeroizing::new(Vec::with_capacity(WRAPPED_DEK_LEN));
        wrapped.extend_from_slice(dek_bytes.as_slice());
        let wrap_nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(binding.aad("dek")), &mut *wrapped)
            .map_err(|_| binding.seal_error())?;

        let mut blob = Vec::with_capacity(CIPHERTEXT_AT + data.len());
        blob.push(VERSION);
        blob.extend_from_slice(wrap_nonce.as_ref());
        blob.extend_from_slice(&wrapped);
        blob.extend_from_slice(data_nonce.as_ref());
        blob.extend_from_slice(&data);
        Ok(blob)
    }

    /// Opens a blob made by [`MasterKey::seal`] for the same `binding`. Errors name the table,
    /// row and column, never the content.
    pub fn open(&self, binding: &Binding<'_>, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        let Some(&version) = blob.first() else {
            return Err(binding.malformed("it is empty"));
        };
        if version != VERSION {
            return Err(binding.malformed("unknown format version"));
        }
        if blob.len() < MIN_BLOB_LEN {
            return Err(binding.malformed("it is truncated"));
        }
        let nonce = |at: usize| {
            Nonce::try_assume_unique_for_key(&blob[at..at + NONCE_LEN])
                .map_err(|_| binding.malformed("bad nonce"))
        };

        let mut dek_bytes = Zeroizing::new(blob[WRAPPED_DEK_AT..DATA_NONCE_AT].to_vec());
        let dek_len = self
            .key
            .open_in_place(nonce(WRAP_NONCE_AT)?, Aad::from(binding.aad("dek")), &mut dek_bytes)
            .map_err(|_| binding.open_error())?
            .len();
        let dek = RandomizedNonceKey::new(&AES_256_GCM, &dek_bytes[..dek_len])
            .map_err(|_| binding.open_error())?;

        let mut data = Zeroizing::new(blob[CIPHERTEXT_AT..].to_vec());
        let len = dek
            .open_in_place(nonce(DATA_NONCE_AT)?, Aad::from(binding.aad("data")), &mut data)
            .map_err(|_| binding.open_error())?
            .len();
        data.truncate(len);
        Ok(data)
    }
}

fn random_key() -> Result<Zeroizing<[u8; KEY_LEN]>, Error> {
    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
    aws_lc_rs::rand::fill(bytes.as_mut_slice()).map_err(|_| Error::Random)?;
    Ok(bytes)
}

fn random_suffix() -> Result<String, Error> {
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| Error::Random)?;
    Ok(hex(&bytes))
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding() -> Binding<'static> {
        Binding::new("accounts", "main", "key_pkcs8")
    }

    #[test]
    fn seal_then_open_round_trips() {
        let key = MasterKey::generate().expect("random key");
        for plaintext in [&b""[..], b"x", &[7u8; 1000]] {
            let blob = key.seal(&binding(), plaintext).expect("seal");
            assert_eq!(blob[0], VERSION);
            assert_eq!(blob.len(), MIN_BLOB_LEN + plaintext.len());
            let opened = key.open(&binding(), &blob).expect("open");
            assert_eq!(opened.as_slice(), plaintext);
        }
    }

    #[test]
    fn every_seal_uses_fresh_keys_and_nonces() {
        let key = MasterKey::generate().expect("random key");
        let a = key.seal(&binding(), b"same").expect("seal");
        let b = key.seal(&binding(), b"same").expect("seal");
        assert_ne!(a, b);
    }

    #[test]
    fn other_binding_fails_to_open() {
        let key = MasterKey::generate().expect("random key");
        let blob = key.seal(&binding(), b"secret").expect("seal");
        for other in [
            Binding::new("certs", "main", "key_pkcs8"),
            Binding::new("accounts", "other", "key_pkcs8"),
            Binding::new("accounts", "main", "challenges"),
            // Length prefixes keep shifted boundaries apart.
            Binding::new("accountsm", "ain", "key_pkcs8"),
        ] {
            let err = key.open(&other, &blob).expect_err("must not open");
            assert!(matches!(err, Error::Open { .. }), "{err:?}");
        }
    }

    #[test]
    fn other_master_key_fails_to_open() {
        let blob =
            MasterKey::generate().expect("random key").seal(&binding(), b"secret").expect("seal");
        let other = MasterKey::generate().expect("random key");
        let err = other.open(&binding(), &blob).expect_err("must not open");
        assert_eq!(
            err.to_string(),
            "the encrypted key_pkcs8 of accounts row \"main\" cannot be decrypted: wrong master key, or the value was altered or copied from elsewhere"
        );
    }

    #[test]
    fn tampered_or_truncated_blobs_are_refused() {
        let key = MasterKey::generate().expect("random key");
        let blob = key.seal(&binding(), b"secret").expect("seal");
        for at in [1, WRAPPED_DEK_AT, DATA_NONCE_AT, CIPHERTEXT_AT, blob.len() - 1] {
            let mut bad = blob.clone();
            bad[at] ^= 1;
            assert!(matches!(key.open(&binding(), &bad), Err(Error::Open { .. })));
        }
        let mut bad = blob.clone();
        bad[0] = 2;
        assert!(matches!(key.open(&binding(), &bad), Err(Error::Malformed { .. })));
        assert!(matches!(
            key.open(&binding(), &blob[..MIN_BLOB_LEN - 1]),
            Err(Error::Malformed { .. })
        ));
        assert!(matches!(key.open(&binding(), &[]), Err(Error::Malformed { .. })));
    }

    #[test]
    fn base64_keys_must_be_32_bytes() {
        let b64 = base64::engine::general_purpose::STANDARD;
        assert!(MasterKey::from_base64(&b64.encode([1u8; 32])).is_ok());
        assert!(matches!(
            MasterKey::from_base64(&b64.encode([1u8; 31])),
            Err(Error::KeyLength { len: 31, .. })
        ));
        assert!(matches!(MasterKey::from_base64("not base64!"), Err(Error::KeyEncoding { .. })));
    }

    #[test]
    fn debug_redacts_the_key() {
        let key = MasterKey::generate().expect("random key");
        assert_eq!(format!("{key:?}"), "MasterKey(<redacted>)");
    }
}
