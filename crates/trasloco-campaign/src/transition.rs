//! The domain transition and users' filters, over ManageSieve.
//!
//! - `transition apply`: on the old server, for each renamed mailbox, install and activate a
//!   script that redirects every message to the new address and answers senders outside the
//!   organisation at most once every `days` days (Italian and English). The script the user
//!   had active stays in force through `include` of an adapted copy (one automatic reply per
//!   message, a `stop` that ends only the user's filters, a rejection that stands), and
//!   `remove` makes it active again. Where the two cannot be combined the mailbox says why.
//! - `transition status` / `remove`.
//! - `filters migrate`: every user's scripts from the old server to the new one, addresses of
//!   renamed domains rewritten, folder names mapped as the migration maps them, the script in
//!   force for the user activated; scripts the new server refuses are reported with its reason.

use crate::config::Campaign;
use crate::run::Entry;
use serde::{Deserialize, Serialize};
use trasloco_core::accounting::FailureClass;
use trasloco_imap::{Credentials, Endpoint, Error, TlsOptions};
use trasloco_sieve::ManageSieve;
use trasloco_sieve::script::{
    TRANSITION_SCRIPT, Transition, USER_COPY, previous_active, rewrite_addresses, rewrite_folders,
    transition, user_copy,
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
    /// `installed`, `updated`, `would-install`, `partial` (installed, the user's own script
    /// not in force), `active`, `inactive`, `absent`, `removed`, `copied`, `skipped`,
    /// `refused` or `failed`.
    pub state: String,
    /// Details: the server's reason, scripts copied, addresses rewritten.
    pub detail: String,
    /// `transition apply --dry-run`: the script that would be installed (first mailbox).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
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
        script: None,
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
    /// Install (or update) and activate; with `dry_run`, only say what would be installed.
    Apply {
        /// Check and show, change nothing.
        dry_run: bool,
    },
    /// Report.
    Status,
    /// Deactivate, restore the user's script, delete ours.
    Remove,
}

/// Run a transition action over the renamed mailboxes of a campaign, `[run] jobs` mailboxes
/// at a time; outcomes in the accounts file's order. A dry run carries the script it would
/// install for the first mailbox.
pub async fn transition_all(c: &Campaign, entries: &[Entry], action: Action) -> Vec<Outcome> {
    use futures_util::StreamExt;
    let domains = organisation_domains(c);
    let mut out = Vec::new();
    let mut work = Vec::new();
    for e in entries {
        let Some((src, tgt)) = movable(e, &mut out) else {
            continue;
        };
        if address(src).eq_ignore_ascii_case(address(tgt)) {
            continue; // not renamed
        }
        work.push((e, src, tgt));
    }
    let domains = &domains;
    let mut pending = Vec::new();
    for (e, src, tgt) in work {
        pending.push(transition_one(c, e, src, tgt, domains, action));
    }
    let done: Vec<Outcome> = futures_util::stream::iter(pending)
        .buffered(c.file.run.jobs.max(1))
        .collect()
        .await;
    out.extend(done);
    let mut shown = false;
    for o in &mut out {
        if o.script.is_some() {
            if shown {
                o.script = None;
            }
            shown = true;
        }
    }
    out
}

