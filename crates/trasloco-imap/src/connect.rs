//! Opening connections: TCP, implicit TLS or STARTTLS, and the credentials to log in with.

use crate::error::{Error, ErrorKind};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use secrecy::SecretString;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (`imaps://`, port 993).
    Implicit,
    /// Plain connection upgraded with STARTTLS; the upgrade is required.
    StartTls,
    /// STARTTLS when the server offers it, plain otherwise (loopback and test setups).
    StartTlsIfOffered,
    /// No TLS at all (explicit opt-out).
    None,
}

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// TLS mode.
    pub security: Security,
}

/// Certificate checking.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// An extra CA certificate file (PEM) to trust besides the system store. A certificate in
    /// it that the server presents as its own is accepted as pinned (a self-signed one).
    pub ca_file: Option<PathBuf>,
    /// Skip certificate verification entirely. Explicit, warned, never a default.
    pub insecure: bool,
    /// Pinned certificates, by the SHA-256 of their DER bytes: the server presenting exactly
    /// one of these is trusted, whoever signed it (an old server's self-signed certificate).
    pub pins: Vec<[u8; 32]>,
}

/// Parse a certificate fingerprint as admins copy it: `sha256:AB:CD:…`, or the 64 hex digits
/// alone, colons and case as they come.
pub fn parse_fingerprint(s: &str) -> Result<[u8; 32], String> {
    let t = s.trim();
    let t = t
        .strip_prefix("sha256:")
        .or_else(|| t.strip_prefix("SHA256:"))
        .or_else(|| t.strip_prefix("sha256="))
        .or_else(|| t.strip_prefix("SHA256 Fingerprint="))
        .unwrap_or(t);
    let hexits: String = t.chars().filter(|c| *c != ':').collect();
    let bytes = hex::decode(&hexits)
        .map_err(|_| format!("{s:?} is not a SHA-256 fingerprint (sha256: and 64 hex digits)"))?;
    bytes
        .try_into()
        .map_err(|_| format!("{s:?} is not a SHA-256 fingerprint (sha256: and 64 hex digits)"))
}

/// A certificate's fingerprint as admins read it: `sha256:AB:CD:…`.
pub fn fingerprint_text(der: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(der);
    let hexits: Vec<String> = d.iter().map(|b| format!("{b:02X}")).collect();
    format!("sha256:{}", hexits.join(":"))
}

/// How a master user logs in on behalf of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterStyle {
    /// SASL PLAIN with authorization identity = user, authentication identity = master.
    Sasl,
    /// Dovecot's `LOGIN user<sep>master password` form.
    Separator(char),
}

/// A master (admin) login.
#[derive(Debug, Clone)]
pub struct Master {
    /// The master user name.
    pub user: String,
    /// How to present it.
    pub style: MasterStyle,
}

/// Who to log in as. The password is the master's when `master` is set.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The mailbox owner.
    pub user: String,
    /// The secret (user's, or master's in admin mode).
    pub password: SecretString,
    /// Admin mode.
    pub master: Option<Master>,
    /// OAuth2: log in with a bearer token from this source (SASL OAUTHBEARER or XOAUTH2)
    /// instead of the password.
    pub oauth: Option<std::sync::Arc<crate::oauth::Tokens>>,
}

impl Credentials {
    /// Plain user credentials.
    pub fn new(user: impl Into<String>, password: String) -> Credentials {
        Credentials {
            user: user.into(),
            password: SecretString::from(password),
            master: None,
            oauth: None,
        }
    }

    /// A login with bearer tokens from `tokens`.
    pub fn oauth(
        user: impl Into<String>,
        tokens: std::sync::Arc<crate::oauth::Tokens>,
    ) -> Credentials {
        Credentials {
            user: user.into(),
            password: SecretString::from(String::new()),
            master: None,
            oauth: Some(tokens),
        }
    }
}

/// A connection that is plain or TLS (shared with the POP3 client).
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream<TcpStream>>),
    /// Between taking the plain stream for STARTTLS and putting the TLS stream in its place.
    Closed,
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "connection is being upgraded to TLS",
    )
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Closed => Poll::Ready(Err(closed())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Closed => Poll::Ready(Err(closed())),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            Stream::Closed => Poll::Ready(Err(closed())),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
            Stream::Closed => false,
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Closed => Poll::Ready(Err(closed())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Closed => Poll::Ready(Err(closed())),
        }
    }
}

