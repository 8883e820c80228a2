//! What running certhub as a service needs: `--version` names the commit it was built from,
//! `--log-format json` writes one JSON object a line with the facts as fields, and output
//! to a reader that went away ends quietly.

use crate::support::{Env, hostile};

#[tokio::test(flavor = "multi_thread")]
async fn the_version_names_the_commit_and_json_logs_carry_their_fields() {
    let env = Env::start(hostile()).await;
    let version = env.ok(&["--version"]).await;
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("git runs");
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    assert!(!head.is_empty(), "the tests run in a git checkout");
    assert_eq!(version.trim(), format!("certhub {} (commit {head})", env!("CARGO_PKG_VERSION")));

    // A name in a zone the test DNS refuses: its CAA cannot be read, which is logged.
    env.account("le", &[]).await;
    env.add_http01("far", "le", "far.example").await;
    let out = env.run(&["-v", "--log-format", "json", "renew", "far"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let logged: Vec<serde_json::Value> =
        stderr.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let caa = logged
        .iter()
        .find(|l| l["message"].as_str().is_some_and(|m| m.starts_with("CAA not checked")))
        .unwrap_or_else(|| panic!("no JSON log line about CAA in:\n{stderr}"));
    assert_eq!(caa["level"], "WARN", "{caa}");
    assert_eq!(caa["identifier"], "far.example", "the facts are fields: {caa}");
    assert!(caa["timestamp"].is_string(), "{caa}");
    assert!(!stderr.contains("\u{1b}["), "no colour codes: {stderr}");
    let placed = logged
        .iter()
        .find(|l| l["message"] == "order placed")
        .unwrap_or_else(|| panic!("no JSON log line about the order in:\n{stderr}"));
    assert_eq!(placed["cert"], "far", "{placed}");
    let order = placed["order"].as_str().unwrap_or_default();
    assert!(order.starts_with("https://") && order.contains("order"), "{placed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn output_to_a_reader_that_went_away_ends_quietly() {
    let env = Env::start(hostile()).await;
    // A pipe whose reading end is already closed: every write fails (EPIPE).
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = env
        .command(&["dns", "providers"])
        .stdout(std::process::Stdio::from(writer))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
        .wait_with_output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(stderr.is_empty(), "no panic, no message: {stderr}");
}
