//! Passwords and client secrets (argon2id), tokens (CSPRNG, stored as SHA-256). Checking a
//! secret against its hash happens on the hashing threads (`hasher.rs`).

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};

/// Each argon2 run takes ~19 MiB: at most this many run at once, so a burst of logins
/// queues instead of exhausting memory.
const MAX_CONCURRENT_HASHES: usize = 2;

static SLOTS_IN_USE: Mutex<usize> = Mutex::new(0);
static SLOT_FREED: Condvar = Condvar::new();

/// Runs `hash` when one of the [`MAX_CONCURRENT_HASHES`] slots is free.
fn with_hash_slot<T>(hash: impl FnOnce() -> T) -> T {
    let in_use = SLOTS_IN_USE.lock().unwrap_or_else(|e| e.into_inner());
    let mut in_use = SLOT_FREED
        .wait_while(in_use, |n| *n >= MAX_CONCURRENT_HASHES)
        .unwrap_or_else(|e| e.into_inner());
    *in_use += 1;
    drop(in_use);
    let _slot = Slot;
    hash()
}

/// Frees its slot when dropped, even if hashing panicked.
struct Slot;

impl Drop for Slot {
    fn drop(&mut self) {
        *SLOTS_IN_USE.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        SLOT_FREED.notify_one();
    }
}

/// An argon2id hash (PHC string) of a password or client secret.
pub fn hash_secret(secret: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    with_hash_slot(|| {
        Argon2::default()
            .hash_password(secret.as_bytes(), &salt)
            .expect("argon2 hashes any input")
            .to_string()
    })
}

/// A new random token: 256 bits from the OS CSPRNG, hex-encoded.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    hex(&bytes)
}

/// A new random password or client secret of 32 letters and digits.
pub fn new_secret() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    // 256 is not a multiple of 57; the bias is far below what a guesser could use.
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Client secrets that passed an argon2 check, remembered (as SHA-256, in memory only)
/// so that a client logging its users in does not pay for a second hash on every login.
/// An entry holds only while the client's stored hash is the one it was checked against.
#[derive(Default)]
pub struct VerifiedSecrets(Mutex<HashMap<i64, (String, [u8; 32])>>);

/// Entries kept at most; clients are few, this only bounds a misuse.
const MAX_VERIFIED_SECRETS: usize = 1024;

impl VerifiedSecrets {
    /// Whether `secret` was verified against `stored` for client `id`.
    pub fn contains(&self, id: i64, stored: &str, secret: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let entries = self.0.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(&id).is_some_and(|(hash, known)| {
            hash == stored && known.iter().zip(digest).fold(0, |d, (a, b)| d | (a ^ b)) == 0
        })
    }

    pub fn insert(&self, id: i64, stored: &str, secret: &str) {
        let mut entries = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_VERIFIED_SECRETS {
            entries.clear();
        }
        entries.insert(
            id,
            (stored.to_owned(), Sha256::digest(secret.as_bytes()).into()),
        );
    }
}

/// What the database keeps of a token: its SHA-256, hex-encoded.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_stored_as_argon2id() {
        let hash = hash_secret("correct horse");
        assert!(hash.starts_with("$argon2id$"));
        assert!(!hash.contains("correct horse"));
        assert_ne!(hash, hash_secret("correct horse"), "salted");
    }

    #[test]
    fn verified_secrets_hold_only_for_the_hash_they_were_checked_against() {
        let verified = VerifiedSecrets::default();
        verified.insert(1, "$hash-a", "s3cret");
        assert!(verified.contains(1, "$hash-a", "s3cret"));
        assert!(!verified.contains(1, "$hash-a", "other"));
        assert!(!verified.contains(1, "$hash-b", "s3cret"), "secret rotated");
        assert!(!verified.contains(2, "$hash-a", "s3cret"));
    }

    #[test]
    fn concurrent_hashing_is_bounded() {
        let running = std::sync::atomic::AtomicUsize::new(0);
        let most = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..6 {
                scope.spawn(|| {
                    with_hash_slot(|| {
                        use std::sync::atomic::Ordering::SeqCst;
                        most.fetch_max(running.fetch_add(1, SeqCst) + 1, SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        running.fetch_sub(1, SeqCst);
                    })
                });
            }
        });
        // Other tests may hold a slot meanwhile, so fewer may run here, never more.
        assert!((1..=MAX_CONCURRENT_HASHES).contains(&most.into_inner()));
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(new_secret().len(), 32);
    }
}
