//! Faults beneath and beside certhub: the disk of the data directory fills up; the database
//! server restarts in the middle of renewals; the connection to the CA fails in every way.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use certhub_testkit::require_tool;

use crate::support::{Env, assert_issued_once_each, call, hostile, issued_at_ca, job_done};

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
async fn a_database_restart_during_renewals_loses_nothing_once_it_is_back() {
    const CERTS: usize = 16;
    // A server of the test's own, so that restarting it touches no other test.
    let server = certhub_testkit::postgres::PostgresServer::start().await;
    let mut env = Env::start(hostile()).await;
    env.database = Some(certhub_testkit::postgres::TestDatabase::create_on(&server.url).await);
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
    // The server restarted, slowly: stopped (every connection ended), and started again
    // 35 s later, longer than the hub waits for a connection (30 s), so that what it tries
    // meanwhile fails rather than waits, whatever it was doing when the server stopped.
    server.down();
    tokio::time::sleep(Duration::from_secs(35)).await;
    server.up();
    let store = env.store().await;
    let names: Vec<String> = (0..CERTS).map(|i| format!("o{i}")).collect();
    let back = std::time::Instant::now();
    certhub_testkit::wait_until("every certificate issued", Duration::from_secs(300), || async {
        let mut missing = Vec::new();
        for name in &names {
            if store.latest_issued(name).await.ok().flatten().is_none() {
                missing.push(name.as_str());
            }
        }
        let waited = back.elapsed();
        assert!(
            waited < Duration::from_secs(240),
            "{missing:?} not issued {waited:?} after the server was back; the hub said:\n{}",
            hub.logged()
        );
        missing.is_empty().then_some(())
    })
    .await;
    let took = back.elapsed();
    // It said what failed meanwhile, and is ready again.
    let said = hub.logged();
    let warned = said.lines().filter(|l| l.contains("WARN")).count();
    let failed: Vec<&str> =
        said.lines().filter_map(|l| l.split(" failed failed=").nth(1)).collect();
    eprintln!(
        "restart: every certificate issued {took:?} after the server was back; {warned} \
         warnings; failed in renewal runs: {failed:?}"
    );
    assert!(
        said.contains("WARN") && said.contains("database"),
        "the hub said nothing of the outage:\n{said}"
    );
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let ready = http.get(hub.url("/api/v1/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    // Each certificate was issued once, counted at the CA.
    assert_issued_once_each(&store, &env.pebble.log(), &names).await;
    // The outage was certhub's failure, not the requests': none was counted on the backoff
    // table (which would have held the certificate back a minute or more).
    for name in &names {
        for e in store.events_for(name).await.unwrap() {
            if e.kind == certhub_store::EventKind::Failed {
                let detail = e.detail.unwrap_or_else(|| panic!("{name}: a failure without why"));
                assert!(!detail.contains("in a row"), "{name}: {detail}");
            }
        }
    }
    store.close().await;
}

/// Faults between certhub and the CA, injected by a proxy in front of Pebble: no answer
/// (before and after the CA acted), cut-off answers, 500, 503 and 429 with Retry-After, a
/// request that hangs past the client's timeout, and a CA that fails every request for a
/// while. Certificates are requested one after another, so each retry can be matched to
/// the request it repeats.
#[tokio::test(flavor = "multi_thread")]
async fn faults_between_certhub_and_the_ca_cost_time_but_never_a_second_order() {
    use certhub_testkit::fault_proxy::{Fault, FaultProxy, Seen, classify};
    const CERTS: usize = 6;
    let env = Env::start(certhub_testkit::pebble::PebbleOptions::default()).await;
    let (cert_pem, key_pem) = env.pebble.listener_identity();
    let proxy = FaultProxy::start(
        env.pebble.origin(),
        &env.pebble.listener_ca_pem,
        &cert_pem,
        &key_pem,
        vec![Fault::None],
    )
    .await;
    let directory = proxy.directory_url(&env.pebble.directory_url);
    let bundle = env.ca_bundle();
    env.ok(&[
        "account",
        "add",
        "le",
        "--directory",
        &directory,
        "--ca-bundle",
        &bundle,
        "--email",
        "ops@example.com",
        "--agree-tos",
    ])
    .await;
    let names: Vec<String> = (0..CERTS).map(|i| format!("f{i}")).collect();
    for name in &names {
        env.add_http01(name, "le", &format!("{name}.faults.test")).await;
    }

    // Without faults, what one certificate costs.
    let before = proxy.seen().len();
    env.ok(&["cert", "request", "f0"]).await;
    let baseline = proxy.seen().len() - before;

    // Every third request meets a fault, each kind in turn.
    let faults = [
        Fault::ResetBefore,
        Fault::Status(503, Some(2)),
        Fault::Truncate,
        Fault::Status(500, None),
        Fault::ResetAfter,
        Fault::Status(429, Some(3)),
    ];
    let schedule: Vec<Fault> = faults.iter().flat_map(|f| [Fault::None, Fault::None, *f]).collect();
    proxy.set_schedule(schedule);
    // And answers lost where sending again is not the same as sending once: a second
    // newOrder places another order, a second finalize or challenge answer is refused.
    for kind in ["newOrder", "challenge", "finalize"] {
        proxy.fault_next(kind, Fault::ResetAfter);
    }
    let start = proxy.seen().len();
    for name in &names[1..CERTS - 2] {
        env.ok(&["cert", "request", name]).await;
    }
    let faulty: Vec<Seen> = proxy.seen()[start..].to_vec();

    // A CA that fails everything: the request gives up after three tries again (about 7 s),
    // exits as transient, and says what the CA answered.
    let name = &names[CERTS - 2];
    proxy.set_schedule(vec![Fault::Status(503, None)]);
    let down = proxy.seen().len();
    let said = env.fails(5, &["cert", "request", name]).await;
    assert!(said.contains("503"), "{said}");
    let tries = proxy.seen().len() - down;
    assert_eq!(tries, 4, "one try and three again, no more: {:#?}", &proxy.seen()[down..]);
    // Once it is back, the same certificate is issued.
    proxy.set_schedule(vec![Fault::None]);
    env.ok(&["cert", "request", name]).await;

    // A request that hangs: the client's timeout (5 s here) ends it and it is tried again.
    proxy.set_schedule(
        std::iter::once(Fault::Stall(Duration::from_secs(8)))
            .chain(std::iter::repeat_n(Fault::None, 1000))
            .collect(),
    );
    let stalled = proxy.seen().len();
    env.ok(&["cert", "request", &names[CERTS - 1], "--acme-timeout", "5"]).await;
    let after_stall = &proxy.seen()[stalled..];
    let gap = after_stall[1].at - after_stall[0].at;
    assert!(
        after_stall[1].path == after_stall[0].path && gap >= Duration::from_secs(5),
        "the stalled request was tried again after {gap:?}: {after_stall:#?}"
    );

    // Every certificate is issued, once, counted at the CA.
    let store = env.store().await;
    assert_issued_once_each(&store, &env.pebble.log(), &names).await;
    store.close().await;

    // Each kind of fault was met.
    for f in faults {
        let n = faulty.iter().filter(|s| s.fault == f).count();
        assert!(n >= 1, "no request met {f:?}");
    }
    // Nothing was ordered twice: one finalize per certificate reached the CA, and every
    // order beyond one per certificate follows a newOrder whose answer was lost.
    let all = proxy.seen();
    let reached = |s: &Seen, kind: &str| {
        classify(&s.path, &s.method) == kind && s.upstream_status.is_some_and(|c| c < 300)
    };
    assert_eq!(all.iter().filter(|s| reached(s, "finalize")).count(), CERTS);
    let orders = all.iter().filter(|s| reached(s, "newOrder")).count();
    let lost = all
        .iter()
        .filter(|s| {
            reached(s, "newOrder") && matches!(s.fault, Fault::ResetAfter | Fault::Truncate)
        })
        .count();
    assert_eq!(orders, CERTS + lost, "orders placed beyond the lost answers");
    assert!(lost >= 1, "no newOrder answer was lost");
    // The CA refused the finalize and the challenge answer sent again, as already done;
    // certhub read the order and the challenge back instead of failing.
    for kind in ["challenge", "finalize"] {
        let i = all
            .iter()
            .position(|s| reached(s, kind) && s.fault == Fault::ResetAfter)
            .unwrap_or_else(|| panic!("no {kind} answer was lost after the CA acted on it"));
        let again = all[i + 1..].iter().find(|s| s.path == all[i].path).unwrap();
        let refused = again.upstream_status.is_some_and(|c| (400..500).contains(&c));
        assert!(refused, "the {kind} sent again was not refused: {again:?}");
    }

    // Retry-After was honoured, and no fault was tried again at once: the next request for
    // the same resource came after the CA's Retry-After, or at least a second later.
    for (i, s) in faulty.iter().enumerate().filter(|(_, s)| s.fault != Fault::None) {
        let Some(next) = faulty[i + 1..].iter().find(|n| n.path == s.path && n.method == s.method)
        else {
            panic!("{s:?} was never tried again");
        };
        let least = Duration::from_secs(s.retry_after.unwrap_or(1));
        assert!(next.at - s.at >= least, "{s:?} was tried again after {:?}", next.at - s.at);
    }
    // No loop: the faults cost at most a try again each.
    let injected = faulty.iter().filter(|s| s.fault != Fault::None).count();
    assert!(
        faulty.len() <= (CERTS - 3) * baseline + 2 * injected,
        "{} requests for {} certificates ({baseline} each without faults, {injected} faults)",
        faulty.len(),
        CERTS - 3
    );
    // Answers lost after the CA acted on the account and on a certificate: the key rollover
    // and the revocation sent again are refused as done, and certhub takes them as done.
    let before = proxy.seen().len();
    proxy.fault_next("keyChange", Fault::ResetAfter);
    env.ok(&["account", "rollover", "le"]).await;
    proxy.fault_next("revoke", Fault::ResetAfter);
    env.ok(&["cert", "revoke", &names[0]]).await;
    let tail = &proxy.seen()[before..];
    for kind in ["keyChange", "revoke"] {
        let sent: Vec<&Seen> =
            tail.iter().filter(|s| classify(&s.path, &s.method) == kind).collect();
        assert!(
            sent.len() == 2 && sent[1].upstream_status.is_some_and(|c| (400..500).contains(&c)),
            "the {kind} was not sent again and refused: {sent:#?}"
        );
    }
    assert_eq!(env.show(&names[0]).await["state"], "revoked");
    // The account signs with its new key.
    env.ok(&["cert", "request", &names[0]]).await;

    let kinds: Vec<String> = faults
        .iter()
        .map(|f| format!("{f:?} {}", faulty.iter().filter(|s| s.fault == *f).count()))
        .collect();
    eprintln!(
        "faults: {injected} injected over {} requests for {} certificates ({baseline} each \
         without faults): {}; {lost} newOrder answers lost; {} requests in all",
        faulty.len(),
        CERTS - 3,
        kinds.join(", "),
        all.len()
    );
}
