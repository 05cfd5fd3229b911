//! The PEC library against its own test PKI and message generator: every type classified,
//! signatures checked at signing time (current, SHA-1, expired, rogue), tampering caught,
//! originals extracted, receipts linked with their gaps, and no input that makes it panic.

use proptest::prelude::*;
use std::sync::OnceLock;
use trasloco_pec::link::{Gap, Item, link};
use trasloco_pec::testkit::{Pki, Spec, original_message, sent_copy};
use trasloco_pec::{Kind, SignatureStatus, classify, examine, original, verify};

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(Pki::new)
}

const ALL: [Kind; 13] = [
    Kind::TransportEnvelope,
    Kind::AnomalyEnvelope,
    Kind::Acceptance,
    Kind::NonAcceptance,
    Kind::NonAcceptanceVirus,
    Kind::TakeCharge,
    Kind::DeliveryComplete,
    Kind::DeliveryShort,
    Kind::DeliverySynthetic,
    Kind::NonDelivery,
    Kind::NonDeliveryVirus,
    Kind::NonDeliveryTimeout,
    Kind::VirusDetection,
];

#[test]
fn every_type_is_classified_and_its_signature_verifies() {
    let p = pki();
    let trust = p.trust();
    for (n, kind) in ALL.into_iter().enumerate() {
        let spec = Spec::new(kind, n as u32);
        let raw = p.current.message(&spec);
        let e = examine(&raw, &trust);
        let c = &e.classified;
        assert_eq!(c.kind, kind, "{}", String::from_utf8_lossy(&raw));
        assert!(c.signed);
        assert!(
            c.findings.iter().all(|f| f.contains("5.4.1")),
            "{kind:?}: {:?}",
            c.findings
        );
        assert_eq!(
            e.signature.status,
            SignatureStatus::Valid,
            "{kind:?}: {:?}",
            e.signature
        );
        assert!(!e.signature.sha1);
        assert_eq!(
            e.signature.signer_email.as_deref(),
            Some("posta-certificata@pec.esempio.example")
        );
        assert_eq!(e.signature.chain.len(), 3, "signer, intermediate, root");
        if kind != Kind::AnomalyEnvelope {
            let d = c.daticert.as_ref().unwrap();
            assert_eq!(
                d.identificativo.as_deref(),
                Some(spec.identificativo.as_str())
            );
            assert_eq!(d.msgid.as_deref(), Some(spec.msgid.as_str()));
            assert_eq!(d.gestore.as_deref(), Some("Esempio PEC S.p.A."));
            assert_eq!(d.destinatari.len(), 2);
            assert_eq!(d.oggetto.as_deref(), Some(spec.subject.as_str()));
            assert!(d.data.is_some());
        }
        let has_original = matches!(
            kind,
            Kind::TransportEnvelope
                | Kind::DeliveryComplete
                | Kind::DeliveryShort
                | Kind::AnomalyEnvelope
        );
        assert_eq!(c.has_original, has_original, "{kind:?}");
    }
    assert!(trasloco_pec::might_be_pec(
        &p.current.message(&Spec::new(Kind::Acceptance, 98))
    ));
    let plain = sent_copy(&Spec::new(Kind::Ordinary, 99));
    assert!(
        !trasloco_pec::might_be_pec(&plain),
        "ordinary mail needs no closer look"
    );
    let e = examine(&plain, &trust);
    assert_eq!(e.classified.kind, Kind::Ordinary);
    assert_eq!(e.signature.status, SignatureStatus::Unsigned);
}

#[test]
fn timeouts_rem_and_stripped_headers() {
    let p = pki();
    let t = classify(&p.current.message(&Spec::new(Kind::NonDeliveryTimeout, 1)));
    assert!(
        t.findings.iter().any(|f| f.contains("24 h")),
        "{:?}",
        t.findings
    );
    let rem = b"REM-MetadataVersion: EN31953203V010201\r\nREM-MessageType: http://uri.etsi.org/19522/v1#/ERDMessageType/dispatch\r\nSubject: REM Dispatch: x\r\n\r\nbody\r\n";
    assert_eq!(classify(rem).kind, Kind::Rem);
    // A tool that dropped the X-Ricevuta header: daticert still tells the type.
    let raw = p.current.message(&Spec::new(Kind::Acceptance, 2));
    let text = String::from_utf8(raw)
        .unwrap()
        .replace("X-Ricevuta: accettazione\r\n", "");
    let c = classify(text.as_bytes());
    assert_eq!(c.kind, Kind::Acceptance);
    assert!(
        c.findings
            .iter()
            .any(|f| f.contains("classified from daticert"))
    );
}

