//! Deployment tasks against the real file system, real shells and a real HTTP server.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use certhub_core::DeployTask;
use certhub_deploy::{Facts, Issued, Outcome, Run};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SerialNumber};
use zeroize::Zeroizing;

/// A two-certificate chain (leaf, intermediate) for `serial`, with the leaf's key.
fn issued(serial: u64) -> Issued {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["web.test".to_string()]).unwrap();
    leaf.serial_number = Some(SerialNumber::from(serial.to_be_bytes().to_vec()));
    let leaf = leaf.signed_by(&key, &issuer).unwrap();
    Issued {
        serial_hex: format!("{serial:016x}"),
        not_before: 1_700_000_000,
        not_after: 1_700_000_000 + 90 * 86_400,
        domains: vec!["web.test".into(), "www.web.test".into()],
        chain_der: vec![leaf.der().to_vec(), ca_cert.der().to_vec()],
        key_pkcs8: Zeroizing::new(key.serialize_der()),
    }
}

fn facts(issued: Option<Issued>, error: Option<&str>) -> Facts {
    Facts { cert_name: "web".into(), issued, error: error.map(str::to_string) }
}

fn task(spec: &str) -> DeployTask {
    DeployTask::parse(spec, "t").unwrap_or_else(|e| panic!("{spec}: {e}"))
}

async fn run_all(facts: &Facts, dry_run: bool, specs: &[String]) -> Vec<Outcome> {
    let mut run = Run::new(facts, dry_run);
    let mut out = Vec::new();
    for spec in specs {
        out.push(run.task(&task(spec)).await);
    }
    out
}

fn pem_certs(path: &Path) -> Vec<Vec<u8>> {
    let text = std::fs::read(path).unwrap();
    pem::parse_many(text).unwrap().into_iter().map(|p| p.into_contents()).collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Hidden files: temporary and backup files that should be gone.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

#[tokio::test]
async fn files_hold_each_part_with_private_key_mode() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("ssl");
    let one = facts(Some(issued(1)), None);
    let out = run_all(&one, false, &[format!("files:dir={}", d.display())]).await;
    assert!(matches!(&out[0], Outcome::Done(_)), "{out:?}");
    let chain = &one.issued.as_ref().unwrap().chain_der;
    assert_eq!(pem_certs(&d.join("cert.pem")), chain[..1]);
    assert_eq!(pem_certs(&d.join("chain.pem")), chain[1..]);
    assert_eq!(pem_certs(&d.join("fullchain.pem")), *chain);
    let key = pem::parse(std::fs::read(d.join("privkey.pem")).unwrap()).unwrap();
    assert_eq!(key.tag(), "PRIVATE KEY");
    assert_eq!(key.contents(), &one.issued.as_ref().unwrap().key_pkcs8[..]);
    assert_eq!(mode(&d.join("cert.pem")), 0o644);
    assert_eq!(mode(&d.join("privkey.pem")), 0o600);

    // Custom names, modes, and a part left out.
    let custom = format!(
        "files:dir={},cert=,chain=,fullchain=site.crt,key=site.key,mode=0640,key-mode=0400",
        d.display()
    );
    let out = run_all(&one, false, &[custom]).await;
    assert!(matches!(&out[0], Outcome::Done(_)), "{out:?}");
    assert_eq!(mode(&d.join("site.crt")), 0o640);
    assert_eq!(mode(&d.join("site.key")), 0o400);
    assert_eq!(pem_certs(&d.join("site.crt")), *chain);
    assert!(leftovers(&d).is_empty());
}

