//! `agents`: one `certhub serve --agent-listen` and N agents (real mutual-TLS connections,
//! each with its own key and the certificate the hub signed for it, all in this process),
//! on SQLite and on PostgreSQL. Measured: the hub's memory per connected agent above its
//! idle figure; from a renewal (a new certificate imported through the API) to every
//! agent having fetched it and reported it deployed; and after a restart of the hub, the
//! time until every agent is connected again, with the connections refused after the hub
//! listened again (none is the target).
//!
//! An agent here does what `certhub agent run` does on the wire (stream, fetch, report) but
//! runs no tasks: the figures are the hub's.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use certhub_core::agent::{Assignment, DeployReport, DeployState, Push};
use futures::StreamExt as _;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

#[derive(Debug, clap::Args)]
pub struct AgentsArgs {
    /// The certhub binary to measure.
    #[arg(long)]
    certhub: std::path::PathBuf,
    /// Agents connected at once.
    #[arg(long, default_value_t = 2000)]
    agents: usize,
    /// The stores to measure, comma-separated.
    #[arg(long, default_value = "sqlite,postgres", value_delimiter = ',')]
    backends: Vec<String>,
    /// Write the results here, as a Markdown section.
    #[arg(long)]
    out: std::path::PathBuf,
}

const CERT: &str = "fleet-web";

/// What one backend gave.
struct Figures {
    backend: &'static str,
    join_secs: f64,
    idle_rss_kib: u64,
    connected_rss_kib: u64,
    connect_secs: f64,
    first_deploy_secs: f64,
    renewal_p50: f64,
    renewal_p99: f64,
    renewal_all: f64,
    restart_all: f64,
    refused_after_listening: u64,
    other_errors: u64,
}

pub async fn agents(args: AgentsArgs) -> anyhow::Result<()> {
    let mut all = Vec::new();
    for backend in &args.backends {
        eprintln!("== agents on {backend}: {}", args.agents);
        all.push(one_backend(&args, backend).await?);
    }
    let n = args.agents;
    let mut md = format!(
        "{n} agents on one hub: each a real mutual-TLS connection with its own key and the \
         certificate the hub's agent authority signed for it, all held by one benchmark process \
         on the same 2 cores as the hub. Each agent keeps its push stream open; told of a \
         certificate it does not have, it fetches it (with its key) and reports it deployed, as \
         `certhub agent run` does, without running tasks. The renewal is a new certificate \
         imported through the API for a certificate that targets every agent by label; its \
         time runs from the import's request to each agent's report being stored. The restart \
         is a SIGTERM and a new `certhub serve` on the same store; agents reconnect with \
         `certhub agent run`'s jittered backoff (0.5 s doubling to 10 s).\n\n"
    );
    crate::fleet::figures_header(&mut md, all.iter().map(|f| f.backend));
    let mut row = |label: &str, target: &str, cell: &dyn Fn(&Figures) -> String| {
        crate::fleet::figures_row(&mut md, &all, label, target, cell);
    };
    row(&format!("joining {n} agents, 16 at once (not against a target)"), "", &|f| {
        format!("{:.1} s", f.join_secs)
    });
    row("hub memory (RSS), idle with every agent joined", "", &|f| {
        format!("{:.1} MiB", f.idle_rss_kib as f64 / 1024.0)
    });
    row(&format!("hub memory with {n} agents connected"), "", &|f| {
        format!("{:.1} MiB", f.connected_rss_kib as f64 / 1024.0)
    });
    row("memory per connected agent above idle", "< 100 KiB", &|f| {
        let per = f.connected_rss_kib.saturating_sub(f.idle_rss_kib) as f64 / n as f64;
        format!("{per:.1} KiB")
    });
    row(&format!("all {n} connected (not against a target)"), "", &|f| {
        format!("{:.1} s", f.connect_secs)
    });
    row("the current certificate delivered to every new agent", "", &|f| {
        format!("{:.1} s", f.first_deploy_secs)
    });
    row("renewal to deployed on each agent: p50 / p99", "p99 < 5 s", &|f| {
        format!("{:.2} s / {:.2} s", f.renewal_p50, f.renewal_p99)
    });
    row("renewal to deployed on every agent", "", &|f| format!("{:.2} s", f.renewal_all));
    row("hub restart to every agent connected again", "< 30 s", &|f| {
        format!("{:.1} s", f.restart_all)
    });
    row("connections refused after the restarted hub listened", "0", &|f| {
        format!("{} (other errors: {})", f.refused_after_listening, f.other_errors)
    });
    std::fs::write(&args.out, md)?;
    Ok(())
}

