//! OAuth2 bearer tokens for SASL XOAUTH2 and OAUTHBEARER (RFC 7628): where they come from,
//! and how long they last. A token is a secret: it is never logged, and errors name the flow
//! and the endpoint, never the token or the client secret.
//!
//! Flows:
//! - a token file (one mailbox; re-read at every login, so an outside refresher works);
//! - a command that prints a token for the account given on its standard input;
//! - a client-credentials token endpoint (RFC 6749 §4.4), one token for every mailbox, cached
//!   until shortly before it expires.

use crate::connect::{Endpoint, Security, Stream, TlsOptions, tcp, tls_wrap};
use crate::error::{Error, ErrorKind};
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A bearer token and when it stops being valid, when known.
#[derive(Clone)]
pub struct Token {
    /// The token.
    pub secret: SecretString,
    /// When it expires.
    pub expires: Option<Instant>,
    /// How long it was valid for when it was issued.
    pub lifetime: Option<Duration>,
}

impl Token {
    /// Whether it is still good for a while: a fifth of its lifetime (at most five minutes)
    /// before expiry it is renewed, so a session never outlives its token.
    pub fn fresh(&self) -> bool {
        match (self.expires, self.lifetime) {
            (Some(e), Some(l)) => {
                let margin = (l / 5).min(Duration::from_secs(300));
                Instant::now() + margin < e
            }
            (Some(e), None) => Instant::now() + Duration::from_secs(60) < e,
            _ => true,
        }
    }
}

/// Where tokens come from.
#[derive(Debug, Clone)]
pub enum Flow {
    /// A file holding one token (or a JSON token response).
    File(PathBuf),
    /// A program run with `sh -c`, the account on its standard input; it prints a token (or a
    /// JSON token response).
    Command(String),
    /// A JWT grant per user (RFC 7523), signed with a service account's RSA key: Google
    /// Workspace's domain-wide delegation (`sub` = the mailbox).
    ServiceAccount {
        /// The token endpoint (`token_uri` of the key file).
        url: String,
        /// The service account (`client_email`).
        issuer: String,
        /// Its key id (`private_key_id`), named in the JWT header.
        key_id: Option<String>,
        /// Its private key.
        key: std::sync::Arc<rsa::RsaPrivateKey>,
        /// The scope asked for.
        scope: String,
        /// Certificates for the endpoint.
        tls: TlsOptions,
    },
    /// Client credentials proven by a JWT signed with a certificate's key (RFC 7523 §2.2),
    /// the way Microsoft recommends for daemons: one token for every mailbox.
    CertificateAssertion {
        /// The token endpoint.
        url: String,
        /// The client id.
        client_id: String,
        /// The certificate's SHA-1 thumbprint (`x5t`) and SHA-256 one (`x5t#S256`).
        thumbprints: ([u8; 20], [u8; 32]),
        /// The certificate's private key.
        key: std::sync::Arc<rsa::RsaPrivateKey>,
        /// The scope asked for.
        scope: String,
        /// Certificates for the endpoint.
        tls: TlsOptions,
    },
    /// A client-credentials token endpoint.
    ClientCredentials {
        /// The token endpoint (https://…; http:// only on this machine).
        url: String,
        /// The client id.
        client_id: String,
        /// The client secret.
        secret: SecretString,
        /// The scope asked for.
        scope: String,
        /// Certificates for an https endpoint.
        tls: TlsOptions,
    },
}

/// A token source with its cache, shared by every connection of a run.
pub struct Tokens {
    flow: Flow,
    cache: Mutex<HashMap<String, Token>>,
    /// One fetch at a time: connections opening together share the token the first fetched.
    fetching: tokio::sync::Mutex<()>,
    fetched: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({})", self.describe())
    }
}

type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<Token, Error>> + Send + 'a>>;

impl Tokens {
    /// A source for `flow`.
    pub fn new(flow: Flow) -> Tokens {
        Tokens {
            flow,
            cache: Mutex::new(HashMap::new()),
            fetching: tokio::sync::Mutex::new(()),
            fetched: Default::default(),
        }
    }

    /// How errors name it.
    pub fn describe(&self) -> String {
        match &self.flow {
            Flow::File(p) => format!("token file {}", p.display()),
            Flow::Command(_) => "token command".into(),
            Flow::ClientCredentials { url, .. }
            | Flow::ServiceAccount { url, .. }
            | Flow::CertificateAssertion { url, .. } => format!("token endpoint {url}"),
        }
    }

