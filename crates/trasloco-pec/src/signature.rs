//! The provider's signature: a detached CMS SignedData over the first part of the top-level
//! `multipart/signed`, exactly those bytes in canonical CRLF form (RFC 6109 §2.1, reference
//! §3). Checked in order: shape, message digest, the RSA signature over the signed attributes,
//! the signer certificate, and its chain to a trust anchor **at the signing time** — provider
//! certificates expire every three years, and evidence outlives them. SHA-1, which providers
//! still use, is accepted for that purpose and flagged.

use crate::classify::signed_part;
use crate::mime::{Part, crlf};
use chrono::{DateTime, Utc};
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use der::asn1::{ObjectIdentifier as Oid, OctetString};
use der::{Decode, Encode};
use serde::Serialize;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::path::Path;
use x509_cert::Certificate;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, SubjectAltName, name::GeneralName};
use x509_cert::time::Time;

const ID_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
const ID_SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
const ID_CONTENT_TYPE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.4");
const ID_SIGNING_TIME: Oid = Oid::new_unwrap("1.2.840.113549.1.9.5");
const ID_SHA1: Oid = Oid::new_unwrap("1.3.14.3.2.26");
const ID_SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
const SHA1_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.5");
const SHA256_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
const ID_CE_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.15");
const ID_CE_BASIC_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.19");
const ID_CE_SUBJECT_ALT_NAME: Oid = Oid::new_unwrap("2.5.29.17");

/// The verdict on a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureStatus {
    /// Intact, and the chain to a trust anchor is valid at signing time and today.
    Valid,
    /// Intact, and the chain was valid when it signed; a certificate has expired since (the
    /// normal state of PEC evidence older than about three years).
    ValidAtSigningTime,
    /// The bytes are intact but the signer is not trusted (no chain to an anchor, or a
    /// certificate was not valid at signing time).
    Untrusted,
    /// The bytes or the signature do not match: the message was altered.
    Broken,
    /// Not signed.
    Unsigned,
    /// Signed with something this verifier does not check (e.g. not RSA).
    Unsupported,
}

impl SignatureStatus {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            SignatureStatus::Valid => "valid",
            SignatureStatus::ValidAtSigningTime => "valid-at-signing-time",
            SignatureStatus::Untrusted => "untrusted",
            SignatureStatus::Broken => "broken",
            SignatureStatus::Unsigned => "unsigned",
            SignatureStatus::Unsupported => "unsupported",
        }
    }

    /// Whether the bytes are as the provider signed them.
    pub fn intact(self) -> bool {
        matches!(
            self,
            SignatureStatus::Valid
                | SignatureStatus::ValidAtSigningTime
                | SignatureStatus::Untrusted
        )
    }
}

/// The result of checking one message's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignatureCheck {
    /// The verdict.
    pub status: SignatureStatus,
    /// `sha1` or `sha256`.
    pub digest: Option<String>,
    /// SHA-1 was used (accepted for historical evidence; weak against a strong forger).
    pub sha1: bool,
    /// The `signingTime` signed attribute.
    pub signing_time: Option<String>,
    /// The signer certificate's subject.
    pub signer: Option<String>,
    /// The signer certificate's e-mail address (subjectAltName).
    pub signer_email: Option<String>,
    /// Until when the signer certificate was valid.
    pub signer_not_after: Option<String>,
    /// The subjects from the signer up to the anchor.
    pub chain: Vec<String>,
    /// Whether the signed bytes had to be brought to CRLF form (stored with bare LF).
    pub lf_stored: bool,
    /// Why it is not valid, or what is worth noting.
    pub problems: Vec<String>,
}

impl SignatureCheck {
    /// The check of a message that has no signature.
    pub fn unsigned() -> SignatureCheck {
        SignatureCheck {
            status: SignatureStatus::Unsigned,
            digest: None,
            sha1: false,
            signing_time: None,
            signer: None,
            signer_email: None,
            signer_not_after: None,
            chain: Vec::new(),
            lf_stored: false,
            problems: Vec::new(),
        }
    }

    fn fail(mut self, status: SignatureStatus, why: impl Into<String>) -> SignatureCheck {
        self.status = status;
        self.problems.push(why.into());
        self
    }
}

/// Trust anchors: the roots a provider chain must reach (for PEC since 2017: Actalis
/// Authentication Root CA, above AgID CA1; older archives need the historic CNIPA/DigitPA
/// anchors).
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    anchors: Vec<Certificate>,
}

impl TrustStore {
    /// No anchors: every chain is untrusted (integrity is still checked).
    pub fn empty() -> TrustStore {
        TrustStore::default()
    }

