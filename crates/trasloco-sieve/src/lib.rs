//! Sieve for a migration: a ManageSieve client (RFC 5804) to list, read, check, install,
//! activate and remove users' scripts, and the scripts trasloco writes — the domain
//! transition (redirect to the new address, an auto-reply only to senders outside the
//! organisation) and users' filters with their addresses rewritten.
#![deny(missing_docs)]

mod client;
pub mod lex;
pub mod script;

pub use client::{ManageSieve, ScriptInfo};
