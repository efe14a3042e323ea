//! Hasher: computes a file's SHA-256 and size, reading it in chunks.
//!
//! Takes [`HashFile`] and answers with a [`FileDigest`]. It runs on a
//! `SyncArbiter` of its own threads, so hashing a large file never blocks
//! the threads that run the other actors. It keeps no state, so a restart
//! loses nothing but the message being hashed.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

use actix::{Actor, Handler, Message, SyncContext};
use sha2::{Digest, Sha256};

/// Size of each read; large enough that the hash, not the system calls,
/// dominates.
const CHUNK_SIZE: usize = 1 << 20;

/// Hash the file at `path`.
pub struct HashFile {
    pub path: PathBuf,
}

impl Message for HashFile {
    type Result = Result<FileDigest, HashError>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    /// Lowercase hex.
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("cannot read {path} to hash it: {message}")]
pub struct HashError {
    pub path: String,
    pub message: String,
}

#[derive(Default)]
pub struct Hasher;

impl Actor for Hasher {
    type Context = SyncContext<Self>;
}

impl Handler<HashFile> for Hasher {
    type Result = Result<FileDigest, HashError>;

    fn handle(&mut self, message: HashFile, _: &mut SyncContext<Self>) -> Self::Result {
        hash_file(&message.path)
    }
}

/// Hashes the file at `path`, streaming it through a fixed buffer.
pub fn hash_file(path: &std::path::Path) -> Result<FileDigest, HashError> {
    let error = |err: std::io::Error| HashError {
        path: path.display().to_string(),
        message: err.to_string(),
    };
    let mut file = File::open(path).map_err(error)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; CHUNK_SIZE];
    let mut size = 0u64;
    loop {
        let read = file.read(&mut buffer).map_err(error)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
    }
    Ok(FileDigest {
        sha256: hex::encode(hasher.finalize()),
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix::SyncArbiter;

    #[test]
    fn hashes_known_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc");
        std::fs::write(&path, b"abc").unwrap();
        let digest = hash_file(&path).unwrap();
        assert_eq!(
            digest.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(digest.size, 3);
    }

    #[test]
    fn missing_file_names_path() {
        let err = hash_file(std::path::Path::new("/nonexistent/file")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/file"));
    }

    #[actix_rt::test]
    async fn actor_hashes_on_sync_arbiter() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty");
        std::fs::write(&path, b"").unwrap();
        let addr = SyncArbiter::start(1, || Hasher);
        let digest = addr.send(HashFile { path }).await.unwrap().unwrap();
        assert_eq!(
            digest.sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