    /// How many tokens were obtained (fetched, read or printed) so far.
    pub fn fetched(&self) -> u64 {
        self.fetched.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A token for `user` that is still good for a while.
    pub fn token<'a>(&'a self, user: &'a str) -> TokenFuture<'a> {
        Box::pin(async move {
            let key = match &self.flow {
                Flow::ClientCredentials { .. } | Flow::CertificateAssertion { .. } => String::new(),
                Flow::Command(_) | Flow::ServiceAccount { .. } => user.to_ascii_lowercase(),
                Flow::File(_) => {
                    // Re-read every time: whoever renews the file is in charge.
                    return self.obtain(user).await;
                }
            };
            let _one = self.fetching.lock().await;
            if let Some(t) = self
                .cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key)
                && t.fresh()
            {
                return Ok(t.clone());
            }
            let t = self.obtain(user).await?;
            self.cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, t.clone());
            Ok(t)
        })
    }

    /// POST a token request to an endpoint and read the token from its answer.
    async fn request(&self, url: &str, body: &str, tls: &TlsOptions) -> Result<Token, Error> {
        let err = |m: String| Error::new(ErrorKind::Auth, format!("{}: {m}", self.describe()));
        let (status, text) = post_form(url, body, tls).await?;
        let t = parse_token(&text).map_err(err)?;
        if status != 200 {
            return Err(err(format!("HTTP {status}")));
        }
        Ok(t)
    }

    async fn obtain(&self, user: &str) -> Result<Token, Error> {
        let err = |m: String| Error::new(ErrorKind::Auth, format!("{}: {m}", self.describe()));
        let t = match &self.flow {
            Flow::File(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| err(format!("{e}")))?;
                parse_token(&text).map_err(err)?
            }
            Flow::Command(cmd) => {
                let out = run_command(cmd, user).await.map_err(err)?;
                parse_token(&out).map_err(err)?
            }
            Flow::ServiceAccount {
                url,
                issuer,
                key_id,
                key,
                scope,
                tls,
            } => {
                let now = unix_now();
                let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
                if let Some(k) = key_id {
                    header["kid"] = k.clone().into();
                }
                let claims = serde_json::json!({
                    "iss": issuer, "scope": scope, "aud": url, "sub": user,
                    "iat": now, "exp": now + 3600,
                });
                let jwt = sign_jwt(&header, &claims, key).map_err(err)?;
                let body = format!(
                    "grant_type={}&assertion={jwt}",
                    form("urn:ietf:params:oauth:grant-type:jwt-bearer")
                );
                self.request(url, &body, tls).await?
            }
            Flow::CertificateAssertion {
                url,
                client_id,
                thumbprints,
                key,
                scope,
                tls,
            } => {
                let now = unix_now();
                let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
                let header = serde_json::json!({
                    "alg": "RS256", "typ": "JWT",
                    "x5t": b64(&thumbprints.0), "x5t#S256": b64(&thumbprints.1),
                });
                let claims = serde_json::json!({
                    "aud": url, "iss": client_id, "sub": client_id,
                    "jti": format!("{now}-{}", self.fetched()), "nbf": now, "iat": now,
                    "exp": now + 600,
                });
                let jwt = sign_jwt(&header, &claims, key).map_err(err)?;
                let body = format!(
                    "grant_type=client_credentials&client_id={}&scope={}&client_assertion_type={}&client_assertion={jwt}",
                    form(client_id),
                    form(scope),
                    form("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                );
                self.request(url, &body, tls).await?
            }
            Flow::ClientCredentials {
                url,
                client_id,
                secret,
                scope,
                tls,
            } => {
                let body = format!(
                    "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
                    form(client_id),
                    form(secret.expose_secret()),
                    form(scope)
                );
                self.request(url, &body, tls).await?
            }
        };
        self.fetched
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(t)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A compact JWS (RS256) of `header` and `claims`.
fn sign_jwt(
    header: &serde_json::Value,
    claims: &serde_json::Value,
    key: &rsa::RsaPrivateKey,
) -> Result<String, String> {
    use rsa::signature::{SignatureEncoding, Signer};
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let signed = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key.clone());
    let sig = signer
        .try_sign(signed.as_bytes())
        .map_err(|e| format!("cannot sign the assertion: {e}"))?;
    Ok(format!("{signed}.{}", b64(&sig.to_vec())))
}

/// An RSA private key from PEM (PKCS#8 or PKCS#1, unencrypted).
pub fn rsa_key(pem: &str) -> Result<rsa::RsaPrivateKey, String> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    rsa::RsaPrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(pem))
        .map_err(|_| "not an unencrypted RSA private key (PKCS#8 or PKCS#1 PEM)".to_string())
}

