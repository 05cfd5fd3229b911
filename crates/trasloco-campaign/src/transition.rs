//! The domain transition and users' filters, over ManageSieve.
//!
//! - `transition apply`: on the old server, for each renamed mailbox, install and activate a
//!   script that redirects every message to the new address and answers senders outside the
//!   organisation once (Italian and English). A script the user had active stays in force
//!   through `include`, and `remove` makes it active again.
//! - `transition status` / `remove`.
//! - `filters migrate`: every user's scripts from the old server to the new one, addresses of
//!   renamed domains rewritten, the active one activated; scripts the new server refuses are
//!   reported with its reason.

use crate::config::Campaign;
use crate::run::Entry;
use serde::{Deserialize, Serialize};
use trasloco_core::accounting::FailureClass;
use trasloco_imap::{Credentials, Endpoint, Error, TlsOptions};
use trasloco_sieve::ManageSieve;
use trasloco_sieve::script::{
    TRANSITION_SCRIPT, Transition, previous_active, rewrite_addresses, transition,
};
use trasloco_sync::{Side, Source, Target};

/// `[transition]` in the campaign file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionSection {
    /// Keep a copy of each message in the old mailbox (default true).
    #[serde(default = "yes")]
    pub keep_copy: bool,
    /// At most one auto-reply per sender in this many days (default 7).
    #[serde(default = "week")]
    pub days: u32,
    /// The organisation's name, signed under the reply.
    pub organisation: Option<String>,
    /// Senders from these domains get no reply (default: every domain in `domain_map`, both
    /// sides).
    #[serde(default)]
    pub organisation_domains: Vec<String>,
}

impl Default for TransitionSection {
    fn default() -> TransitionSection {
        TransitionSection {
            keep_copy: true,
            days: week(),
            organisation: None,
            organisation_domains: Vec::new(),
        }
    }
}

fn yes() -> bool {
    true
}

fn week() -> u32 {
    7
}

/// What happened to one mailbox.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Source account.
    pub source: String,
    /// Target account.
    pub target: String,
    /// `installed`, `updated`, `active`, `inactive`, `absent`, `removed`, `copied`,
    /// `skipped`, `refused` or `failed`.
    pub state: String,
    /// Details: the server's reason, scripts copied, addresses rewritten.
    pub detail: String,
    /// For `failed`: what kind of failure, which decides the exit code.
    #[serde(skip)]
    pub failure: Option<FailureClass>,
}

/// The organisation's domains: configured, else both sides of the domain map.
pub fn organisation_domains(c: &Campaign) -> Vec<String> {
    let t = &c.file.transition;
    if !t.organisation_domains.is_empty() {
        return t.organisation_domains.clone();
    }
    let mut out: Vec<String> = Vec::new();
    for (a, b) in &c.file.rules.domain_map {
        for d in [a, b] {
            if !out.iter().any(|x| x.eq_ignore_ascii_case(d)) {
                out.push(d.to_ascii_lowercase());
            }
        }
    }
    out
}

/// The two servers' logins of an account with a job. An account the address rules block gets
/// a "skipped" outcome instead; one with nothing to talk to is passed over.
fn movable<'e>(e: &'e Entry, out: &mut Vec<Outcome>) -> Option<(&'e Side, &'e Side)> {
    let pair = match e.job.as_ref().map(|j| (&j.source, &j.target)) {
        Some((Source::Imap(s) | Source::Pop3(s), Target::Imap(t))) => (s, t),
        _ => return None,
    };
    if e.blocked.is_some() {
        out.push(outcome(
            e,
            "skipped",
            "blocked in the campaign (address rules)",
        ));
        return None;
    }
    Some(pair)
}

fn address(side: &Side) -> &str {
    &side.credentials.user
}

async fn open(ep: &Endpoint, tls: &TlsOptions, creds: &Credentials) -> Result<ManageSieve, Error> {
    let mut s = ManageSieve::connect(ep, tls).await?;
    s.login(creds).await?;
    Ok(s)
}

