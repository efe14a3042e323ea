//! Task files for the runs: unique small files, picked by the case the
//! Intezer simulator's default scenario gives their SHA-256, so a run gets
//! exactly the mix of known and unknown files it asks for.

use bytes::Bytes;
use sha2::{Digest, Sha256};

use intezer_dynamic::simulator::intezer::DefaultVerdict;
use intezer_dynamic::simulator::service_server::SimFile;

/// Size of every task file. Small, so that the runs measure the service's
/// work per task rather than the copy of the file.
const FILE_SIZE: usize = 4096;

/// Makes unique task files in a fixed order from a seed, so every run of the
/// benchmark sends the same files.
pub struct FileMaker {
    counter: u64,
    /// Known files made so far, which picks the next known case.
    known_made: usize,
}

impl FileMaker {
    pub fn new(seed: u64) -> FileMaker {
        FileMaker {
            counter: seed << 32,
            known_made: 0,
        }
    }

    /// Returns the next file whose case satisfies `wanted`.
    fn next_where(&mut self, wanted: impl Fn(DefaultVerdict) -> bool) -> SimFile {
        loop {
            self.counter += 1;
            let bytes = pseudo_random_bytes(self.counter, FILE_SIZE);
            let sha256 = hex::encode(Sha256::digest(&bytes));
            let verdict = DefaultVerdict::for_sha256(&sha256).expect("a SHA-256 in hex");
            if wanted(verdict) {
                return SimFile {
                    name: format!("perf-{}.exe", self.counter),
                    bytes: Bytes::from(bytes),
                    file_type: "executable/windows/pe32".to_string(),
                };
            }
        }
    }

    /// A file Intezer already knows: in turn malicious, suspicious and
    /// trusted, so each case is a third of the known files.
    fn next_known(&mut self) -> SimFile {
        const CASES: [DefaultVerdict; 3] = [
            DefaultVerdict::KnownMalicious,
            DefaultVerdict::KnownSuspicious,
            DefaultVerdict::KnownTrusted,
        ];
        let case = CASES[self.known_made % CASES.len()];
        self.known_made += 1;
        self.next_where(|verdict| verdict == case)
    }

    /// Makes a file Intezer does not know until it is uploaded.
    fn next_unknown(&mut self) -> SimFile {
        self.next_where(|verdict| !verdict.is_known())
    }

    pub fn known(&mut self, count: usize) -> Vec<SimFile> {
        (0..count).map(|_| self.next_known()).collect()
    }

    pub fn unknown(&mut self, count: usize) -> Vec<SimFile> {
        (0..count).map(|_| self.next_unknown()).collect()
    }

    /// `count` files of which `unknown_percent` in a hundred are unknown,
    /// spread evenly through the queue.
    pub fn mixed(&mut self, count: usize, unknown_percent: usize) -> Vec<SimFile> {
        (0..count)
            .map(|index| {
                // Unknown when this index crosses the next multiple of 100.
                let unknown = (index + 1) * unknown_percent / 100 > index * unknown_percent / 100;
                if unknown {
                    self.next_unknown()
                } else {
                    self.next_known()
                }
            })
            .collect()
    }
}

/// Returns `length` bytes of an xorshift stream seeded by `seed`.
pub fn pseudo_random_bytes(seed: u64, length: usize) -> Vec<u8> {
    let mut state = seed.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut bytes = Vec::with_capacity(length + 8);
    while bytes.len() < length {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(length);
    bytes
}