/// A certificate's SHA-1 and SHA-256 thumbprints, from PEM.
pub fn thumbprints(cert_pem: &[u8]) -> Result<([u8; 20], [u8; 32]), String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let der = CertificateDer::pem_slice_iter(cert_pem)
        .next()
        .ok_or("no PEM certificate in it")?
        .map_err(|e| e.to_string())?;
    use sha1::Digest as _;
    let s1: [u8; 20] = sha1::Sha1::digest(der.as_ref()).into();
    let s256: [u8; 32] = sha2::Sha256::digest(der.as_ref()).into();
    Ok((s1, s256))
}

/// A token from what a flow gave: a JSON token response (`access_token`, `expires_in`; an
/// `error` with its `error_description` is the failure) or the bare token. A JWT's own `exp`
/// says when a bare token expires.
fn parse_token(text: &str) -> Result<Token, String> {
    let text = text.trim();
    if text.starts_with('{') {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not a token response ({e})"))?;
        if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
            let d = v
                .get("error_description")
                .and_then(|d| d.as_str())
                .map(|d| format!(": {}", d.lines().next().unwrap_or("")))
                .unwrap_or_default();
            return Err(format!("{e}{d}"));
        }
        let Some(tok) = v.get("access_token").and_then(|t| t.as_str()) else {
            return Err("the answer has no access_token".into());
        };
        let lifetime = v
            .get("expires_in")
            .and_then(|x| x.as_u64().or_else(|| x.as_str()?.parse().ok()))
            .map(Duration::from_secs);
        return Ok(Token {
            secret: SecretString::from(tok.to_string()),
            expires: lifetime.map(|l| Instant::now() + l),
            lifetime,
        });
    }
    let tok = text.lines().next().unwrap_or("").trim();
    if tok.is_empty() {
        return Err("it gave no token".into());
    }
    let lifetime = jwt_lifetime(tok);
    Ok(Token {
        secret: SecretString::from(tok.to_string()),
        expires: lifetime.map(|l| Instant::now() + l),
        lifetime,
    })
}

/// How long a JWT has left, from its `exp` claim.
fn jwt_lifetime(token: &str) -> Option<Duration> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = v.get("exp")?.as_u64()?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()?
        .as_secs();
    Some(Duration::from_secs(exp.saturating_sub(now)))
}

