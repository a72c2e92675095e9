//! The HS256 signing key: where it comes from in each mode, and never showing it.

use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use crate::IdentityConfig;

/// The file, under the data directory, holding the embedded mode's generated key.
pub const KEY_FILE: &str = "identity.key";

/// The HS256 key (at least [`SigningKey::MIN_BYTES`] bytes). Never printed: `Debug` redacts it.
#[derive(Clone)]
pub struct SigningKey(Arc<[u8]>);

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SigningKeyError {
    #[error(
        "no signing key: every gateway and service instance must share one; set identity.signing_key \
         in the config file or RICKSHAW_IDENTITY__SIGNING_KEY (at least 32 random bytes, \
         e.g. `openssl rand -base64 32`)"
    )]
    Missing,
    #[error("identity.signing_key is {bytes} bytes; use at least 32 random bytes")]
    TooShort { bytes: usize },
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

impl SigningKey {
    pub const MIN_BYTES: usize = 32;

    /// A key from raw bytes (a configured key is the bytes of its text, as written).
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Result<Self, SigningKeyError> {
        let bytes: Vec<u8> = bytes.into();
        if bytes.len() < Self::MIN_BYTES {
            return Err(SigningKeyError::TooShort { bytes: bytes.len() });
        }
        Ok(Self(bytes.into()))
    }

    /// A fresh random key: 32 random bytes, as 43 base64url characters (usable as
    /// `identity.signing_key` as is).
    pub fn generate() -> Self {
        Self(crate::tokens::random_token().into_bytes().into())
    }

    /// Distributed mode: the configured key, or an error saying how to set one (there is no
    /// built-in default: instances with different keys would refuse each other's tokens).
    pub fn required(config: &IdentityConfig) -> Result<Self, SigningKeyError> {
        match &config.signing_key {
            Some(key) => Self::from_bytes(key.as_bytes()),
            None => Err(SigningKeyError::Missing),
        }
    }

    /// Embedded mode: the configured key, else the one in `<data_dir>/identity.key`, else a new
    /// random key written there (mode 0600 on unix), so tokens survive restarts.
    pub fn embedded(config: &IdentityConfig, data_dir: &Path) -> io::Result<Self> {
        if config.signing_key.is_some() {
            return Self::required(config).map_err(invalid_input);
        }
        let path = data_dir.join(KEY_FILE);
        match read_key(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            found => return found,
        }
        std::fs::create_dir_all(data_dir)?;
        let key = Self::generate();
        // Written in full under a private name, then linked into place: a concurrent starter
        // either wins the link or reads the complete file of the one that did.
        let staging = data_dir.join(format!(".{KEY_FILE}.{}", uuid::Uuid::now_v7().simple()));
        let written = write_private(&staging, &key.0).and_then(|()| {
            match std::fs::hard_link(&staging, &path) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                other => other,
            }
        });
        let removed = std::fs::remove_file(&staging);
        written?;
        removed?;
        read_key(&path)
    }

    /// The raw key, for what must be signed with the same secret (access tokens, price
    /// quotes). Never log or return it.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

fn invalid_input(e: SigningKeyError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e)
}

fn read_key(path: &Path) -> io::Result<SigningKey> {
    let text = std::fs::read_to_string(path)?;
    SigningKey::from_bytes(text.trim().as_bytes()).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}; delete it to generate a new key", path.display()),
        )
    })
}

fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(key: Option<&str>) -> IdentityConfig {
        IdentityConfig {
            signing_key: key.map(str::to_owned),
            ..IdentityConfig::default()
        }
    }

    #[test]
    fn the_distributed_mode_requires_a_configured_key() {
        let missing = SigningKey::required(&config(None)).expect_err("no default key");
        assert!(
            missing
                .to_string()
                .contains("RICKSHAW_IDENTITY__SIGNING_KEY")
                && missing.to_string().contains("identity.signing_key"),
            "{missing}"
        );
        assert_eq!(
            SigningKey::required(&config(Some("short"))).expect_err("too short"),
            SigningKeyError::TooShort { bytes: 5 }
        );
        let key = "k".repeat(32);
        let found = SigningKey::required(&config(Some(&key))).expect("32 bytes");
        assert_eq!(found.bytes(), key.as_bytes());
    }

    #[test]
    fn the_key_never_shows_in_debug() {
        let secret = "a-very-secret-signing-key-of-32-bytes!";
        let key = SigningKey::required(&config(Some(secret))).expect("valid");
        let shown = format!("{key:?} {:?}", config(Some(secret)));
        assert!(!shown.contains(secret), "{shown}");
        let generated = SigningKey::generate();
        let text = String::from_utf8(generated.bytes().to_vec()).expect("base64url text");
        assert!(!format!("{generated:?}").contains(&text));
    }

    #[test]
    fn the_embedded_mode_generates_a_private_key_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let first = SigningKey::embedded(&config(None), &data).expect("generated");
        assert!(first.bytes().len() >= SigningKey::MIN_BYTES);
        let again = SigningKey::embedded(&config(None), &data).expect("read back");
        assert_eq!(first.bytes(), again.bytes(), "the key survives a restart");
        let file = data.join(KEY_FILE);
        assert_eq!(
            std::fs::read(&file).expect("key file"),
            first.bytes(),
            "the file holds the key as is (usable as identity.signing_key)"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file)
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers = std::fs::read_dir(&data).expect("list").count();
        assert_eq!(leftovers, 1, "no staging file is left behind");
        let other = SigningKey::embedded(&config(None), dir.path()).expect("another dir");
        assert_ne!(other.bytes(), first.bytes(), "keys are random");
    }

    #[test]
    fn the_embedded_mode_prefers_the_configured_key_and_refuses_a_bad_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = "c".repeat(40);
        let chosen = SigningKey::embedded(&config(Some(&key)), dir.path()).expect("configured");
        assert_eq!(chosen.bytes(), key.as_bytes());
        assert!(!dir.path().join(KEY_FILE).exists(), "nothing generated");
        let short = SigningKey::embedded(&config(Some("short")), dir.path()).expect_err("short");
        assert_eq!(short.kind(), io::ErrorKind::InvalidInput);
        std::fs::write(dir.path().join(KEY_FILE), "tiny\n").expect("write");
        let bad = SigningKey::embedded(&config(None), dir.path()).expect_err("bad file");
        assert_eq!(bad.kind(), io::ErrorKind::InvalidData);
    }
}
