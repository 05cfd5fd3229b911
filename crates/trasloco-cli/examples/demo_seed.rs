//! Seed a local test server with sample mailboxes for the demo:
//! `cargo run --example demo_seed -- PORT USER[,USER…] MESSAGES_PER_USER`.
//! Users log in with the test password `<user>-pw` (see scripts/dovecot-pair.sh).

use bytes::Bytes;
use trasloco_imap::{AppendMsg, Client, Credentials, Endpoint, Security, TlsOptions};

const FOLDERS: [&str; 6] = [
    "INBOX",
    "Posta inviata",
    "Bozze",
    "Archivio",
    "Progetti/Società",
    "Progetti/Società/2024",
];
const SUBJECTS: [&str; 5] = [
    "Verbale della riunione",
    "Richiesta ferie",
    "Fattura n. 2024/118",
    "Convocazione",
    "Aggiornamento progetto",
];

fn message(user: &str, i: usize) -> Vec<u8> {
    let subject = SUBJECTS[i % SUBJECTS.len()];
    let day = 1 + i % 28;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][i % 12];
    let year = 2016 + i % 10;
    // Every 17th message has no Message-ID, as Drafts and old gateways produce.
    let id = if i.is_multiple_of(17) {
        String::new()
    } else {
        format!("Message-ID: <{i}.{user}@demo.example>\r\n")
    };
    let body = "Testo di esempio con accenti: perché, città, più.\r\n".repeat(1 + (i * 7) % 200);
    format!(
        "{id}Date: Mon, {day} {month} {year} 10:00:00 +0100\r\nFrom: Ufficio <ufficio@demo.example>\r\nTo: {user}@demo.example\r\nSubject: {subject} #{i}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}"
    )
    .into_bytes()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: demo_seed PORT USER[,USER…] MESSAGES_PER_USER");
        std::process::exit(64);
    }
    let port: u16 = args[1].parse()?;
    let per_user: usize = args[3].parse()?;
    for user in args[2].split(',') {
        let ep = Endpoint {
            host: "127.0.0.1".into(),
            port,
            security: Security::None,
        };
        let mut c = Client::connect(&ep, &TlsOptions::default()).await?;
        c.login(&Credentials::new(user, format!("{user}-pw")))
            .await?;
        for f in FOLDERS.iter().filter(|f| **f != "INBOX") {
            c.create(f).await?;
            c.subscribe(f).await?;
        }
        let mut batches: Vec<Vec<AppendMsg>> = vec![Vec::new(); FOLDERS.len()];
        for i in 0..per_user {
            let flags = match i % 5 {
                0 => vec![],
                1 | 2 => vec!["\\Seen".to_string()],
                3 => vec!["\\Seen".to_string(), "\\Answered".to_string()],
                _ => vec!["\\Flagged".to_string(), "$Importante".to_string()],
            };
            let date = format!(
                "{:02}-{}-{} 10:00:00 +0100",
                1 + i % 28,
                ["Jan", "Mar", "Jun", "Sep", "Nov"][i % 5],
                2016 + i % 10
            );
            batches[i % FOLDERS.len()].push(AppendMsg {
                flags,
                internal_date: Some(date),
                body: Bytes::from(message(user, i)),
            });
        }
        for (folder, msgs) in FOLDERS.iter().zip(batches) {
            for chunk in msgs.chunks(100) {
                c.append(folder, chunk).await?;
            }
        }
        println!(
            "seeded {user}: {per_user} messages in {} folders",
            FOLDERS.len()
        );
        c.logout().await;
    }
    Ok(())
}
