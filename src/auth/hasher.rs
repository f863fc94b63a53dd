//! Password and client-secret checks on a small fixed set of threads.
//!
//! An argon2 check costs ~19 MiB and tens of milliseconds of CPU. Each hashing thread owns
//! one memory buffer, reused for every check, so memory is bounded by the number of threads
//! however many logins arrive. A bounded number of logins may wait for a thread; past that
//! [`Hasher::try_reserve`] refuses at once and the caller answers 503. Callers await their
//! check without holding a database connection or a blocking thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};

use argon2::password_hash::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::oneshot;

use super::secrets::hash_secret;

/// Largest argon2 memory cost (KiB) a stored hash may ask for; ours use 19 MiB.
const MAX_MEMORY_KIB: u32 = 64 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct HasherConfig {
    /// Threads checking secrets at once (each holds ~19 MiB).
    pub threads: usize,
    /// Logins that may wait for a thread before new ones are refused.
    pub queue: usize,
}

impl Default for HasherConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        HasherConfig {
            threads: (cores / 2).max(1),
            queue: 32,
        }
    }
}

/// One secret to check against a stored PHC hash; `None` (no such account) checks against
/// a dummy hash, so the answer takes as long and is always `false`.
pub struct Check {
    pub secret: String,
    pub stored: Option<String>,
}

struct Job {
    checks: Vec<Check>,
    reply: oneshot::Sender<Vec<bool>>,
}

/// The hashing threads and their queue; cloning shares them.
#[derive(Clone)]
pub struct Hasher {
    jobs: Sender<Job>,
    capacity: usize,
    reserved: Arc<AtomicUsize>,
}

/// A place in the hashing queue, held for the whole login; dropping it frees the place.
pub struct Reservation {
    jobs: Sender<Job>,
    reserved: Arc<AtomicUsize>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.reserved.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Hasher {
    pub fn start(config: HasherConfig) -> Hasher {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..config.threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("hasher-{n}"))
                .spawn(move || run_checks(&queue))
                .expect("can spawn a hashing thread");
        }
        Hasher {
            jobs,
            capacity: config.threads.max(1) + config.queue,
            reserved: Arc::default(),
        }
    }

    /// A place in the queue, or `None` when as many logins are running or waiting as allowed.
    pub fn try_reserve(&self) -> Option<Reservation> {
        self.reserved
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .ok()?;
        Some(Reservation {
            jobs: self.jobs.clone(),
            reserved: self.reserved.clone(),
        })
    }
}

impl Reservation {
    /// Runs `checks` in order on a hashing thread, stopping at the first that fails: one
    /// result per check, `false` for those not run.
    pub async fn verify(&self, checks: Vec<Check>) -> Vec<bool> {
        let count = checks.len();
        let (reply, answer) = oneshot::channel();
        if self.jobs.send(Job { checks, reply }).is_err() {
            return vec![false; count];
        }
        answer.await.unwrap_or_else(|_| vec![false; count])
    }
}

fn run_checks(queue: &Mutex<Receiver<Job>>) {
    let mut memory: Vec<Block> = Vec::new();
    loop {
        let job = match queue.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        let mut results = Vec::with_capacity(job.checks.len());
        for check in &job.checks {
            let ok = results.iter().all(|ok| *ok) && verify_with(&mut memory, check);
            results.push(ok);
        }
        let _ = job.reply.send(results);
    }
}

/// A PHC string no secret matches, with the parameters of real hashes.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_secret("no account has this password"))
}

/// Checks one secret in `memory`, growing it only when a stored hash asks for more.
fn verify_with(memory: &mut Vec<Block>, check: &Check) -> bool {
    let stored = check.stored.as_deref().unwrap_or_else(|| dummy_hash());
    let matched = matches(memory, check.secret.as_bytes(), stored).unwrap_or(false);
    matched && check.stored.is_some()
}

fn matches(memory: &mut Vec<Block>, secret: &[u8], stored: &str) -> Option<bool> {
    let hash = PasswordHash::new(stored).ok()?;
    let algorithm = Algorithm::try_from(hash.algorithm).ok()?;
    let version = hash
        .version
        .map_or(Ok(Version::default()), Version::try_from)
        .ok()?;
    let params = Params::try_from(&hash).ok()?;
    if params.m_cost() > MAX_MEMORY_KIB {
        return None;
    }
    let expected = hash.hash?;
    let mut salt = [0u8; 64];
    let salt = hash.salt?.decode_b64(&mut salt).ok()?;
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params.clone())
        .hash_password_into_with_memory(secret, salt, &mut out, &mut memory[..params.block_count()])
        .ok()?;
    // `Output`'s equality is constant-time.
    Some(Output::new(&out).ok()? == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(secret: &str, stored: Option<&str>) -> Check {
        Check {
            secret: secret.to_owned(),
            stored: stored.map(str::to_owned),
        }
    }

    #[actix_web::test]
    async fn checks_verify_in_order_and_stop_at_the_first_failure() {
        let hasher = Hasher::start(HasherConfig {
            threads: 1,
            queue: 1,
        });
        let hash = hash_secret("correct horse");
        let reservation = hasher.try_reserve().unwrap();
        let results = reservation
            .verify(vec![
                check("correct horse", Some(&hash)),
                check("wrong horse", Some(&hash)),
                check("correct horse", Some(&hash)),
            ])
            .await;
        assert_eq!(results, vec![true, false, false]);
        let unknown = reservation
            .verify(vec![check("no account has this password", None)])
            .await;
        assert_eq!(unknown, vec![false]);
        let garbage = reservation
            .verify(vec![check("x", Some("not a phc string"))])
            .await;
        assert_eq!(garbage, vec![false]);
    }

    #[test]
    fn reservations_are_bounded_and_freed_when_dropped() {
        let hasher = Hasher::start(HasherConfig {
            threads: 1,
            queue: 2,
        });
        let held: Vec<_> = (0..3).map(|_| hasher.try_reserve().unwrap()).collect();
        assert!(hasher.try_reserve().is_none(), "a fourth place is refused");
        drop(held);
        assert!(hasher.try_reserve().is_some());
    }
}
