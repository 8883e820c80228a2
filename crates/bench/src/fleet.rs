//! `fleet`: certhub with a large store (100,000 managed certificates by default), on SQLite
//! and on PostgreSQL. The fleet is synthetic but shaped like a real one: three lifetimes,
//! every state, the CA's renewal windows on most, deployment tasks on two thirds, a renewal
//! policy of their own on some, and names under a few thousand registered domains. It is
//! written through the store's own API, as the hub writes it.
//!
//! Measured: how long the scheduler takes to find what is due; the start-up and the idle
//! memory of `certhub serve`; the list and the pull under 200 concurrent clients (oha), as
//! fast as they go and at half that rate; the certificates page and the dashboard in a real
//! headless Chromium.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use certhub_core::{ChallengeSpec, Identifier};
use certhub_store::{CertRecord, IssuedRecord, RenewalInfoRecord, Store};
use futures::StreamExt as _;
use serde_json::{Value, json};
use tokio::process::Command;

#[derive(Debug, clap::Args)]
pub struct FleetArgs {
    /// The certhub binary to measure.
    #[arg(long)]
    certhub: PathBuf,
    /// Managed certificates in the store.
    #[arg(long, default_value_t = 100_000)]
    certs: usize,
    /// The stores to measure, comma-separated.
    #[arg(long, default_value = "sqlite,postgres", value_delimiter = ',')]
    backends: Vec<String>,
    /// Concurrent clients of the load tool.
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Seconds of load per endpoint.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Write the results here, as a Markdown section.
    #[arg(long)]
    out: PathBuf,
}

/// Internal: fills a store with a synthetic fleet (run under eatmydata for SQLite).
#[derive(Debug, clap::Args)]
pub struct PopulateArgs {
    #[arg(long)]
    data_dir: PathBuf,
    #[arg(long)]
    database: Option<String>,
    #[arg(long)]
    certs: usize,
}

const PASSWORD: &str = "a long enough benchmark password";
const ACCOUNTS: usize = 10;
const DOMAINS: usize = 2_000;
/// One certificate in this many is due when the scheduler looks.
const DUE_ONE_IN: usize = 100;

/// Names of the fleet's certificates.
fn cert_name(i: usize) -> String {
    format!("c{i:06}")
}

/// What one certificate of the fleet looks like, by its number.
struct Shape {
    state: &'static str,
    imported: bool,
    issued: bool,
    revoked: bool,
    expired: bool,
    failing: bool,
    lifetime_days: i64,
}

fn shape(i: usize) -> Shape {
    let kind = i % 100;
    let lifetime_days = match i % 10 {
        0..=5 => 90,
        6..=8 => 45,
        _ => 6,
    };
    Shape {
        state: match kind {
            0..=1 => "pending",
            2..=3 => "failing",
            _ => "valid",
        },
        imported: (7..=8).contains(&kind),
        issued: kind >= 2,
        revoked: kind == 6,
        expired: (4..=5).contains(&kind),
        failing: (0..=3).contains(&kind),
        lifetime_days,
    }
}

