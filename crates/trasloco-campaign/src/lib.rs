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
//! - [`pec`]: PEC mailboxes as evidence (types, signatures, receipt links);
//! - [`transition`]: the renamed domain's redirect and auto-reply, and filters carried over;
//! - [`clients`]: autoconfig, Autodiscover, Apple profiles, DNS records, instruction pages.
#![deny(missing_docs)]

pub mod accounts;
pub mod clients;
pub mod config;
pub mod exit;
pub mod html;
pub mod pec;
pub mod phases;
pub mod plan;
pub mod providers;
pub mod report;
pub mod rules;
pub mod run;
pub mod transition;
pub mod verify;
pub mod workers;

/// Write a report's files into `dir`: JSON, CSV and HTML renderings of one value. Each file is
/// written beside and renamed, so a killed command never leaves half a file for the next one;
/// the last file is written last (for the plan, the JSON `run` reads).
pub(crate) fn write_files<'a>(
    dir: &std::path::Path,
    files: impl IntoIterator<Item = (&'a str, Result<String, String>)>,
) -> Result<(), ConfigError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        ConfigError(format!(
            "cannot create directory {}: {}",
            dir.display(),
            trasloco_core::words::io_error(&e)
        ))
    })?;
    for (name, text) in files {
        let text = text.map_err(|e| ConfigError(format!("internal error: {name}: {e}")))?;
        let p = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &p))
            .map_err(|e| {
                ConfigError(format!(
                    "cannot write {}: {}",
                    p.display(),
                    trasloco_core::words::io_error(&e)
                ))
            })?;
    }
    Ok(())
}

/// A user mistake in a file: one line naming the file (and line) and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);