#[test]
fn a_pec_wrapped_by_a_mailing_list_still_verifies_and_says_so() {
    let p = pki();
    let raw =
        String::from_utf8(p.current.message(&Spec::new(Kind::TransportEnvelope, 11))).unwrap();
    let wrapped = format!(
        "From: lista@lists.example\r\nSubject: [Osst-users] POSTA CERTIFICATA: x\r\nContent-Type: multipart/mixed; boundary=\"LIST\"\r\n\r\n--LIST\r\nContent-Type: text/plain\r\n\r\nlist footer\r\n--LIST\r\n{raw}\r\n--LIST--\r\n"
    );
    let c = classify(wrapped.as_bytes());
    assert_eq!(c.kind, Kind::TransportEnvelope);
    assert!(
        c.findings.iter().any(|f| f.contains("wrapped")),
        "{:?}",
        c.findings
    );
    let v = verify(wrapped.as_bytes(), &p.trust());
    assert_eq!(v.status, SignatureStatus::Valid, "{v:?}");

    // A list that keeps the PEC headers on its own wrapper: one classifier, one verdict, the
    // identifier from the inner daticert.xml (issue 18, point 4).
    let kept = format!(
        "X-Trasporto: posta-certificata\r\nX-Riferimento-Message-ID: <client-11@client.alfa.example>\r\n{wrapped}"
    );
    let e = trasloco_pec::examine(kept.as_bytes(), &p.trust());
    assert_eq!(e.classified.kind, Kind::TransportEnvelope);
    assert!(e.classified.signed);
    assert_eq!(
        e.signature.status,
        SignatureStatus::Valid,
        "{:?}",
        e.signature
    );
    assert_eq!(
        e.classified
            .daticert
            .as_ref()
            .and_then(|d| d.identificativo.as_deref()),
        Some("opec11.20260203091405.1234.5.1.7@pec.esempio.example")
    );
    assert!(e.classified.findings.iter().any(|f| f.contains("wrapped")));
}

#[test]
fn signatures_at_signing_time() {
    let p = pki();
    let trust = p.trust();
    let spec = Spec::new(Kind::Acceptance, 7);
    let sha1 = verify(&p.sha1.message(&spec), &trust);
    assert_eq!(sha1.status, SignatureStatus::Valid);
    assert!(sha1.sha1 && sha1.digest.as_deref() == Some("sha1"));
    assert!(sha1.problems.iter().any(|x| x.contains("SHA-1")));
    let old = verify(&p.expired.message(&spec), &trust);
    assert_eq!(old.status, SignatureStatus::ValidAtSigningTime, "{old:?}");
    assert_eq!(old.signing_time.as_deref(), Some("2018-11-13T16:39:26Z"));
    assert_eq!(
        old.signer_not_after.as_deref(),
        Some("2020-12-03T00:00:00Z")
    );
    let rogue = verify(&p.rogue.message(&spec), &trust);
    assert_eq!(rogue.status, SignatureStatus::Untrusted);
    assert!(
        rogue
            .problems
            .iter()
            .any(|x| x.contains("no trusted issuer")),
        "{rogue:?}"
    );
    let no_anchor = verify(&p.current.message(&spec), &trust_pec_empty());
    assert_eq!(no_anchor.status, SignatureStatus::Untrusted);
}

fn trust_pec_empty() -> trasloco_pec::TrustStore {
    trasloco_pec::TrustStore::empty()
}

