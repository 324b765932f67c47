//! Who owns the state store's files (issue 30 #7). The service runs as its own user in a
//! state directory that user owns; an operator who runs a command as root before the first
//! start (`sudo ecr-deployd doctor`) must not leave root-owned files the service then cannot
//! open. So every file of the store (the database, its `-wal` and `-shm`, the lease's
//! `.lock`) gets the owner and group of its directory, and modes that let that group read
//! it: 0640 for the database and its WAL, 0660 for the shared-memory index (a reader of a
//! WAL database maps it) and the lease.

use std::ffi::OsString;
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown};
use std::path::{Path, PathBuf};

/// The store's files beside `db` and the mode each should have.
fn files(db: &Path) -> Vec<(PathBuf, u32)> {
    let with = |suffix: &str| {
        let mut p = OsString::from(db.as_os_str());
        p.push(suffix);
        PathBuf::from(p)
    };
    vec![
        (db.to_owned(), 0o640),
        (with("-wal"), 0o640),
        (with("-shm"), 0o660),
        (with(".lock"), 0o660),
    ]
}

/// Gives the store's existing files their directory's owner (when this process may: root)
/// and their modes. Best effort: what cannot be changed is left as it is.
pub fn share(db: &Path) {
    let dir = match db.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.to_owned(),
        None => PathBuf::from("."),
    };
    let Ok(owner) = std::fs::metadata(&dir) else {
        return;
    };
    // SAFETY: geteuid has no preconditions and touches no memory.
    let root = unsafe { libc::geteuid() } == 0;
    for (file, mode) in files(db) {
        let Ok(meta) = std::fs::metadata(&file) else {
            continue;
        };
        if root && (meta.uid() != owner.uid() || meta.gid() != owner.gid()) {
            let _ = chown(&file, Some(owner.uid()), Some(owner.gid()));
        }
        if meta.mode() & 0o777 != mode {
            let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As root (the tests run as root here): files a root command creates in a directory
    /// the service user owns end up the service user's, readable by its group.
    #[test]
    fn files_made_by_root_get_the_directorys_owner_and_group_readable_modes() {
        // SAFETY: as above.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root to change owners");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        chown(&state, Some(65534), Some(65534)).unwrap();
        let db = state.join("state.db");
        let store = crate::store::Store::open(&db).unwrap();
        let lease = crate::control::lease::Lease::try_acquire(&db).unwrap();
        share(&db);
        for (file, mode) in files(&db) {
            let meta =
                std::fs::metadata(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            assert_eq!(
                (meta.uid(), meta.gid()),
                (65534, 65534),
                "{}",
                file.display()
            );
            assert_eq!(meta.mode() & 0o777, mode, "{}", file.display());
        }
        drop((store, lease));
    }
}
