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
        500 => "Internal Server Error",
        _ => "Error",
    }
}

async fn handle<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    site: Arc<Site>,
) {
    let answer = match tokio::time::timeout(Duration::from_secs(20), read_request(&mut s)).await {
        Ok(Some(r)) => {
            let a = site.respond(&r.method, &r.target, &r.host, &r.body);
            tracing::info!("{} {} → {}", r.method, r.target, a.0);
            a
        }
        _ => (400, "text/plain; charset=utf-8", b"bad request\n".to_vec()),
    };
    let (status, ctype, body) = answer;
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        reason(status),
        body.len()
    );
    let _ = s.write_all(head.as_bytes()).await;
    let _ = s.write_all(&body).await;
    let _ = s.shutdown().await;
}

/// Serve until interrupted.
pub async fn serve(
    site: Site,
    listen: &str,
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
) -> Result<i32, ConfigError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| ConfigError(format!("cannot listen on {listen}: {e}")))?;
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
    let site = Arc::new(site);
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(0),
            accepted = listener.accept() => {
                let Ok((sock, _)) = accepted else { continue };
                let site = site.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor {
                        None => handle(sock, site).await,
                        Some(a) => {
                            if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_secs(10), a.accept(sock)).await {
                                handle(s, site).await;
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
