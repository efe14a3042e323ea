//! A task slot's working folder: made once, used by each task the slot
//! takes, and emptied after each task.
//!
//! Making and deleting a folder and files per task took about a third of
//! the service's CPU time at hundreds of tasks a second, most of it in
//! ext4's inode allocation (docs/benchmarks/profile.md). Here a task's
//! files have fixed names, and emptying the folder truncates them instead
//! of deleting them, so the next task writes into the same inodes. No
//! task's bytes stay on disk after its result or error is posted, and the
//! folder itself is removed when the slot ends.

use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

/// Name of the task's own file in the folder.
const TASK_FILE: &str = "task-file";

/// Prefix of the files extracted from the task's sub-analyses.
const EXTRACTED_PREFIX: &str = "extracted-";

/// Maximum number of extracted files kept, empty, for reuse after a task.
/// Files beyond these are deleted, so that a task with many sub-files
/// leaves no trail of empty files behind.
const EXTRACTED_KEPT: usize = 8;

pub struct WorkFolder {
    dir: TempDir,
}

impl WorkFolder {
    /// Makes a folder in `tasking_dir` for slot `slot`.
    pub fn create(tasking_dir: &Path, slot: usize) -> io::Result<WorkFolder> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("intezer-slot{slot}-"))
            .tempdir_in(tasking_dir)?;
        Ok(WorkFolder { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Returns the path the task's file is downloaded to.
    pub fn task_file(&self) -> PathBuf {
        self.dir.path().join(TASK_FILE)
    }

    /// Empties the folder: files it reuses are truncated to nothing, and
    /// anything else is removed.
    pub fn clear(&self) -> io::Result<()> {
        for entry in fs::read_dir(self.dir.path())? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                fs::remove_dir_all(&path)?;
            } else if is_reused(&entry.file_name().to_string_lossy()) {
                OpenOptions::new().write(true).truncate(true).open(&path)?;
            } else {
                fs::remove_file(&path)?;
            }
        }
        Ok(())
    }
}

/// Returns the path in `dir` of the `index`th file extracted for a task.
pub fn extracted_file(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("{EXTRACTED_PREFIX}{index}"))
}

fn is_reused(name: &str) -> bool {
    if name == TASK_FILE {
        return true;
    }
    name.strip_prefix(EXTRACTED_PREFIX)
        .and_then(|index| index.parse::<usize>().ok())
        .is_some_and(|index| index < EXTRACTED_KEPT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn clear_keeps_inodes_removes_strays() {
        let tasking = tempfile::tempdir().unwrap();
        let folder = WorkFolder::create(tasking.path(), 3).unwrap();
        fs::write(folder.task_file(), b"sample bytes").unwrap();
        fs::write(extracted_file(folder.path(), 0), b"payload").unwrap();
        fs::write(extracted_file(folder.path(), EXTRACTED_KEPT), b"more").unwrap();
        fs::write(folder.path().join("stray"), b"x").unwrap();
        fs::create_dir(folder.path().join("nested")).unwrap();
        let inode = fs::metadata(folder.task_file()).unwrap().ino();

        folder.clear().unwrap();

        let mut left: Vec<(String, u64)> = fs::read_dir(folder.path())
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                let name = entry.file_name().to_string_lossy().into_owned();
                (name, entry.metadata().unwrap().len())
            })
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![("extracted-0".to_string(), 0), ("task-file".to_string(), 0)]
        );
        assert_eq!(fs::metadata(folder.task_file()).unwrap().ino(), inode);
    }

    #[test]
    fn folder_is_removed_with_its_slot() {
        let tasking = tempfile::tempdir().unwrap();
        let folder = WorkFolder::create(tasking.path(), 0).unwrap();
        fs::write(folder.task_file(), b"x").unwrap();
        assert!(folder
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("intezer-slot0-"));
        drop(folder);
        assert_eq!(fs::read_dir(tasking.path()).unwrap().count(), 0);
    }
}