async fn run_command(cmd: &str, user: &str) -> Result<String, String> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start it: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(format!("{user}\n").as_bytes()).await;
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .map_err(|_| "it did not answer within 60 s".to_string())?
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "it failed for {user} ({}): {}",
            out.status,
            why.lines().next().unwrap_or("no message")
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `application/x-www-form-urlencoded`.
fn form(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// POST a form and read the answer (status, body): HTTP/1.1, one request per connection.
async fn post_form(url: &str, body: &str, tls: &TlsOptions) -> Result<(u16, String), Error> {
    let bad = |m: &str| Error::new(ErrorKind::Auth, format!("token endpoint {url}: {m}"));
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(bad("the URL must start with https://"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (
            h.trim_start_matches('[').trim_end_matches(']'),
            p.parse::<u16>().map_err(|_| bad("bad port"))?,
        ),
        _ => (authority, if https { 443 } else { 80 }),
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !https && !loopback {
        return Err(bad(
            "a client secret is sent only over https (http:// only on this machine)",
        ));
    }
    let ep = Endpoint {
        host: host.to_string(),
        port,
        security: if https {
            Security::Implicit
        } else {
            Security::None
        },
    };
    let sock = tcp(&ep).await?;
    let mut stream = if https {
        tls_wrap(sock, host, tls).await?
    } else {
        Stream::Plain(sock)
    };
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/x-www-form-urlencoded\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let io =
        |e: std::io::Error| Error::new(ErrorKind::Connect, format!("token endpoint {url}: {e}"));
    let exchange = async {
        stream.write_all(req.as_bytes()).await.map_err(io)?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.map_err(io)?;
        Ok::<_, Error>(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(60), exchange)
        .await
        .map_err(|_| {
            Error::new(
                ErrorKind::Connect,
                format!("token endpoint {url}: no answer within 60 s"),
            )
        })??;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("not an HTTP answer"))?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("not an HTTP answer"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// How a bearer login starts, in any protocol: OAUTHBEARER where the server offers it, else
/// XOAUTH2, a token for `user`, and the initial response. An error names the server and the
/// protocol when it offers neither.
pub async fn begin(
    tokens: &Tokens,
    user: &str,
    host: &str,
    protocol: &str,
    offered: impl Fn(&str) -> bool,
) -> Result<(&'static str, String, Token), Error> {
    let mech = if offered("OAUTHBEARER") {
        "OAUTHBEARER"
    } else if offered("XOAUTH2") {
        "XOAUTH2"
    } else {
        return Err(Error::new(
            ErrorKind::Auth,
            format!(
                "{host} offers neither OAUTHBEARER nor XOAUTH2 over {protocol}: it takes no OAuth2 login; log in with a password or a master user"
            ),
        ));
    };
    let token = tokens.token(user).await?;
    let ir = initial_response(mech, user, token.secret.expose_secret());
    Ok((mech, ir, token))
}

/// The SASL initial response for a bearer token: OAUTHBEARER (RFC 7628) or XOAUTH2.
pub fn initial_response(mechanism: &str, user: &str, token: &str) -> String {
    let raw = if mechanism.eq_ignore_ascii_case("OAUTHBEARER") {
        format!(
            "n,a={},\x01auth=Bearer {token}\x01\x01",
            user.replace('=', "=3D").replace(',', "=2C")
        )
    } else {
        format!("user={user}\x01auth=Bearer {token}\x01\x01")
    };
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// What a server's failure challenge (base64 JSON, RFC 7628 §3.2.2) says, in a few words.
pub fn failure_reason(challenge: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(challenge.trim())
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let status = v.get("status")?.as_str()?.to_string();
    Some(match status.as_str() {
        "401" | "invalid_token" => {
            format!("the token was refused ({status}): expired, for another user or wrong")
        }
        "400" | "invalid_request" => format!("the request was refused ({status})"),
        "403" | "insufficient_scope" => {
            format!("the token lacks the scope the server needs ({status})")
        }
        _ => format!("refused ({status})"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_answers_and_bare_tokens() {
        let t =
            parse_token("{\"access_token\":\"abc\",\"expires_in\":3600,\"token_type\":\"Bearer\"}")
                .unwrap();
        assert_eq!(t.secret.expose_secret(), "abc");
        assert_eq!(t.lifetime, Some(Duration::from_secs(3600)));
        assert!(t.fresh());
        let e = parse_token("{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: Invalid client secret provided.\\r\\nTrace ID: x\"}").err().unwrap();
        assert_eq!(
            e,
            "invalid_client: AADSTS7000215: Invalid client secret provided."
        );
        let bare = parse_token("  tok123\n").unwrap();
        assert_eq!(bare.secret.expose_secret(), "tok123");
        assert!(bare.expires.is_none());
        let exp = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 20;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("{{\"sub\":\"a\",\"exp\":{exp}}}"));
        let jwt = parse_token(&format!("eyJhbGciOiJIUzI1NiJ9.{payload}.sig")).unwrap();
        let l = jwt.lifetime.unwrap();
        assert!(l <= Duration::from_secs(20) && l >= Duration::from_secs(18));
        let short = Token {
            secret: SecretString::from("x".to_string()),
            expires: Some(Instant::now() + Duration::from_secs(3)),
            lifetime: Some(Duration::from_secs(20)),
        };
        assert!(
            !short.fresh(),
            "renewed a fifth of its lifetime before expiry"
        );
    }

    #[test]
    fn sasl_payloads() {
        let d = |s: String| {
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(s).unwrap()).unwrap()
        };
        assert_eq!(
            d(initial_response("XOAUTH2", "anna@x.it", "T")),
            "user=anna@x.it\x01auth=Bearer T\x01\x01"
        );
        assert_eq!(
            d(initial_response("OAUTHBEARER", "a,b=c@x.it", "T")),
            "n,a=a=2Cb=3Dc@x.it,\x01auth=Bearer T\x01\x01"
        );
        let challenge = base64::engine::general_purpose::STANDARD
            .encode("{\"status\":\"invalid_token\",\"schemes\":\"bearer\"}");
        assert!(failure_reason(&challenge).unwrap().contains("expired"));
        assert_eq!(form("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
        assert_eq!(dechunk("4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n"), "abcdefg");
    }
}
