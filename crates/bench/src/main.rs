//! certhub's benchmarks, run by `scripts/bench`, which writes their figures to
//! `docs/benchmarks.md`.
//!
//! `issuance`: certhub, lego, certbot and uacme each issue N single-name EC P-256
//! certificates from one local Pebble (no validation sleep, no nonce rejection, no
//! authorization reuse), one after another and C at once, answering http-01 from one shared
//! webroot behind one Python `http.server` (threaded, with a listen backlog for all of them).
//! Accounts are registered, and one certificate issued, before anything is timed. Every
//! client process runs under GNU time for its peak memory and CPU; Pebble's CPU comes from
//! `/proc`. The figures are medians over the runs;
//! the machine is shared, so what counts are the ratios within one run of this command.

mod agents;
mod fleet;
mod renewals;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use certhub_testkit::bind::Bind;
use certhub_testkit::pebble::{Pebble, PebbleOptions};
use clap::Parser;
use futures::StreamExt as _;
use tokio::process::Command;

#[derive(Debug, Parser)]
#[command(about = "certhub's benchmarks (scripts/bench runs them and writes docs/benchmarks.md)")]
enum Bench {
    /// Issue certificates with certhub, lego, certbot and uacme from one local Pebble.
    Issuance(IssuanceArgs),
    /// certhub with a large store: the scheduler, the hub's memory, the API and the UI.
    Fleet(fleet::FleetArgs),
    /// Agents on one hub: memory per connection, a renewal pushed to all, a hub restart.
    Agents(agents::AgentsArgs),
    /// A simulated year of renewals of a large fleet under Let's Encrypt's rate limits.
    Renewals(renewals::RenewalsArgs),
    /// Fill a store with a synthetic fleet (run by `fleet`).
    #[command(hide = true)]
    Populate(fleet::PopulateArgs),
}

#[derive(Debug, clap::Args)]
struct IssuanceArgs {
    /// The certhub binary to measure.
    #[arg(long)]
    certhub: PathBuf,
    /// Certificates per run.
    #[arg(long, default_value_t = 50)]
    certs: usize,
    /// How many at once in the concurrent mode.
    #[arg(long, default_value_t = 20)]
    concurrency: usize,
    /// Runs of each client and mode (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// The clients to measure, comma-separated.
    #[arg(long, default_value = "certhub,lego,certbot,uacme", value_delimiter = ',')]
    clients: Vec<String>,
    /// Write the results here, as a Markdown section.
    #[arg(long)]
    out: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Bench::parse() {
        Bench::Issuance(args) => issuance(args).await,
        Bench::Fleet(args) => fleet::fleet(args).await,
        Bench::Populate(args) => fleet::populate(args).await,
        Bench::Renewals(args) => renewals::renewals(args),
        Bench::Agents(args) => agents::agents(args).await,
    }
}

/// One process's figures, from GNU time.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    /// Peak resident memory, KiB.
    max_rss_kib: u64,
    /// User plus system CPU, seconds.
    cpu: f64,
}

/// One run: N certificates in one mode.
#[derive(Debug, Clone, Copy)]
struct Run {
    wall: f64,
    /// The largest peak of any one client process.
    max_rss_kib: u64,
    /// All client processes' CPU.
    client_cpu: f64,
    pebble_cpu: f64,
}

