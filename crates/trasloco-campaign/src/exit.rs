//! Exit codes, documented in the README. Scripts can rely on them.

/// Everything is in sync (or the dry run / status completed).
pub const OK: i32 = 0;
/// The run finished but not every message is on the target (a message failed, a mailbox was
/// interrupted): run again; it resumes.
pub const INCOMPLETE: i32 = 2;
/// Every message has a copy on the target, but the target stored some with other bytes than
/// the source's (listed): nothing to retry; keep the originals on the source or in an archive.
pub const ALTERED: i32 = 3;
/// Could not connect to a server (unknown host, refused, timeout, connection lost for good).
pub const CONNECTION: i32 = 10;
/// TLS failed (certificate not trusted, handshake, STARTTLS missing).
pub const TLS: i32 = 11;
/// A login was refused.
pub const AUTHENTICATION: i32 = 12;
/// A server refused a command the migration needs (e.g. cannot create or open a folder).
pub const SERVER: i32 = 13;
/// Another run works with the same state file (the same campaign) right now: nothing started.
pub const BUSY: i32 = 16;
/// The campaign's window is closed: the run did not start (use --force to start anyway).
pub const WINDOW: i32 = 75;
/// Stopped cleanly by a signal: 128 + its number, as a shell reports a process the signal
/// ended (130 for Ctrl-C, 143 for SIGTERM). What was started was finished and recorded, the
/// summary printed and the report written; the same command resumes.
pub fn stopped(signal: i32) -> i32 {
    128 + signal
}
/// Bad command line, campaign file, accounts file or password file.
pub const USAGE: i32 = 64;
/// A bug in trasloco.
pub const INTERNAL: i32 = 70;
