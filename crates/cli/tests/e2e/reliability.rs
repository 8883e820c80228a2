//! Faults beneath certhub: the disk of the data directory fills up; the database goes away
//! in the middle of renewals.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use certhub_testkit::require_tool;

use crate::support::{Env, call, hostile, issued_at_ca, job_done};

/// A small tmpfs mounted over a directory, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> SmallDisk {
        let mount = require_tool("mount", "apt-get install mount");
        let out = std::process::Command::new(mount)
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mounting a small tmpfs needs root (CAP_SYS_ADMIN): run the suite as root ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        SmallDisk(dir.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` with a file; the file.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    loop {
        match file.write_all(&chunk).and_then(|()| file.flush()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => return path,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_refuses_changes_saying_so_keeps_serving_reads_and_loses_nothing() {
    let env = Env::start(hostile()).await;
    let _disk = SmallDisk::mount(env.data_dir(), "32m");
    env.account("le", &[]).await;
    env.add_http01("a", "le", "a.full.test").await;
    env.add_http01("b", "le", "b.full.test").await;
    env.ok(&["cert", "request", "a"]).await;
    let serial = env.show("a").await["serial"].clone();
    // Backing off, the hub's renewal service leaves them to the requests below.
    env.back_off("b").await;
    let port = env.pebble.http_port.to_string();
    let hub = env.serve(&["--check-interval", "3600", "--probe-http-port", &port], true).await;
    let token = hub.admin_token().await;

    let filler = fill(env.data_dir());
    // A change is refused, saying why and what to do.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let rsp = http
        .post(hub.url("/api/v1/certificates/b/request"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 507);
    let problem: serde_json::Value = rsp.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("no room left"), "{problem}");
    // So does the CLI, as a failure that may pass (exit 5), with what to do.
    let out = env.run(&["cert", "request", "b"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains("disk is full") && err.contains("free space"), "{err}");
    // What is there is still served.
    let list = call(&hub, &token, "GET", "/api/v1/certificates", None).await;
    assert!(list.to_string().contains("a.full.test"), "{list}");
    let pulled =
        http.get(hub.url("/api/v1/certificates/a/pull")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(pulled.status(), 200);

    // Once there is room, the same request succeeds, and nothing was lost.
    std::fs::remove_file(filler).unwrap();
    let rsp = call(&hub, &token, "POST", "/api/v1/certificates/b/request", None).await;
    let id = rsp["job"]["id"].as_str().unwrap_or_else(|| panic!("{rsp}"));
    let job = job_done(&hub, &token, id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(env.show("a").await["serial"], serial);
    env.verify_issued("b", &["b.full.test"]).await;
    env.ok(&["audit", "verify"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_outage_during_renewals_loses_nothing_once_it_is_back() {
    const CERTS: usize = 16;
    let mut env = Env::start(hostile()).await;
    env.database = Some(certhub_testkit::postgres::TestDatabase::create().await);
    env.account("le", &[]).await;
    let dns = env.rfc2136();
    for i in 0..CERTS {
        env.add_cert(&format!("o{i}"), "le", &format!("o{i}.test"), &dns).await;
    }
    let hub = env.serve(&["--check-interval", "3600", "--renewal-workers", "2"], true).await;
    certhub_testkit::wait_until("3 certificates issued", Duration::from_secs(60), || async {
        (issued_at_ca(&env.pebble.log()).len() >= 3).then_some(())
    })
    .await;
    // As a restart of the server does: every connection ended, new ones refused a while.
    env.database.as_ref().unwrap().outage(Duration::from_secs(5)).await;
    let store = env.store().await;
    let names: Vec<String> = (0..CERTS).map(|i| format!("o{i}")).collect();
    certhub_testkit::wait_until("every certificate issued", Duration::from_secs(240), || async {
        for name in &names {
            store.latest_issued(name).await.ok()??;
        }
        Some(())
    })
    .await;
    // It said what failed meanwhile, and is ready again.
    let said = hub.logged();
    assert!(
        said.contains("WARN") && said.contains("database"),
        "the hub said nothing of the outage:\n{said}"
    );
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let ready = http.get(hub.url("/api/v1/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    // Each certificate was issued once, counted at the CA.
    let at_ca: BTreeSet<String> = issued_at_ca(&env.pebble.log()).into_iter().collect();
    let mut stored = BTreeSet::new();
    for name in &names {
        let history = store.issued_for(name).await.unwrap();
        assert_eq!(history.len(), 1, "{name} was issued {} times", history.len());
        stored.insert(history[0].serial_hex.trim_start_matches('0').to_lowercase());
    }
    assert_eq!(at_ca, stored, "the CA issued certificates the hub did not keep");
    store.close().await;
}
