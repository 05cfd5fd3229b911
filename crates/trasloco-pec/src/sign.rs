//! Making a CMS SignedData (RFC 5652) with an RSA key: detached for S/MIME (the test PKI's PEC
//! messages), or with the content inside (signed Apple configuration profiles). The signed
//! attributes are contentType, signingTime and messageDigest, as providers use them.

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{Any, ObjectIdentifier as Oid, OctetString, SetOfVec};
use der::{Decode, Encode};
use rsa::RsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::signature::{SignatureEncoding, Signer as _};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use std::time::SystemTime;
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::time::Time;

/// Who signs, and how.
pub struct Signer<'a> {
    /// The private key.
    pub key: &'a RsaPrivateKey,
    /// The signer's certificate.
    pub cert: &'a Certificate,
    /// Certificates to include after it (its chain).
    pub chain: &'a [Certificate],
    /// SHA-1 (as most PEC providers still sign) instead of SHA-256.
    pub sha1: bool,
    /// The signingTime attribute.
    pub at: SystemTime,
}

/// Sign `content`; with `attached` the content travels inside the SignedData.
pub fn sign(content: &[u8], s: &Signer<'_>, attached: bool) -> Result<Vec<u8>, String> {
    let e = |x: der::Error| x.to_string();
    let oid = Oid::new_unwrap;
    let id_data = oid("1.2.840.113549.1.7.1");
    let (digest_oid, digest) = if s.sha1 {
        (oid("1.3.14.3.2.26"), Sha1::digest(content).to_vec())
    } else {
        (
            oid("2.16.840.1.101.3.4.2.1"),
            Sha256::digest(content).to_vec(),
        )
    };
    let attr = |o: &str, v: Any| -> Result<Attribute, String> {
        Ok(Attribute {
            oid: oid(o),
            values: SetOfVec::try_from(vec![v]).map_err(e)?,
        })
    };
    let time = signing_time(s.at).map_err(e)?;
    let attrs = SetOfVec::try_from(vec![
        attr(
            "1.2.840.113549.1.9.3",
            Any::encode_from(&id_data).map_err(e)?,
        )?,
        attr(
            "1.2.840.113549.1.9.5",
            Any::from_der(&time.to_der().map_err(e)?).map_err(e)?,
        )?,
        attr(
            "1.2.840.113549.1.9.4",
            Any::encode_from(&OctetString::new(digest).map_err(e)?).map_err(e)?,
        )?,
    ])
    .map_err(e)?;
    let signed = attrs.to_der().map_err(e)?;
    let signature = if s.sha1 {
        SigningKey::<Sha1>::new(s.key.clone())
            .sign(&signed)
            .to_vec()
    } else {
        SigningKey::<Sha256>::new(s.key.clone())
            .sign(&signed)
            .to_vec()
    };
    let alg = |o: Oid| AlgorithmIdentifierOwned {
        oid: o,
        parameters: None,
    };
    let si = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: s.cert.tbs_certificate.issuer.clone(),
            serial_number: s.cert.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: alg(digest_oid),
        signed_attrs: Some(attrs),
        signature_algorithm: alg(oid("1.2.840.113549.1.1.1")),
        signature: OctetString::new(signature).map_err(e)?,
        unsigned_attrs: None,
    };
    let certs: Vec<CertificateChoices> = std::iter::once(s.cert)
        .chain(s.chain)
        .cloned()
        .map(CertificateChoices::Certificate)
        .collect();
    let econtent = if attached {
        Some(Any::encode_from(&OctetString::new(content.to_vec()).map_err(e)?).map_err(e)?)
    } else {
        None
    };
    let sd = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![alg(digest_oid)]).map_err(e)?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: id_data,
            econtent,
        },
        certificates: Some(CertificateSet(SetOfVec::try_from(certs).map_err(e)?)),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![si]).map_err(e)?),
    };
    ContentInfo {
        content_type: oid("1.2.840.113549.1.7.2"),
        content: Any::encode_from(&sd).map_err(e)?,
    }
    .to_der()
    .map_err(e)
}

/// The signingTime value: UTCTime for dates from 1950 to 2049, GeneralizedTime otherwise
/// (RFC 5652 §11.3).
fn signing_time(at: SystemTime) -> Result<Time, der::Error> {
    match der::asn1::UtcTime::from_system_time(at) {
        Ok(t) => Ok(Time::UtcTime(t)),
        Err(_) => Ok(Time::GeneralTime(
            der::asn1::GeneralizedTime::from_system_time(at)?,
        )),
    }
}

/// A signer's certificates (PEM: the signer first, then its chain) and RSA key (PEM, PKCS#8
/// or PKCS#1, unencrypted).
pub fn load_pem(
    cert_pem: &[u8],
    key_pem: &str,
) -> Result<(RsaPrivateKey, Vec<Certificate>), String> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    let mut store = crate::TrustStore::empty();
    store.add_pem(cert_pem);
    let certs = store.into_certificates();
    if certs.is_empty() {
        return Err("the certificate file holds no PEM certificate".into());
    }
    let key = RsaPrivateKey::from_pkcs8_pem(key_pem)
        .or_else(|_| RsaPrivateKey::from_pkcs1_pem(key_pem))
        .map_err(|_| "the key is not an unencrypted RSA key (PKCS#8 or PKCS#1 PEM); an EC or encrypted key cannot sign here")?;
    // The key must be the first certificate's: otherwise every signature fails to verify.
    use rsa::pkcs8::EncodePublicKey;
    let public = rsa::RsaPublicKey::from(&key)
        .to_public_key_der()
        .map_err(|e| e.to_string())?;
    let in_cert = certs[0]
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| e.to_string())?;
    if public.as_bytes() != in_cert.as_slice() {
        return Err(
            "the key does not belong to the certificate (the first certificate in the file must be the signer's)"
                .into(),
        );
    }
    Ok((key, certs))
}

#[cfg(all(test, feature = "testkit"))]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// The DER tag of the signingTime value in a signature made at `at`.
    fn time_tag(at: chrono::DateTime<chrono::Utc>) -> u8 {
        let mut p = crate::testkit::Pki::new().current;
        p.signs_at = at;
        let der = p.sign(b"content");
        let ci = ContentInfo::from_der(&der).unwrap();
        let sd: SignedData = ci.content.decode_as().unwrap();
        let si = sd.signer_infos.0.iter().next().unwrap();
        let attrs = si.signed_attrs.as_ref().unwrap();
        let t = attrs
            .iter()
            .find(|a| a.oid == Oid::new_unwrap("1.2.840.113549.1.9.5"))
            .unwrap();
        der::Tagged::tag(t.values.iter().next().unwrap()).octet()
    }

    #[test]
    fn signing_time_is_utc_time_until_2049() {
        let utc = |y| chrono::Utc.with_ymd_and_hms(y, 6, 1, 12, 0, 0).unwrap();
        assert_eq!(time_tag(utc(2026)), 0x17, "UTCTime");
        assert_eq!(time_tag(utc(2049)), 0x17, "UTCTime");
        assert_eq!(time_tag(utc(2050)), 0x18, "GeneralizedTime");
    }
}