#[test]
fn tampering_is_caught_and_what_is_not_covered_is_not() {
    let p = pki();
    let trust = p.trust();
    let raw = String::from_utf8(p.current.message(&Spec::new(Kind::TransportEnvelope, 3))).unwrap();
    let check = |s: &str| verify(s.as_bytes(), &trust).status;
    assert_eq!(check(&raw), SignatureStatus::Valid);
    // One byte of a header inside the signed part.
    let t = raw.replacen(
        "Content-Disposition: inline",
        "Content-Disposition: Inline",
        1,
    );
    assert_eq!(check(&t), SignatureStatus::Broken);
    // One trailing space removed inside postacert.eml.
    let t = raw.replacen("l'offerta.  \r\n", "l'offerta. \r\n", 1);
    assert_ne!(t, raw);
    assert_eq!(check(&t), SignatureStatus::Broken);
    // Line ends re-encoded to LF (a Maildir or git copy): canonical CRLF is restored.
    let lf = raw.replace("\r\n", "\n");
    let v = verify(lf.as_bytes(), &trust);
    assert_eq!(v.status, SignatureStatus::Valid);
    assert!(v.lf_stored);
    // The top-level header and the trailing empty line are not covered (reference §3.1).
    let t = raw.replacen(
        "Subject: POSTA CERTIFICATA: ",
        "Subject: [lista] POSTA CERTIFICATA: ",
        1,
    );
    assert_eq!(check(&t), SignatureStatus::Valid);
    assert_eq!(check(raw.trim_end_matches("\r\n")), SignatureStatus::Valid);
    // A signature part that is not CMS.
    let start = raw.find("smime.p7s\"\r\n\r\n").unwrap() + 14;
    let mut t = raw.clone();
    t.replace_range(start..start + 8, "AAAAAAAA");
    assert_eq!(check(&t), SignatureStatus::Broken);
}

#[test]
fn originals_are_extracted_exactly() {
    let p = pki();
    let spec = Spec::new(Kind::TransportEnvelope, 4);
    let raw = p.current.message(&spec);
    assert_eq!(original(&raw).unwrap(), &original_message(&spec, false)[..]);
    let c = classify(&raw);
    assert!(
        c.findings.is_empty(),
        "postacert Message-ID equals identificativo: {:?}",
        c.findings
    );
    let spec = Spec::new(Kind::DeliveryShort, 5);
    assert!(
        String::from_utf8_lossy(original(&p.current.message(&spec)).unwrap())
            .contains("offerta.pdf.hash")
    );
    assert!(original(&p.current.message(&Spec::new(Kind::Acceptance, 6))).is_none());
}

fn item(loc: &str, in_sent: bool, raw: &[u8]) -> Item {
    Item::of(loc.into(), in_sent, &classify(raw))
}