/// Runs `cmd` under GNU time; fails with its output when it fails.
async fn timed(cmd: Command, scratch: &Path) -> anyhow::Result<Usage> {
    let report = tempfile::NamedTempFile::new_in(scratch)?;
    let program = cmd.as_std().get_program().to_owned();
    let args: Vec<_> = cmd.as_std().get_args().map(|a| a.to_owned()).collect();
    let mut wrapped = Command::new("/usr/bin/time");
    wrapped.arg("-f").arg("%M %U %S").arg("-o").arg(report.path()).arg(&program).args(&args);
    for (k, v) in cmd.as_std().get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    if let Some(dir) = cmd.as_std().get_current_dir() {
        wrapped.current_dir(dir);
    }
    let out = wrapped.stdin(Stdio::null()).output().await.context("running /usr/bin/time")?;
    if !out.status.success() {
        bail!(
            "{} {:?} failed ({}):\n{}{}",
            program.to_string_lossy(),
            args,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = std::fs::read_to_string(report.path())?;
    let last = text.lines().last().unwrap_or_default();
    let f: Vec<&str> = last.split_whitespace().collect();
    if f.len() != 3 {
        bail!("unexpected GNU time output: {text:?}");
    }
    Ok(Usage { max_rss_kib: f[0].parse()?, cpu: f[1].parse::<f64>()? + f[2].parse::<f64>()? })
}

/// A process's CPU time so far, seconds (utime + stime from `/proc/PID/stat`).
fn cpu_of(pid: u32) -> f64 {
    stat_ticks(pid, &[11, 12])
}

/// CPU seconds of a process and of its children that have ended and been waited for, so a
/// server that forks a process per connection keeps what its ended connections used.
fn cpu_with_children(pid: u32) -> f64 {
    stat_ticks(pid, &[11, 12, 13, 14])
}

/// The sum of fields of /proc/PID/stat counted after the command name, as seconds.
fn stat_ticks(pid: u32, fields: &[usize]) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime, stime, cutime and cstime are fields 14 to 17 of the whole line: 11 to 14
    // after the name, in ticks of 1/100 s.
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    fields.iter().map(|&i| ticks(i)).sum::<f64>() / 100.0
}

/// The shared set-up: DNS, Pebble, and the http-01 responder all clients use.
struct Lab {
    bind: Bind,
    pebble: Pebble,
    webroot: PathBuf,
    _responder: tokio::process::Child,
    work: tempfile::TempDir,
}

/// The shared http-01 responder: Python's standard file server over the webroot (argv: port,
/// directory).
const WEBROOT_SERVER: &str = "import functools, http.server, sys
http.server.ThreadingHTTPServer.request_queue_size = 256
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[2])
http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), handler).serve_forever()
";

