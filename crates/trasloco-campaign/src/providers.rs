//! What is known of a provider's IMAP service, applied when a campaign names it
//! (`provider = "microsoft365"` under `[source]` or `[target]`).
//!
//! Microsoft 365 (Exchange Online):
//! - as a source, its folders that hold no mail (calendars, contacts, tasks, notes, journal,
//!   outbox, conversation history, sync issues; English and Italian names) are left out under
//!   the rule `folder-not-mail`;
//! - as a target, a message over its per-message limit (35 MB unless the admin raised it,
//!   `max_message_mb`) fails before upload with how to raise it; `$MDNSent` is never set
//!   (Outlook shows it as a category on every message); `\Flagged`, which Exchange forgets
//!   when it comes with APPEND, is set again by STORE; the reserved folder name `Files` is
//!   renamed `Files (migrated)`; a message with a line over 10,500 characters fails before
//!   upload (its bytes are never rewrapped); appends go in batches small enough, and sessions
//!   are renewed early enough, that no session reaches the ten refused commands after which
//!   Exchange ends it.
//!
//! Gmail: as a source, a message shown under several labels is copied once
//! (`trasloco_sync` `labels`); as a target, the 500 MB daily upload cap is kept across runs
//! and a copy merged into the message of the same Message-ID counts as present.
//!
//! Zimbra, as a source: folders the user does not administer (others' folders mounted in
//! the user's tree) are left out under `folder-shared`; flags Zimbra's add-ons make
//! (`…:FLAG51135`) are dropped before APPEND.
//!
//! A side without `provider` is recognised by its greeting and capabilities ([`detect`]).

use crate::config::{Campaign, Protocol};
use trasloco_sync::Options;

/// A provider a campaign can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// Exchange Online.
    Microsoft365,
    /// Gmail (Google Workspace).
    Gmail,
    /// Zimbra Collaboration.
    Zimbra,
    /// Dovecot: nothing beyond the standard.
    Dovecot,
    /// Anything else: only what the server says of itself.
    Generic,
}

impl Provider {
    /// From the campaign's value.
    pub fn parse(s: &str) -> Result<Provider, String> {
        match s.to_ascii_lowercase().as_str() {
            "microsoft365" | "office365" | "exchange-online" => Ok(Provider::Microsoft365),
            "gmail" | "google" | "google-workspace" => Ok(Provider::Gmail),
            "dovecot" => Ok(Provider::Dovecot),
            "generic" => Ok(Provider::Generic),
            "zimbra" => Ok(Provider::Zimbra),
            _ => Err(format!(
                "provider {s:?} is not one of microsoft365, gmail, zimbra, dovecot, generic"
            )),
        }
    }
}

impl Provider {
    /// The name a campaign gives it.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Microsoft365 => "microsoft365",
            Provider::Gmail => "gmail",
            Provider::Zimbra => "zimbra",
            Provider::Dovecot => "dovecot",
            Provider::Generic => "generic",
        }
    }
}

/// What a server's greeting and capabilities say it is, and the words that say it: Gmail
/// offers X-GM-EXT-1 (and greets with "Gimap"), Exchange greets as "Microsoft Exchange",
/// Dovecot as "Dovecot".
pub fn recognise(
    greeting: &str,
    has_cap: impl Fn(&str) -> bool,
) -> Option<(Provider, &'static str)> {
    if has_cap("X-GM-EXT-1") {
        Some((Provider::Gmail, "X-GM-EXT-1"))
    } else if greeting.contains("Gimap") {
        Some((Provider::Gmail, "Gimap"))
    } else if greeting.contains("Zimbra") {
        Some((Provider::Zimbra, "Zimbra"))
    } else if greeting.contains("Microsoft Exchange") {
        Some((Provider::Microsoft365, "Microsoft Exchange"))
    } else if greeting.contains("Dovecot") {
        Some((Provider::Dovecot, "Dovecot"))
    } else {
        None
    }
}