#[tokio::test]
async fn files_get_their_owner_and_group() {
    // As root, hand the files to nobody; otherwise to ourselves (the only change allowed).
    let probe = tempfile::NamedTempFile::new().unwrap();
    let (uid, gid) = {
        let m = probe.as_file().metadata().unwrap();
        if m.uid() == 0 { (65534, 65534) } else { (m.uid(), m.gid()) }
    };
    let dir = tempfile::tempdir().unwrap();
    let one = facts(Some(issued(1)), None);
    let spec = format!("files:dir={},owner={uid},group={gid}", dir.path().display());
    let out = run_all(&one, false, &[spec]).await;
    assert!(matches!(&out[0], Outcome::Done(_)), "{out:?}");
    let key = std::fs::metadata(dir.path().join("privkey.pem")).unwrap();
    assert_eq!((key.uid(), key.gid()), (uid, gid));

    // An owner that does not exist is refused before anything is written.
    let other = tempfile::tempdir().unwrap();
    let spec = format!("files:dir={},owner=no-such-user-here", other.path().display());
    let out = run_all(&one, false, &[spec]).await;
    let Outcome::Failed(why) = &out[0] else { panic!("{out:?}") };
    assert!(why.contains("no-such-user-here"), "{why}");
    assert_eq!(std::fs::read_dir(other.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn a_failed_files_task_leaves_the_previous_set_whole() {
    let dir = tempfile::tempdir().unwrap();
    let spec = format!("files:dir={}", dir.path().display());
    let one = facts(Some(issued(1)), None);
    run_all(&one, false, std::slice::from_ref(&spec)).await;
    let before: Vec<_> = ["cert.pem", "chain.pem", "fullchain.pem", "privkey.pem"]
        .iter()
        .map(|n| std::fs::read(dir.path().join(n)).unwrap())
        .collect();

    // The key cannot be written (its name is taken by a non-empty directory, so the rename
    // of the last file fails only after everything else was prepared) ...
    std::fs::create_dir(dir.path().join("key-dir")).unwrap();
    std::fs::write(dir.path().join("key-dir/x"), "x").unwrap();
    let blocked = format!("files:dir={},key=key-dir", dir.path().display());
    let two = facts(Some(issued(2)), None);
    let out = run_all(&two, false, &[blocked]).await;
    assert!(matches!(&out[0], Outcome::Failed(_)), "{out:?}");

    // ... and a set whose directory cannot be created fails before touching any file.
    std::fs::write(dir.path().join("plain"), "not a directory").unwrap();
    let out =
        run_all(&two, false, &[format!("files:dir={}", dir.path().join("plain/sub").display())])
            .await;
    let Outcome::Failed(why) = &out[0] else { panic!("{out:?}") };
    assert!(why.contains("cannot create"), "{why}");

    let after: Vec<_> = ["cert.pem", "chain.pem", "fullchain.pem", "privkey.pem"]
        .iter()
        .map(|n| std::fs::read(dir.path().join(n)).unwrap())
        .collect();
    assert_eq!(after, before);
    assert!(leftovers(dir.path()).is_empty(), "left behind: {:?}", leftovers(dir.path()));
}

#[tokio::test]
async fn commands_get_the_facts_and_the_paths_in_their_environment() {
    let dir = tempfile::tempdir().unwrap();
    let env_out = dir.path().join("env.txt");
    let one = facts(Some(issued(0xabc)), None);
    let dump = format!(
        "command:env | grep ^CERTHUB_ | sort > {} && cat \"$CERTHUB_FULLCHAIN_PATH\" >> {}",
        env_out.display(),
        env_out.display()
    );
    let out =
        run_all(&one, false, &[format!("files:dir={}", dir.path().join("ssl").display()), dump])
            .await;
    assert!(out.iter().all(|o| matches!(o, Outcome::Done(_))), "{out:?}");
    let env = std::fs::read_to_string(&env_out).unwrap();
    for want in [
        "CERTHUB_CERT_NAME=web".to_string(),
        "CERTHUB_EVENT=success".into(),
        "CERTHUB_SERIAL=0000000000000abc".into(),
        "CERTHUB_NOT_BEFORE=2023-11-14T22:13:20Z".into(),
        "CERTHUB_DOMAINS=web.test,www.web.test".into(),
        format!("CERTHUB_KEY_PATH={}", dir.path().join("ssl/privkey.pem").display()),
        format!("CERTHUB_FULLCHAIN_PATH={}", dir.path().join("ssl/fullchain.pem").display()),
        "-----BEGIN CERTIFICATE-----".into(),
    ] {
        assert!(env.contains(&want), "{want} missing from:\n{env}");
    }
    assert!(!env.contains("CERTHUB_ERROR"), "{env}");
}

#[tokio::test]
async fn without_a_files_task_a_command_gets_private_files_that_go_away() {
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("seen");
    let one = facts(Some(issued(7)), None);
    let cmd = format!(
        "command:stat -c %a \"$CERTHUB_KEY_PATH\" > {s} && echo \"$CERTHUB_KEY_PATH\" >> {s} && test -s \"$CERTHUB_CERT_PATH\"",
        s = seen.display()
    );
    let out = run_all(&one, false, &[cmd]).await;
    assert!(matches!(&out[0], Outcome::Done(_)), "{out:?}");
    let text = std::fs::read_to_string(&seen).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("600"));
    let key_path = lines.next().unwrap();
    assert!(!Path::new(key_path).exists(), "{key_path} outlived the command");
}

#[tokio::test]
async fn a_failing_command_reports_its_output_and_holds_back_later_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("after");
    let on_failure = dir.path().join("on-failure");
    let one = facts(Some(issued(1)), None);
    let out = run_all(
        &one,
        false,
        &[
            "command:echo nginx: config broken >&2; exit 3".into(),
            format!("command:touch {}", marker.display()),
            format!(
                "command:echo \"$CERTHUB_EVENT $CERTHUB_ERROR\" > {};trigger=on-failure",
                on_failure.display()
            ),
            "command:true;trigger=always".into(),
        ],
    )
    .await;
    let Outcome::Failed(why) = &out[0] else { panic!("{out:?}") };
    assert!(why.contains("exited with status 3") && why.contains("config broken"), "{why}");
    assert_eq!(out[1], Outcome::Skipped);
    assert!(matches!(&out[2], Outcome::Done(_)), "{out:?}");
    assert!(matches!(&out[3], Outcome::Done(_)), "{out:?}");
    assert!(!marker.exists());
    let seen = std::fs::read_to_string(&on_failure).unwrap();
    assert!(seen.starts_with("failure deployment task t failed"), "{seen}");

    // A failed request: on-success tasks are not triggered (nothing is pending for them).
    let failed = facts(Some(issued(1)), Some("the CA said no"));
    let out = run_all(&failed, false, &[format!("command:touch {}", marker.display())]).await;
    assert_eq!(out[0], Outcome::NotTriggered);
}

#[tokio::test]
async fn a_command_past_its_timeout_is_killed_with_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let one = facts(Some(issued(1)), None);
    let spec = format!("command:sleep 300 & echo $! > {}; wait;timeout=1", pid_file.display());
    let started = std::time::Instant::now();
    let out = run_all(&one, false, &[spec]).await;
    assert!(started.elapsed() < Duration::from_secs(60), "the timeout did not end the task");
    let Outcome::Failed(why) = &out[0] else { panic!("{out:?}") };
    assert!(why.contains("did not finish within 1s"), "{why}");
    let pid = std::fs::read_to_string(&pid_file).unwrap().trim().to_string();
    // The background sleep was in the command's process group, so it is gone (or a zombie
    // about to be reaped by init).
    eventually(|| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.split_whitespace().nth(2) == Some("Z"))
            .unwrap_or(true)
    })
    .await;
}

