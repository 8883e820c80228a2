//! Agents: the hub and three agents as separate `certhub` processes with their own data
//! directories, joined with one-time tokens, deploying a certificate that targets a label,
//! its renewal reaching a real nginx, the safety flags, removal, and refusals.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::serial_of;
use crate::support::{Env, Hub, hostile};

/// An agent: its data directory, where its deployment command copies the files, and its
/// running `certhub agent run`.
struct Agent {
    name: &'static str,
    dir: tempfile::TempDir,
    out: PathBuf,
    child: Option<tokio::process::Child>,
}

impl Agent {
    /// An agent not joined yet, with a data directory of its own.
    fn new(name: &'static str) -> Self {
        let dir = tempfile::TempDir::new().unwrap();
        let out = dir.path().join("out");
        Agent { name, dir, out, child: None }
    }

    fn data(&self) -> String {
        self.dir.path().display().to_string()
    }

    /// The serial of the certificate its deployment copied out, if any.
    fn deployed_serial(&self) -> Option<String> {
        serial_in(&self.out)
    }
}

/// The serial of the first certificate of `dir/fullchain.pem`, if there is one.
fn serial_in(dir: &Path) -> Option<String> {
    let pem = std::fs::read_to_string(dir.join("fullchain.pem")).ok()?;
    crate::support::pem_certs(&pem).first().map(|c| serial_of(c))
}

/// Waits until `dir/fullchain.pem` holds the certificate with `serial` and
/// `dir/privkey.pem` its key: the set's files are renamed in one after the other, the key
/// last.
async fn wait_for_files(dir: &Path, serial: &str) {
    certhub_testkit::wait_until("the deployment", Duration::from_secs(60), || async {
        if serial_in(dir).as_deref() != Some(bare(serial)) {
            return None;
        }
        let chain =
            crate::support::pem_certs(&std::fs::read_to_string(dir.join("fullchain.pem")).ok()?);
        let key = std::fs::read_to_string(dir.join("privkey.pem")).ok()?;
        let key = certhub_core::PrivateKey::from_pem(&key).ok()?;
        certhub_core::key_matches_cert(&key, chain.first()?).then_some(())
    })
    .await;
}

/// Waits until the agent that keeps `cert`'s key has sent its certificate request.
async fn wait_for_csr(env: &Env, cert: &str) {
    certhub_testkit::wait_until(
        "the agent's certificate request",
        Duration::from_secs(30),
        || async { (env.show(cert).await["csr"] == true).then_some(()) },
    )
    .await;
}

/// A hub serving agents on a port of its own, and an admin's API token for it.
async fn agent_hub(env: &Env) -> (Hub, String) {
    let listen = format!("127.0.0.1:{}", certhub_testkit::free_port());
    let hub = env.serve(&["--agent-listen", &listen], true).await;
    let admin = hub.admin_token().await;
    (hub, admin)
}

/// A serial as the API shows it (hex, leading zeros kept), as read from a certificate.
fn bare(serial: &str) -> &str {
    serial.trim_start_matches('0')
}

/// Adds certificate `site` for site.test, deployed on `target`: its files into `shared`,
/// then the `copy` command task.
async fn add_site(env: &Env, shared: &Path, copy: &str, target: &str) {
    let files = format!("files:dir={}/site", shared.display());
    let http01 = env.http01();
    let args =
        ["cert", "add", "site", "--account", "le", "-d", "site.test", "--challenge", &http01];
    let deploy = ["--deploy", &files, "--deploy", copy, "--target", target];
    env.ok(&[&args[..], &deploy[..]].concat()).await;
}

/// A join token with `labels`, made on the hub's machine with the CLI.
async fn token(env: &Env, labels: &[&str]) -> String {
    let mut args = vec!["agent", "token", "create", "--expires", "1h"];
    for l in labels {
        args.extend(["--label", l]);
    }
    env.ok(&args).await.trim().to_string()
}

async fn join(env: &Env, hub: &Hub, agent: &Agent, token: &str) -> std::process::Output {
    let url = hub.url("");
    let data = agent.data();
    env.run(&["--data-dir", &data, "agent", "join", &url, "--token", token, "--name", agent.name])
        .await
}