pub async fn populate(args: PopulateArgs) -> anyhow::Result<()> {
    let store = Store::open_database(&args.data_dir, args.database.as_deref()).await?;
    let now_s = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let now_ms = now_s * 1000;
    let (chain_pem, key) = sample_chain()?;
    for a in 0..ACCOUNTS {
        store
            .insert_account(&certhub_store::AccountRecord {
                name: format!("le-{a}"),
                directory_url: "https://acme-v02.api.letsencrypt.org/directory".into(),
                ca_bundle_pem: None,
                email: Some(format!("ops{a}@example.com")),
                key_type: "ES256".into(),
                key_pkcs8: zeroize::Zeroizing::new(key.clone()),
                account_url: Some(format!(
                    "https://acme-v02.api.letsencrypt.org/acme/acct/{}",
                    1000 + a
                )),
                status: "valid".into(),
                eab_kid: None,
                created_at: 0,
                updated_at: 0,
            })
            .await?;
    }
    let task = certhub_core::deploy::DeployTask::parse("files:dir=/etc/ssl/certhub", "files")
        .map_err(|e| anyhow::anyhow!("{}: {}", e.spec, e.reason))?;
    let started = Instant::now();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..args.certs)
        .map(|i| {
            let (store, chain_pem, key, task, done) = (&store, &chain_pem, &key, &task, &done);
            async move {
                one_cert(store, i, now_s, now_ms, chain_pem, key, task).await?;
                let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                if n % 10_000 == 0 {
                    eprintln!(
                        "  {n} certificates stored ({:.0} s)",
                        started.elapsed().as_secs_f64()
                    );
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    store.close().await;
    Ok(())
}

/// Writes certificate `i` with its issued certificate, renewal window, deployment task and
/// the scheduler's next look, as the hub would have left them.
async fn one_cert(
    store: &Store,
    i: usize,
    now_s: i64,
    now_ms: i64,
    chain_pem: &str,
    key: &[u8],
    task: &certhub_core::DeployTask,
) -> anyhow::Result<()> {
    let s = shape(i);
    let name = cert_name(i);
    let domain = format!("example{}.test", i % DOMAINS);
    let mut identifiers = vec![Identifier::Dns(format!("{name}.{domain}"))];
    if i.is_multiple_of(3) {
        identifiers.push(Identifier::Dns(format!("www.{name}.{domain}")));
    }
    let day = 86_400;
    let life = s.lifetime_days * day;
    // Somewhere in the first 70% of its life, or past its end when expired.
    let age = if s.expired { life + day } else { (life * 7 / 10) * (i as i64 % 97) / 97 };
    let not_before = now_s - age;
    let cert = CertRecord {
        name: name.clone(),
        account_name: (!s.imported).then(|| format!("le-{}", i % ACCOUNTS)),
        identifiers: identifiers.clone(),
        key_type: "ecdsa-p256".into(),
        challenges: vec![ChallengeSpec::parse("http-01:webroot=/var/www/html")?],
        state: s.state.parse().map_err(|e| anyhow::anyhow!("{e}"))?,
        last_error: s.failing.then(|| "the CA could not be reached".into()),
        renewal_policy: (i.is_multiple_of(5) && s.lifetime_days == 90).then(|| "30d".into()),
        failures: i64::from(s.failing),
        next_attempt_at: s.failing.then_some(now_ms + 6 * 3_600_000),
        ..CertRecord::default()
    };
    store.insert_cert(&cert, None).await?;
    if s.issued {
        let id = store
            .insert_issued(
                &IssuedRecord {
                    id: 0,
                    cert_name: name.clone(),
                    order_id: None,
                    serial_hex: format!("{:032x}", 0x5eed_0000_0000u64 + i as u64),
                    issuer: "CN=R12,O=Let's Encrypt,C=US".into(),
                    sans: identifiers,
                    not_before: not_before * 1000,
                    not_after: (not_before + life) * 1000,
                    chain_pem: chain_pem.to_owned(),
                    key_type: "ecdsa-p256".into(),
                    key_pkcs8: zeroize::Zeroizing::new(key.to_vec()),
                    revoked_at: s.revoked.then_some(now_ms - 3_600_000),
                    revocation_reason: s.revoked.then_some(4),
                    created_at: 0,
                },
                None,
            )
            .await?;
        if i % 10 < 7 && !s.imported {
            // The CA's window: the last third of the life, asked again every 6 hours.
            let start = (not_before + life * 2 / 3) * 1000;
            store
                .set_renewal_info(&RenewalInfoRecord {
                    issued_id: id,
                    window_start: start,
                    window_end: start + 2 * day * 1000,
                    directory_url: "https://acme-v02.api.letsencrypt.org/directory".into(),
                    explanation_url: None,
                    fetched_at: now_ms,
                    next_fetch_at: now_ms + 6 * 3_600_000,
                })
                .await?;
        }
    }
    if !i.is_multiple_of(3) {
        store.add_deploy_tasks(&name, std::slice::from_ref(task), None).await?;
    }
    // When the scheduler looks next: a few now, the rest when they fall due or their
    // window is asked for again.
    let check_at = if i % DUE_ONE_IN == DUE_ONE_IN / 2 {
        now_ms - 60_000
    } else if s.failing {
        now_ms + 6 * 3_600_000
    } else {
        (now_ms + 3_600_000).max((not_before + life * 3 / 4) * 1000)
    };
    let seen = store.cert(&name).await?.context("just stored")?.updated_at;
    let policy = cert.renewal_policy.is_none().then_some("75%");
    store.set_cert_check(&name, check_at, policy, seen).await?;
    Ok(())
}

/// A chain of two real certificates (leaf, CA) and the leaf's PKCS#8 key.
fn sample_chain() -> anyhow::Result<(String, Vec<u8>)> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "R12");
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate()?;
    let leaf = rcgen::CertificateParams::new(vec!["c000000.example0.test".to_string()])?
        .signed_by(&key, &issuer)?;
    Ok((format!("{}{}", leaf.pem(), ca_cert.pem()), key.serialize_der()))
}

/// One backend's figures.
struct Figures {
    backend: String,
    fill_secs: f64,
    due_found: usize,
    due_ms: f64,
    load_all_ms: f64,
    startup_ms: f64,
    idle_rss_mib: f64,
    list: Loads,
    pull: Loads,
    page_ms: f64,
    dashboard_ms: f64,
}

/// What oha reported of one run.
struct Load {
    p50_ms: f64,
    p99_ms: f64,
    per_sec: f64,
    /// Where the machine's CPU went meanwhile.
    cpu: CpuShare,
    /// Requests that failed or had another status than 200, and why (empty: none).
    errors: String,
}

/// Shares of the machine's CPU capacity (all cores over the run), percent: the hub, the
/// database server (PostgreSQL's processes; SQLite runs inside the hub), and everything else
/// that was busy (mostly the load tool).
#[derive(Clone, Copy)]
struct CpuShare {
    hub: f64,
    database: f64,
    rest: f64,
}

/// CPU seconds so far: the hub, PostgreSQL's processes, and the whole machine's busy time.
fn cpu_now(hub: u32) -> (f64, f64, f64) {
    let postgres: f64 = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        // The postmaster's children that ended meanwhile (connections closed) count in
        // its own figure, so the sum never goes back.
        .map(crate::cpu_with_children)
        .sum();
    // /proc/stat's first line: user nice system idle iowait irq softirq steal…, in ticks
    // of 1/100 s.
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // Busy: user, nice, system, irq, softirq (guest time is counted in user already).
    let busy: f64 = [0, 1, 2, 5, 6].iter().filter_map(|&i| ticks.get(i)).sum();
    (crate::cpu_of(hub), postgres, busy / 100.0)
}

/// One endpoint, as fast as the clients can go (each sends its next request when its last is
/// answered), then at half that rate (requests sent on schedule, whatever the answers do).
struct Loads {
    saturated: Load,
    paced: Load,
}

pub async fn fleet(args: FleetArgs) -> anyhow::Result<()> {
    let oha = certhub_testkit::require_tool(
        "oha",
        "cargo install oha --version 1.16.0 --locked (scripts/bench does)",
    );
    let mut all = Vec::new();
    for backend in &args.backends {
        eprintln!("== fleet on {backend}: {} certificates", args.certs);
        all.push(one_backend(&args, backend, &oha).await?);
    }
    let mut md = String::new();
    md.push_str(&format!(
        "{} managed certificates: 90-, 45- and 6-day lifetimes; 90% valid, the rest pending, \
         failing, expired, revoked or imported; a CA renewal window on 70%; a deployment task \
         on two thirds; names under {DOMAINS} registered domains and {ACCOUNTS} accounts; one \
         in {DUE_ONE_IN} due when the scheduler looks. Load: oha with {} connections, {} s per \
         endpoint and mode, on the same 2 cores as the hub. *Saturated*: each connection sends \
         its next request as soon as its last is answered, so the throughput is the most the \
         hub serves, and the latency is mostly time queued behind the other connections. \
         *Half rate*: the same connections send at half the saturated throughput, on a fixed \
         schedule, with latency counted from when each request was due (no coordinated \
         omission). The page times are Chromium's (navigation start to the load event), \
         medians of 5.\n\n",
        args.certs, args.clients, args.seconds
    ));
    figures_header(&mut md, all.iter().map(|f| f.backend.as_str()));
    let mut row = |label: &str, target: &str, cell: &dyn Fn(&Figures) -> String| {
        figures_row(&mut md, &all, label, target, cell);
    };
    row("filling the store (not timed against a target)", "", &|f| format!("{:.0} s", f.fill_secs));
    row("scheduler: find what is due", "< 50 ms", &|f| {
        format!("{:.1} ms ({} found)", f.due_ms, f.due_found)
    });
    row("for comparison: reading every certificate", "", &|f| format!("{:.0} ms", f.load_all_ms));
    row("`certhub serve` start-up (to its first answer)", "", &|f| {
        format!("{:.0} ms", f.startup_ms)
    });
    row("idle `certhub serve` memory (RSS)", "< 100 MiB", &|f| {
        format!("{:.1} MiB", f.idle_rss_mib)
    });
    let load =
        |l: &Load| format!("{:.0}/s, {:.1} / {:.1} ms{}", l.per_sec, l.p50_ms, l.p99_ms, l.errors);
    let paced = |l: &Load| {
        format!("{:.1} / {:.1} ms at {:.0}/s{}", l.p50_ms, l.p99_ms, l.per_sec, l.errors)
    };
    row("API list (50 a page), saturated: throughput, p50 / p99", "p99 < 20 ms", &|f| {
        load(&f.list.saturated)
    });
    row("API list, half rate: p50 / p99", "p99 < 20 ms", &|f| paced(&f.list.paced));
    row(
        "API pull (PEM chain), saturated: throughput, p50 / p99",
        "≥ 5,000/s, p99 < 20 ms",
        &|f| load(&f.pull.saturated),
    );
    row("API pull, half rate: p50 / p99", "p99 < 20 ms", &|f| paced(&f.pull.paced));
    row("CPU while pull is saturated: hub / database server / the rest (oha)", "", &|f| {
        let c = f.pull.saturated.cpu;
        format!("{:.0}% / {:.0}% / {:.0}%", c.hub, c.database, c.rest)
    });
    row("UI certificates page (first of 2,000)", "< 200 ms", &|f| format!("{:.0} ms", f.page_ms));
    row("UI dashboard", "", &|f| format!("{:.0} ms", f.dashboard_ms));
    std::fs::write(&args.out, md)?;
    Ok(())
}

async fn one_backend(args: &FleetArgs, backend: &str, oha: &Path) -> anyhow::Result<Figures> {
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir)?;
    let db = match backend {
        "sqlite" => None,
        "postgres" => Some(certhub_testkit::postgres::TestDatabase::create().await),
        other => bail!("unknown backend {other:?}: sqlite or postgres"),
    };
    let url = db.as_ref().map(|d| d.url.clone());

    // Filled by a child process: for SQLite under eatmydata (the figures are about reading a
    // large store, not about writing one with fsync).
    let started = Instant::now();
    let me = std::env::current_exe()?;
    let mut fill = match backend {
        "sqlite" => {
            let eatmydata = certhub_testkit::require_tool(
                "eatmydata",
                "apt-get install eatmydata (scripts/bench does)",
            );
            let mut c = Command::new(eatmydata);
            c.arg(&me);
            c
        }
        _ => Command::new(&me),
    };
    fill.arg("populate").arg("--data-dir").arg(&data_dir).arg("--certs");
    fill.arg(args.certs.to_string());
    if let Some(url) = &url {
        // Not waiting for each commit to reach the disk while filling.
        let sep = if url.contains('?') { '&' } else { '?' };
        fill.arg("--database").arg(format!("{url}{sep}options=-c%20synchronous_commit%3Doff"));
    }
    let status = fill.status().await?;
    if !status.success() {
        bail!("filling the store failed: {status}");
    }
    let fill_secs = started.elapsed().as_secs_f64();

    // A running PostgreSQL has vacuumed and analysed a table this changed within a minute or
    // so (autovacuum); the fill is measured right after, so it does that first.
    if let Some(url) = &url {
        let psql = certhub_testkit::require_tool("psql", "apt-get install postgresql-client");
        let status = Command::new(psql).arg(url).args(["-qc", "VACUUM ANALYZE"]).status().await?;
        anyhow::ensure!(status.success(), "VACUUM ANALYZE failed: {status}");
    }
    // The scheduler's query, as `renew --due` and the hub run it.
    let store = Store::open_database(&data_dir, url.as_deref()).await?;
    let now_ms = || SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let mut times = Vec::new();
    let mut due_found = 0;
    for _ in 0..20 {
        let t = Instant::now();
        let due = store.certs_to_check(now_ms(), "75%").await?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        due_found = due.len();
    }
    let due_ms = crate::median(times);
    let t = Instant::now();
    let all = store.certs().await?;
    let load_all_ms = t.elapsed().as_secs_f64() * 1000.0;
    anyhow::ensure!(all.len() == args.certs, "{} certificates stored", all.len());
    drop(all);
    // The hub measured idle has nothing due (no CA to reach here).
    for name in store.certs_to_check(now_ms(), "75%").await? {
        let seen = store.cert(&name).await?.context("listed")?.updated_at;
        store.set_cert_check(&name, now_ms() + 86_400_000, Some("75%"), seen).await?;
    }
    store.close().await;

    // Start-up: from the spawn to the first answer of its health endpoint.
    let port = certhub_testkit::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder().no_proxy().build()?;
    let mut cmd = Command::new(&args.certhub);
    cmd.arg("--data-dir").arg(&data_dir);
    if let Some(url) = &url {
        cmd.arg("--database").arg(url);
    }
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--check-interval", "3600"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let t = Instant::now();
    let mut hub = cmd.spawn()?;
    let pid = hub.id().context("the hub's pid")?;
    answering(&http, &base, &mut hub).await?;
    let startup_ms = t.elapsed().as_secs_f64() * 1000.0;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_rss_mib = rss_kib(pid)? as f64 / 1024.0;

    let token = admin_token(&http, &base, &data_dir).await?;

    let urls = dir.path().join("pull-urls");
    std::fs::write(&urls, pull_urls(&base, args.certs))?;
    let list_url = format!("{base}/api/v1/certificates?page=1&per_page=50");
    let list = load(oha, args, &token, pid, Target::Url(&list_url)).await?;
    let pull = load(oha, args, &token, pid, Target::UrlsFrom(&urls)).await?;

    let (page_ms, dashboard_ms) = browser_times(&base).await?;
    hub.kill().await?;
    drop(db);
    Ok(Figures {
        backend: if backend == "sqlite" { "SQLite".into() } else { "PostgreSQL".into() },
        fill_secs,
        due_found,
        due_ms,
        load_all_ms,
        startup_ms,
        idle_rss_mib,
        list,
        pull,
        page_ms,
        dashboard_ms,
    })
}