/// Socket buffer sizes to ask for, if the system lets us ask for enough.
///
/// At 40 ms RTT the kernel's receive-window autotuning grew too slowly under IMAP's
/// request/response traffic: a 4 MiB batch FETCH ran at 2.7 MB/s, and at 30 MB/s with 4 MiB
/// buffers. But an explicit size turns autotuning off and is capped by `net.core.rmem_max` /
/// `wmem_max`, which default to about 208 KiB on many systems; a buffer that small would be
/// worse than autotuning. So the sizes are set only where the caps allow 4 MiB.
fn socket_buffers() -> Option<(u32, u32)> {
    static SIZES: std::sync::OnceLock<Option<(u32, u32)>> = std::sync::OnceLock::new();
    *SIZES.get_or_init(|| {
        const WANT: u64 = 4 << 20;
        let cap = |f: &str| {
            std::fs::read_to_string(f)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let (rmax, wmax) = (
            cap("/proc/sys/net/core/rmem_max")?,
            cap("/proc/sys/net/core/wmem_max")?,
        );
        (rmax >= WANT && wmax >= WANT).then_some((WANT as u32, WANT as u32))
    })
}

/// Open a TCP connection to the endpoint (no TLS yet), with one-line errors naming the host.
pub async fn tcp(ep: &Endpoint) -> Result<TcpStream, Error> {
    let addr = format!("{}:{}", ep.host, ep.port);
    let resolved = match tokio::time::timeout(
        crate::timeouts::get().connect,
        tokio::net::lookup_host(&addr),
    )
    .await
    {
        Err(_) => {
            return Err(Error::new(
                ErrorKind::Connect,
                format!("{addr}: name lookup timed out"),
            ));
        }
        Ok(Err(e)) => {
            return Err(Error::new(
                ErrorKind::Connect,
                format!(
                    "cannot resolve host {:?} ({e}); check the host name",
                    ep.host
                ),
            ));
        }
        Ok(Ok(addrs)) => addrs.collect::<Vec<_>>(),
    };
    let mut last = None;
    for sa in resolved {
        let socket = match sa {
            std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        };
        let socket = match socket {
            Ok(s) => s,
            Err(e) => {
                last = Some(e.to_string());
                continue;
            }
        };
        if let Some((rcv, snd)) = socket_buffers() {
            let _ = socket.set_recv_buffer_size(rcv);
            let _ = socket.set_send_buffer_size(snd);
        }
        match tokio::time::timeout(crate::timeouts::get().connect, socket.connect(sa)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Ok(Err(e)) => last = Some(e.to_string()),
            Err(_) => last = Some("timed out".into()),
        }
    }
    Err(Error::new(
        ErrorKind::Connect,
        format!(
            "cannot connect to {addr}: {}; check the host, the port and that the server is running",
            last.unwrap_or_else(|| "no address".into())
        ),
    ))
}

/// What the server presented when a handshake failed: its certificate's fingerprint.
type Seen = Arc<std::sync::Mutex<Option<String>>>;

pub(crate) fn tls_connector(opts: &TlsOptions) -> Result<(TlsConnector, Seen), Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::new(ErrorKind::Tls, format!("TLS setup failed: {e}")))?;
    let seen: Seen = Arc::default();
    let config = if opts.insecure {
        // Accepts any certificate: only through the explicit `insecure` option.
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Checked {
                webpki: None,
                pins: Vec::new(),
                accept_all: true,
                provider,
                seen: seen.clone(),
            }))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            let _ = roots.add(cert);
        }
        let mut pins = opts.pins.clone();
        if let Some(path) = &opts.ca_file {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<_, _>>())
                .map_err(|e| {
                    Error::new(
                        ErrorKind::Tls,
                        format!("cannot read CA file {}: {e}", path.display()),
                    )
                })?;
            if certs.is_empty() {
                return Err(Error::new(
                    ErrorKind::Tls,
                    format!("CA file {} holds no PEM certificate", path.display()),
                ));
            }
            for cert in certs {
                // A certificate given here is also accepted as the server's own: an old
                // server's self-signed certificate (`CA:TRUE`) cannot be checked as a chain.
                use sha2::Digest;
                pins.push(sha2::Sha256::digest(cert.as_ref()).into());
                roots.add(cert).map_err(|e| {
                    Error::new(ErrorKind::Tls, format!("CA file {}: {e}", path.display()))
                })?;
            }
        }
        let webpki = if roots.is_empty() {
            None
        } else {
            Some(
                rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider.clone(),
                )
                .build()
                .map_err(|e| Error::new(ErrorKind::Tls, format!("TLS setup failed: {e}")))?,
            )
        };
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Checked {
                webpki,
                pins,
                accept_all: false,
                provider,
                seen: seen.clone(),
            }))
            .with_no_client_auth()
    };
    Ok((TlsConnector::from(Arc::new(config)), seen))
}

/// The usual chain check against the trusted roots, except that a pinned certificate (by its
/// SHA-256) is trusted as it is, and that `accept_all` (the explicit `insecure` option) takes
/// any. Remembers what a refused server presented, so the error can give its fingerprint.
#[derive(Debug)]
struct Checked {
    webpki: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    pins: Vec<[u8; 32]>,
    accept_all: bool,
    provider: Arc<rustls::crypto::CryptoProvider>,
    seen: Seen,
}