async fn api(hub: &Hub, token: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut req = http
        .request(method.parse().unwrap(), hub.url(path))
        .header("authorization", format!("Bearer {token}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let rsp = req.send().await.unwrap();
    let status = rsp.status();
    let text = rsp.text().await.unwrap();
    assert!(status.is_success(), "{method} {path}: {status}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Requests certificate `cert` through the hub's API and waits for the job; its serial.
async fn request(hub: &Hub, token: &str, cert: &str) -> String {
    let job = api(hub, token, "POST", &format!("/api/v1/certificates/{cert}/request"), None).await;
    let id = job["job"]["id"].as_str().unwrap().to_string();
    certhub_testkit::wait_until("the request to finish", Duration::from_secs(120), || async {
        let j = api(hub, token, "GET", &format!("/api/v1/jobs/{id}"), None).await;
        match j["status"].as_str() {
            Some("running") => None,
            Some("succeeded") => Some(()),
            other => panic!("the request ended {other:?}: {j}"),
        }
    })
    .await;
    let c = api(hub, token, "GET", &format!("/api/v1/certificates/{cert}"), None).await;
    c["serial"].as_str().unwrap().to_string()
}

/// A client of the agent endpoint with `agent`'s identity, trusting the agent authority.
fn agent_client(agent: &Agent) -> reqwest::Client {
    let read = |n: &str| std::fs::read(agent.dir.path().join(n)).unwrap();
    let mut pem = read("agent-key.pem");
    pem.extend(read("agent-cert.pem"));
    reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(&read("agent-ca.pem")).unwrap()])
        .identity(reqwest::Identity::from_pem(&pem).unwrap())
        .build()
        .unwrap()
}

fn agent_url(agent: &Agent) -> String {
    let state: Value =
        serde_json::from_slice(&std::fs::read(agent.dir.path().join("agent.json")).unwrap())
            .unwrap();
    state["agent_url"].as_str().unwrap().to_string()
}

fn start(env: &Env, agent: &mut Agent, extra: &[&str]) {
    let data = agent.data();
    let mut args = vec!["--data-dir", data.as_str(), "-v", "agent", "run"];
    args.extend_from_slice(extra);
    let log = std::fs::File::create(agent.dir.path().join("run.log")).unwrap();
    let child = env
        .command(&args)
        .env("OUT", &agent.out)
        .stderr(log)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    agent.child = Some(child);
}

fn log(agent: &Agent) -> String {
    std::fs::read_to_string(agent.dir.path().join("run.log")).unwrap_or_default()
}

async fn wait_for_serial(agent: &Agent, serial: &str) {
    let started = std::time::Instant::now();
    while agent.deployed_serial().as_deref() != Some(bare(serial)) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "agent {} did not deploy serial {serial} within 60 s; it said:\n{}",
            agent.name,
            log(agent)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the hub shows of `agent`'s deployment of `cert`.
async fn shown(hub: &Hub, token: &str, agent: &str, cert: &str) -> Option<Value> {
    let a = api(hub, token, "GET", &format!("/api/v1/agents/{agent}"), None).await;
    a["certificates"].as_array().unwrap().iter().find(|c| c["certificate"] == cert).cloned()
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_join_deploy_what_targets_them_and_are_refused_once_removed() {
    use certhub_testkit::nginx::Nginx;
    let env = Env::start(hostile()).await;
    env.account("le", &[]).await;
    let (hub, admin) = agent_hub(&env).await;
    let shared = tempfile::TempDir::new().unwrap();
    let outside = tempfile::TempDir::new().unwrap();
    let mut agents = [Agent::new("web-1"), Agent::new("web-2"), Agent::new("db-1")];

    // Three agents join, each with a token of its own; the labels come from the token.
    let web_token = token(&env, &["role=web"]).await;
    let out = join(&env, &hub, &agents[0], &web_token).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("Joined the hub as agent web-1"), "{said}");
    // A second use of the same token is refused and changes nothing.
    let again = join(&env, &hub, &agents[1], &web_token).await;
    assert_eq!(again.status.code(), Some(3));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("was used already"), "{err}");
    assert!(!agents[1].dir.path().join("agent.json").exists());
    // So is a token the hub never made.
    let forged = join(&env, &hub, &agents[1], "certhub-join_0011223344556677_secret").await;
    assert_eq!(forged.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&forged.stderr).contains("not known to this hub"));
    let out = join(&env, &hub, &agents[1], &token(&env, &["role=web"]).await).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = join(&env, &hub, &agents[2], &token(&env, &["role=db"]).await).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A name taken is refused.
    let taken = Agent::new("web-1");
    let dup = join(&env, &hub, &taken, &token(&env, &[]).await).await;
    assert_eq!(dup.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&dup.stderr).contains("has joined already"));
    // The agent's key never left its machine: the hub has its certificate only.
    let key = std::fs::read_to_string(agents[0].dir.path().join("agent-key.pem")).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(agents[0].dir.path().join("agent-key.pem")).unwrap();
    assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    let body = key.lines().nth(1).unwrap();
    for f in crate::common::walk(env.data_dir()) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(body),
            "{} holds the agent key",
            f.display()
        );
    }

    // web-1 runs an nginx for site.test, on a stand-in certificate until the first
    // deployment; its agent reads nginx's configuration.
    std::fs::create_dir_all(&agents[0].out).unwrap();
    let stand_in = rcgen::generate_simple_self_signed(vec!["site.test".to_string()]).unwrap();
    std::fs::write(agents[0].out.join("fullchain.pem"), stand_in.cert.pem()).unwrap();
    std::fs::write(agents[0].out.join("privkey.pem"), stand_in.signing_key.serialize_pem())
        .unwrap();
    let nginx = Nginx::start_named(
        &agents[0].out.join("fullchain.pem"),
        &agents[0].out.join("privkey.pem"),
        &["site.test"],
    )
    .await;
    crate::support::script(agents[0].dir.path(), "out.reload", &nginx.reload_command());
    let endpoint = nginx.addr.to_string();

    // Web agents may write under the shared directory and run commands; db-1 may write
    // there but run nothing.
    let allow = format!("{}", shared.path().display());
    let discover = format!("nginx={}", nginx.conf.display());
    start(
        &env,
        &mut agents[0],
        &["--allow-dir", &allow, "--allow-commands", "--discover", &discover],
    );
    start(&env, &mut agents[1], &["--allow-dir", &allow, "--allow-commands"]);
    start(&env, &mut agents[2], &["--allow-dir", &allow]);
    certhub_testkit::wait_until("three agents to connect", Duration::from_secs(30), || async {
        let list = api(&hub, &admin, "GET", "/api/v1/agents", None).await;
        let on = list["items"].as_array().unwrap().iter().filter(|a| a["connected"] == true);
        (on.count() == 3).then_some(())
    })
    .await;
    let list = api(&hub, &admin, "GET", "/api/v1/agents", None).await;
    let web1 = &list["items"].as_array().unwrap()[1];
    assert_eq!(web1["name"], "web-1");
    assert_eq!(web1["labels"], json!(["role=web"]));
    assert!(web1["hostname"].as_str().is_some_and(|h| !h.is_empty()));

    // A certificate for the web role: files into the shared directory, then a command that
    // copies them to the agent's own place and reloads its nginx once there is one.
    let copy = "command:mkdir -p \"$OUT\" && cp \"$CERTHUB_FULLCHAIN_PATH\" \"$CERTHUB_KEY_PATH\" \
                \"$OUT\"/ && if [ -x \"$OUT.reload\" ]; then \"$OUT.reload\"; fi";
    add_site(&env, shared.path(), copy, "label:role=web").await;
    // Its tasks are the agents' to run, not the hub's.
    let here = env.run(&["deploy", "run", "site"]).await;
    assert_eq!(here.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&here.stderr).contains("deployed by its agents"));
    // A target naming no agent is refused, naming the target.
    let bad = env.run(&["cert", "set", "site", "--target", "agent:nobody"]).await;
    assert_eq!(bad.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("agent:nobody names no agent"));

    let first = request(&hub, &admin, "site").await;
    wait_for_serial(&agents[0], &first).await;
    wait_for_serial(&agents[1], &first).await;
    // Deployment ran on the agents, never on the hub; db-1 got nothing.
    assert_eq!(agents[2].deployed_serial(), None, "db-1 is not a web agent");
    // web-1 checked its nginx, found from its configuration, and the hub shows it.
    let deployed =
        certhub_testkit::wait_until("web-1's report", Duration::from_secs(30), || async {
            shown(&hub, &admin, "web-1", "site").await
        })
        .await;
    assert_eq!(deployed["state"], "deployed");
    assert_eq!(deployed["serial"], first.as_str());
    assert_eq!(deployed["verified"], json!([format!("{endpoint} serves serial {first}")]));
    let web1 = api(&hub, &admin, "GET", "/api/v1/agents/web-1", None).await;
    assert_eq!(web1["discovered"], json!(["site.test"]), "{web1}");
    // A certificate for what web-1 serves, deployed there; db-1 serves nothing it knows of.
    let http01 = env.http01();
    let from = ["cert", "add", "mirror", "--account", "le", "--challenge", &http01];
    env.ok(&[&from[..], &["--from-agent", "web-1"]].concat()).await;
    assert_eq!(env.show("mirror").await["identifiers"], json!(["site.test"]));
    let view = api(&hub, &admin, "GET", "/api/v1/certificates/mirror/targets", None).await;
    assert_eq!(view["targets"], json!(["agent:web-1"]));
    let none = env.run(&[&from[..], &["--from-agent", "db-1"]].concat()).await;
    assert_eq!(none.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&none.stderr).contains("--discover nginx"));

    // nginx on web-1 serves what web-1 deployed, and is reloaded on the next deployment.
    let root = env.pebble.root_pem(0).await;
    // (Right after a reload, nginx's old worker may still take a connection for a moment.)
    certhub_testkit::wait_until("nginx to serve the first", Duration::from_secs(30), || async {
        let chain = nginx.served_chain("site.test", &root).await.ok()?;
        (serial_of(&chain[0]) == bare(&first)).then_some(())
    })
    .await;

    // A renewal is pushed to both web agents at once and deployed on each.
    let second = request(&hub, &admin, "site").await;
    assert_ne!(second, first);
    wait_for_serial(&agents[0], &second).await;
    wait_for_serial(&agents[1], &second).await;
    certhub_testkit::wait_until("nginx to serve the renewal", Duration::from_secs(30), || async {
        let chain = nginx.served_chain("site.test", &root).await.ok()?;
        (serial_of(&chain[0]) == bare(&second)).then_some(())
    })
    .await;
    certhub_testkit::wait_until("web-2's report", Duration::from_secs(30), || async {
        let d = shown(&hub, &admin, "web-2", "site").await?;
        (d["serial"] == second.as_str()).then_some(())
    })
    .await;
    let checked =
        certhub_testkit::wait_until("web-1's report", Duration::from_secs(30), || async {
            let d = shown(&hub, &admin, "web-1", "site").await?;
            (d["serial"] == second.as_str()).then_some(d)
        })
        .await;
    assert_eq!(checked["verified"], json!([format!("{endpoint} serves serial {second}")]));
    let view = api(&hub, &admin, "GET", "/api/v1/certificates/site/targets", None).await;
    assert_eq!(view["targets"], json!(["label:role=web"]));
    assert_eq!(view["agents"].as_array().unwrap().len(), 2);

    // db-1 refuses a command and a directory it was not given, and says why.
    let outside_files = format!("files:dir={}", outside.path().display());
    env.ok(&[
        "cert",
        "add",
        "db",
        "--account",
        "le",
        "-d",
        "db.test",
        "--challenge",
        &env.http01(),
        "--deploy",
        &outside_files,
        "--deploy",
        "command:true",
        "--target",
        "agent:db-1",
    ])
    .await;
    request(&hub, &admin, "db").await;
    let refused =
        certhub_testkit::wait_until("db-1 to report", Duration::from_secs(30), || async {
            shown(&hub, &admin, "db-1", "db").await
        })
        .await;
    assert_eq!(refused["state"], "refused", "{refused}");
    let why = refused["error"].as_str().unwrap();
    assert!(why.contains("--allow-commands") && why.contains("--allow-dir"), "{why}");
    assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none(), "nothing written");

    // An agent asking for a certificate not assigned to it is refused, with a valid identity.
    let db1 = agent_client(&agents[2]);
    let rsp =
        db1.get(format!("{}/agent/v1/certs/site", agent_url(&agents[2]))).send().await.unwrap();
    assert_eq!(rsp.status(), 403);
    // Without a client certificate, the agent endpoint does not even finish the handshake.
    let anonymous = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(
            &std::fs::read(agents[2].dir.path().join("agent-ca.pem")).unwrap(),
        )
        .unwrap()])
        .build()
        .unwrap();
    assert!(
        anonymous
            .get(format!("{}/agent/v1/certs/site", agent_url(&agents[2])))
            .send()
            .await
            .is_err()
    );

    // Removing web-2 closes its connection and refuses it from then on: the agent stops,
    // saying so.
    let web2 = agent_client(&agents[1]);
    let url2 = agent_url(&agents[1]);
    api(&hub, &admin, "DELETE", "/api/v1/agents/web-2", None).await;
    let mut child = agents[1].child.take().unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the removed agent stops")
        .unwrap();
    assert_eq!(status.code(), Some(3), "{}", log(&agents[1]));
    assert!(log(&agents[1]).contains("this agent was removed"), "{}", log(&agents[1]));
    let rsp = web2.get(format!("{url2}/agent/v1/certs/site")).send().await.unwrap();
    assert_eq!(rsp.status(), 403);

    // The joins, the key deliveries and the removal are in the audit log.
    let audit = api(&hub, &admin, "GET", "/api/v1/audit?limit=500", None).await;
    let actions: Vec<String> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{} {}", e["action"].as_str().unwrap(), e["target"].as_str().unwrap()))
        .collect();
    for want in
        ["agent.join web-1", "agent.join db-1", "agent.key_delivered site", "agent.remove web-2"]
    {
        assert!(actions.iter().any(|a| a == want), "no {want} in {actions:?}");
    }
    for a in &mut agents {
        if let Some(mut c) = a.child.take() {
            let _ = c.kill().await;
        }
    }
    drop(nginx);
}

