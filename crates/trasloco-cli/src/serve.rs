//! `trasloco serve`: the client-settings site over HTTP(S), where mail clients look for it.
//! A small HTTP/1.1 server (one request per connection, bounded sizes): everything it answers
//! is computed by `trasloco_campaign::clients::Site`.

use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use trasloco_campaign::ConfigError;
use trasloco_campaign::clients::Site;

const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 64 * 1024;

/// A parsed request: method, target, Host, body.
struct Request {
    method: String,
    target: String,
    host: String,
    body: String,
}

async fn read_request<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<Request> {
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = memfind(&buf, b"\r\n\r\n") {
            break p + 4;
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split_whitespace();
    let (method, target) = (first.next()?.to_string(), first.next()?.to_string());
    let mut host = String::new();
    let mut length = 0usize;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "host" => host = v.trim().to_string(),
                "content-length" => length = v.trim().parse().ok()?,
                _ => {}
            }
        }
    }
    if length > MAX_BODY {
        return None;
    }
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let mut chunk = vec![0u8; length - body.len()];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Request {
        method,
        target,
        host,
        body: String::from_utf8_lossy(&body).to_string(),
    })
}

fn memfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        _ => "Error",
    }
}

/// Requests per client address in the current minute: a lookup service that tells whether
/// an address exists must not be walked through a whole directory.
struct Limiter {
    per_minute: u32,
    seen: std::sync::Mutex<(
        std::time::Instant,
        std::collections::HashMap<std::net::IpAddr, u32>,
    )>,
}

impl Limiter {
    fn new(per_minute: u32) -> Limiter {
        Limiter {
            per_minute,
            seen: std::sync::Mutex::new((std::time::Instant::now(), Default::default())),
        }
    }

    /// Whether one more request from `ip` is answered.
    fn allow(&self, ip: std::net::IpAddr) -> bool {
        let mut g = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if g.0.elapsed() >= Duration::from_secs(60) {
            *g = (std::time::Instant::now(), Default::default());
        }
        let n = g.1.entry(ip).or_insert(0);
        *n += 1;
        *n <= self.per_minute
    }
}

async fn handle<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    site: Arc<Site>,
    limiter: Arc<Limiter>,
    peer: std::net::IpAddr,
) {
    let mut extra = String::new();
    let mut head_only = false;
    let answer = match tokio::time::timeout(Duration::from_secs(20), read_request(&mut s)).await {
        Ok(Some(_)) if !limiter.allow(peer) => {
            extra.push_str("Retry-After: 60\r\n");
            (
                429,
                "text/plain; charset=utf-8",
                b"too many requests; try again in a minute\n".to_vec(),
            )
        }
        Ok(Some(r)) => {
            head_only = r.method == "HEAD";
            let a = site.respond(&r.method, &r.target, &r.host, &r.body);
            if a.0 == 405 {
                let path = r.target.split('?').next().unwrap_or("");
                extra.push_str(&format!(
                    "Allow: {}\r\n",
                    trasloco_campaign::clients::allowed_methods(path)
                ));
            }
            tracing::info!("{} {} → {}", r.method, r.target, a.0);
            a
        }
        _ => (400, "text/plain; charset=utf-8", b"bad request\n".to_vec()),
    };
    let (status, ctype, body) = answer;
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n{extra}Connection: close\r\n\r\n",
        reason(status),
        body.len()
    );
    let _ = s.write_all(head.as_bytes()).await;
    if !head_only {
        let _ = s.write_all(&body).await;
    }
    let _ = s.shutdown().await;
}

/// Serve until interrupted.
pub async fn serve(
    site: Site,
    listen: &str,
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
) -> Result<i32, ConfigError> {
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            // Not a mistake in the command line: the address is taken or not ours.
            eprintln!(
                "trasloco: cannot listen on {listen}: {e}; choose another --listen address or stop what uses it"
            );
            return Ok(trasloco_campaign::exit::CONNECTION);
        }
    };
    let acceptor = match tls {
        None => None,
        Some((cert, key)) => Some(tls_acceptor(&cert, &key)?),
    };
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| listen.to_string());
    println!(
        "Serving client settings for {} addresses on {}://{local} (Ctrl-C to stop).",
        site.users.len(),
        if acceptor.is_some() { "https" } else { "http" }
    );
    let limiter = Arc::new(Limiter::new(site.clients.lookups_per_minute.max(1)));
    let site = Arc::new(site);
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(0),
            accepted = listener.accept() => {
                let Ok((sock, peer)) = accepted else { continue };
                let (site, limiter) = (site.clone(), limiter.clone());
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let ip = peer.ip();
                    match acceptor {
                        None => handle(sock, site, limiter, ip).await,
                        Some(a) => {
                            if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_secs(10), a.accept(sock)).await {
                                handle(s, site, limiter, ip).await;
                            }
                        }
                    }
                });
            }
        }
    }
}

fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, ConfigError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ConfigError(format!("--tls-cert {}: {e}", cert.display())))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| ConfigError(format!("--tls-key {}: {e}", key.display())))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ConfigError(format!("TLS certificate and key: {e}")))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