async fn transition_one(
    c: &Campaign,
    e: &Entry,
    src: &Side,
    tgt: &Side,
    domains: &[String],
    action: Action,
) -> Outcome {
    let (old, new) = (address(src), address(tgt));
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
            Action::Apply { dry_run } => {
                // The user's own active script; on an update, the one recorded in ours.
                let previous = match ours {
                    Some(_) => previous_active(&s.get(TRANSITION_SCRIPT).await?),
                    None => scripts
                        .iter()
                        .find(|x| x.active && x.name != USER_COPY)
                        .map(|x| x.name.clone()),
                };
                let combined = match &previous {
                    Some(p) => combine(&mut s, p, dry_run).await?,
                    None => Ok(()),
                };
                let shape = Transition {
                    old_address: old,
                    new_address: new,
                    organisation_domains: domains,
                    keep_copy: c.file.transition.keep_copy,
                    days: c.file.transition.days,
                    organisation: c.file.transition.organisation.as_deref(),
                    include: previous.as_deref().filter(|_| combined.is_ok()),
                };
                let text = transition(&shape);
                let mut detail = format!("redirects to {new}");
                if let (Some(p), Ok(())) = (&previous, &combined) {
                    detail.push_str(&format!("; the user's script {p:?} stays in force"));
                }
                if dry_run && previous.is_some() && combined.is_ok() && ours.is_none() {
                    // The copy was not stored, so the server cannot check the include.
                    let alone = transition(&Transition {
                        include: None,
                        ..shape
                    });
                    if let Some(why) = s.check_script(&alone).await? {
                        return Ok(outcome(e, "refused", why));
                    }
                } else if let Some(why) = s.check_script(&text).await? {
                    return Ok(outcome(e, "refused", why));
                }
                let state = match (&combined, dry_run, ours.is_some()) {
                    (Err(_), _, _) => "partial",
                    (_, true, _) => "would-install",
                    (_, false, true) => "updated",
                    (_, false, false) => "installed",
                };
                if let Err(why) = &combined {
                    detail.push_str(&format!(
                        "; the user's script {:?} is NOT in force while the transition is: {why}",
                        previous.as_deref().unwrap_or("")
                    ));
                }
                if dry_run {
                    let mut o = outcome(e, state, detail);
                    o.script = Some(text);
                    return Ok(o);
                }
                s.put(TRANSITION_SCRIPT, &text).await?;
                s.set_active(Some(TRANSITION_SCRIPT)).await?;
                if combined.is_err() {
                    // A copy from an earlier apply is no longer included.
                    if scripts.iter().any(|x| x.name == USER_COPY) {
                        s.delete(USER_COPY).await?;
                    }
                }
                Ok(outcome(e, state, detail))
            }
            Action::Remove => match ours {
                None => Ok(outcome(e, "absent", "")),
                Some(x) => {
                    let previous = previous_active(&s.get(TRANSITION_SCRIPT).await?);
                    if x.active {
                        s.set_active(previous.as_deref()).await?;
                    }
                    s.delete(TRANSITION_SCRIPT).await?;
                    if scripts.iter().any(|x| x.name == USER_COPY) {
                        s.delete(USER_COPY).await?;
                    }
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
    match r {
        Ok(o) => o,
        Err::<_, Error>(err) => failed(e, "source", &err),
    }
}

/// Make the user's active script `name` run inside the transition: a copy with its `stop`,
/// `vacation` and `reject` adapted ([`user_copy`]), checked by the server and stored (unless
/// `dry_run`). `Err` says why they cannot be combined; the transition is then installed alone.
async fn combine(
    s: &mut ManageSieve,
    name: &str,
    dry_run: bool,
) -> Result<Result<(), String>, Error> {
    let exts = s.extensions();
    for needed in ["include", "variables"] {
        if !exts.iter().any(|x| x.eq_ignore_ascii_case(needed)) {
            return Ok(Err(format!("the server has no {needed} extension")));
        }
    }
    let original = s.get(name).await?;
    let copy = match user_copy(name, &original) {
        Ok(c) => c,
        Err(why) => return Ok(Err(format!("its text cannot be read ({why})"))),
    };
    if let Some(max) = s.max_redirects()
        && copy.redirects + 1 > max
    {
        return Ok(Err(format!(
            "it redirects too ({} redirect(s)) and the server allows {max} per message",
            copy.redirects
        )));
    }
    if let Some(why) = s.check_script(&copy.text).await? {
        return Ok(Err(format!("the server refuses it combined: {why}")));
    }
    if !dry_run {
        s.put(USER_COPY, &copy.text).await?;
    }
    Ok(Ok(()))
}

/// Copy every user's Sieve scripts to the target: addresses rewritten by the domain map,
/// folder names by the migration's folder map, the script the user has in force made active
/// (during a transition, the one it keeps in force, not the transition's).
pub async fn migrate_filters(c: &Campaign, entries: &[Entry], dry_run: bool) -> Vec<Outcome> {
    use futures_util::StreamExt;
    let mut out = Vec::new();
    let mut work = Vec::new();
    for e in entries {
        if let Some((src, tgt)) = movable(e, &mut out) {
            work.push((e, src, tgt));
        }
    }
    // Folder names follow the migration's own map: its renames and the provider presets.
    let folders = crate::run::settings(c, true).sync;
    let mut pending = Vec::new();
    for (e, src, tgt) in work {
        pending.push(migrate_one(c, e, src, tgt, &folders, dry_run));
    }
    let done: Vec<Outcome> = futures_util::stream::iter(pending)
        .buffered(c.file.run.jobs.max(1))
        .collect()
        .await;
    out.extend(done);
    out
}

async fn migrate_one(
    c: &Campaign,
    e: &Entry,
    src: &Side,
    tgt: &Side,
    folder_opts: &trasloco_sync::Options,
    dry_run: bool,
) -> Outcome {
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
        // The script in force for the user: during a transition, the one it recorded.
        let mut in_force = scripts.iter().find(|x| x.active).map(|x| x.name.clone());
        if in_force.as_deref() == Some(TRANSITION_SCRIPT) {
            in_force = previous_active(&from.get(TRANSITION_SCRIPT).await.map_err(on_source)?);
        }
        let theirs: Vec<_> = scripts
            .iter()
            .filter(|x| x.name != TRANSITION_SCRIPT && x.name != USER_COPY)
            .collect();
        // Folder names are rewritten only where a script files mail.
        let mut texts = Vec::new();
        for x in &theirs {
            texts.push(from.get(&x.name).await.map_err(on_source)?);
        }
        let files_mail = texts.iter().any(|t| {
            let l = t.to_ascii_lowercase();
            l.contains("fileinto") || l.contains("mailboxexists")
        });
        let folders = if files_mail {
            match trasloco_sync::folder_mappings(src, tgt, folder_opts).await {
                Ok(m) => Some(m),
                Err((class, why)) => {
                    return Err(Outcome {
                        failure: Some(class),
                        ..outcome(e, "failed", format!("folders: {why}"))
                    });
                }
            }
        } else {
            None
        };
        let (mut copied, mut rewritten, mut refused) = (0, 0, Vec::new());
        let mut renamed: Vec<String> = Vec::new();
        let mut active = None;
        for (x, text) in theirs.iter().zip(texts) {
            let (text, n) = rewrite_addresses(&text, &c.file.rules.domain_map);
            let text = match &folders {
                Some(m) => {
                    let map = |name: &str| folder_target(m, name);
                    match rewrite_folders(&text, &map) {
                        Ok((t, changed)) => {
                            for (a, b) in changed {
                                let line = format!("{a:?} → {b:?}");
                                if !renamed.contains(&line) {
                                    renamed.push(line);
                                }
                            }
                            t
                        }
                        Err(_) => text, // the server says what is wrong with it below
                    }
                }
                None => text,
            };
            if let Some(why) = to.check_script(&text).await.map_err(on_target)? {
                refused.push(format!("{:?}: {why}", x.name));
                continue;
            }
            if !dry_run {
                to.put(&x.name, &text).await.map_err(on_target)?;
            }
            copied += 1;
            rewritten += n;
            if in_force.as_deref() == Some(x.name.as_str()) {
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
        if !renamed.is_empty() {
            detail.push_str(&format!(", folders renamed: {}", renamed.join(", ")));
        }
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
    match r {
        Ok((state, detail)) => outcome(e, state, detail),
        Err(failed) => failed,
    }
}

/// The target name of a folder a filter names on the source, as the migration maps it;
/// `INBOX` in any case.
fn folder_target(
    mappings: &[trasloco_core::folder_map::FolderMapping],
    name: &str,
) -> Option<String> {
    mappings
        .iter()
        .find(|m| {
            m.source == name
                || (m.source.eq_ignore_ascii_case("INBOX") && name.eq_ignore_ascii_case("INBOX"))
        })
        .map(|m| m.target.clone())
}

/// The exit code: 0 when every mailbox is as asked; when one failed, the code of the most
/// common failure (10 no connection, 11 TLS, 12 login refused, 13 a command refused); else 2
/// when a script was refused or a transition is in force without the user's own script.
pub fn exit_code(outcomes: &[Outcome]) -> i32 {
    let failed = outcomes
        .iter()
        .filter(|o| o.state == "failed")
        .map(|o| o.failure.unwrap_or(FailureClass::Protocol));
    if let Some(code) = crate::run::most_common_failure(failed) {
        code
    } else if outcomes
        .iter()
        .any(|o| o.state == "refused" || o.state == "partial")
    {
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
            script: None,
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