/// A URL that is not a hub, and one whose certificate the agent does not trust, are refused
/// with what to do.
#[tokio::test(flavor = "multi_thread")]
async fn joining_something_that_is_not_a_trusted_hub_says_what_to_do() {
    let env = Env::start(hostile()).await;
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().display().to_string();
    // Pebble's directory is an HTTPS server signed by a root this machine does not trust.
    let out = env
        .run(&["--data-dir", &data, "agent", "join", &env.pebble.directory_url, "--token", "x"])
        .await;
    assert_eq!(out.status.code(), Some(3), "an untrusted certificate is not transient");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--ca-bundle"), "{err}");
    assert!(!Path::new(&data).join("agent.json").exists());
    // Plain HTTP across the network is refused before anything is sent.
    let out = env
        .run(&["--data-dir", &data, "agent", "join", "http://hub.example:8440", "--token", "x"])
        .await;
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("use the hub's https:// URL"));
    // Trusted, it is still not a hub.
    let bundle = env.ca_bundle();
    let out = env
        .run(&[
            "--data-dir",
            &data,
            "agent",
            "join",
            &env.pebble.directory_url,
            "--token",
            "x",
            "--ca-bundle",
            &bundle,
        ])
        .await;
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not look like a certhub hub"), "{err}");
    // And an agent that never joined says how to.
    let out = env.run(&["--data-dir", &data, "agent", "run"]).await;
    assert_eq!(out.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&out.stderr).contains("certhub agent join"));
}