/// For each IMAP side whose `provider` the campaign leaves out: one connection, no login, to
/// read the greeting and capabilities; a recognised service gets its preset (written into the
/// campaign in memory, so every command that follows applies the same). Returns one line per
/// preset applied. A side that cannot be reached is left as it is: the run reports that.
pub async fn detect(campaign: &mut Campaign) -> Vec<String> {
    let mut lines = Vec::new();
    for which in ["source", "target"] {
        let section = if which == "source" {
            &campaign.file.source
        } else {
            &campaign.file.target
        };
        if section.provider.is_some()
            || section.protocol != Protocol::Imap
            || section.host.is_empty()
        {
            continue;
        }
        let Ok(server) = campaign.server(which) else {
            continue;
        };
        let probe = trasloco_imap::Client::connect(&server.endpoint, &server.tls);
        let Ok(Ok(client)) = tokio::time::timeout(std::time::Duration::from_secs(30), probe).await
        else {
            continue;
        };
        let found = recognise(client.greeting(), |c| client.has_cap(c));
        client.logout().await;
        let Some((provider, words)) = found else {
            continue;
        };
        if provider != Provider::Dovecot {
            lines.push(format!(
                "{which} {}:{} says {words:?}: provider = \"{}\" applied (set provider = \"generic\" under [{which}] to turn it off)",
                server.endpoint.host,
                server.endpoint.port,
                provider.name()
            ));
        }
        let section = if which == "source" {
            &mut campaign.file.source
        } else {
            &mut campaign.file.target
        };
        section.provider = Some(provider.name().to_string());
    }
    lines
}

/// Exchange Online's folders that hold no mail, English and Italian.
const EXCHANGE_NOT_MAIL: &[&str] = &[
    "Calendar",
    "Contacts",
    "Tasks",
    "Notes",
    "Journal",
    "Outbox",
    "Conversation History",
    "Sync Issues",
    "Calendario",
    "Contatti",
    "Attività",
    "Note",
    "Diario",
    "Posta in uscita",
    "Cronologia conversazioni",
    "Problemi di sincronizzazione",
];

/// Exchange Online's default per-message limit, in MB.
pub const EXCHANGE_DEFAULT_MB: u64 = 35;

/// Exchange Online ends an IMAP session after this many refused commands.
pub const EXCHANGE_SESSION_ERRORS: u32 = 10;

/// The longest line Exchange Online takes (characters; imapsync's `--office2` wraps at
/// 10,239, which changes the message: trasloco fails such a message with the reason).
pub const EXCHANGE_MAX_LINE: usize = 10_500;

/// Flags Zimbra's add-ons (zimlets) set, such as `EmailswithStickyNotes:FLAG51135`: other
/// servers refuse an APPEND that carries them.
pub const ZIMBRA_PRIVATE_FLAGS: &str = "*:FLAG*";

/// Gmail's IMAP upload cap per account and day, in MB.
pub const GMAIL_DAILY_MB: f64 = 500.0;