#[test]
fn receipts_link_to_their_sending_and_gaps_are_listed() {
    let p = pki();
    let s1 = Spec::new(Kind::Acceptance, 1);
    let mut s1_fail = s1.clone();
    s1_fail.kind = Kind::NonDelivery;
    s1_fail.consegna = Some("protocollo@pec.gamma.example".into());
    let mut s1_ok = s1.clone();
    s1_ok.kind = Kind::DeliveryComplete;
    // Sending 2: accepted, one recipient never answered.
    let s2 = Spec::new(Kind::Acceptance, 2);
    let mut s2_ok = s2.clone();
    s2_ok.kind = Kind::DeliverySynthetic;
    // Sending 3: only a sent copy. Sending 4: only a delivery receipt.
    let s3 = Spec::new(Kind::Ordinary, 3);
    let mut s4 = Spec::new(Kind::DeliveryComplete, 4);
    s4.consegna = Some("info@pec.beta.example".into());
    let items = vec![
        item("Sent/1", true, &sent_copy(&s1)),
        item("INBOX/1", false, &p.current.message(&s1)),
        item("INBOX/2", false, &p.current.message(&s1_ok)),
        item("INBOX/3", false, &p.current.message(&s1_fail)),
        item("Sent/2", true, &sent_copy(&s2)),
        item("INBOX/4", false, &p.current.message(&s2)),
        item("INBOX/5", false, &p.current.message(&s2_ok)),
        item("Sent/3", true, &sent_copy(&s3)),
        item("INBOX/6", false, &p.current.message(&s4)),
        item(
            "INBOX/7",
            false,
            &p.current.message(&Spec::new(Kind::AnomalyEnvelope, 8)),
        ),
    ];
    let l = link(&items);
    assert_eq!(l.transactions.len(), 2);
    let t1 = l
        .transactions
        .iter()
        .find(|t| t.msgid == Some(s1.msgid.clone()))
        .unwrap();
    assert_eq!(t1.sent_copy.as_deref(), Some("Sent/1"));
    assert_eq!(t1.acceptance.as_deref(), Some("INBOX/1"));
    let outcomes: Vec<(&str, &str)> = t1
        .recipients
        .iter()
        .map(|o| (o.recipient.as_str(), o.outcome.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("info@pec.beta.example", "delivered"),
            ("protocollo@pec.gamma.example", "not-delivered")
        ]
    );
    assert_eq!(l.gaps.len(), 4, "{:#?}", l.gaps);
    assert!(l.gaps.iter().any(|g| matches!(g, Gap::RecipientWithoutOutcome { recipient, .. } if recipient == "protocollo@pec.gamma.example")));
    assert!(
        l.gaps.iter().any(
            |g| matches!(g, Gap::SentWithoutAcceptance { location, .. } if location == "Sent/3")
        )
    );
    assert!(l.gaps.iter().any(
        |g| matches!(g, Gap::ReceiptWithoutMessage { location, .. } if location == "INBOX/6")
    ));
    assert!(
        l.gaps
            .iter()
            .any(|g| matches!(g, Gap::Anomaly { location, .. } if location == "INBOX/7"))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// Arbitrary bytes never make the classifier, the daticert parser or the verifier panic.
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = classify(&data);
        let _ = trasloco_pec::daticert::parse(&data);
        let _ = verify(&data, &trasloco_pec::TrustStore::empty());
    }

    /// Nor does any single-byte change or cut of a real message; and a changed byte in the
    /// signed part is never reported as intact.
    #[test]
    fn mutated_messages_never_panic(at in 0usize..20_000, byte in any::<u8>(), cut in proptest::bool::ANY) {
        let p = pki();
        let raw = p.current.message(&Spec::new(Kind::DeliveryComplete, 9));
        let at = at % raw.len();
        let mut m = raw.clone();
        if cut { m.truncate(at) } else { m[at] = byte }
        let _ = classify(&m);
        let v = verify(&m, &p.trust());
        let _ = original(&m);
        // Every byte of the signed part is covered.
        let text = String::from_utf8_lossy(&raw);
        let outer = "----ABCDEF0123456789ABCDEF0123456789";
        let first = text.find(&format!("--{outer}\r\n")).unwrap() + outer.len() + 4;
        let end = first + text[first..].find(&format!("\r\n--{outer}")).unwrap();
        if !cut && m != raw && (first..end).contains(&at) {
            prop_assert!(v.status != SignatureStatus::Valid, "{v:?}");
        }
    }
}

/// Issue 18, point 10: a signed message whose closing boundary line is missing is described
/// as that, with its two parts and its daticert.xml read as far as they go.
#[test]
fn a_missing_closing_boundary_is_named_not_mistaken_for_missing_parts() {
    let p = pki();
    let raw =
        String::from_utf8(p.current.message(&Spec::new(Kind::TransportEnvelope, 12))).unwrap();
    let cut = &raw[..raw.rfind("\r\n--").unwrap()];
    assert!(!cut.ends_with("--"));
    let c = classify(cut.as_bytes());
    assert_eq!(c.kind, Kind::TransportEnvelope);
    assert!(c.daticert.is_some(), "{:?}", c.findings);
    assert!(
        !c.findings.iter().any(|f| f.contains("no daticert")),
        "{:?}",
        c.findings
    );
    assert!(
        c.findings
            .iter()
            .any(|f| f.contains("without its closing boundary")),
        "{:?}",
        c.findings
    );
    let v = verify(cut.as_bytes(), &p.trust());
    assert_eq!(v.status, SignatureStatus::Valid, "{v:?}");
}
