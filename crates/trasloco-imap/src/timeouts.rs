//! How long a server may keep us waiting, and who is keeping us waiting now.
//!
//! Two limits, for the whole process (one run talks to its servers with one policy):
//! - **connect**: name lookup, TCP connect, TLS handshake, each (default 30 s);
//! - **idle**: a connection that has sent nothing for this long while an answer, or the rest
//!   of a literal, is awaited is given up as stalled (default 120 s, imapsync's).
//!
//! A read that has waited longer than [`NOTICE`] is listed while it waits, so that progress
//! can say "waiting for the server (45 s)" instead of looking hung.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Each step of connecting: name lookup, TCP, TLS handshake.
    pub connect: Duration,
    /// Silence while an answer or the rest of a literal is awaited.
    pub idle: Duration,
}

/// The most either limit may be set to, in seconds (an hour).
pub const MAX_SECONDS: u64 = 3600;

static CONNECT_MS: AtomicU64 = AtomicU64::new(30_000);
static IDLE_MS: AtomicU64 = AtomicU64::new(120_000);

static CONNECT_GIVEN: AtomicBool = AtomicBool::new(false);
static IDLE_GIVEN: AtomicBool = AtomicBool::new(false);

/// Set limits given on the command line: they win over a configuration file's.
pub fn set_given(connect: Option<Duration>, idle: Option<Duration>) {
    if let Some(c) = connect {
        CONNECT_MS.store(c.as_millis() as u64, Ordering::Relaxed);
        CONNECT_GIVEN.store(true, Ordering::Relaxed);
    }
    if let Some(i) = idle {
        IDLE_MS.store(i.as_millis() as u64, Ordering::Relaxed);
        IDLE_GIVEN.store(true, Ordering::Relaxed);
    }
}

/// Set limits a configuration file gives, unless the command line gave them.
pub fn set_configured(connect: Option<Duration>, idle: Option<Duration>) {
    if let (Some(c), false) = (connect, CONNECT_GIVEN.load(Ordering::Relaxed)) {
        CONNECT_MS.store(c.as_millis() as u64, Ordering::Relaxed);
    }
    if let (Some(i), false) = (idle, IDLE_GIVEN.load(Ordering::Relaxed)) {
        IDLE_MS.store(i.as_millis() as u64, Ordering::Relaxed);
    }
}

/// The limits in force.
pub fn get() -> Timeouts {
    Timeouts {
        connect: Duration::from_millis(CONNECT_MS.load(Ordering::Relaxed)),
        idle: Duration::from_millis(IDLE_MS.load(Ordering::Relaxed)),
    }
}

/// A read waiting longer than this is listed by [`longest_wait`].
pub const NOTICE: Duration = Duration::from_secs(10);

static WAITS: Mutex<Vec<(u64, String, Instant)>> = Mutex::new(Vec::new());
static NEXT: AtomicU64 = AtomicU64::new(1);

/// A wait being listed; it leaves the list when dropped.
pub(crate) struct Waiting(u64);

/// List a read on `host` that has been waiting since `since`.
pub(crate) fn waiting(host: &str, since: Instant) -> Waiting {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    WAITS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((id, host.to_string(), since));
    Waiting(id)
}

impl Drop for Waiting {
    fn drop(&mut self) {
        WAITS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(id, _, _)| *id != self.0);
    }
}

/// The server that has kept a connection waiting longest right now, and for how long (only
/// waits longer than [`NOTICE`]).
pub fn longest_wait() -> Option<(String, Duration)> {
    let waits = WAITS.lock().unwrap_or_else(|e| e.into_inner());
    waits
        .iter()
        .min_by_key(|(_, _, since)| *since)
        .map(|(_, host, since)| (host.clone(), since.elapsed()))
}

static PAUSES: Mutex<Vec<(u64, String, Instant)>> = Mutex::new(Vec::new());

/// A pause a server asked for (throttling), listed until dropped.
pub struct Pause(u64);

/// List a pause for `host` until `until`, for the progress line.
pub fn pause(host: &str, until: Instant) -> Pause {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    PAUSES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((id, host.to_string(), until));
    Pause(id)
}

impl Drop for Pause {
    fn drop(&mut self) {
        PAUSES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(id, _, _)| *id != self.0);
    }
}

/// The server that throttles right now, and how long until work resumes (the longest pause).
pub fn longest_pause() -> Option<(String, Duration)> {
    let pauses = PAUSES.lock().unwrap_or_else(|e| e.into_inner());
    pauses
        .iter()
        .max_by_key(|(_, _, until)| *until)
        .map(|(_, host, until)| {
            (
                host.clone(),
                until.saturating_duration_since(Instant::now()),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_listed_while_they_last() {
        let old = Instant::now() - Duration::from_secs(40);
        let a = waiting("slow.example", old);
        let b = waiting("slower.example", old - Duration::from_secs(5));
        let (host, for_) = longest_wait().unwrap();
        assert_eq!(host, "slower.example");
        assert!(for_ >= Duration::from_secs(45));
        drop(b);
        assert_eq!(longest_wait().unwrap().0, "slow.example");
        drop(a);
        assert_eq!(longest_wait(), None);
    }
}