impl rustls::client::danger::ServerCertVerifier for Checked {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(end_entity.as_ref()).into();
        if self.accept_all || self.pins.contains(&digest) {
            return Ok(rustls::client::danger::ServerCertVerified::assertion());
        }
        let result = match &self.webpki {
            Some(v) => v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now),
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        };
        if result.is_err()
            && let Ok(mut s) = self.seen.lock()
        {
            *s = Some(fingerprint_text(end_entity.as_ref()));
        }
        result
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A failed handshake in words an admin acts on, with the fingerprint of the certificate the
/// server presented when it was refused.
fn tls_words(host: &str, e: &io::Error, seen: Option<String>) -> String {
    use rustls::CertificateError as C;
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    let what = match inner {
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            C::UnknownIssuer => {
                "the server's certificate is not signed by a certificate authority trusted here"
                    .to_string()
            }
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                format!("the server's certificate is for another name than {host}")
            }
            C::Expired | C::ExpiredContext { .. } => {
                "the server's certificate has expired".to_string()
            }
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet (check this machine's clock)".to_string()
            }
            C::Revoked => "the server's certificate has been revoked".to_string(),
            C::BadSignature => "the server's certificate has a bad signature".to_string(),
            C::Other(o) if format!("{o:?}").contains("CaUsedAsEndEntity") => {
                "the server presents a certificate authority's certificate as its own, as a self-signed certificate made with `openssl req -x509` does".to_string()
            }
            other => format!("the server's certificate was refused ({other:?})"),
        },
        Some(rustls::Error::AlertReceived(a)) => format!("the server ended the handshake ({a:?})"),
        Some(rustls::Error::PeerIncompatible(p)) => {
            format!("the server speaks no TLS version or cipher this tool accepts ({p:?})")
        }
        _ => e.to_string(),
    };
    match seen {
        Some(fp) => format!(
            "TLS with {host} failed: {what}. The certificate it presented has the fingerprint {fp} . If that is the server's own certificate (check on the server: openssl x509 -noout -fingerprint -sha256 -in CERT.pem), trust exactly it with --from-cert-fingerprint / --to-cert-fingerprint (campaign: cert_fingerprint), or give the certificate in --ca-file (campaign: ca_file); if it comes from a private CA, give that CA in --ca-file"
        ),
        None => format!("TLS with {host} failed: {what}"),
    }
}

/// Open the connection an endpoint names: TCP, with the TLS handshake at once for implicit
/// TLS. Also returns the local port, to tell connections apart in logs.
pub async fn open(ep: &Endpoint, tls: &TlsOptions) -> Result<(Stream, u16), Error> {
    let tcp = tcp(ep).await?;
    let local = tcp.local_addr().map(|a| a.port()).unwrap_or(0);
    let stream = match ep.security {
        Security::Implicit => tls_wrap(tcp, &ep.host, tls).await?,
        _ => Stream::Plain(tcp),
    };
    Ok((stream, local))
}

/// The TLS handshake on a plain connection whose server has just agreed to STARTTLS (STLS in
/// POP3). The caller drops whatever it had buffered from before: nothing sent in clear may be
/// read as if it came over TLS.
pub async fn start_tls(plain: Stream, host: &str, tls: &TlsOptions) -> Result<Stream, Error> {
    let Stream::Plain(tcp) = plain else {
        return Err(Error::new(
            ErrorKind::Protocol,
            "STARTTLS on a connection that is not plain",
        ));
    };
    tls_wrap(tcp, host, tls).await
}

/// Run the TLS handshake on `tcp`, verifying the certificate for `host` unless told not to.
pub async fn tls_wrap(tcp: TcpStream, host: &str, opts: &TlsOptions) -> Result<Stream, Error> {
    let (connector, seen) = tls_connector(opts)?;
    let name = ServerName::try_from(host.to_string()).map_err(|_| {
        Error::new(
            ErrorKind::Tls,
            format!("{host:?} is not a valid TLS server name"),
        )
    })?;
    match tokio::time::timeout(crate::timeouts::get().connect, connector.connect(name, tcp)).await {
        Ok(Ok(s)) => Ok(Stream::Tls(Box::new(s))),
        Ok(Err(e)) => {
            let fp = seen.lock().ok().and_then(|s| s.clone());
            Err(Error::new(ErrorKind::Tls, tls_words(host, &e, fp)))
        }
        Err(_) => Err(Error::new(
            ErrorKind::Tls,
            format!("TLS handshake with {host} timed out"),
        )),
    }
}

#[cfg(test)]
mod fingerprint_tests {
    use super::*;

    #[test]
    fn fingerprints_are_read_as_admins_copy_them() {
        let der = b"not really a certificate";
        let text = fingerprint_text(der);
        assert!(
            text.starts_with("sha256:") && text.len() == 7 + 95,
            "{text}"
        );
        let want = parse_fingerprint(&text).unwrap();
        assert_eq!(parse_fingerprint(&text.to_lowercase()).unwrap(), want);
        let bare: String = text[7..].chars().filter(|c| *c != ':').collect();
        assert_eq!(parse_fingerprint(&bare).unwrap(), want);
        assert_eq!(
            parse_fingerprint(&format!("SHA256 Fingerprint={}", &text[7..])).unwrap(),
            want,
            "as `openssl x509 -fingerprint -sha256` prints it"
        );
        assert!(parse_fingerprint("sha256:zz").is_err());
        assert!(parse_fingerprint("sha256:00:11").is_err());
    }
}
