//! The exclusive lease on the state store: `flock` on `<state path>.lock`. The daemon holds it
//! for its whole life; an operator command run without a daemon takes it for its own run.
//! So never two processes swap one container. The holder's pid is written into the file for
//! the messages of whoever finds it taken.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// A held lease; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct Lease {
    file: File,
    pub path: PathBuf,
}

/// Why the lease could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another process holds it.
    #[error("the state store lease {path} is held by {holder}")]
    Held { path: PathBuf, holder: String },
    #[error("state store lease {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The lock file of the state store at `state`.
pub fn lock_path(state: &Path) -> PathBuf {
    let mut p = state.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

impl Lease {
    /// Takes the lease on the store at `state` without waiting.
    pub fn try_acquire(state: &Path) -> Result<Self, LeaseError> {
        let path = lock_path(state);
        let io = |source| LeaseError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        // SAFETY: flock on a descriptor this File owns; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => "another ecr-deployd process".to_owned(),
                    pid => format!("ecr-deployd pid {pid}"),
                };
                return Err(LeaseError::Held { path, holder });
            }
            return Err(io(err));
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        // A root command before the service's first start leaves no root-owned lock.
        crate::store::files::share(state);
        Ok(Self { file, path })
    }

    /// Whether the lease on `state` is free now (taken and released at once).
    pub fn is_free(state: &Path) -> bool {
        Self::try_acquire(state).is_ok()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        // SAFETY: as above; unlocking is also what closing the descriptor does.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_named_by_pid_and_free_again_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.db");
        let first = Lease::try_acquire(&state).unwrap();
        assert_eq!(first.path, dir.path().join("state.db.lock"));
        // flock is per open file description: a second open in this process conflicts too.
        match Lease::try_acquire(&state) {
            Err(LeaseError::Held { holder, .. }) => {
                assert_eq!(holder, format!("ecr-deployd pid {}", std::process::id()))
            }
            other => panic!("{other:?}"),
        }
        assert!(!Lease::is_free(&state));
        drop(first);
        assert!(Lease::is_free(&state));
    }
}