fn outcome(e: &Entry, state: &str, detail: impl Into<String>) -> Outcome {
    Outcome {
        source: e.source.clone(),
        target: e.target.clone(),
        state: state.into(),
        detail: detail.into(),
        failure: None,
    }
}

/// A mailbox that could not be handled: the line names the side and account.
fn failed(e: &Entry, side: &str, err: &Error) -> Outcome {
    let account = if side == "source" {
        &e.source
    } else {
        &e.target
    };
    Outcome {
        failure: Some(trasloco_sync::failure_class(err.kind)),
        ..outcome(e, "failed", format!("{side} {account}: {err}"))
    }
}

/// What `transition` should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Install (or update) and activate.
    Apply,
    /// Report.
    Status,
    /// Deactivate, restore the user's script, delete ours.
    Remove,
}

/// Run a transition action over the renamed mailboxes of a campaign.
pub async fn transition_all(c: &Campaign, entries: &[Entry], action: Action) -> Vec<Outcome> {
    let domains = organisation_domains(c);
    let mut out = Vec::new();
    for e in entries {
        let Some((src, tgt)) = movable(e, &mut out) else {
            continue;
        };
        let (old, new) = (address(src), address(tgt));
        if old.eq_ignore_ascii_case(new) {
            continue; // not renamed
        }
        let ep = c.sieve_endpoint("source", &src.endpoint.host);
        let r = async {
            let mut s = open(&ep, &src.tls, &src.credentials).await?;
            let scripts = s.list().await?;
            let ours = scripts.iter().find(|x| x.name == TRANSITION_SCRIPT);
            let result = match action {
                Action::Status => Ok(match ours {
                    Some(x) if x.active => outcome(e, "active", format!("redirects to {new}")),
                    Some(_) => outcome(e, "inactive", "installed but not active"),
                    None => outcome(e, "absent", ""),
                }),
                Action::Apply => {
                    // The user's own active script stays in force through include (when the
                    // server has it); on an update, the one recorded in our script.
                    let previous = match ours {
                        Some(_) => previous_active(&s.get(TRANSITION_SCRIPT).await?),
                        None => scripts.iter().find(|x| x.active).map(|x| x.name.clone()),
                    };
                    let include_ok = s.extensions().iter().any(|x| x == "include");
                    let mut detail = format!("redirects to {new}");
                    if previous.is_some() && !include_ok {
                        detail.push_str(&format!(
                            "; the server has no include extension, so the user's script {:?} is not in force while the transition is",
                            previous.as_deref().unwrap_or("")
                        ));
                    }
                    let text = transition(&Transition {
                        old_address: old,
                        new_address: new,
                        organisation_domains: &domains,
                        keep_copy: c.file.transition.keep_copy,
                        days: c.file.transition.days,
                        organisation: c.file.transition.organisation.as_deref(),
                        include: previous.as_deref().filter(|_| include_ok),
                    });
                    if let Some(why) = s.check_script(&text).await? {
                        Ok(outcome(e, "refused", why))
                    } else {
                        s.put(TRANSITION_SCRIPT, &text).await?;
                        s.set_active(Some(TRANSITION_SCRIPT)).await?;
                        Ok(outcome(
                            e,
                            if ours.is_some() { "updated" } else { "installed" },
                            detail,
                        ))
                    }
                }
                Action::Remove => match ours {
                    None => Ok(outcome(e, "absent", "")),
                    Some(x) => {
                        let previous = previous_active(&s.get(TRANSITION_SCRIPT).await?);
                        if x.active {
                            s.set_active(previous.as_deref()).await?;
                        }
                        s.delete(TRANSITION_SCRIPT).await?;
                        Ok(outcome(
                            e,
                            "removed",
                            previous
                                .map(|p| format!("{p:?} is active again"))
                                .unwrap_or_default(),
                        ))
                    }
                },
            };
            s.logout().await;
            result
        }
        .await;
        out.push(match r {
            Ok(o) => o,
            Err::<_, Error>(err) => failed(e, "source", &err),
        });
    }
    out
}