impl Lab {
    async fn start() -> anyhow::Result<Lab> {
        let bind = Bind::start(&["test"]).await;
        let opts = PebbleOptions {
            dns_server: Some(bind.addr),
            nonce_reject: 0,
            authz_reuse: 0,
            va_nosleep: true,
            ..PebbleOptions::default()
        };
        let pebble = Pebble::start(opts).await;
        let work = tempfile::TempDir::new()?;
        let webroot = work.path().join("webroot");
        std::fs::create_dir_all(webroot.join(".well-known/acme-challenge"))?;
        // python3 -m http.server, with a listen backlog for 20 validations at once: its
        // default of 5 overflows, and each dropped connection waits a second for the retry.
        let responder = Command::new("python3")
            .arg("-c")
            .arg(WEBROOT_SERVER)
            .arg(pebble.http_port.to_string())
            .arg(&webroot)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting the webroot responder (python3)")?;
        // Up once it answers, within 5 s.
        for attempt in 1.. {
            match tokio::net::TcpStream::connect(("127.0.0.1", pebble.http_port)).await {
                Ok(_) => break,
                Err(e) if attempt == 100 => {
                    bail!("the webroot responder on port {} does not answer: {e}", pebble.http_port)
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        Ok(Lab { bind, pebble, webroot, _responder: responder, work })
    }

    fn dir(&self, name: &str) -> PathBuf {
        let d = self.work.path().join(name);
        std::fs::create_dir_all(&d).expect("a work directory");
        d
    }
}

/// How a client is driven.
trait Client: Send + Sync {
    fn name(&self) -> &'static str;
    /// Registers its account and issues one certificate, untimed.
    async fn prepare(&self, lab: &Lab) -> anyhow::Result<()>;
    /// Issues a certificate for each of `names`, at most `at_once` at a time.
    async fn issue(&self, lab: &Lab, names: &[String], at_once: usize) -> anyhow::Result<Run>;
}

/// Issues with one process per certificate, `at_once` at a time, through `one`.
async fn per_process<F, Fut>(
    lab: &Lab,
    names: &[String],
    at_once: usize,
    one: F,
) -> anyhow::Result<Run>
where
    F: Fn(String, usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Usage>>,
{
    // Slots let a client that locks its directories (certbot) run one process per copy.
    let slots = Arc::new(Mutex::new((0..at_once).collect::<Vec<_>>()));
    measured(lab, async {
        let usages: Vec<anyhow::Result<Usage>> = futures::stream::iter(names.iter().cloned())
            .map(|name| {
                let slots = slots.clone();
                let one = &one;
                async move {
                    let slot = slots.lock().unwrap().pop().expect("a free slot");
                    let usage = one(name, slot).await;
                    slots.lock().unwrap().push(slot);
                    usage
                }
            })
            .buffer_unordered(at_once)
            .collect()
            .await;
        usages.into_iter().collect()
    })
    .await
}

/// Times `work`, the client processes it runs, and Pebble's CPU meanwhile.
async fn measured(
    lab: &Lab,
    work: impl std::future::Future<Output = anyhow::Result<Vec<Usage>>>,
) -> anyhow::Result<Run> {
    let pebble_before = cpu_of(lab.pebble.pid());
    let started = Instant::now();
    let usages = work.await?;
    Ok(Run {
        wall: started.elapsed().as_secs_f64(),
        max_rss_kib: usages.iter().map(|u| u.max_rss_kib).max().unwrap_or(0),
        client_cpu: usages.iter().map(|u| u.cpu).sum(),
        pebble_cpu: cpu_of(lab.pebble.pid()) - pebble_before,
    })
}

struct Certhub {
    bin: PathBuf,
    data: PathBuf,
}

impl Certhub {
    fn cmd(&self, lab: &Lab) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.env("CERTHUB_DATA_DIR", &self.data)
            .env("CERTHUB_DNS_RESOLVER", lab.bind.addr.to_string())
            .env("CERTHUB_DNS_PORT", lab.bind.addr.port().to_string())
            .env_remove("RUST_LOG")
            .env_remove("CERTHUB_DATABASE_URL");
        cmd
    }

    async fn run(&self, lab: &Lab, args: &[&str]) -> anyhow::Result<()> {
        let out = self.cmd(lab).args(args).stdin(Stdio::null()).output().await?;
        if !out.status.success() {
            bail!("certhub {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    /// Adds managed certificates for `names` (configuration, untimed).
    async fn add(&self, lab: &Lab, names: &[String]) -> anyhow::Result<()> {
        let challenge = format!("http-01:webroot={}", lab.webroot.display());
        for name in names {
            self.run(
                lab,
                &["cert", "add", name, "--account", "bench", "-d", name, "--challenge", &challenge],
            )
            .await?;
        }
        Ok(())
    }
}

impl Client for Certhub {
    fn name(&self) -> &'static str {
        "certhub"
    }

    async fn prepare(&self, lab: &Lab) -> anyhow::Result<()> {
        let bundle = lab.pebble.listener_ca_path.to_string_lossy().into_owned();
        self.run(
            lab,
            &[
                "account",
                "add",
                "bench",
                "--directory",
                &lab.pebble.directory_url,
                "--ca-bundle",
                &bundle,
                "--email",
                "bench@example.com",
                "--agree-tos",
            ],
        )
        .await?;
        let warm = vec!["warm.certhub.test".to_string()];
        self.add(lab, &warm).await?;
        self.run(lab, &["cert", "request", &warm[0]]).await
    }

    async fn issue(&self, lab: &Lab, names: &[String], at_once: usize) -> anyhow::Result<Run> {
        self.add(lab, names).await?;
        // One process requests them all, as `certhub cert request` is used.
        let mut cmd = self.cmd(lab);
        cmd.args(["cert", "request", "--jobs", &at_once.to_string()]).args(names);
        measured(lab, async { Ok(vec![timed(cmd, lab.work.path()).await?]) }).await
    }
}

struct Lego {
    path: PathBuf,
}

impl Lego {
    fn cmd(&self, lab: &Lab, name: &str) -> Command {
        let mut cmd = Command::new("lego");
        cmd.env("LEGO_CA_CERTIFICATES", &lab.pebble.listener_ca_path)
            .arg("--server")
            .arg(&lab.pebble.directory_url)
            .args(["--accept-tos", "--email", "bench@example.com", "--key-type", "ec256"])
            .arg("--path")
            .arg(&self.path)
            .arg("--http")
            .arg("--http.webroot")
            .arg(&lab.webroot)
            .args(["-d", name, "run"]);
        cmd
    }
}

impl Client for Lego {
    fn name(&self) -> &'static str {
        "lego"
    }

    async fn prepare(&self, lab: &Lab) -> anyhow::Result<()> {
        timed(self.cmd(lab, "warm.lego.test"), lab.work.path()).await.map(|_| ())
    }

    async fn issue(&self, lab: &Lab, names: &[String], at_once: usize) -> anyhow::Result<Run> {
        per_process(lab, names, at_once, |name, _| timed(self.cmd(lab, &name), lab.work.path()))
            .await
    }
}

struct Certbot {
    /// One directory set per slot (certbot locks its directories).
    root: PathBuf,
    slots: usize,
}

impl Certbot {
    fn cmd(&self, lab: &Lab, slot: usize) -> Command {
        let dir = self.root.join(slot.to_string());
        let mut cmd = Command::new("certbot");
        cmd.env("REQUESTS_CA_BUNDLE", &lab.pebble.listener_ca_path)
            .args(["--non-interactive", "--agree-tos", "--email", "bench@example.com"])
            .arg("--server")
            .arg(&lab.pebble.directory_url)
            .arg("--config-dir")
            .arg(dir.join("config"))
            .arg("--work-dir")
            .arg(dir.join("work"))
            .arg("--logs-dir")
            .arg(dir.join("logs"));
        cmd
    }

    fn certonly(&self, lab: &Lab, slot: usize, name: &str) -> Command {
        let mut cmd = self.cmd(lab, slot);
        cmd.args(["certonly", "--key-type", "ecdsa", "--elliptic-curve", "secp256r1"])
            .arg("--webroot")
            .arg("-w")
            .arg(&lab.webroot)
            .args(["-d", name]);
        cmd
    }
}

impl Client for Certbot {
    fn name(&self) -> &'static str {
        "certbot"
    }

    async fn prepare(&self, lab: &Lab) -> anyhow::Result<()> {
        let mut register = self.cmd(lab, 0);
        register.arg("register");
        timed(register, lab.work.path()).await?;
        timed(self.certonly(lab, 0, "warm.certbot.test"), lab.work.path()).await?;
        // The other slots start from a copy of the registered account.
        for slot in 1..self.slots {
            let status = std::process::Command::new("cp")
                .arg("-a")
                .arg(self.root.join("0"))
                .arg(self.root.join(slot.to_string()))
                .status()?;
            if !status.success() {
                bail!("copying certbot's directories failed");
            }
        }
        Ok(())
    }

    async fn issue(&self, lab: &Lab, names: &[String], at_once: usize) -> anyhow::Result<Run> {
        per_process(lab, names, at_once, |name, slot| {
            timed(self.certonly(lab, slot, &name), lab.work.path())
        })
        .await
    }
}

struct Uacme {
    confdir: PathBuf,
    hook: PathBuf,
}

impl Uacme {
    fn cmd(&self, lab: &Lab) -> Command {
        // Debian's uacme uses libcurl with GnuTLS, which trusts only the system bundle and has
        // no setting for another: each uacme runs in a mount namespace of its own where the
        // system bundle is Pebble's listener CA (unshare and sh exec into uacme, so GNU time
        // measures uacme itself).
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("mount --bind \"$0\" /etc/ssl/certs/ca-certificates.crt && exec uacme \"$@\"")
            .arg(&lab.pebble.listener_ca_path)
            .env("UACME_WEBROOT", &lab.webroot)
            .arg("--acme-url")
            .arg(&lab.pebble.directory_url)
            .arg("--confdir")
            .arg(&self.confdir)
            .args(["--type", "EC", "--bits", "256", "--yes"]);
        cmd
    }

    fn issue_one(&self, lab: &Lab, name: &str) -> Command {
        let mut cmd = self.cmd(lab);
        cmd.arg("--hook").arg(&self.hook).args(["issue", name]);
        cmd
    }
}

impl Client for Uacme {
    fn name(&self) -> &'static str {
        "uacme"
    }

    async fn prepare(&self, lab: &Lab) -> anyhow::Result<()> {
        // The hook answers http-01 through the shared webroot, as the others do.
        std::fs::write(
            &self.hook,
            "#!/bin/sh\n\
             # uacme hook: METHOD TYPE IDENT TOKEN AUTH\n\
             [ \"$2\" = http-01 ] || exit 1\n\
             f=\"$UACME_WEBROOT/.well-known/acme-challenge/$4\"\n\
             case \"$1\" in\n\
               begin) printf '%s' \"$5\" > \"$f\" ;;\n\
               done|failed) rm -f \"$f\" ;;\n\
             esac\n",
        )?;
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&self.hook, std::fs::Permissions::from_mode(0o755))?;
        let mut new = self.cmd(lab);
        new.args(["new", "bench@example.com"]);
        timed(new, lab.work.path()).await?;
        timed(self.issue_one(lab, "warm.uacme.test"), lab.work.path()).await.map(|_| ())
    }

    async fn issue(&self, lab: &Lab, names: &[String], at_once: usize) -> anyhow::Result<Run> {
        per_process(lab, names, at_once, |name, _| {
            timed(self.issue_one(lab, &name), lab.work.path())
        })
        .await
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// One row of the results: a client in a mode over its runs.
struct Row {
    client: &'static str,
    mode: String,
    runs: Vec<Run>,
    certs: usize,
}

impl Row {
    fn per_cert(&self) -> f64 {
        median(self.runs.iter().map(|r| r.wall / self.certs as f64).collect())
    }

    fn throughput(&self) -> f64 {
        median(self.runs.iter().map(|r| self.certs as f64 / r.wall).collect())
    }

    fn max_rss_mib(&self) -> f64 {
        self.runs.iter().map(|r| r.max_rss_kib).max().unwrap_or(0) as f64 / 1024.0
    }

    fn client_cpu(&self) -> f64 {
        median(self.runs.iter().map(|r| r.client_cpu / self.certs as f64).collect())
    }

    fn pebble_cpu(&self) -> f64 {
        median(self.runs.iter().map(|r| r.pebble_cpu / self.certs as f64).collect())
    }
}

async fn measure<C: Client>(
    client: &C,
    lab: &Lab,
    args: &IssuanceArgs,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    eprintln!("{}: registering and issuing one certificate (untimed)", client.name());
    client.prepare(lab).await.with_context(|| format!("{}: preparing", client.name()))?;
    for (mode, at_once) in
        [("sequential".to_string(), 1), (format!("{} at once", args.concurrency), args.concurrency)]
    {
        let mut row =
            Row { client: client.name(), mode: mode.clone(), runs: Vec::new(), certs: args.certs };
        for run in 0..args.runs {
            let tag = if at_once == 1 { "s" } else { "c" };
            let names: Vec<String> =
                (0..args.certs).map(|i| format!("{tag}{run}-{i}.{}.test", client.name())).collect();
            let r = client
                .issue(lab, &names, at_once)
                .await
                .with_context(|| format!("{} {mode} run {}", client.name(), run + 1))?;
            eprintln!(
                "{} {mode} run {}: {:.2} s for {} certificates, peak {:.1} MiB, client CPU {:.2} s, Pebble CPU {:.2} s",
                client.name(),
                run + 1,
                r.wall,
                args.certs,
                r.max_rss_kib as f64 / 1024.0,
                r.client_cpu,
                r.pebble_cpu
            );
            row.runs.push(r);
        }
        rows.push(row);
    }
    Ok(())
}

async fn issuance(args: IssuanceArgs) -> anyhow::Result<()> {
    let lab = Lab::start().await?;
    let mut rows = Vec::new();
    for client in &args.clients {
        match client.as_str() {
            "certhub" => {
                let c = Certhub { bin: args.certhub.clone(), data: lab.dir("certhub") };
                measure(&c, &lab, &args, &mut rows).await?
            }
            "lego" => measure(&Lego { path: lab.dir("lego") }, &lab, &args, &mut rows).await?,
            "certbot" => {
                let c = Certbot { root: lab.dir("certbot"), slots: args.concurrency };
                measure(&c, &lab, &args, &mut rows).await?
            }
            "uacme" => {
                let c =
                    Uacme { confdir: lab.dir("uacme"), hook: lab.work.path().join("uacme-hook") };
                measure(&c, &lab, &args, &mut rows).await?
            }
            other => bail!("unknown client {other:?}: certhub, lego, certbot or uacme"),
        }
    }
    std::fs::write(&args.out, report(&args, &rows))
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    eprintln!("written to {}", args.out.display());
    Ok(())
}

/// The results as Markdown: the table, then the targets against them.
fn report(args: &IssuanceArgs, rows: &[Row]) -> String {
    let mut md = String::new();
    md.push_str(&format!(
        "{} single-name EC P-256 certificates per run, {} runs of each client in each mode; \
         medians. Peak memory is the largest of any one client process (certhub requests them \
         all in one process, the others run one process per certificate).\n\n",
        args.certs, args.runs
    ));
    md.push_str("| client | mode | s per certificate | certificates/s | peak memory | client CPU per certificate | Pebble CPU per certificate |\n");
    md.push_str("|---|---|---|---|---|---|---|\n");
    for r in rows {
        md.push_str(&format!(
            "| {} | {} | {:.3} | {:.1} | {:.1} MiB | {:.3} s | {:.3} s |\n",
            r.client,
            r.mode,
            r.per_cert(),
            r.throughput(),
            r.max_rss_mib(),
            r.client_cpu(),
            r.pebble_cpu()
        ));
    }
    let find = |client: &str, sequential: bool| {
        rows.iter().find(|r| r.client == client && (r.mode == "sequential") == sequential)
    };
    let best_peer = rows
        .iter()
        .filter(|r| r.client != "certhub" && r.mode != "sequential")
        .max_by(|a, b| a.throughput().total_cmp(&b.throughput()));
    md.push_str("\nAgainst the targets:\n\n");
    if let Some(seq) = find("certhub", true) {
        md.push_str(&format!(
            "- certhub one after another: {:.3} s per certificate (target: at most 0.05 s) — {}.\n",
            seq.per_cert(),
            if seq.per_cert() <= 0.05 { "met" } else { "missed" }
        ));
    }
    if let (Some(con), Some(peer)) = (find("certhub", false), best_peer) {
        let ratio = con.throughput() / peer.throughput();
        md.push_str(&format!(
            "- certhub {} at once: {:.1} certificates/s, {ratio:.1} times the best peer ({} at {:.1}/s) (target: at least 10 times) — {}.\n",
            args.concurrency,
            con.throughput(),
            peer.client,
            peer.throughput(),
            if ratio >= 10.0 { "met" } else { "missed" }
        ));
    }
    if let Some(peak) =
        rows.iter().filter(|r| r.client == "certhub").map(Row::max_rss_mib).reduce(f64::max)
    {
        md.push_str(&format!(
            "- certhub's peak memory: {peak:.1} MiB (target: at most 30 MiB) — {}.\n",
            if peak <= 30.0 { "met" } else { "missed" }
        ));
    }
    md
}
