//! Shared set-up: a real BIND 9 serving the `test.` zone (every name resolves to 127.0.0.1),
//! a real Pebble using it as resolver and rejecting 30% of nonces, a fresh data directory,
//! and the real `certhub` binary.

use std::path::{Path, PathBuf};
use std::process::Output;

use certhub_testkit::bind::Bind;
use certhub_testkit::pebble::{Pebble, PebbleOptions};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tempfile::TempDir;

pub struct Env {
    pub bind: Bind,
    pub pebble: Pebble,
    pub data: TempDir,
    /// A PostgreSQL database for the store instead of the data directory's SQLite file.
    pub database: Option<certhub_testkit::postgres::TestDatabase>,
    /// More environment for every certhub run (e.g. a proxy).
    pub vars: Vec<(String, String)>,
}

/// Pebble options every test starts from: 30% of nonces rejected, no authorization reuse.
pub fn hostile() -> PebbleOptions {
    PebbleOptions { nonce_reject: 30, authz_reuse: 0, ..PebbleOptions::default() }
}

impl Env {
    pub async fn start(mut opts: PebbleOptions) -> Env {
        let bind = Bind::start(&["test"]).await;
        opts.dns_server = Some(bind.addr);
        let pebble = Pebble::start(opts).await;
        Env { bind, pebble, data: TempDir::new().unwrap(), database: None, vars: Vec::new() }
    }

    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// The store certhub uses (the test database, or the data directory's).
    pub async fn store(&self) -> certhub_store::Store {
        let url = self.database.as_ref().map(|d| d.url.as_str());
        certhub_store::Store::open_database(self.data_dir(), url).await.unwrap()
    }

    /// Puts certificate `name` in backoff after a failure for an hour: renewal services
    /// leave it alone, and only a request made by hand runs it.
    pub async fn back_off(&self, name: &str) {
        let store = self.store().await;
        let later = jiff::Timestamp::now().as_millisecond() + 3_600_000;
        store.set_cert_retry(name, 1, Some(later)).await.unwrap();
        store.close().await;
    }

    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_certhub"));
        cmd.args(args)
            .env("CERTHUB_DATA_DIR", self.data.path())
            .env("CERTHUB_DNS_RESOLVER", self.bind.addr.to_string())
            .env("CERTHUB_DNS_PORT", self.bind.addr.port().to_string())
            .env_remove("RUST_LOG")
            .env_remove("CERTHUB_DATABASE_URL")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        if let Some(db) = &self.database {
            cmd.env("CERTHUB_DATABASE_URL", &db.url);
        }
        cmd.envs(self.vars.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Runs certhub and returns its output, whatever the exit status.
    pub async fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().await.expect("certhub runs")
    }

    /// Runs certhub, requires success, returns stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "certhub {} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs certhub, requires failure with `code`, returns stderr.
    pub async fn fails(&self, code: i32, args: &[&str]) -> String {
        let out = self.run(args).await;
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(
            out.status.code(),
            Some(code),
            "certhub {} should exit {code}\nstdout:\n{}\nstderr:\n{stderr}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
        );
        stderr
    }

    pub fn ca_bundle(&self) -> String {
        self.pebble.listener_ca_path.display().to_string()
    }

    /// Registers an account `name` with extra arguments.
    pub async fn account(&self, name: &str, extra: &[&str]) {
        let bundle = self.ca_bundle();
        let mut args = vec![
            "account",
            "add",
            name,
            "--directory",
            &self.pebble.directory_url,
            "--ca-bundle",
            &bundle,
            "--email",
            "ops@example.com",
            "--agree-tos",
        ];
        args.extend_from_slice(extra);
        self.ok(&args).await;
    }

    /// Adds the certificate `name` for `domain`, ordered by `account`, answered by http-01.
    pub async fn add_http01(&self, name: &str, account: &str, domain: &str) {
        self.add_cert(name, account, domain, &self.http01()).await;
    }

    /// Adds the certificate `name` for `domain`, ordered by `account`, answered by the
    /// challenge `spec`.
    pub async fn add_cert(&self, name: &str, account: &str, domain: &str, spec: &str) {
        self.ok(&["cert", "add", name, "--account", account, "-d", domain, "--challenge", spec])
            .await;
    }

    pub fn http01(&self) -> String {
        format!("http-01:listen=127.0.0.1:{}", self.pebble.http_port)
    }

