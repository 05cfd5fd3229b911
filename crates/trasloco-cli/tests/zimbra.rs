//! Zimbra as a source. No Zimbra runs here (it is not packaged): the source is the real
//! Dovecot with its ACL extension, where a folder the user does not administer stands for a
//! folder another account shared and Zimbra shows (mounted) in the user's tree.

mod support;

use support::*;

/// With `provider = "zimbra"` on the source: a folder the user does not administer (MYRIGHTS
/// without `a`) is left out under `folder-shared` and not created on the target; a flag of
/// Zimbra's add-ons (`…:FLAG51135`) is dropped and reported, the message copied; the buckets
/// add up and verification agrees.
#[tokio::test(flavor = "multi_thread")]
async fn mounted_folders_and_zimbra_flags_stay_behind() {
    let pair = Pair::start_with(&[("PAIR_ACL", "1")]);
    let mut src = pair.client("source", "alice").await;
    let m = |i: usize, folder: &str| msg(simple(i, folder));
    let mut sticky = m(0, "INBOX");
    sticky.flags = vec!["\\Seen", "EmailswithStickyNotes:FLAG51135"];
    seed(&mut src, "INBOX", vec![sticky, m(1, "INBOX")]).await;
    seed(
        &mut src,
        "Progetti",
        vec![m(0, "Progetti"), m(1, "Progetti")],
    )
    .await;
    seed(
        &mut src,
        "Condivisa",
        (0..3).map(|i| m(i, "Condivisa")).collect(),
    )
    .await;
    src.logout().await;
    // Another account's folder, as the user sees it: readable, not administered.
    let home = pair.dir.path().join("source/home/alice/Maildir");
    std::fs::write(home.join("Condivisa/dovecot-acl"), "owner lrs\n").unwrap();

    let c = pair.alice_campaign(
        &format!("{}provider = \"zimbra\"\n", pair.imap_side("source")),
        &pair.imap_side("target"),
        "",
    );
    let out = pair.trasloco(&["--no-progress", "run", &c], "", "");
    let t = text(&out);
    assert_eq!(code(&out), 0, "{t}");
    let mb = &report(&pair, &out)["mailboxes"][0];
    assert_eq!(mb["status"], "in-sync", "{mb}");
    assert_eq!(mb["buckets"]["copied"], 4, "{mb}");
    assert_eq!(mb["buckets"]["skipped"]["folder-shared"], 3, "{mb}");
    let inbox = mb["folders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["source"] == "INBOX")
        .unwrap();
    assert_eq!(
        inbox["dropped_keywords"]["EmailswithStickyNotes:FLAG51135"], 1,
        "{inbox}"
    );
    let mut tgt = pair.client("target", "alice").await;
    let snap = snapshot(&mut tgt).await;
    assert!(!snap.contains_key("Condivisa"), "{snap:?}");
    assert_eq!(snap["Progetti"].len(), 2);
    assert!(
        snap["INBOX"]
            .iter()
            .all(|(_, flags, _)| flags.iter().all(|f| !f.contains("FLAG51135"))),
        "{snap:?}"
    );
    assert!(
        snap["INBOX"]
            .iter()
            .any(|(_, flags, _)| flags == &["\\Seen"]),
        "the message keeps its other flags: {snap:?}"
    );

    let out = pair.trasloco(&["verify", &c], "", "");
    let t = text(&out);
    assert_eq!(code(&out), 0, "{t}");
    assert!(t.contains("folder-shared"), "{t}");
}
