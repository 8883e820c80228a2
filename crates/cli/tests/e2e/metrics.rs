//! `/metrics`: who may read it, and what it says, read with the Prometheus client library's
//! own parser and held to the list in docs/metrics.md.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::support::{ADMIN, Env, Hub, call, hostile, job_done};

/// Python with the `prometheus_client` package, which scripts/test installs beside
/// Schemathesis.
fn python() -> std::path::PathBuf {
    let venv = match std::env::var_os("CERTHUB_SCHEMATHESIS") {
        Some(st) => std::path::PathBuf::from(st).parent().unwrap().to_path_buf(),
        None => {
            let home = std::env::var_os("HOME").unwrap_or_default();
            std::path::Path::new(&home).join(".cache/certhub/venv/bin")
        }
    };
    let python = venv.join("python");
    let found = std::process::Command::new(&python)
        .args(["-c", "import prometheus_client"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{} cannot import prometheus_client: run scripts/test (it installs it with pip into \
         ~/.cache/certhub/venv)",
        python.display()
    );
    python
}

/// The metric families in `text`, as the Prometheus client library's OpenMetrics parser
/// reads them: `[{"name", "type", "samples": [[name, labels, value]]}]`.
fn parse(text: &str) -> Vec<Value> {
    use std::io::Write as _;
    let script = "import sys, json\n\
        from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
        print(json.dumps([{'name': f.name, 'type': f.type, 'samples': \
        [[s.name, s.labels, s.value] for s in f.samples]} \
        for f in text_string_to_metric_families(sys.stdin.read())]))\n";
    let mut child = std::process::Command::new(python())
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the parser refused the output: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The value of sample `name` whose labels include `labels`, if there is one.
fn sample(families: &[Value], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    families.iter().flat_map(|f| f["samples"].as_array().unwrap()).find_map(|s| {
        let matches = s[0] == name && labels.iter().all(|(k, v)| s[1][*k] == *v);
        matches.then(|| s[2].as_f64().unwrap())
    })
}

/// The metric families docs/metrics.md lists: name and type.
fn documented() -> BTreeSet<(String, String)> {
    let doc = include_str!("../../../../docs/metrics.md");
    doc.lines()
        .filter_map(|l| l.strip_prefix("| `certhub_"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (format!("certhub_{}", cells[0].trim_end_matches('`')), cells[1].to_string())
        })
        .collect()
}

async fn get(hub: &Hub, token: Option<&str>, from: &str) -> reqwest::Response {
    let http = reqwest::Client::builder()
        .no_proxy()
        .local_address(from.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let mut req = http.get(hub.url("/metrics"));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_read_by_a_scoped_token_or_an_allowed_address_and_parse_as_documented() {
    let mut opts = hostile();
    opts.blocklist = vec!["blocked.test".into()];
    let env = Env::start(opts).await;
    env.account("le", &[]).await;
    env.add_http01("web", "le", "web.metrics.test").await;
    env.add_http01("refused", "le", "blocked.test").await;
    let out = tempfile::TempDir::new().unwrap();
    env.ok(&["deploy", "add", "web", &format!("files:dir={}", out.path().display())]).await;
    // Backing off, the hub's renewal service leaves them to the requests below.
    env.back_off("web").await;
    env.back_off("refused").await;
    let port = env.pebble.http_port.to_string();
    let hub = env
        .serve(
            &[
                "--check-interval",
                "3600",
                "--probe-http-port",
                &port,
                "--metrics-allow",
                "127.0.0.2",
            ],
            true,
        )
        .await;
    let admin = hub.admin_token().await;
    // The hub does the work it then counts: one order issued and deployed, one refused.
    for (cert, status) in [("web", "succeeded"), ("refused", "failed")] {
        let rsp =
            call(&hub, &admin, "POST", &format!("/api/v1/certificates/{cert}/request"), None).await;
        let job = job_done(&hub, &admin, rsp["job"]["id"].as_str().unwrap()).await;
        assert_eq!(job["status"], status, "{job}");
    }

    // Who may read them.
    let metrics = hub.sign_in(ADMIN, Some(json!(["metrics"]))).await;
    let reader = hub.sign_in(ADMIN, Some(json!(["cert:read"]))).await;
    let anonymous = get(&hub, None, "127.0.0.1").await;
    assert_eq!(anonymous.status(), 401);
    let refused = get(&hub, Some(&reader), "127.0.0.1").await;
    assert_eq!(refused.status(), 403);
    let problem: Value = refused.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("metrics scope"), "{problem}");
    let allowed = get(&hub, None, "127.0.0.2").await;
    assert_eq!(allowed.status(), 200);
    let scraped = get(&hub, Some(&metrics), "127.0.0.1").await;
    assert_eq!(scraped.status(), 200);
    assert!(
        scraped.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{:?}",
        scraped.headers()
    );
    let text = scraped.text().await.unwrap();

    // What they say, as the client library reads it, and by the documented names.
    let families = parse(&text);
    let found: BTreeSet<(String, String)> = families
        .iter()
        .map(|f| (f["name"].as_str().unwrap().to_string(), f["type"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(found, documented(), "the hub's metrics and docs/metrics.md differ");
    let ca = env.pebble.directory_url.as_str();
    let at = |name, labels: &[(&str, &str)]| {
        sample(&families, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };
    assert_eq!(at("certhub_certificates", &[("state", "valid")]), 1.0);
    assert_eq!(at("certhub_certificates", &[("state", "failing")]), 1.0);
    let left = at("certhub_certificate_expiry_seconds", &[("cert", "web")]);
    assert!(left > 86_400.0, "{left}");
    assert!(
        sample(&families, "certhub_certificate_expiry_seconds", &[("cert", "refused")]).is_none()
    );
    assert_eq!(at("certhub_orders_issued_total", &[("ca", ca)]), 1.0);
    let problem = [("ca", ca), ("problem", "rejectedIdentifier")];
    assert_eq!(at("certhub_orders_failed_total", &problem), 1.0);
    let new_orders = [("ca", ca), ("endpoint", "newOrder")];
    assert!(at("certhub_acme_request_duration_seconds_count", &new_orders) >= 2.0);
    assert!(at("certhub_acme_request_duration_seconds_sum", &new_orders) > 0.0);
    assert_eq!(at("certhub_deployments_total", &[("outcome", "done"), ("by", "hub")]), 1.0);
    let request =
        [("route", "/api/v1/certificates/{name}/request"), ("method", "POST"), ("status", "202")];
    assert_eq!(at("certhub_http_requests_total", &request), 2.0);
    let refusals = [("route", "/metrics"), ("status", "403")];
    assert_eq!(at("certhub_http_requests_total", &refusals), 1.0);
    assert_eq!(at("certhub_agents_connected", &[]), 0.0);
    assert!(at("certhub_renewal_queue_depth", &[]) >= 0.0);
}
