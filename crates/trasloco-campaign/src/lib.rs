//! Campaigns: many mailboxes moved by one file.
//!
//! - [`config`]: the campaign file (`campaign.toml`) — servers, TLS, admin login, run options;
//! - [`accounts`]: the account list, in our CSV format or the ones admins already have
//!   (imapsync's `host1;user1;password1;host2;user2;password2`, Microsoft's
//!   `EmailAddress,UserName,Password`);
//! - [`rules`]: address, inactivity and quota rules, as pure functions;
//! - [`phases`]: prestage, delta, final, catch-up, and the window runs may start in;
//! - [`plan`]: look at every mailbox, decide, write plan.json/csv/html;
//! - [`run`]: run the mailboxes N at a time, write the JSON report, decide the exit code;
//! - [`verify`]: compare source and target after the fact;
//! - [`report`]: the HTML, CSV and JSON report for people;
//! - [`pec`]: PEC mailboxes as evidence (types, signatures, receipt links).
#![deny(missing_docs)]

pub mod accounts;
pub mod config;
pub mod exit;
pub mod html;
pub mod pec;
pub mod phases;
pub mod plan;
pub mod report;
pub mod rules;
pub mod run;
pub mod verify;

/// A user mistake in a file: one line naming the file (and line) and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);
