//! Passwords and client secrets (argon2id), tokens (CSPRNG, stored as SHA-256).

use std::sync::{Condvar, Mutex, OnceLock};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
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

/// Checks `secret` against a stored hash in constant time. With no stored hash (unknown
/// user or client) it checks against a dummy, so the answer takes as long either way.
pub fn verify_secret(secret: &str, stored: Option<&str>) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_secret("no account has this password"));
    let matched = PasswordHash::new(stored.unwrap_or(dummy))
        .map(|hash| {
            with_hash_slot(|| {
                Argon2::default()
                    .verify_password(secret.as_bytes(), &hash)
                    .is_ok()
            })
        })
        .unwrap_or(false);
    matched && stored.is_some()
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

/// What the database keeps of a token: its SHA-256, hex-encoded.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_verify_only_against_their_hash() {
        let hash = hash_secret("correct horse");
        assert!(hash.starts_with("$argon2id$"));
        assert!(!hash.contains("correct horse"));
        assert!(verify_secret("correct horse", Some(&hash)));
        assert!(!verify_secret("wrong horse", Some(&hash)));
        assert!(!verify_secret("no account has this password", None));
        assert!(!verify_secret("x", Some("not a phc string")));
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