    /// Add the certificates of a PEM file (a bundle is fine).
    pub fn add_pem_file(&mut self, path: &Path) -> Result<usize, String> {
        let text = std::fs::read(path)
            .map_err(|e| format!("cannot read trust file {}: {e}", path.display()))?;
        let n = self.add_pem(&text);
        if n == 0 {
            return Err(format!(
                "trust file {} holds no PEM certificate",
                path.display()
            ));
        }
        Ok(n)
    }

    /// Add the certificates found in PEM text; returns how many.
    pub fn add_pem(&mut self, pem: &[u8]) -> usize {
        let text = String::from_utf8_lossy(pem);
        let mut n = 0;
        for block in text.split("-----BEGIN CERTIFICATE-----").skip(1) {
            let Some((b64, _)) = block.split_once("-----END CERTIFICATE-----") else {
                continue;
            };
            let der = crate::mime::base64_lenient(b64.as_bytes());
            if let Ok(c) = Certificate::from_der(&der) {
                self.anchors.push(c);
                n += 1;
            }
        }
        n
    }

    /// The certificates, in the order they were added.
    pub fn into_certificates(self) -> Vec<Certificate> {
        self.anchors
    }

    /// Add one DER certificate.
    pub fn add_der(&mut self, der: &[u8]) -> Result<(), String> {
        let c = Certificate::from_der(der).map_err(|e| e.to_string())?;
        self.anchors.push(c);
        Ok(())
    }

    /// The system's anchors (Debian: /etc/ssl/certs/ca-certificates.crt, which holds Actalis).
    pub fn system() -> TrustStore {
        let mut t = TrustStore::empty();
        for p in [
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/pki/tls/certs/ca-bundle.crt",
        ] {
            if t.add_pem_file(Path::new(p)).is_ok() {
                break;
            }
        }
        t
    }

    fn is_anchor(&self, c: &Certificate) -> bool {
        self.anchors.iter().any(|a| {
            a == c
                || (a.tbs_certificate.subject == c.tbs_certificate.subject
                    && a.tbs_certificate.subject_public_key_info
                        == c.tbs_certificate.subject_public_key_info)
        })
    }
}

fn time_of(t: &Time) -> DateTime<Utc> {
    DateTime::<Utc>::from(t.to_system_time())
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Verify `issued`'s signature with `issuer`'s public key (RSA PKCS#1 v1.5).
fn issued_by(issued: &Certificate, issuer: &Certificate) -> Result<(), String> {
    let tbs = issued.tbs_certificate.to_der().map_err(|e| e.to_string())?;
    let sig = issued
        .signature
        .as_bytes()
        .ok_or("certificate signature is not whole bytes")?;
    rsa_verify(issuer, &issued.signature_algorithm.oid, None, &tbs, sig)
}

/// RSA PKCS#1 v1.5 over `data`, digest from the algorithm (or `digest` for rsaEncryption).
fn rsa_verify(
    signer: &Certificate,
    alg: &Oid,
    digest: Option<&Oid>,
    data: &[u8],
    sig: &[u8],
) -> Result<(), String> {
    use rsa::pkcs8::DecodePublicKey;
    let spki = signer
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| e.to_string())?;
    let key = rsa::RsaPublicKey::from_public_key_der(&spki)
        .map_err(|_| "the signer's key is not RSA".to_string())?;
    let use_sha1 = match (*alg, digest) {
        (SHA1_WITH_RSA, _) => true,
        (SHA256_WITH_RSA, _) => false,
        (RSA_ENCRYPTION, Some(d)) if *d == ID_SHA1 => true,
        (RSA_ENCRYPTION, Some(d)) if *d == ID_SHA256 => false,
        _ => return Err(format!("signature algorithm {alg} is not supported")),
    };
    let ok = if use_sha1 {
        key.verify(rsa::Pkcs1v15Sign::new::<Sha1>(), &Sha1::digest(data), sig)
    } else {
        key.verify(
            rsa::Pkcs1v15Sign::new::<Sha256>(),
            &Sha256::digest(data),
            sig,
        )
    };
    ok.map_err(|_| "the RSA signature does not verify".to_string())
}

fn extension<T: for<'a> Decode<'a>>(c: &Certificate, oid: Oid) -> Option<T> {
    c.tbs_certificate
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id == oid)
        .and_then(|e| T::from_der(e.extn_value.as_bytes()).ok())
}

fn email_of(c: &Certificate) -> Option<String> {
    let san: SubjectAltName = extension(c, ID_CE_SUBJECT_ALT_NAME)?;
    san.0.iter().find_map(|g| match g {
        GeneralName::Rfc822Name(n) => Some(n.to_string()),
        _ => None,
    })
}

