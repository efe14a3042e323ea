//! Hasher: computes a file's SHA-256 and size, reading it in chunks.
//!
//! Takes [`HashFile`] and answers with a [`FileDigest`]. It runs on a
//! `SyncArbiter` of its own threads, so hashing a large file never blocks
//! the threads that run the other actors. Each thread keeps one read
//! buffer for all the files it hashes; a restart loses nothing but the
//! message being hashed.

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

/// One hashing thread and its read buffer, allocated on first use.
#[derive(Default)]
pub struct Hasher {
    buffer: Vec<u8>,
}

impl Actor for Hasher {
    type Context = SyncContext<Self>;
}

impl Handler<HashFile> for Hasher {
    type Result = Result<FileDigest, HashError>;

    fn handle(&mut self, message: HashFile, _: &mut SyncContext<Self>) -> Self::Result {
        if self.buffer.is_empty() {
            self.buffer = vec![0u8; CHUNK_SIZE];
        }
        hash_file_with(&message.path, &mut self.buffer)
    }
}

/// Hashes the file at `path`, streaming it through a buffer of its own.
pub fn hash_file(path: &std::path::Path) -> Result<FileDigest, HashError> {
    hash_file_with(path, &mut vec![0u8; CHUNK_SIZE])
}

/// Hashes the file at `path`, streaming it through `buffer`, which must not
/// be empty.
pub fn hash_file_with(path: &std::path::Path, buffer: &mut [u8]) -> Result<FileDigest, HashError> {
    let error = |err: std::io::Error| HashError {
        path: path.display().to_string(),
        message: err.to_string(),
    };
    let mut file = File::open(path).map_err(error)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    loop {
        let read = file.read(buffer).map_err(error)?;
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
    fn reused_buffer_leaves_nothing_of_the_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let long = dir.path().join("long");
        let short = dir.path().join("short");
        std::fs::write(&long, vec![b'x'; 10_000]).unwrap();
        std::fs::write(&short, b"abc").unwrap();
        // A buffer smaller than the long file, so it is read in several
        // chunks and the buffer is full of it when the short one comes.
        let mut buffer = vec![0u8; 4096];
        let first = hash_file_with(&long, &mut buffer).unwrap();
        let second = hash_file_with(&short, &mut buffer).unwrap();
        assert_eq!(first, hash_file(&long).unwrap());
        assert_eq!(first.size, 10_000);
        assert_eq!(
            second.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
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
        let addr = SyncArbiter::start(1, Hasher::default);
        let digest = addr.send(HashFile { path }).await.unwrap().unwrap();
        assert_eq!(
            digest.sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