    pub fn tls_alpn01(&self) -> String {
        format!("tls-alpn-01:listen=127.0.0.1:{}", self.pebble.tls_port)
    }

    pub fn rfc2136(&self) -> String {
        format!(
            "dns-01:rfc2136={},key-name={},key-secret={},algorithm={}",
            self.bind.addr, self.bind.tsig_key_name, self.bind.tsig_secret, self.bind.algorithm
        )
    }

    pub async fn show(&self, cert: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["cert", "show", cert, "--json"]).await).unwrap()
    }

    /// Exports `cert` as PEM and verifies the chain against Pebble's root and every name.
    pub async fn verify_issued(&self, cert: &str, names: &[&str]) -> Vec<CertificateDer<'static>> {
        let out = TempDir::new().unwrap();
        self.ok(&[
            "cert",
            "export",
            cert,
            "--format",
            "pem",
            "--out",
            out.path().to_str().unwrap(),
        ])
        .await;
        let fullchain = std::fs::read_to_string(out.path().join("fullchain.pem")).unwrap();
        let root = self.pebble.root_pem(0).await;
        verify_chain(&fullchain, &root, names);
        let key = out.path().join("privkey.pem");
        if key.exists() {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "the exported key must be private");
        }
        pem_certs(&fullchain)
    }
}

/// The first admin [`Hub::admin_token`] makes: name and password.
pub const ADMIN: (&str, &str) = ("admin", "a long enough password");