/// Walk from the signer to a trust anchor, every certificate valid at `at`.
fn chain(
    signer: &Certificate,
    pool: &[Certificate],
    trust: &TrustStore,
    at: DateTime<Utc>,
) -> Result<Vec<String>, String> {
    let mut path = Vec::new();
    let mut cur = signer.clone();
    for depth in 0..8 {
        let v = &cur.tbs_certificate.validity;
        let subject = cur.tbs_certificate.subject.to_string();
        if at < time_of(&v.not_before) || at > time_of(&v.not_after) {
            return Err(format!(
                "certificate {subject} was not valid at signing time {} (valid {} to {})",
                rfc3339(at),
                rfc3339(time_of(&v.not_before)),
                rfc3339(time_of(&v.not_after))
            ));
        }
        if depth > 0 {
            let bc: Option<BasicConstraints> = extension(&cur, ID_CE_BASIC_CONSTRAINTS);
            if !bc.is_some_and(|b| b.ca) && !trust.is_anchor(&cur) {
                return Err(format!("{subject} issues certificates but is not a CA"));
            }
        }
        path.push(subject.clone());
        if trust.is_anchor(&cur) {
            return Ok(path);
        }
        let issuer = cur.tbs_certificate.issuer.clone();
        let next = trust
            .anchors
            .iter()
            .chain(pool)
            .filter(|c| c.tbs_certificate.subject == issuer)
            .find(|c| issued_by(&cur, c).is_ok())
            .cloned();
        match next {
            Some(n) if n == cur => {
                return Err(format!("{subject} is self-signed and not a trust anchor"));
            }
            Some(n) => cur = n,
            None => {
                return Err(format!(
                    "no trusted issuer for {subject} (issuer {issuer}); add the provider's root with --trust"
                ));
            }
        }
    }
    Err("certificate chain too long".into())
}