/// Pulls of random issued certificates of the fleet, one URL a line (repeatable: a fixed
/// sequence).
fn pull_urls(base: &str, certs: usize) -> String {
    let mut out = String::new();
    let mut lines = 0;
    for k in 0u64.. {
        if lines == 50_000 {
            break;
        }
        let i = (crate::renewals::mix(42 + k) % certs as u64) as usize;
        if shape(i).issued {
            out.push_str(&format!("{base}/api/v1/certificates/{}/pull\n", cert_name(i)));
            lines += 1;
        }
    }
    out
}

/// What a load runs against.
enum Target<'a> {
    Url(&'a str),
    /// A file of URLs, taken in turn.
    UrlsFrom(&'a Path),
}

/// The endpoint saturated, then at half the throughput it reached.
async fn load(
    oha: &Path,
    args: &FleetArgs,
    token: &str,
    hub: u32,
    target: Target<'_>,
) -> anyhow::Result<Loads> {
    let saturated = run_oha(oha, args, token, hub, &target, None).await?;
    let rate = (saturated.per_sec / 2.0).max(1.0) as u64;
    let paced = run_oha(oha, args, token, hub, &target, Some(rate)).await?;
    Ok(Loads { saturated, paced })
}

async fn run_oha(
    oha: &Path,
    args: &FleetArgs,
    token: &str,
    hub: u32,
    target: &Target<'_>,
    rate: Option<u64>,
) -> anyhow::Result<Load> {
    let mut cmd = Command::new(oha);
    cmd.args(["-c", &args.clients.to_string(), "-z", &format!("{}s", args.seconds)]);
    cmd.args(["--no-tui", "--output-format", "json"]);
    cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
    if let Some(q) = rate {
        cmd.args(["-q", &q.to_string(), "--latency-correction"]);
    }
    match target {
        Target::Url(url) => cmd.arg(url),
        Target::UrlsFrom(file) => cmd.arg("--urls-from-file").arg(file),
    };
    let (before, t) = (cpu_now(hub), Instant::now());
    let out = cmd.stderr(Stdio::inherit()).output().await?;
    let (after, wall) = (cpu_now(hub), t.elapsed().as_secs_f64());
    let capacity =
        wall * std::thread::available_parallelism().map_or(1, |n| n.get()) as f64 / 100.0;
    let (hub_s, db_s, busy_s) = (after.0 - before.0, after.1 - before.1, after.2 - before.2);
    let cpu = CpuShare {
        hub: hub_s / capacity,
        database: db_s / capacity,
        rest: (busy_s - hub_s - db_s).max(0.0) / capacity,
    };
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    anyhow::ensure!(out.status.success(), "oha failed: {text}");
    let v: Value = serde_json::from_str(&text).with_context(|| format!("oha's output: {text}"))?;
    let ms = |p: &str| {
        v["latencyPercentiles"][p].as_f64().map(|s| s * 1000.0).with_context(|| format!("oha: {p}"))
    };
    // Requests cut off by the end of the run are not failures.
    let mut errors = Vec::new();
    if let Some(codes) = v["statusCodeDistribution"].as_object() {
        for (code, n) in codes.iter().filter(|(code, _)| code.as_str() != "200") {
            errors.push(format!("{n} × {code}"));
        }
    }
    if let Some(kinds) = v["errorDistribution"].as_object() {
        for (kind, n) in kinds.iter().filter(|(k, _)| !k.contains("deadline")) {
            errors.push(format!("{n} × {kind}"));
        }
    }
    Ok(Load {
        p50_ms: ms("p50")?,
        p99_ms: ms("p99")?,
        per_sec: v["summary"]["requestsPerSec"].as_f64().context("oha: requestsPerSec")?,
        cpu,
        errors: if errors.is_empty() {
            String::new()
        } else {
            format!(" (failed: {})", errors.join(", "))
        },
    })
}

/// Chromium's time from navigation start to the load event: the certificates page and the
/// dashboard, medians of 5 loads each, signed in.
async fn browser_times(base: &str) -> anyhow::Result<(f64, f64)> {
    let browser = certhub_testkit::browser::Browser::start(1280, 900).await;
    browser.goto(&format!("{base}/login")).await;
    browser.fill("#username", "admin").await;
    browser.fill("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_text("h1", "Dashboard", Duration::from_secs(60)).await;
    let mut out = Vec::new();
    for (path, heading) in [("/certificates", "Certificates"), ("/", "Dashboard")] {
        let mut times = Vec::new();
        for _ in 0..5 {
            browser.goto(&format!("{base}{path}")).await;
            browser.wait_for_text("h1", heading, Duration::from_secs(60)).await;
            // The load event may come a moment after the heading.
            let mut ms = Value::Null;
            for _ in 0..100 {
                ms = browser
                    .script(
                        "const n = performance.getEntriesByType('navigation')[0]; \
                         return n.loadEventEnd > 0 ? n.loadEventEnd - n.startTime : null;",
                        json!([]),
                    )
                    .await;
                if !ms.is_null() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            times.push(ms.as_f64().context("the page's load time")?);
        }
        out.push(crate::median(times));
    }
    Ok((out[0], out[1]))
}

/// The header of a table of figures: what is measured, its target, then a column for each
/// of `columns` (a backend each).
pub(crate) fn figures_header<'a>(md: &mut String, columns: impl Iterator<Item = &'a str>) {
    let columns: Vec<&str> = columns.collect();
    md.push_str("| | target |");
    for c in &columns {
        md.push_str(&format!(" {c} |"));
    }
    md.push_str("\n|---|---|");
    md.push_str(&"---|".repeat(columns.len()));
    md.push('\n');
}

/// A row of a table of figures: `label`, `target`, and `cell` of each of `all`.
pub(crate) fn figures_row<F>(
    md: &mut String,
    all: &[F],
    label: &str,
    target: &str,
    cell: &dyn Fn(&F) -> String,
) {
    md.push_str(&format!("| {label} | {target} |"));
    for f in all {
        md.push_str(&format!(" {} |", cell(f)));
    }
    md.push('\n');
}

/// Waits until the hub at `base`, just spawned as `hub`, answers its health endpoint (at most
/// 2 minutes); fails if it exits first.
pub(crate) async fn answering(
    http: &reqwest::Client,
    base: &str,
    hub: &mut tokio::process::Child,
) -> anyhow::Result<()> {
    let t = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{base}/api/v1/health")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if let Some(status) = hub.try_wait()? {
            bail!("certhub serve exited: {status}");
        }
        anyhow::ensure!(t.elapsed() < Duration::from_secs(120), "the hub did not answer");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Sets up a new hub at `base` (its setup token in `data_dir`) with an admin, and signs in:
/// an API token, as a person would make them.
pub(crate) async fn admin_token(
    http: &reqwest::Client,
    base: &str,
    data_dir: &Path,
) -> anyhow::Result<String> {
    let setup_token = std::fs::read_to_string(data_dir.join("setup-token"))?;
    let r = http
        .post(format!("{base}/api/v1/setup"))
        .json(&json!({"token": setup_token.trim(), "username": "admin", "password": PASSWORD}))
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "setup: {}", r.text().await?);
    let token: Value = http
        .post(format!("{base}/api/v1/tokens"))
        .json(&json!({"username": "admin", "password": PASSWORD}))
        .send()
        .await?
        .json()
        .await?;
    Ok(token["token"].as_str().context("a token")?.to_string())
}

/// The process's resident memory, KiB.
pub(crate) fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS")
}