/// The hub under test.
struct HubProcess {
    child: Child,
    base: String,
    agent_listen: String,
}

impl HubProcess {
    async fn start(
        certhub: &Path,
        data_dir: &Path,
        url: Option<&str>,
        agent_listen: &str,
    ) -> anyhow::Result<Self> {
        let port = certhub_testkit::free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut cmd = Command::new(certhub);
        cmd.arg("--data-dir").arg(data_dir);
        if let Some(url) = url {
            cmd.arg("--database").arg(url);
        }
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--check-interval", "3600"])
            .args(["--agent-listen", agent_listen])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd.spawn()?;
        let http = reqwest::Client::builder().no_proxy().build()?;
        crate::fleet::answering(&http, &base, &mut child).await?;
        Ok(Self { child, base, agent_listen: agent_listen.to_string() })
    }

    fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("the hub's pid")
    }

    /// SIGTERM, and the wait for it to end.
    async fn stop(mut self) -> anyhow::Result<()> {
        let pid = self.pid()?;
        Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await?;
        tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .context("the hub did not stop within 60 s")??;
        Ok(())
    }
}

/// What the agents see, shared.
#[derive(Default)]
struct Shared {
    /// Agents with a stream open (they had its first line).
    connected: AtomicUsize,
    /// The serial each agent should deploy now, and when the count of those that have.
    target_serial: std::sync::Mutex<String>,
    deployed_at: std::sync::Mutex<Vec<Instant>>,
    /// Stream attempts refused (the hub not listening) after `listening` was set.
    listening: AtomicBool,
    refused_after_listening: AtomicU64,
    other_errors: AtomicU64,
}

struct SimAgent {
    client: reqwest::Client,
    url: String,
}