/// The hub killed with -9 during a push, and an agent killed with -9 during a deployment:
/// after each restarts, the target holds the latest certificate, deployed once, files whole.
#[tokio::test(flavor = "multi_thread")]
async fn after_a_kill_9_of_the_hub_or_the_agent_the_latest_is_deployed_once() {
    let env = Env::start(hostile()).await;
    env.account("le", &[]).await;
    let listen = format!("127.0.0.1:{}", certhub_testkit::free_port());
    let mut hub = env.serve(&["--agent-listen", &listen], true).await;
    let admin = hub.admin_token().await;
    let shared = tempfile::TempDir::new().unwrap();
    let mut web = Agent::new("web-1");
    let joined = join(&env, &hub, &web, &token(&env, &["role=web"]).await).await;
    assert!(joined.status.success(), "{}", String::from_utf8_lossy(&joined.stderr));
    // Files into the shared directory, then a copy that sleeps as long as OUT.sleep says
    // and, when it completes, appends the serial to OUT.log: one line per deployment.
    let copy = "command:mkdir -p \"$OUT\" && cp \"$CERTHUB_FULLCHAIN_PATH\" \"$CERTHUB_KEY_PATH\" \
                \"$OUT\"/ && sleep \"$(cat \"$OUT.sleep\" 2>/dev/null || echo 0)\" && \
                echo \"$CERTHUB_SERIAL\" >> \"$OUT.log\";timeout=60";
    add_site(&env, shared.path(), copy, "agent:web-1").await;
    let allow = shared.path().display().to_string();
    let run_args = ["--allow-dir", allow.as_str(), "--allow-commands"];
    start(&env, &mut web, &run_args);
    let deployments = |web: &Agent| -> Vec<String> {
        let log = std::fs::read_to_string(web.out.with_extension("log")).unwrap_or_default();
        log.lines().map(str::to_string).collect()
    };
    let first = request(&hub, &admin, "site").await;
    certhub_testkit::wait_until("the first deployment", Duration::from_secs(60), || async {
        (deployments(&web) == [first.clone()]).then_some(())
    })
    .await;

    // The agent is killed while its deployment's command runs; restarted, it deploys the
    // renewal once (the killed command never completes).
    std::fs::write(web.out.with_extension("sleep"), "4").unwrap();
    let second = request(&hub, &admin, "site").await;
    wait_for_serial(&web, &second).await;
    web.child.take().unwrap().start_kill().unwrap();
    std::fs::write(web.out.with_extension("sleep"), "0").unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        deployments(&web),
        std::slice::from_ref(&first),
        "the killed deployment did not complete"
    );
    start(&env, &mut web, &run_args);
    certhub_testkit::wait_until(
        "the deployment after the restart",
        Duration::from_secs(60),
        || async { (deployments(&web) == [first.clone(), second.clone()]).then_some(()) },
    )
    .await;

    // The hub is killed while the agent deploys what it pushed: the agent finishes, tells
    // the restarted hub, and deploys nothing twice.
    std::fs::write(web.out.with_extension("sleep"), "3").unwrap();
    let third = request(&hub, &admin, "site").await;
    wait_for_serial(&web, &third).await;
    hub.child.start_kill().unwrap();
    let _ = hub.child.wait().await;
    certhub_testkit::wait_until(
        "the agent to finish without its hub",
        Duration::from_secs(30),
        || async { (deployments(&web).len() == 3).then_some(()) },
    )
    .await;
    let hub = env.serve(&["--agent-listen", &listen], false).await;
    certhub_testkit::wait_until(
        "the restarted hub to hear of it",
        Duration::from_secs(60),
        || async {
            let d = shown(&hub, &admin, "web-1", "site").await?;
            (d["serial"] == third.as_str() && d["state"] == "deployed").then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(deployments(&web), [first, second, third.clone()], "each serial deployed once");
    // The files are whole: the chain and the key parse and belong together.
    let chain = std::fs::read(web.out.join("fullchain.pem")).unwrap();
    let key = std::fs::read(web.out.join("privkey.pem")).unwrap();
    let certs = crate::support::pem_certs(&String::from_utf8(chain).unwrap());
    assert_eq!(serial_of(&certs[0]), bare(&third));
    let key = certhub_core::PrivateKey::from_pem(&String::from_utf8(key).unwrap()).unwrap();
    assert!(certhub_core::key_matches_cert(&key, &certs[0]));
    if let Some(mut c) = web.child.take() {
        let _ = c.kill().await;
    }
}

/// `--key-on agent`: the agent makes the key and sends a CSR; the hub orders with dns-01
/// through its own DNS configuration and never holds the key; nginx serves the result.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_made_on_its_agent_never_reaches_the_hub() {
    use certhub_testkit::nginx::Nginx;
    let env = Env::start(hostile()).await;
    env.account("le", &[]).await;
    let (hub, admin) = agent_hub(&env).await;
    let shared = tempfile::TempDir::new().unwrap();
    let mut web = Agent::new("web-1");
    let joined = join(&env, &hub, &web, &token(&env, &["role=web"]).await).await;
    assert!(joined.status.success(), "{}", String::from_utf8_lossy(&joined.stderr));
    let allow = shared.path().display().to_string();
    let joined_cert = std::fs::read_to_string(web.dir.path().join("agent-cert.pem")).unwrap();
    // Told to renew its own certificate when a year is left, it renews as it connects.
    start(&env, &mut web, &["--allow-dir", &allow, "--renew-identity-days", "400"]);

    let files = format!("files:dir={}/private", shared.path().display());
    let dns = env.rfc2136();
    let add =
        ["cert", "add", "private", "--account", "le", "-d", "private.test", "--challenge", &dns];
    // The key lives on one machine: a label, or two targets, are refused.
    let by_label = [&add[..], &["--key-on", "agent", "--target", "label:role=web"]].concat();
    let refused = env.run(&by_label).await;
    assert_eq!(refused.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("exactly one --target agent:NAME"));
    let good = ["--deploy", &files, "--key-on", "agent", "--target", "agent:web-1"];
    env.ok(&[&add[..], &good[..]].concat()).await;
    wait_for_csr(&env, "private").await;
    let serial = request(&hub, &admin, "private").await;
    let ssl = shared.path().join("private");
    wait_for_files(&ssl, &serial).await;
    // The files hold the agent's own key, which matches the certificate, and nginx serves it.
    let key_pem = std::fs::read_to_string(web.dir.path().join("keys/private.pem")).unwrap();
    let deployed_key = std::fs::read_to_string(ssl.join("privkey.pem")).unwrap();
    let key = certhub_core::PrivateKey::from_pem(&deployed_key).unwrap();
    let own = certhub_core::PrivateKey::from_pem(&key_pem).unwrap();
    assert_eq!(key.pkcs8_der(), own.pkcs8_der());
    let chain =
        crate::support::pem_certs(&std::fs::read_to_string(ssl.join("fullchain.pem")).unwrap());
    assert!(certhub_core::key_matches_cert(&key, &chain[0]));
    let nginx = Nginx::start(&ssl.join("fullchain.pem"), &ssl.join("privkey.pem")).await;
    let root = env.pebble.root_pem(0).await;
    let served = nginx.served_chain("private.test", &root).await.unwrap();
    assert_eq!(serial_of(&served[0]), bare(&serial));
    // Nothing in the hub's database or data directory holds the key, in any encoding.
    let der = own.pkcs8_der().to_vec();
    let body = key_pem.lines().nth(1).unwrap().to_string();
    for f in crate::common::walk(env.data_dir()) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains(&body), "{} holds the key", f.display());
        assert!(
            !bytes.windows(der.len()).any(|w| w == der.as_slice()),
            "{} holds the key",
            f.display()
        );
    }
    // The agent works on with its renewed certificate, and the hub audited it.
    let renewed = std::fs::read_to_string(web.dir.path().join("agent-cert.pem")).unwrap();
    assert_ne!(renewed, joined_cert, "{}", log(&web));
    assert!(!web.dir.path().join("agent-cert.pem.new").exists());
    let audit = api(&hub, &admin, "GET", "/api/v1/audit?limit=500", None).await;
    assert!(audit.to_string().contains("agent.identity"), "{audit}");
    // The hub says where the key is.
    let preview = api(&hub, &admin, "GET", "/api/v1/certificates/private/preview", None).await;
    assert!(preview.to_string().contains("the key stays on the agent"), "{preview}");
    if let Some(mut c) = web.child.take() {
        let _ = c.kill().await;
    }
}

