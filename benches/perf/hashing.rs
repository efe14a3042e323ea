//! Section 6: the service's streaming SHA-256 against OpenSSL and coreutils
//! on the same file in the same run.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use intezer_dynamic::actors::hasher::hash_file;

use super::sections::Report;
use super::workload::pseudo_random_bytes;

/// Rounds of each tool; the fastest round counts, so the page cache and a
/// busy moment of the machine weigh least.
const ROUNDS: usize = 3;

fn write_file(path: &Path, size: u64) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("a file"));
    let chunk = pseudo_random_bytes(6, 1 << 20);
    let mut written = 0u64;
    let mut turn = 0u8;
    while written < size {
        let mut block = chunk.clone();
        // Vary each mebibyte so no two blocks are equal.
        block[0] = turn;
        turn = turn.wrapping_add(1);
        let length = (size - written).min(block.len() as u64) as usize;
        file.write_all(&block[..length])
            .expect("the file is written");
        written += length as u64;
    }
    file.flush().expect("the file is written");
}

/// Runs an external hashing command and returns the first word it printed
/// (the digest for sha256sum, the last word for OpenSSL) and its time.
fn time_command(program: &str, args: &[&str]) -> Option<(String, Duration)> {
    let started = Instant::now();
    let output = Command::new(program).args(args).output().ok()?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let digest = if program == "openssl" {
        text.split_whitespace().last()?.to_string()
    } else {
        text.split_whitespace().next()?.to_string()
    };
    Some((digest, elapsed))
}

pub fn sha256(report: &mut Report) {
    let size: u64 = if report.quick { 64 << 20 } else { 1 << 30 };
    let folder = tempfile::tempdir().expect("a temporary folder");
    let path = folder.path().join("hash-input.bin");
    write_file(&path, size);
    let path_text = path.to_str().expect("a UTF-8 path");

    let mut best: [Option<Duration>; 3] = [None; 3];
    let mut digests: [Option<String>; 3] = [None, None, None];
    // Read once so every tool finds the file in the page cache.
    let _ = hash_file(&path);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let digest = hash_file(&path).expect("the file hashes");
        let ours = (digest.sha256, started.elapsed());
        let openssl = time_command("openssl", &["dgst", "-sha256", path_text]);
        let coreutils = time_command("sha256sum", &[path_text]);
        for (index, result) in [Some(ours), openssl, coreutils].into_iter().enumerate() {
            if let Some((digest, elapsed)) = result {
                best[index] = Some(best[index].map_or(elapsed, |b| b.min(elapsed)));
                digests[index] = Some(digest);
            }
        }
    }
    let rate = |elapsed: Option<Duration>| {
        elapsed.map(|e| size as f64 / (1u64 << 30) as f64 / e.as_secs_f64())
    };
    let [ours, openssl, coreutils] = best.map(rate);
    let agree = digests[1..]
        .iter()
        .flatten()
        .all(|digest| Some(digest) == digests[0].as_ref());

    let text = &mut report.text;
    let _ = writeln!(text, "\n## 6. Streaming SHA-256\n");
    let _ = writeln!(
        text,
        "A {} MiB file of pseudo-random bytes, hashed by the Hasher's function \
         (`hash_file`, 1 MiB reads), by `openssl dgst -sha256` and by `sha256sum`, each {ROUNDS} \
         times in turn after one warm-up read; the fastest round of each counts. The digests \
         {}.\n",
        size >> 20,
        if agree { "agree" } else { "DISAGREE" }
    );
    let _ = writeln!(text, "| tool | GiB/s | vs OpenSSL |\n|---|---|---|");
    for (label, value) in [
        ("intezer-dynamic `hash_file`", ours),
        ("`openssl dgst -sha256`", openssl),
        ("`sha256sum`", coreutils),
    ] {
        let ratio = value.zip(openssl).map(|(v, o)| v / o);
        let _ = writeln!(
            text,
            "| {label} | {} | {} |",
            value.map_or("not run".to_string(), |v| format!("{v:.2}")),
            ratio.map_or("-".to_string(), |r| format!("{r:.2}×"))
        );
    }
    let ratio = ours.zip(openssl).map(|(o, s)| o / s);
    report.target(
        "6. SHA-256 throughput vs OpenSSL",
        "≥ 0.9×",
        ratio.map_or("OpenSSL not found".to_string(), |r| format!("{r:.2}×")),
        agree && ratio.is_some_and(|r| r >= 0.9),
    );
}