async fn one_backend(args: &AgentsArgs, backend: &str) -> anyhow::Result<Figures> {
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("data");
    let db = match backend {
        "sqlite" => None,
        "postgres" => Some(certhub_testkit::postgres::TestDatabase::create().await),
        other => bail!("unknown backend {other:?}: sqlite or postgres"),
    };
    let url = db.as_ref().map(|d| d.url.clone());
    let agent_listen = format!("127.0.0.1:{}", certhub_testkit::free_port());
    let hub = HubProcess::start(&args.certhub, &data_dir, url.as_deref(), &agent_listen).await?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let base = hub.base.clone();
    let admin = crate::fleet::admin_token(&http, &base, &data_dir).await?;

    // The certificate every agent deploys.
    import(&http, &base, &admin).await?;
    let r = http
        .put(format!("{base}/api/v1/certificates/{CERT}/targets"))
        .bearer_auth(&admin)
        .json(&json!({"targets": ["label:fleet=web"]}))
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "targets: {}", r.text().await?);

    // Joining: a token, a key and a CSR, and the hub's answer, for each agent.
    let t = Instant::now();
    let agents: Vec<Arc<SimAgent>> = futures::stream::iter(0..args.agents)
        .map(|i| {
            let (http, base, admin) = (http.clone(), base.clone(), admin.clone());
            async move { join(&http, &base, &admin, i).await }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let join_secs = t.elapsed().as_secs_f64();
    // Idle: a fresh hub with every agent joined and none connected (what joining allocated
    // and kept in its allocator's free lists is not the agents' connections).
    hub.stop().await?;
    let hub = HubProcess::start(&args.certhub, &data_dir, url.as_deref(), &agent_listen).await?;
    let base = hub.base.clone();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_rss_kib = crate::fleet::rss_kib(hub.pid()?)?;

    // Every agent connects; each deploys the current certificate at once.
    let shared = Arc::new(Shared::default());
    let current = serial(&http, &base, &admin).await?;
    shared.target_serial.lock().unwrap().clone_from(&current);
    shared.listening.store(true, Ordering::SeqCst);
    let t = Instant::now();
    for a in &agents {
        tokio::spawn(run_agent(a.clone(), shared.clone()));
    }
    let n = args.agents;
    wait(&shared, "every agent to connect", |s| s.connected.load(Ordering::SeqCst) == n).await?;
    let connect_secs = t.elapsed().as_secs_f64();
    wait(&shared, "every agent to deploy", |s| s.deployed_at.lock().unwrap().len() == n).await?;
    let first_deploy_secs = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let connected_rss_kib = crate::fleet::rss_kib(hub.pid()?)?;

    // A renewal: a new certificate imported, pushed to every agent.
    shared.deployed_at.lock().unwrap().clear();
    let t = Instant::now();
    import(&http, &base, &admin).await?;
    let renewed = serial(&http, &base, &admin).await?;
    *shared.target_serial.lock().unwrap() = renewed;
    wait(&shared, "every agent to deploy the renewal", |s| {
        s.deployed_at.lock().unwrap().len() == n
    })
    .await?;
    let mut times: Vec<f64> = shared
        .deployed_at
        .lock()
        .unwrap()
        .iter()
        .map(|d| d.duration_since(t).as_secs_f64())
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| times[((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1];
    let (renewal_p50, renewal_p99, renewal_all) = (pct(0.5), pct(0.99), pct(1.0));

    // A restart: every agent reconnects to the new hub.
    shared.listening.store(false, Ordering::SeqCst);
    hub.stop().await?;
    wait(&shared, "every stream to end", |s| s.connected.load(Ordering::SeqCst) == 0).await?;
    let t = Instant::now();
    let hub = HubProcess::start(&args.certhub, &data_dir, url.as_deref(), &agent_listen).await?;
    shared.listening.store(true, Ordering::SeqCst);
    wait(&shared, "every agent to reconnect", |s| s.connected.load(Ordering::SeqCst) == n).await?;
    let restart_all = t.elapsed().as_secs_f64();
    let refused_after_listening = shared.refused_after_listening.load(Ordering::SeqCst);
    let other_errors = shared.other_errors.load(Ordering::SeqCst);
    let mut hub = hub;
    hub.child.kill().await?;
    drop(hub.agent_listen);
    drop(db);
    Ok(Figures {
        backend: if backend == "sqlite" { "SQLite" } else { "PostgreSQL" },
        join_secs,
        idle_rss_kib,
        connected_rss_kib,
        connect_secs,
        first_deploy_secs,
        renewal_p50,
        renewal_p99,
        renewal_all,
        restart_all,
        refused_after_listening,
        other_errors,
    })
}

async fn wait(
    shared: &Arc<Shared>,
    what: &str,
    done: impl Fn(&Shared) -> bool,
) -> anyhow::Result<()> {
    let t = Instant::now();
    while !done(shared) {
        anyhow::ensure!(t.elapsed() < Duration::from_secs(300), "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

/// Imports a new certificate for [`CERT`] through the API: a renewal, as agents see it.
async fn import(http: &reqwest::Client, base: &str, admin: &str) -> anyhow::Result<()> {
    let key = rcgen::KeyPair::generate()?;
    let cert =
        rcgen::CertificateParams::new(vec!["web.fleet.test".to_string()])?.self_signed(&key)?;
    let r = http
        .post(format!("{base}/api/v1/certificates/import"))
        .bearer_auth(admin)
        .json(&json!({"name": CERT, "cert_pem": cert.pem(), "key_pem": key.serialize_pem()}))
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "import: {}", r.text().await?);
    Ok(())
}

async fn serial(http: &reqwest::Client, base: &str, admin: &str) -> anyhow::Result<String> {
    let c: Value = http
        .get(format!("{base}/api/v1/certificates/{CERT}"))
        .bearer_auth(admin)
        .send()
        .await?
        .json()
        .await?;
    Ok(c["serial"].as_str().context("a serial")?.to_string())
}

async fn join(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    i: usize,
) -> anyhow::Result<Arc<SimAgent>> {
    let t: Value = http
        .post(format!("{base}/api/v1/agent-tokens"))
        .bearer_auth(admin)
        .json(&json!({"labels": ["fleet=web"]}))
        .send()
        .await?
        .json()
        .await?;
    let token = t["token"].as_str().context("a join token")?;
    let (csr_pem, key_pem) = certhub_engine::agent_ca::agent_request()?;
    let facts =
        json!({"hostname": format!("web-{i:05}.fleet.test"), "os": "bench", "version": "0"});
    let r = http
        .post(format!("{base}/api/v1/agents/join"))
        .json(&json!({"token": token, "name": format!("web-{i:05}"), "csr_pem": csr_pem, "facts": facts}))
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "join: {}", r.text().await?);
    let joined: Value = r.json().await?;
    let mut pem = key_pem.as_bytes().to_vec();
    pem.extend_from_slice(joined["cert_pem"].as_str().context("cert_pem")?.as_bytes());
    let ca = joined["ca_pem"].as_str().context("ca_pem")?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes())?])
        .identity(reqwest::Identity::from_pem(&pem)?)
        .http1_only()
        .connect_timeout(Duration::from_secs(10))
        .build()?;
    let url = joined["agent_url"].as_str().context("agent_url")?.to_string();
    Ok(Arc::new(SimAgent { client, url }))
}

/// An agent: its stream kept open, what it is told deployed (fetched and reported).
async fn run_agent(agent: Arc<SimAgent>, shared: Arc<Shared>) {
    let facts = json!({"hostname": "bench", "os": "bench", "version": "0"});
    let mut backoff = Duration::from_millis(500);
    let mut deployed = String::new();
    loop {
        let sent = agent.client.post(format!("{}/agent/v1/stream", agent.url)).json(&facts).send();
        let mut rsp = match sent.await {
            Ok(r) if r.status().is_success() => r,
            Ok(_) => {
                shared.other_errors.fetch_add(1, Ordering::SeqCst);
                pause(&mut backoff).await;
                continue;
            }
            Err(e) => {
                let refused = is_refused(&e);
                if shared.listening.load(Ordering::SeqCst) {
                    let counter = if refused {
                        &shared.refused_after_listening
                    } else {
                        &shared.other_errors
                    };
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                pause(&mut backoff).await;
                continue;
            }
        };
        backoff = Duration::from_millis(500);
        let mut counted = false;
        let mut buffer = Vec::new();
        while let Ok(Some(chunk)) = rsp.chunk().await {
            buffer.extend_from_slice(&chunk);
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let Ok(push) = serde_json::from_slice::<Push>(&line) else { continue };
                if !counted {
                    counted = true;
                    shared.connected.fetch_add(1, Ordering::SeqCst);
                }
                let assignments = match push {
                    Push::Assigned { certs } => certs,
                    Push::Deploy(a) => vec![a],
                    Push::Ping | Push::Csr { .. } | Push::Challenge(_) => continue,
                };
                for Assignment { cert, serial } in assignments {
                    if serial == deployed {
                        continue;
                    }
                    if deploy(&agent, &cert, &serial).await {
                        deployed = serial.clone();
                        if *shared.target_serial.lock().unwrap() == serial {
                            shared.deployed_at.lock().unwrap().push(Instant::now());
                        }
                    } else {
                        shared.other_errors.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }
        if counted {
            shared.connected.fetch_sub(1, Ordering::SeqCst);
        }
        pause(&mut Duration::from_millis(200)).await;
    }
}

/// Fetches the certificate and reports it deployed; whether both worked.
async fn deploy(agent: &SimAgent, cert: &str, serial: &str) -> bool {
    let got = agent.client.get(format!("{}/agent/v1/certs/{cert}", agent.url)).send().await;
    let Ok(got) = got else { return false };
    if !got.status().is_success() || got.bytes().await.is_err() {
        return false;
    }
    let report = DeployReport {
        cert: cert.to_string(),
        serial: serial.to_string(),
        state: DeployState::Deployed,
        error: None,
        verified: Vec::new(),
    };
    let sent = agent.client.post(format!("{}/agent/v1/report", agent.url)).json(&report).send();
    matches!(sent.await, Ok(r) if r.status().is_success())
}

/// Waits as `certhub agent run` does between tries: the backoff with jitter, doubled up to
/// 10 s for the next.
async fn pause(backoff: &mut Duration) {
    let wait = backoff.mul_f64(0.5 + rand_unit() / 2.0);
    tokio::time::sleep(wait).await;
    *backoff = (*backoff * 2).min(Duration::from_secs(10));
}

fn rand_unit() -> f64 {
    static SEED: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);
    let mut x = SEED.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// Whether a request failed because nothing listened (ECONNREFUSED).
fn is_refused(e: &reqwest::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        source = s.source();
    }
    false
}
