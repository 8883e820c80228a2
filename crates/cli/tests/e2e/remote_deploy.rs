//! Deployment to another machine without an agent: an sftp: task signs in to a real OpenSSH
//! server with a stored key, pinned to its host key, and the credential stays while the
//! task names it.

use certhub_testkit::sshd::Sshd;

use crate::support::{Env, hostile};

#[tokio::test(flavor = "multi_thread")]
async fn sftp_copies_each_new_certificate_with_a_stored_key_kept_while_used() {
    let env = Env::start(hostile()).await;
    env.account("le", &[]).await;
    let sshd = Sshd::start().await;
    let keys = tempfile::TempDir::new().unwrap();
    let key_file = keys.path().join("id_ed25519");
    std::fs::write(&key_file, &sshd.client_key).unwrap();
    let target = tempfile::TempDir::new().unwrap();
    let dir = target.path().join("ssl");
    let sftp = |credential: &str| {
        format!(
            "sftp:host={},user={},credential={credential},dir={},known-hosts={}",
            sshd.addr,
            sshd.user,
            dir.display(),
            sshd.known_hosts.display()
        )
    };
    let http01 = env.http01();
    let add = ["cert", "add", "web", "--account", "le", "-d", "web.test", "--challenge", &http01];

    // A credential that is not there is refused before anything is kept.
    let said = env.fails(3, &[&add[..], &["--deploy", &sftp("box")]].concat()).await;
    assert!(said.contains("certhub credential add box --kind ssh"), "{said}");
    let from_file = format!("private-key={}", key_file.display());
    env.ok(&["credential", "add", "box", "--kind", "ssh", "--from-file", &from_file]).await;
    env.ok(&[&add[..], &["--deploy", &sftp("box")]].concat()).await;
    let preview = env.ok(&["deploy", "list", "web"]).await;
    assert!(preview.contains("over SFTP (credential box)"), "{preview}");

    env.ok(&["renew", "web"]).await;
    let copied = std::fs::read_to_string(dir.join("fullchain.pem")).unwrap();
    let issued = env.verify_issued("web", &["web.test"]).await;
    assert_eq!(crate::support::pem_certs(&copied)[0], issued[0], "the copy is the new leaf");
    assert!(dir.join("privkey.pem").exists());

    // In use by the task: not removed.
    let said = env.fails(3, &["credential", "remove", "box"]).await;
    assert!(said.contains("used by web"), "{said}");
}
