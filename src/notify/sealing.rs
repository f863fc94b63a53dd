//! Webhook secrets at rest: sealed with AES-256-GCM under the server's sealing key, so the
//! database alone never gives them away. Signing needs the secret itself, so it cannot be
//! hashed like passwords are.

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::{bail, Context};
use argon2::password_hash::rand_core::{OsRng, RngCore};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

/// Where the sealing key comes from: 32 bytes, base64-encoded.
#[derive(Clone)]
pub enum KeySource {
    /// Given in the configuration (`STOCKBATCH_SEALING_KEY`).
    Value(String),
    /// Read from this file, which is created (mode 0600) with a new key if missing.
    File(PathBuf),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Value(_) => f.write_str("Value(<redacted>)"),
            KeySource::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

const SEALED_PREFIX: &str = "v1.";
const NONCE_BYTES: usize = 12;

pub struct SealingKey(Aes256Gcm);

impl SealingKey {
    pub fn load(source: &KeySource) -> anyhow::Result<SealingKey> {
        let encoded = match source {
            KeySource::Value(value) => value.trim().to_owned(),
            KeySource::File(path) => read_or_create(path)?,
        };
        let bytes = BASE64
            .decode(encoded.as_bytes())
            .context("the sealing key is not base64")?;
        if bytes.len() != 32 {
            bail!(
                "the sealing key must be 32 bytes (base64 of 32 random bytes), not {}",
                bytes.len()
            );
        }
        Ok(SealingKey(
            Aes256Gcm::new_from_slice(&bytes).expect("32-byte key"),
        ))
    }

    /// A new random key, base64-encoded.
    pub fn generate() -> String {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        BASE64.encode(key)
    }

    pub fn seal(&self, secret: &str) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .0
            .encrypt(Nonce::from_slice(&nonce), secret.as_bytes())
            .expect("AES-GCM seals any short secret");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{SEALED_PREFIX}{}", BASE64.encode(out))
    }

    pub fn open(&self, sealed: &str) -> anyhow::Result<String> {
        let raw = sealed
            .strip_prefix(SEALED_PREFIX)
            .and_then(|b| BASE64.decode(b).ok())
            .filter(|raw| raw.len() > NONCE_BYTES)
            .context("the stored secret is malformed")?;
        let (nonce, sealed) = raw.split_at(NONCE_BYTES);
        let plain = self
            .0
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| {
                anyhow::anyhow!(
                    "the secret was sealed with another key: every node needs the same sealing key"
                )
            })?;
        String::from_utf8(plain).context("the stored secret is not text")
    }
}

/// The sealing key, loaded (and its file created) the first time a secret is sealed or
/// opened: a service that never meets a webhook never touches the key file.
pub struct Sealer {
    source: KeySource,
    key: OnceLock<SealingKey>,
}

impl Sealer {
    pub fn new(source: KeySource) -> Self {
        Sealer {
            source,
            key: OnceLock::new(),
        }
    }

    fn key(&self) -> anyhow::Result<&SealingKey> {
        if let Some(key) = self.key.get() {
            return Ok(key);
        }
        let key = SealingKey::load(&self.source).context("the sealing key cannot be loaded")?;
        Ok(self.key.get_or_init(|| key))
    }

    pub fn seal(&self, secret: &str) -> anyhow::Result<String> {
        Ok(self.key()?.seal(secret))
    }

    pub fn open(&self, sealed: &str) -> anyhow::Result<String> {
        self.key()?.open(sealed)
    }
}

fn read_or_create(path: &PathBuf) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(key) => return Ok(key.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let key = SealingKey::generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(key.as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            log::info!(
                "created the sealing key for webhook secrets at {}; keep it with the database \
                 (every node needs the same one)",
                path.display()
            );
            Ok(key)
        }
        // Another process created it first.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(path)?.trim().to_owned())
        }
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

/// A new webhook signing secret: `whsec_` and 32 letters and digits.
pub fn new_webhook_secret() -> String {
    format!("whsec_{}", crate::auth::secrets::new_secret())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_with_their_key_only() {
        let key = SealingKey::load(&KeySource::Value(SealingKey::generate())).unwrap();
        let other = SealingKey::load(&KeySource::Value(SealingKey::generate())).unwrap();
        let sealed = key.seal("whsec_abc");
        assert!(!sealed.contains("whsec_abc"));
        assert_ne!(sealed, key.seal("whsec_abc"), "each seal has its own nonce");
        assert_eq!(key.open(&sealed).unwrap(), "whsec_abc");
        assert!(other
            .open(&sealed)
            .unwrap_err()
            .to_string()
            .contains("another key"));
        assert!(key.open("v1.AAAA").is_err());
    }

    #[test]
    fn a_sealer_creates_its_key_file_only_when_first_used() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let sealer = Sealer::new(KeySource::File(path.clone()));
        assert!(!path.exists());
        let sealed = sealer.seal("s").unwrap();
        assert!(path.exists());
        assert_eq!(
            Sealer::new(KeySource::File(path)).open(&sealed).unwrap(),
            "s"
        );
        let broken = Sealer::new(KeySource::File(dir.path().join("no/such/dir/key")));
        assert!(broken.seal("s").is_err());
    }

    #[test]
    fn a_key_file_is_created_once_and_then_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let first = SealingKey::load(&KeySource::File(path.clone())).unwrap();
        let sealed = first.seal("s");
        let again = SealingKey::load(&KeySource::File(path.clone())).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), "s");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(SealingKey::load(&KeySource::Value("c2hvcnQ=".into())).is_err());
    }
}