/// A running `certhub serve`.
pub struct Hub {
    pub child: tokio::process::Child,
    pub port: u16,
    /// What it printed up to its setup token (or its first lines).
    pub said: String,
    /// The one-time setup token, when the hub has no user yet.
    pub setup_token: Option<String>,
    /// What it printed after that.
    later: std::sync::Arc<std::sync::Mutex<String>>,
    /// What it logged (standard error).
    logged: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Hub {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What the hub printed on stdout after its start banner.
    pub fn printed_later(&self) -> String {
        self.later.lock().unwrap().clone()
    }

    /// What the hub has logged so far.
    pub fn logged(&self) -> String {
        self.logged.lock().unwrap().clone()
    }

    /// Creates the first admin with the setup token and signs in: an API token.
    pub async fn admin_token(&self) -> String {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let (user, password) = ADMIN;
        let token = self.setup_token.as_deref().expect("a hub not set up yet");
        let rsp = http
            .post(self.url("/api/v1/setup"))
            .json(&serde_json::json!({"token": token, "username": user, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(rsp.status(), 201);
        self.sign_in(ADMIN, None).await
    }

    /// Signs in as `user` (name and password): an API token with `scopes`, or all the
    /// user's role allows.
    pub async fn sign_in(&self, user: (&str, &str), scopes: Option<serde_json::Value>) -> String {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let mut body = serde_json::json!({"username": user.0, "password": user.1});
        if let Some(scopes) = scopes {
            body["scopes"] = scopes;
        }
        let signed_in: serde_json::Value = http
            .post(self.url("/api/v1/tokens"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        signed_in["token"].as_str().unwrap_or_else(|| panic!("{signed_in}")).to_string()
    }
}

impl Env {
    /// Starts `certhub serve` on a free port with `extra` arguments and waits until it
    /// listens and, on a `first_start`, has written its setup token.
    pub async fn serve(&self, extra: &[&str], first_start: bool) -> Hub {
        self.serve_from(self.data.path(), extra, first_start).await
    }

    /// [`Env::serve`] with data directory `data_dir` (another hub on the same database).
    pub async fn serve_from(&self, data_dir: &Path, extra: &[&str], first_start: bool) -> Hub {
        use tokio::io::AsyncBufReadExt as _;
        let port = certhub_testkit::free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["serve", "--listen", &listen];
        args.extend_from_slice(extra);
        let mut child = self
            .command(&args)
            .env("CERTHUB_DATA_DIR", data_dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Its log is kept, and shown with the test's output.
        let logged = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut log_lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let kept_log = logged.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = log_lines.next_line().await {
                eprintln!("{line}");
                kept_log.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut said = String::new();
        while let Ok(Ok(Some(line))) =
            tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line()).await
        {
            said.push_str(&line);
            said.push('\n');
            // The banner's last line: the setup example's body, or where the API is.
            let ready = if first_start { "-d '{" } else { "REST API at" };
            if line.contains(ready) {
                break;
            }
        }
        // The rest of its output is kept, and drained so that the hub never blocks on a full
        // pipe.
        let later = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let kept = later.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                kept.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let setup_token = std::fs::read_to_string(data_dir.join("setup-token"))
            .ok()
            .map(|t| t.trim().to_string());
        Hub { child, port, said, setup_token, later, logged }
    }
}

/// Calls the hub's API as `token` holder: the JSON answer (null when there is none).
pub async fn call(
    hub: &Hub,
    token: &str,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> serde_json::Value {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut req = http.request(method.parse().unwrap(), hub.url(path)).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap().json().await.unwrap_or(serde_json::Value::Null)
}

/// Waits until job `id` of `hub` ends; its last status document.
pub async fn job_done(hub: &Hub, token: &str, id: &str) -> serde_json::Value {
    certhub_testkit::wait_until("the job to end", std::time::Duration::from_secs(90), || async {
        let job = call(hub, token, "GET", &format!("/api/v1/jobs/{id}"), None).await;
        (job["status"] != "running").then_some(job)
    })
    .await
}

/// A dns-01 hook in lego's convention (`present|cleanup NAME VALUE`) that publishes at the
/// test's BIND with nsupdate, after running `first` (shell).
pub fn nsupdate_hook(env: &Env, dir: &Path, first: &str) -> PathBuf {
    script(
        dir,
        "hook.sh",
        &format!(
            r#"{first}
if [ "$1" = present ]; then op="update add $2 60 TXT \"$3\""; else op="update delete $2 TXT \"$3\""; fi
printf 'server 127.0.0.1 {port}\n%s\nsend\n' "$op" | nsupdate -y {alg}:{name}:{secret}
"#,
            port = env.bind.addr.port(),
            alg = env.bind.algorithm,
            name = env.bind.tsig_key_name,
            secret = env.bind.tsig_secret,
        ),
    )
}

/// Asserts that each of `names` was issued exactly once, counted at the CA: the serials in
/// Pebble's log are distinct and exactly those stored, one for each certificate. Returns
/// how many the CA issued.
pub async fn assert_issued_once_each(
    store: &certhub_store::Store,
    pebble_log: &str,
    names: &[String],
) -> usize {
    let mut stored = std::collections::BTreeSet::new();
    for name in names {
        let history = store.issued_for(name).await.unwrap();
        assert_eq!(history.len(), 1, "{name} was issued {} times", history.len());
        stored.insert(history[0].serial_hex.trim_start_matches('0').to_lowercase());
    }
    let at_ca = issued_at_ca(pebble_log);
    let unique: std::collections::BTreeSet<String> = at_ca.iter().cloned().collect();
    assert_eq!(unique.len(), at_ca.len(), "the CA issued a serial twice");
    assert_eq!(unique, stored, "the CA issued certificates certhub did not store, or the reverse");
    at_ca.len()
}

/// The serials Pebble says it issued, lower case without leading zeros.
pub fn issued_at_ca(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.split("Issued certificate serial ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(|s| s.trim_start_matches('0').to_lowercase())
        .collect()
}

pub fn pem_certs(pem: &str) -> Vec<CertificateDer<'static>> {
    use rustls_pki_types::pem::PemObject as _;
    CertificateDer::pem_slice_iter(pem.as_bytes()).map(|c| c.unwrap()).collect()
}

/// Verifies `fullchain` (leaf first) up to `root_pem` for TLS server use and each name.
pub fn verify_chain(fullchain: &str, root_pem: &str, names: &[&str]) {
    let certs = pem_certs(fullchain);
    let roots = pem_certs(root_pem);
    let anchor = webpki::anchor_from_trusted_cert(&roots[0]).unwrap();
    let leaf = webpki::EndEntityCert::try_from(&certs[0]).unwrap();
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &certs[1..],
        UnixTime::now(),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .expect("the chain verifies against Pebble's root");
    for name in names {
        let sn = ServerName::try_from(*name).unwrap();
        leaf.verify_is_valid_for_subject_name(&sn)
            .unwrap_or_else(|e| panic!("the certificate is not valid for {name}: {e:?}"));
    }
}

/// Writes an executable script.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}
