//! One process at a time works a state file. Two runs of the same campaign at once would each
//! see the other's copies land after their own listing and copy everything again; a supervisor
//! restarting a worker that hung (not died) does exactly that.
//!
//! The lock is an exclusive `flock` on `<state>.lock` beside the state file: the kernel drops
//! it when the holding process ends, however it ends (a `kill -9` included), so a dead run never
//! blocks the next one, and a live one (even a hung one) always does. The file says who holds
//! it (host, process id, since when), for the refusal to name. It guards a state file on one
//! machine; workers on several machines sharing a database take per-mailbox leases instead.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A held lock on a state file: released when dropped (or when the process ends).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

/// Why the lock could not be taken.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds it: what its lock file says (`host …, pid …, since …`).
    Held {
        /// The lock file.
        path: PathBuf,
        /// Who holds it, as the holder wrote it.
        holder: String,
    },
    /// The lock file could not be created or locked.
    Io {
        /// The lock file.
        path: PathBuf,
        /// What went wrong, in words.
        why: String,
    },
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Held { path, holder } => write!(
                f,
                "another trasloco run is working with this state ({holder}; lock file {}): wait for it to end, or stop it first",
                path.display()
            ),
            LockError::Io { path, why } => {
                write!(f, "cannot lock the state with {}: {why}", path.display())
            }
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "this host".into())
}

impl RunLock {
    /// Take the lock of the state file `state`, or say who holds it.
    pub fn acquire(state: &Path) -> Result<RunLock, LockError> {
        let mut name = state.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let io = |e: std::io::Error| LockError::Io {
            path: path.clone(),
            why: trasloco_core::words::io_error(&e),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        // SAFETY: flock on a descriptor this function owns; no memory is shared.
        let locked = unsafe {
            use std::os::fd::AsRawFd;
            libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB)
        };
        if locked != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => "holder unknown".to_string(),
                    h => h.to_string(),
                };
                return Err(LockError::Held { path, holder });
            }
            return Err(io(err));
        }
        let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let who = format!(
            "host {}, pid {}, since {since}",
            hostname(),
            std::process::id()
        );
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(who.as_bytes()).map_err(io)?;
        Ok(RunLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("s.sqlite");
        let first = RunLock::acquire(&state).unwrap();
        // A second open file description of the same file, as another process would have.
        match RunLock::acquire(&state) {
            Err(LockError::Held { holder, .. }) => {
                assert!(
                    holder.contains(&format!("pid {}", std::process::id())),
                    "{holder}"
                );
                assert!(holder.contains("since 20"), "{holder}");
            }
            other => panic!("{other:?}"),
        }
        drop(first);
        let again = RunLock::acquire(&state).unwrap();
        assert!(again.path().ends_with("s.sqlite.lock"));
    }
}
