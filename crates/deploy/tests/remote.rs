//! sftp: and ssh: tasks against a real OpenSSH server on loopback: the files arrive whole
//! with their modes, commands run, and a host key that is not the one pinned, a key the
//! server does not take, or a host that does not answer are refused, saying which.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;

use certhub_core::{DeployTask, Secret};
use certhub_deploy::{Facts, Issued, Outcome, Run};
use certhub_testkit::sshd::Sshd;
use rcgen::{CertificateParams, KeyPair};
use zeroize::Zeroizing;

fn issued() -> Issued {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["web.test".to_string()]).unwrap().self_signed(&key);
    Issued {
        serial_hex: "0a0b".into(),
        not_before: 1_700_000_000,
        not_after: 1_700_000_000 + 90 * 86_400,
        domains: vec!["web.test".into()],
        chain_der: vec![cert.unwrap().der().to_vec()],
        key_pkcs8: Zeroizing::new(key.serialize_der()),
    }
}

/// The task of `spec` with the SSH credential `key` filled in, as the engine does.
fn task(spec: &str, key: &str) -> DeployTask {
    let task = DeployTask::parse(spec, "t").unwrap_or_else(|e| panic!("{spec}: {e}"));
    let fields = BTreeMap::from([("private-key".to_string(), Secret::new(key))]);
    DeployTask { action: task.action.with_credential("ssh", &fields).unwrap(), ..task }
}

async fn outcome(spec: &str, key: &str) -> Outcome {
    let facts = Facts { cert_name: "web".into(), issued: Some(issued()), error: None };
    Run::new(&facts, false).task(&task(spec, key)).await
}

fn failed(o: Outcome) -> String {
    match o {
        Outcome::Failed(why) => why,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn sftp_writes_the_files_with_their_modes_and_ssh_runs_a_command() {
    let sshd = Sshd::start().await;
    let dir = tempfile::TempDir::new().unwrap();
    let remote = dir.path().join("new/site");
    let host = sshd.addr.to_string();
    let pin = format!("known-hosts={}", sshd.known_hosts.display());
    let spec = format!(
        "sftp:host={host},user={},credential=box,dir={},{pin},cert=,chain=",
        sshd.user,
        remote.display()
    );
    // Twice: the second replaces the first's files.
    for _ in 0..2 {
        let o = outcome(&spec, &sshd.client_key).await;
        assert!(matches!(o, Outcome::Done(_)), "{o:?}\n{}", sshd.log());
    }
    let mode = |name: &str| std::fs::metadata(remote.join(name)).unwrap().permissions().mode();
    assert_eq!(mode("fullchain.pem") & 0o777, 0o644);
    assert_eq!(mode("privkey.pem") & 0o777, 0o600);
    let key = std::fs::read_to_string(remote.join("privkey.pem")).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
    let mut names: Vec<String> = std::fs::read_dir(&remote)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["fullchain.pem", "privkey.pem"], "nothing else is left behind");

    // A command, with commas in it, pinned by fingerprint; a failing one says how it ended.
    let marker = dir.path().join("ran");
    let spec = format!(
        "ssh:host={host},user={},credential=box,fingerprint={},command=echo a,b > {}",
        sshd.user,
        sshd.fingerprint,
        marker.display()
    );
    let o = outcome(&spec, &sshd.client_key).await;
    assert!(matches!(o, Outcome::Done(_)), "{o:?}");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "a,b\n");
    let spec = format!(
        "ssh:host={host},user={},credential=box,fingerprint={},command=echo nope >&2; exit 3",
        sshd.user, sshd.fingerprint
    );
    let why = failed(outcome(&spec, &sshd.client_key).await);
    assert!(why.contains("exited with status 3") && why.contains("nope"), "{why}");
}

#[tokio::test]
async fn an_unknown_or_changed_host_key_a_refused_key_and_no_answer_are_refused() {
    let sshd = Sshd::start().await;
    let dir = tempfile::TempDir::new().unwrap();
    let host = sshd.addr.to_string();
    let cmd = format!("command=touch {}", dir.path().join("must-not-exist").display());
    let ssh = |pin: &str| format!("ssh:host={host},user={},credential=box,{pin},{cmd}", sshd.user);

    // Another fingerprint pinned.
    let other = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let why = failed(outcome(&ssh(&format!("fingerprint={other}")), &sshd.client_key).await);
    assert!(why.contains(&sshd.fingerprint) && why.contains("not the pinned"), "{why}");
    // A known_hosts that does not list the host.
    let empty = dir.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let why =
        failed(outcome(&ssh(&format!("known-hosts={}", empty.display())), &sshd.client_key).await);
    assert!(why.contains("is not in") && why.contains("ssh-keyscan"), "{why}");
    // One that lists another key for it: changed.
    let changed = dir.path().join("changed_known_hosts");
    std::fs::write(&changed, format!("[127.0.0.1]:{} {}\n", sshd.addr.port(), sshd.other_host_key))
        .unwrap();
    let why = failed(
        outcome(&ssh(&format!("known-hosts={}", changed.display())), &sshd.client_key).await,
    );
    assert!(why.contains("changed") && why.contains("line 1"), "{why}");
    // A key the server does not take.
    let stranger = KeyPair::generate().unwrap().serialize_pem();
    let pin = format!("fingerprint={}", sshd.fingerprint);
    let why = failed(outcome(&ssh(&pin), &stranger).await);
    assert!(why.contains("did not accept the key of credential box"), "{why}");
    // Nothing answers.
    let closed = certhub_testkit::free_port();
    let spec = format!("ssh:host=127.0.0.1:{closed},user=u,credential=box,{pin},{cmd}");
    let why = failed(outcome(&spec, &sshd.client_key).await);
    assert!(why.contains(&format!("cannot reach u@127.0.0.1:{closed}")), "{why}");
    assert!(!dir.path().join("must-not-exist").exists());
}