/// Copy every user's Sieve scripts to the target, addresses rewritten by the domain map.
pub async fn migrate_filters(c: &Campaign, entries: &[Entry], dry_run: bool) -> Vec<Outcome> {
    let mut out = Vec::new();
    for e in entries {
        let Some((src, tgt)) = movable(e, &mut out) else {
            continue;
        };
        let sep = c.sieve_endpoint("source", &src.endpoint.host);
        let tep = c.sieve_endpoint("target", &tgt.endpoint.host);
        let r = async {
            let on_source = |err: Error| failed(e, "source", &err);
            let on_target = |err: Error| failed(e, "target", &err);
            let mut from = open(&sep, &src.tls, &src.credentials)
                .await
                .map_err(on_source)?;
            let mut to = open(&tep, &tgt.tls, &tgt.credentials)
                .await
                .map_err(on_target)?;
            let scripts = from.list().await.map_err(on_source)?;
            let (mut copied, mut rewritten, mut refused) = (0, 0, Vec::new());
            let mut active = None;
            for x in scripts.iter().filter(|x| x.name != TRANSITION_SCRIPT) {
                let text = from.get(&x.name).await.map_err(on_source)?;
                let (text, n) = rewrite_addresses(&text, &c.file.rules.domain_map);
                if let Some(why) = to.check_script(&text).await.map_err(on_target)? {
                    refused.push(format!("{:?}: {why}", x.name));
                    continue;
                }
                if !dry_run {
                    to.put(&x.name, &text).await.map_err(on_target)?;
                }
                copied += 1;
                rewritten += n;
                if x.active {
                    active = Some(x.name.clone());
                }
            }
            if let (Some(a), false) = (&active, dry_run) {
                to.set_active(Some(a)).await.map_err(on_target)?;
            }
            tokio::join!(from.logout(), to.logout());
            let mut detail = format!(
                "{copied} script(s) {}, {rewritten} address(es) rewritten{}",
                if dry_run { "would be copied" } else { "copied" },
                active
                    .map(|a| format!(", {a:?} active"))
                    .unwrap_or_default()
            );
            if !refused.is_empty() {
                detail.push_str(&format!("; refused by the target: {}", refused.join("; ")));
            }
            Ok::<_, Outcome>((
                if refused.is_empty() {
                    "copied"
                } else {
                    "refused"
                },
                detail,
            ))
        }
        .await;
        out.push(match r {
            Ok((state, detail)) => outcome(e, state, detail),
            Err(failed) => failed,
        });
    }
    out
}

/// The exit code: 0 when every mailbox is as asked; when one failed, the code of the most
/// common failure (10 no connection, 11 TLS, 12 login refused, 13 a command refused); else 2
/// when a script was refused.
pub fn exit_code(outcomes: &[Outcome]) -> i32 {
    let failed = outcomes
        .iter()
        .filter(|o| o.state == "failed")
        .map(|o| o.failure.unwrap_or(FailureClass::Protocol));
    if let Some(code) = crate::run::most_common_failure(failed) {
        code
    } else if outcomes.iter().any(|o| o.state == "refused") {
        crate::exit::INCOMPLETE
    } else {
        crate::exit::OK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(state: &str, failure: Option<FailureClass>) -> Outcome {
        Outcome {
            source: "a@old".into(),
            target: "a@new".into(),
            state: state.into(),
            detail: String::new(),
            failure,
        }
    }

    #[test]
    fn exit_code_is_the_most_common_failure_then_refusals() {
        use FailureClass::*;
        assert_eq!(exit_code(&[o("installed", None), o("absent", None)]), 0);
        assert_eq!(exit_code(&[o("copied", None), o("refused", None)]), 2);
        let failures = [
            o("refused", None),
            o("failed", Some(Authentication)),
            o("failed", Some(Connection)),
            o("failed", Some(Authentication)),
        ];
        assert_eq!(exit_code(&failures), crate::exit::AUTHENTICATION);
        assert_eq!(exit_code(&[o("failed", Some(Tls))]), crate::exit::TLS);
    }
}