/// `--key-on agent` with http-01 and tls-alpn-01: the names point at the agent's machine, so
/// the agent answers both there, for an order the hub makes and for one a `certhub renew` on
/// the hub's machine makes (another process than the hub the agent is connected to).
#[tokio::test(flavor = "multi_thread")]
async fn an_agent_answers_http_and_tls_alpn_challenges_for_the_key_it_keeps() {
    let env = Env::start(hostile()).await;
    env.account("le", &[]).await;
    let (hub, admin) = agent_hub(&env).await;
    let shared = tempfile::TempDir::new().unwrap();
    let mut edge = Agent::new("edge-1");
    let joined = join(&env, &hub, &edge, &token(&env, &[]).await).await;
    assert!(joined.status.success(), "{}", String::from_utf8_lossy(&joined.stderr));
    start(&env, &mut edge, &["--allow-dir", &shared.path().display().to_string()]);

    let http01 = format!("{};domains=http.test", env.http01());
    let alpn = format!("{};domains=alpn.test", env.tls_alpn01());
    let files = format!("files:dir={}/edge", shared.path().display());
    env.ok(&[
        "cert",
        "add",
        "edge",
        "--account",
        "le",
        "-d",
        "http.test",
        "-d",
        "alpn.test",
        "--challenge",
        &http01,
        "--challenge",
        &alpn,
        "--deploy",
        &files,
        "--key-on",
        "agent",
        "--target",
        "agent:edge-1",
    ])
    .await;
    wait_for_csr(&env, "edge").await;
    let ssl = shared.path().join("edge");
    // Ordered by the hub the agent is connected to.
    let first = request(&hub, &admin, "edge").await;
    wait_for_files(&ssl, &first).await;
    // Renewed by another process on the hub's machine.
    let renewed = env.run(&["renew", "edge"]).await;
    assert!(renewed.status.success(), "{}", String::from_utf8_lossy(&renewed.stderr));
    let second = env.show("edge").await["serial"].as_str().unwrap().to_string();
    assert_ne!(second, first);
    wait_for_files(&ssl, &second).await;

    // Both names were validated on the agent, for each order (the hub's scheduler may have
    // ordered it too, before the first request: every validation is the agent's). Pebble
    // reuses a valid authorization now and then even with PEBBLE_AUTHZREUSE=0 (it draws
    // 0..99 and reuses unless the draw exceeds the setting), and the history says so.
    let history = env.ok(&["cert", "history", "edge", "--json"]).await;
    let events: Vec<Value> = serde_json::from_str(&history).unwrap();
    let validated: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "validated")
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    let count = |what: &str| validated.iter().filter(|d| **d == what).count();
    let issued = events.iter().filter(|e| e["event"] == "issued").count();
    assert!(issued >= 2, "{history}");
    let all_reused = count("every name was already validated for this account at the CA");
    for (name, on_agent) in [
        ("http.test", "http.test with http-01 on agent edge-1"),
        ("alpn.test", "alpn.test with tls-alpn-01 on agent edge-1"),
    ] {
        let reused = count(&format!("{name} was already validated for this account at the CA"));
        // The first order had nothing to reuse.
        assert!(count(on_agent) >= 1, "{on_agent}: {history}");
        assert_eq!(count(on_agent) + reused + all_reused, issued, "{name}: {history}");
    }
    assert_eq!(validated.len() + all_reused, 2 * issued, "{history}");
    let preview = env.ok(&["cert", "preview", "edge"]).await;
    assert!(preview.contains("on agent edge-1's machine: certhub answers on http://"), "{preview}");
    let said = log(&edge);
    assert!(
        said.contains("presenting http-01") && said.contains("presenting tls-alpn-01"),
        "{said}"
    );
    // Each challenge was removed when its validation was over.
    certhub_testkit::wait_until("the challenges' removal", Duration::from_secs(30), || async {
        let ports = [env.pebble.http_port, env.pebble.tls_port];
        ports.iter().all(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok()).then_some(())
    })
    .await;
    if let Some(mut c) = edge.child.take() {
        let _ = c.kill().await;
    }
}
