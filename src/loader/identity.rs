//! The load's identity, and the Idempotency-Keys made from it: the same file loaded the
//! same way gets the same keys, so a re-run after a crash gets back the job and the
//! batches the first run created instead of creating them again.
//!
//! The file is known by the SHA-256 of its first MiB and its size (reading all of a
//! multi-gigabyte file before starting would double the work); the load, by that with the
//! retailer, the job name, the format, the mapping and the batch size. A file changed
//! after its first MiB but of the same size gets the same keys: its changed batches are
//! then refused with 422 (the service fingerprints every request), which the loader
//! reports, so nothing is loaded twice or silently mixed.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::Context;
use sha2::{Digest, Sha256};

/// Bytes of the file that identify it, with its size.
const HEAD_BYTES: u64 = 1024 * 1024;

/// What makes two loads the same load.
pub struct LoadParts<'a> {
    pub retailer: &'a str,
    pub job_name: &'a str,
    pub format: &'a str,
    pub mapping: &'a str,
    pub batch_size: usize,
}

#[derive(Debug, Clone)]
pub struct Identity {
    /// 32 hex digits.
    id: String,
}

impl Identity {
    pub fn of(path: &Path, parts: &LoadParts) -> anyhow::Result<Identity> {
        let mut file =
            File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let size = file.metadata()?.len();
        let mut head = Vec::new();
        (&mut file)
            .take(HEAD_BYTES)
            .read_to_end(&mut head)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut digest = Sha256::new();
        digest.update(b"stockbatch load 1\n");
        digest.update(Sha256::digest(&head));
        for part in [
            size.to_string().as_str(),
            parts.retailer,
            parts.job_name,
            parts.format,
            parts.mapping,
            parts.batch_size.to_string().as_str(),
        ] {
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part.as_bytes());
        }
        let id = crate::auth::secrets::hex(&digest.finalize()[..16]);
        Ok(Identity { id })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The Idempotency-Key of the job's creation.
    pub fn job_key(&self) -> String {
        format!("stockbatch-load-{}-job", self.id)
    }

    /// The Idempotency-Key of batch `index` (0-based, in file order).
    pub fn batch_key(&self, index: u64) -> String {
        format!("stockbatch-load-{}-batch-{index}", self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_load_has_the_same_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feed.csv");
        std::fs::write(&path, "sku,loc,qty\nA,L,1\n").unwrap();
        let parts = LoadParts {
            retailer: "1",
            job_name: "feed",
            format: "csv",
            mapping: "m",
            batch_size: 5000,
        };
        let a = Identity::of(&path, &parts).unwrap();
        assert_eq!(a.id(), Identity::of(&path, &parts).unwrap().id());
        assert_eq!(
            a.batch_key(3),
            format!("stockbatch-load-{}-batch-3", a.id())
        );
        let other = LoadParts {
            job_name: "other",
            ..parts
        };
        assert_ne!(a.id(), Identity::of(&path, &other).unwrap().id());
        std::fs::write(&path, "sku,loc,qty\nA,L,2\n").unwrap();
        assert_ne!(a.id(), Identity::of(&path, &parts).unwrap().id());
    }
}