/// Check the signature of a stored message.
pub fn verify(raw: &[u8], trust: &TrustStore) -> SignatureCheck {
    let mut check = SignatureCheck::unsigned();
    let top = Part::parse(raw);
    let Some(signed) = signed_part(&top, 2) else {
        return check;
    };
    let kids = signed.children();
    if kids.len() != 2 {
        return check.fail(
            SignatureStatus::Broken,
            format!("multipart/signed has {} parts, not 2", kids.len()),
        );
    }
    let protocol = signed
        .content_type()
        .param("protocol")
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !protocol.ends_with("pkcs7-signature") {
        return check.fail(
            SignatureStatus::Unsupported,
            format!("signature protocol {protocol:?} is not S/MIME"),
        );
    }
    let der_bytes = kids[1].decoded();
    let sd = match ContentInfo::from_der(&der_bytes) {
        Ok(ci) if ci.content_type == ID_SIGNED_DATA => ci
            .content
            .decode_as::<SignedData>()
            .map_err(|e| e.to_string()),
        Ok(ci) => Err(format!(
            "CMS content type {} is not SignedData",
            ci.content_type
        )),
        Err(e) => Err(format!("the signature part is not CMS: {e}")),
    };
    let sd = match sd {
        Ok(sd) => sd,
        Err(e) => return check.fail(SignatureStatus::Broken, e),
    };
    let certs: Vec<Certificate> = sd
        .certificates
        .as_ref()
        .map(|s| {
            s.0.iter()
                .filter_map(|c| match c {
                    cms::cert::CertificateChoices::Certificate(c) => Some(c.clone()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let Some(si) = sd.signer_infos.0.iter().next() else {
        return check.fail(SignatureStatus::Broken, "no signer in the CMS");
    };
    let Some(signer) = certs.iter().find(|c| matches_sid(c, si)) else {
        return check.fail(
            SignatureStatus::Untrusted,
            "the signer's certificate is not in the message",
        );
    };
    check.signer = Some(signer.tbs_certificate.subject.to_string());
    check.signer_email = email_of(signer);
    // Binding (reference §3.5 step 5): the certificate's address is the provider's From. A
    // list wrapper has its own From, so only the signed message's own header counts.
    let from = signed
        .headers
        .get("From")
        .or_else(|| top.headers.get("From"))
        .and_then(|f| f.rsplit('<').next())
        .map(|f| f.trim_end_matches('>').trim().to_ascii_lowercase());
    if let (Some(email), Some(from)) = (&check.signer_email, from)
        && !from.is_empty()
        && !email.eq_ignore_ascii_case(&from)
    {
        check.problems.push(format!(
            "the signer certificate is for {email}, the message is From {from}"
        ));
    }
    check.signer_not_after = Some(rfc3339(time_of(&signer.tbs_certificate.validity.not_after)));
    let digest_oid = si.digest_alg.oid;
    let name = match digest_oid {
        ID_SHA1 => "sha1",
        ID_SHA256 => "sha256",
        other => {
            return check.fail(
                SignatureStatus::Unsupported,
                format!("digest algorithm {other} is not supported"),
            );
        }
    };
    let digest_of = |b: &[u8]| {
        if digest_oid == ID_SHA1 {
            Sha1::digest(b).to_vec()
        } else {
            Sha256::digest(b).to_vec()
        }
    };
    check.digest = Some(name.into());
    check.sha1 = digest_oid == ID_SHA1;
    if check.sha1 {
        check
            .problems
            .push("signed with SHA-1: accepted for historical evidence, weak today".into());
    }
    let Some(attrs) = &si.signed_attrs else {
        return check.fail(SignatureStatus::Unsupported, "no signed attributes");
    };
    let attr = |oid: Oid| {
        attrs
            .iter()
            .find(|a| a.oid == oid)
            .and_then(|a| a.values.iter().next().cloned())
    };
    let Some(md) = attr(ID_MESSAGE_DIGEST).and_then(|v| v.decode_as::<OctetString>().ok()) else {
        return check.fail(SignatureStatus::Broken, "no messageDigest attribute");
    };
    if attr(ID_CONTENT_TYPE)
        .and_then(|v| v.decode_as::<Oid>().ok())
        .is_some_and(|o| o != ID_DATA)
    {
        check
            .problems
            .push("contentType attribute is not id-data".into());
    }
    let signing_time = attr(ID_SIGNING_TIME)
        .and_then(|v| v.to_der().ok())
        .and_then(|d| Time::from_der(&d).ok())
        .map(|t| time_of(&t));
    check.signing_time = signing_time.map(rfc3339);
    // The signed bytes: the first part exactly; CRLF only if the copy was stored with LF.
    let content = kids[0].raw;
    let exact = digest_of(content);
    if exact.as_slice() != md.as_bytes() {
        let canon = crlf(content);
        if canon != content && digest_of(&canon).as_slice() == md.as_bytes() {
            check.lf_stored = true;
        } else {
            return check.fail(
                SignatureStatus::Broken,
                "the signed part's digest differs from the signed messageDigest: the message was altered",
            );
        }
    }
    let signed_der = match attrs.to_der() {
        Ok(d) => d,
        Err(e) => return check.fail(SignatureStatus::Broken, e.to_string()),
    };
    if let Err(e) = rsa_verify(
        signer,
        &si.signature_algorithm.oid,
        Some(&digest_oid),
        &signed_der,
        si.signature.as_bytes(),
    ) {
        let status = if e.contains("not supported") || e.contains("not RSA") {
            SignatureStatus::Unsupported
        } else {
            SignatureStatus::Broken
        };
        return check.fail(status, e);
    }
    let ku: Option<KeyUsage> = extension(signer, ID_CE_KEY_USAGE);
    if ku.is_some_and(|k| !k.digital_signature()) {
        check
            .problems
            .push("the signer certificate's key usage lacks digitalSignature".into());
    }
    // Signing time: the signed attribute (the provider's clock), else the certificate's
    // own window cannot be checked against anything better than now.
    let at = signing_time.unwrap_or_else(Utc::now);
    if signing_time.is_none() {
        check
            .problems
            .push("no signingTime attribute: the chain is checked at today's date".into());
    }
    match chain(signer, &certs, trust, at) {
        Err(e) => check.fail(SignatureStatus::Untrusted, e),
        Ok(path) => {
            check.chain = path;
            let now = Utc::now();
            let expired = certs
                .iter()
                .filter(|c| check.chain.contains(&c.tbs_certificate.subject.to_string()))
                .any(|c| now > time_of(&c.tbs_certificate.validity.not_after));
            check.status = if expired {
                SignatureStatus::ValidAtSigningTime
            } else {
                SignatureStatus::Valid
            };
            check
        }
    }
}

fn matches_sid(c: &Certificate, si: &SignerInfo) -> bool {
    match &si.sid {
        SignerIdentifier::IssuerAndSerialNumber(i) => {
            c.tbs_certificate.issuer == i.issuer
                && c.tbs_certificate.serial_number == i.serial_number
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => {
            extension::<x509_cert::ext::pkix::SubjectKeyIdentifier>(c, Oid::new_unwrap("2.5.29.14"))
                .is_some_and(|s| s.0 == ski.0)
        }
    }
}
