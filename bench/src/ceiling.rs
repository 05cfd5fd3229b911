//! The raw ceiling: the fewest bytes and round trips that can put the corpus into the target over
//! IMAP. One connection per mailbox, LOGIN, CREATE every folder, then every message in MULTIAPPEND
//! commands with non-synchronising literals (LITERAL+), all written back to back without waiting
//! for a single answer; a second task reads the tagged completions. No source is read: the
//! messages are generated into memory before the clock starts.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;

use crate::corpus::{self, FOLDERS, Msg, Spec};
use trasloco_core::mutf7;

/// Messages per MULTIAPPEND command, and a byte cap so one command stays reasonable.
const BATCH_MESSAGES: usize = 100;
const BATCH_BYTES: usize = 8 << 20;

/// Target folder name for a source folder: the source delimiter `/` becomes the target's `.`.
pub fn target_name(source: &str) -> String {
    mutf7::encode(&source.replace('/', "."))
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Append one mailbox; returns the number of messages the server stored.
async fn one(host: String, port: u16, user: String, msgs: Vec<Msg>) -> Result<usize> {
    let stream = TcpStream::connect((host.as_str(), port))
        .await
        .with_context(|| format!("target {host}:{port}"))?;
    stream.set_nodelay(true)?;
    let (rd, wr) = stream.into_split();
    let mut rd = BufReader::with_capacity(64 << 10, rd);
    let mut wr = BufWriter::with_capacity(256 << 10, wr);
    let mut line = String::new();
    rd.read_line(&mut line).await?;

    // Build the whole command stream: LOGIN, CREATEs, MULTIAPPENDs.
    let mut commands = 0usize;
    wr.write_all(
        format!(
            "a LOGIN {} {}\r\n",
            quoted(&user),
            quoted(&format!("{user}-pw"))
        )
        .as_bytes(),
    )
    .await?;
    commands += 1;
    for (name, _) in FOLDERS.iter().filter(|(n, _)| *n != "INBOX") {
        wr.write_all(format!("c CREATE {}\r\n", quoted(&target_name(name))).as_bytes())
            .await?;
        commands += 1;
    }
    wr.flush().await?;
    // Group by folder, keeping order within a folder.
    let mut per_folder: Vec<Vec<&Msg>> = vec![Vec::new(); FOLDERS.len()];
    for m in &msgs {
        per_folder[m.folder].push(m);
    }
    let mut batches = Vec::new();
    for (f, list) in per_folder.iter().enumerate() {
        let mut start = 0;
        while start < list.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < list.len()
                && end - start < BATCH_MESSAGES
                && (end == start || bytes + list[end].body.len() <= BATCH_BYTES)
            {
                bytes += list[end].body.len();
                end += 1;
            }
            batches.push((f, &list[start..end]));
            start = end;
        }
    }
    let expected_appends = batches.len();
    let total = commands + expected_appends;

    let reader = async move {
        let mut done = 0usize;
        let mut failures = Vec::new();
        let mut line = String::new();
        while done < total {
            line.clear();
            if rd.read_line(&mut line).await? == 0 {
                bail!("target closed the connection after {done} of {total} commands");
            }
            let mut parts = line.splitn(3, ' ');
            let (tag, status) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            if tag == "*" || tag == "+" {
                continue;
            }
            done += 1;
            if status != "OK" && tag != "c" {
                failures.push(line.trim_end().to_string());
            }
        }
        Ok::<_, anyhow::Error>(failures)
    };
    let writer = async move {
        let mut stored = 0usize;
        for (i, (f, batch)) in batches.iter().enumerate() {
            let mut cmd = format!("m{i} APPEND {}", quoted(&target_name(FOLDERS[*f].0)));
            for m in batch.iter() {
                cmd.push_str(&format!(
                    " ({}) \"{}\" {{{}+}}\r\n",
                    m.flags.join(" "),
                    m.internal_date,
                    m.body.len()
                ));
                wr.write_all(cmd.as_bytes()).await?;
                wr.write_all(&m.body).await?;
                cmd.clear();
                stored += 1;
            }
            wr.write_all(b"\r\n").await?;
        }
        wr.write_all(b"z LOGOUT\r\n").await?;
        wr.flush().await?;
        Ok::<_, anyhow::Error>((stored, wr))
    };
    let (failures, written) = tokio::join!(reader, writer);
    let failures = failures?;
    let (stored, _wr) = written?;
    if !failures.is_empty() {
        bail!(
            "{user}: {} commands failed, first: {}",
            failures.len(),
            failures[0]
        );
    }
    Ok(stored)
}

/// Generate the corpus, then time appending all mailboxes with `parallel` connections at a time.
/// Returns (seconds spent appending, CPU seconds spent appending, messages stored).
pub async fn run(spec: &Spec, host: &str, port: u16, parallel: usize) -> Result<(f64, f64, usize)> {
    let users = spec.user_names();
    let mailboxes: Vec<(String, Vec<Msg>)> = users
        .iter()
        .enumerate()
        .map(|(i, u)| (u.clone(), corpus::mailbox(spec, i)))
        .collect();
    let cpu_before = crate::measure::tree_cpu(std::process::id());
    let started = Instant::now();
    let mut stored = 0;
    let mut pending = mailboxes.into_iter();
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.len() < parallel.max(1) {
            match pending.next() {
                Some((u, msgs)) => {
                    running.spawn(one(host.to_string(), port, u, msgs));
                }
                None => break,
            }
        }
        match running.join_next().await {
            Some(r) => stored += r??,
            None => break,
        }
    }
    let cpu = crate::measure::tree_cpu(std::process::id()) - cpu_before;
    Ok((started.elapsed().as_secs_f64(), cpu, stored))
}
