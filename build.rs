//! Records the git commit the binary is built from, for `--version`.
//!
//! The commit comes from the `INTEZER_DYNAMIC_GIT_COMMIT` environment
//! variable when it is set (a Docker build passes it as a build argument,
//! because the build context has no `.git`), else from
//! `git rev-parse --short HEAD`, else it is `unknown`. The value reaches the
//! code as the compile-time variable of the same name, and its origin
//! (`environment`, `git` or `none`) as `INTEZER_DYNAMIC_GIT_COMMIT_SOURCE`.

use std::path::PathBuf;
use std::process::Command;

const COMMIT_VARIABLE: &str = "INTEZER_DYNAMIC_GIT_COMMIT";

fn main() {
    println!("cargo:rerun-if-env-changed={COMMIT_VARIABLE}");

    let from_env = std::env::var(COMMIT_VARIABLE)
        .ok()
        .map(|value| value.trim().to_string())
        .filter(|value| !value.is_empty());
    let (commit, source) = match from_env {
        Some(commit) => (commit, "environment"),
        None => {
            watch_git_head();
            match git(&["rev-parse", "--short", "HEAD"]) {
                Some(commit) => (commit, "git"),
                None => ("unknown".to_string(), "none"),
            }
        }
    };
    println!("cargo:rustc-env={COMMIT_VARIABLE}={commit}");
    // Where the commit came from, so a test can compare a git-derived
    // value with the checkout.
    println!("cargo:rustc-env={COMMIT_VARIABLE}_SOURCE={source}");
}

/// Runs git with `args` in the package folder and returns its trimmed
/// output, or `None` when git is missing, fails or prints nothing.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(package_dir())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// Asks cargo to rerun this script when HEAD moves. A checkout changes
/// `HEAD`, a commit changes the branch's ref file or `packed-refs`, and both
/// append to the reflog `logs/HEAD`. The reflog also covers a commit that
/// creates a loose ref file that did not exist before. Only existing files
/// are listed, because cargo treats a missing one as changed on every build.
fn watch_git_head() {
    let mut watched = vec![
        git(&["rev-parse", "--git-path", "HEAD"]),
        git(&["rev-parse", "--git-path", "logs/HEAD"]),
    ];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(git(&["rev-parse", "--git-path", &branch]));
    }
    watched.push(git(&["rev-parse", "--git-path", "packed-refs"]));

    let package = package_dir();
    for path in watched.into_iter().flatten() {
        let path = package.join(path);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// Returns the folder of Cargo.toml, which cargo sets for every build script.
fn package_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_default()
}