/// Apply the source's and the target's presets to a run's options.
pub fn apply(
    source: Option<Provider>,
    target: Option<Provider>,
    max_message_mb: Option<u64>,
    daily_upload_mb: Option<f64>,
    sync: &mut Options,
) {
    if source == Some(Provider::Microsoft365) {
        sync.not_mail
            .extend(EXCHANGE_NOT_MAIL.iter().map(|s| s.to_string()));
    }
    if source == Some(Provider::Gmail) {
        sync.copy_once = true;
    }
    if source == Some(Provider::Zimbra) {
        sync.shared_by_rights = true;
        sync.never_flags.push(ZIMBRA_PRIVATE_FLAGS.into());
    }
    if target == Some(Provider::Microsoft365) {
        let mb = max_message_mb.unwrap_or(EXCHANGE_DEFAULT_MB);
        sync.size_limit = Some(mb * 1024 * 1024);
        sync.size_limit_hint = Some(if mb < 150 {
            "; an admin can raise Exchange Online's limit up to 150 MB (`Set-Mailbox ACCOUNT -MaxReceiveSize 150MB -MaxSendSize 150MB`), then set [target] max_message_mb = 150".into()
        } else {
            String::new()
        });
        sync.never_flags.push("$MDNSent".into());
        sync.flag_after_append = true;
        sync.session_errors = Some(EXCHANGE_SESSION_ERRORS);
        sync.max_line = Some(EXCHANGE_MAX_LINE);
        sync.renames
            .entry("Files".into())
            .or_insert_with(|| "Files (migrated)".into());
    } else if let Some(mb) = max_message_mb {
        sync.size_limit = Some(mb * 1024 * 1024);
    }
    if target == Some(Provider::Gmail) {
        sync.merges_by_message_id = true;
    }
    let daily = match (daily_upload_mb, target) {
        (Some(mb), _) => Some(mb),
        (None, Some(Provider::Gmail)) => Some(GMAIL_DAILY_MB),
        _ => None,
    };
    sync.daily_upload = daily.map(|mb| (mb * 1_000_000.0) as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_presets() {
        assert_eq!(Provider::parse("Microsoft365"), Ok(Provider::Microsoft365));
        assert_eq!(Provider::parse("gmail"), Ok(Provider::Gmail));
        assert_eq!(Provider::parse("Zimbra"), Ok(Provider::Zimbra));
        assert!(Provider::parse("exchnage").is_err());
        let mut o = Options::default();
        apply(
            Some(Provider::Microsoft365),
            Some(Provider::Microsoft365),
            None,
            None,
            &mut o,
        );
        assert!(o.not_mail.contains(&"Calendario".to_string()));
        assert_eq!(o.size_limit, Some(35 * 1024 * 1024));
        assert!(
            o.size_limit_hint
                .as_deref()
                .unwrap()
                .contains("MaxReceiveSize")
        );
        assert_eq!(o.never_flags, ["$MDNSent"]);
        assert!(o.flag_after_append);
        assert_eq!(o.session_errors, Some(10));
        assert_eq!(o.max_line, Some(10_500));
        assert_eq!(o.renames["Files"], "Files (migrated)");
        let mut o = Options::default();
        o.renames.insert("Files".into(), "Documenti".into());
        apply(None, Some(Provider::Microsoft365), Some(150), None, &mut o);
        assert_eq!(
            o.renames["Files"], "Documenti",
            "the campaign's own rename wins"
        );
        assert_eq!(o.size_limit_hint.as_deref(), Some(""));
        assert_eq!(o.daily_upload, None);
    }

    #[test]
    fn services_are_recognised_by_what_they_say() {
        let none = |_: &str| false;
        assert_eq!(
            recognise("* OK Gimap ready for requests from 10.0.0.1 a1mb", none),
            Some((Provider::Gmail, "Gimap"))
        );
        assert_eq!(
            recognise("* OK [CAPABILITY IMAP4rev1] ready", |c| c == "X-GM-EXT-1").map(|(p, _)| p),
            Some(Provider::Gmail)
        );
        assert_eq!(
            recognise(
                "* OK The Microsoft Exchange IMAP4 service is ready. [TQBBADAAUAAy]",
                none
            )
            .map(|(p, _)| p),
            Some(Provider::Microsoft365)
        );
        assert_eq!(
            recognise(
                "* OK [CAPABILITY IMAP4rev1 SASL-IR] Dovecot (Debian) ready.",
                none
            )
            .map(|(p, _)| p),
            Some(Provider::Dovecot)
        );
        assert_eq!(recognise("* OK mail.example.org ready", none), None);
    }

    #[test]
    fn zimbra_presets() {
        let mut o = Options::default();
        apply(Some(Provider::Zimbra), None, None, None, &mut o);
        assert!(o.shared_by_rights);
        assert_eq!(o.never_flags, ["*:FLAG*"]);
        assert_eq!(
            recognise(
                "* OK mail.ministero.it Zimbra IMAP4rev1 server ready",
                |_| false
            ),
            Some((Provider::Zimbra, "Zimbra"))
        );
    }

    #[test]
    fn gmail_presets() {
        let mut o = Options::default();
        apply(
            Some(Provider::Gmail),
            Some(Provider::Gmail),
            None,
            None,
            &mut o,
        );
        assert!(o.copy_once && o.merges_by_message_id);
        assert_eq!(o.daily_upload, Some(500_000_000));
        let mut o = Options::default();
        apply(None, Some(Provider::Gmail), None, Some(0.5), &mut o);
        assert!(!o.copy_once);
        assert_eq!(o.daily_upload, Some(500_000), "the campaign's own cap wins");
    }
}