/// Waits up to 10 s for `f` to hold.
async fn eventually(f: impl Fn() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the condition never held");
}

#[tokio::test]
async fn pkcs12_files_open_with_their_password_modern_and_legacy() {
    let dir = tempfile::tempdir().unwrap();
    let one = facts(Some(issued(5)), None);
    for (name, legacy) in [("modern.p12", ""), ("legacy.p12", ",legacy=true")] {
        let path = dir.path().join(name);
        let out = run_all(
            &one,
            false,
            &[format!("pkcs12:file={},password=s3cret{legacy}", path.display())],
        )
        .await;
        assert!(matches!(&out[0], Outcome::Done(_)), "{out:?}");
        assert_eq!(mode(&path), 0o600);
        let der = std::fs::read(&path).unwrap();
        let store = p12_keystore::KeyStore::from_pkcs12(
            &der,
            "s3cret",
            p12_keystore::Pkcs12ImportPolicy::default(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let (_, chain) = store.private_key_chain().expect("a key with its chain");
        assert_eq!(chain.certs()[0].as_der(), &one.issued.as_ref().unwrap().chain_der[0][..]);
        assert!(
            p12_keystore::KeyStore::from_pkcs12(
                &der,
                "wrong",
                p12_keystore::Pkcs12ImportPolicy::default()
            )
            .is_err()
        );
    }
}

#[tokio::test]
async fn a_dry_run_changes_nothing_and_names_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("ssl");
    let marker = dir.path().join("ran");
    let one = facts(Some(issued(1)), None);
    let out = run_all(
        &one,
        true,
        &[format!("files:dir={}", target.display()), format!("command:touch {}", marker.display())],
    )
    .await;
    assert!(matches!(&out[0], Outcome::DryRun(d) if d.starts_with("would ")), "{out:?}");
    assert!(matches!(&out[1], Outcome::DryRun(_)), "{out:?}");
    assert!(!target.exists() && !marker.exists());

    let none = facts(None, None);
    let out = run_all(&none, true, &[format!("files:dir={}", target.display())]).await;
    let Outcome::Failed(why) = &out[0] else { panic!("{out:?}") };
    assert!(why.contains("has not been issued yet"), "{why}");
}

#[derive(Default)]
struct Seen {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// An HTTP server that records one POST and answers with `status`.
async fn hook_server(status: u16) -> (String, Arc<Mutex<Seen>>) {
    use axum::{Router, body::Bytes, http::HeaderMap, http::StatusCode, routing::post};
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = seen.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let s = s.clone();
            async move {
                let mut seen = s.lock().unwrap();
                seen.headers = headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect();
                seen.body = body.to_vec();
                (StatusCode::from_u16(status).unwrap(), "hook says no")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), seen)
}

#[tokio::test]
async fn webhooks_are_signed_and_carry_the_facts() {
    let (url, seen) = hook_server(204).await;
    let one = facts(Some(issued(0x1234)), None);
    let out = run_all(&one, false, &[format!("webhook:url={url},secret=hook-key")]).await;
    assert!(matches!(&out[0], Outcome::Done(_)), "{out:?}");
    let seen = seen.lock().unwrap();
    let header = |name: &str| {
        seen.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default()
    };
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"hook-key");
    let tag = aws_lc_rs::hmac::sign(&key, &seen.body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(header("x-certhub-signature"), format!("sha256={hex}"));
    assert_eq!(header("content-type"), "application/json");
    let body: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(body["event_type"], "cert_deployment");
    assert_eq!(body["cert_name"], "web");
    assert_eq!(body["outcome"], "success");
    assert_eq!(body["serial"], "0000000000001234");
    assert_eq!(body["domains"], serde_json::json!(["web.test", "www.web.test"]));
    assert!(body["fullchain_pem"].as_str().unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(body.get("key").is_none() && !String::from_utf8_lossy(&seen.body).contains("PRIVATE"));
}

#[tokio::test]
async fn a_webhook_answering_an_error_fails_the_task() {
    let (url, _) = hook_server(500).await;
    let one = facts(Some(issued(1)), None);
    let out = run_all(&one, false, &[format!("webhook:url={url},secret=k")]).await;
    let Outcome::Failed(why) = &out[0] else { panic!("{out:?}") };
    assert!(why.contains("500") && why.contains("hook says no"), "{why}");
}
