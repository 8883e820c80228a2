//! The Debian package, installed, served, upgraded and removed on this machine; and the
//! systemd units in packaging/systemd: each passes `systemd-analyze verify` (with the
//! binary built here in place of /usr/bin/certhub), and the hub's is hardened enough for
//! `systemd-analyze security` to rate it OK.

use std::path::Path;

use certhub_testkit::require_tool;

const UNITS: [&str; 4] =
    ["certhub.service", "certhub-renew.service", "certhub-renew.timer", "certhub-agent.service"];

#[test]
fn the_systemd_units_verify_and_the_hub_is_confined() {
    let analyze = require_tool("systemd-analyze", "apt-get install systemd");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/systemd");
    let dir = tempfile::TempDir::new().unwrap();
    for unit in UNITS {
        let text = std::fs::read_to_string(source.join(unit)).unwrap();
        assert!(unit.ends_with(".timer") || text.contains("ExecStart=/usr/bin/certhub "), "{unit}");
        let text = text.replace("/usr/bin/certhub", env!("CARGO_BIN_EXE_certhub"));
        std::fs::write(dir.path().join(unit), text).unwrap();
    }
    for unit in UNITS {
        let out = std::process::Command::new(&analyze)
            .arg("verify")
            .arg(dir.path().join(unit))
            .current_dir(dir.path())
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success() && said.trim().is_empty(), "{unit}:\n{said}");
    }
    let out = std::process::Command::new(&analyze)
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(dir.path().join("certhub.service"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    let level: f64 = said
        .lines()
        .find_map(|l| l.split("certhub.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{said}"));
    assert!(level <= 2.0, "the hub's unit is exposed at {level}:\n{said}");
}

/// Runs `program` with `args`, failing the test with what it said unless it succeeds; its
/// standard output.
fn run(program: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(program).args(args).output().unwrap();
    let said =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{} {}:\n{said}", program.display(), args.join(" "));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The Debian package of the binary built here, at `version`, in `dir`.
fn package(dir: &Path, version: &str) -> std::path::PathBuf {
    require_tool(
        "cargo-deb",
        "run scripts/package once (it installs cargo-deb), or `cargo install --locked --version 3.6.0 cargo-deb`",
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "deb",
            "-p",
            "certhub-cli",
            "--no-build",
            "--profile",
            "dev",
            "--fast",
            "--deb-version",
            version,
            "--output",
        ])
        .arg(dir)
        .current_dir(root)
        .output()
        .unwrap();
    let said =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "cargo deb:\n{said}");
    let path = said
        .lines()
        .rev()
        .find(|l| l.trim().ends_with(".deb"))
        .unwrap_or_else(|| panic!("no package in:\n{said}"));
    std::path::PathBuf::from(path.trim())
}

/// Starts the installed hub as its service does (user certhub, data in /var/lib/certhub),
/// and waits until it is ready.
async fn start_installed(port: u16) -> tokio::process::Child {
    let runuser = require_tool("runuser", "apt-get install util-linux");
    let listen = format!("127.0.0.1:{port}");
    let child = tokio::process::Command::new(runuser)
        .args(["-u", "certhub", "--", "/usr/bin/certhub", "serve", "--listen", &listen])
        .env("CERTHUB_DATA_DIR", "/var/lib/certhub")
        .env_remove("CERTHUB_DATABASE_URL")
        .stdout(std::process::Stdio::null())
        // runuser says "Session terminated" when the hub is stopped.
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://{listen}/api/v1/ready");
    certhub_testkit::wait_until(
        "the installed hub to be ready",
        std::time::Duration::from_secs(30),
        || {
            let (http, url) = (&http, &url);
            async move { http.get(url).send().await.ok().filter(|r| r.status() == 200).map(|_| ()) }
        },
    )
    .await;
    child
}

/// Stops a hub started by [`start_installed`] as systemd would: SIGTERM (runuser passes it
/// on), then SIGKILL if it has not ended within 30 s.
async fn stop(mut child: tokio::process::Child) {
    let pid = child.id().unwrap().to_string();
    run(Path::new("/usr/bin/kill"), &["-TERM", &pid]);
    let ended = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait()).await;
    assert!(ended.is_ok(), "the installed hub did not stop on SIGTERM");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_package_installs_serves_upgrades_and_removes_keeping_the_data() {
    let dpkg = require_tool("dpkg", "a Debian system (dpkg)");
    let id = run(Path::new("/usr/bin/id"), &["-u"]);
    assert_eq!(id.trim(), "0", "installing a package needs root: run the suite as root");
    let dir = tempfile::TempDir::new().unwrap();
    let (first, second) = (package(dir.path(), "0.0.1-test1"), package(dir.path(), "0.0.1-test2"));
    // A run cut short before left it installed: start from nothing.
    let _ = std::process::Command::new(&dpkg).args(["--purge", "certhub"]).output();
    let _ = std::fs::remove_dir_all("/var/lib/certhub");

    // Installed: the binary, the units, the settings file, the user and its directory.
    run(&dpkg, &["-i", first.to_str().unwrap()]);
    for file in [
        "/usr/bin/certhub",
        "/lib/systemd/system/certhub.service",
        "/lib/systemd/system/certhub-agent.service",
        "/lib/systemd/system/certhub-renew.timer",
        "/etc/default/certhub",
    ] {
        assert!(Path::new(file).exists(), "{file} is missing");
    }
    run(Path::new("/usr/bin/getent"), &["passwd", "certhub"]);
    let analyze = require_tool("systemd-analyze", "apt-get install systemd");
    run(
        &analyze,
        &[
            "verify",
            "/lib/systemd/system/certhub.service",
            "/lib/systemd/system/certhub-agent.service",
            "/lib/systemd/system/certhub-renew.timer",
        ],
    );
    let version = run(Path::new("/usr/bin/certhub"), &["--version"]);
    assert!(version.starts_with("certhub "), "{version}");

    // Started as its unit starts it, it answers, and is set up.
    let port = certhub_testkit::free_port();
    let hub = start_installed(port).await;
    let token = std::fs::read_to_string("/var/lib/certhub/setup-token").unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let login = serde_json::json!({"username": "admin", "password": "a long enough password"});
    let mut setup = login.clone();
    setup["token"] = token.trim().into();
    let rsp = http
        .post(format!("http://127.0.0.1:{port}/api/v1/setup"))
        .json(&setup)
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 201);
    stop(hub).await;

    // Upgraded: the new version runs on the same data.
    run(&dpkg, &["-i", second.to_str().unwrap()]);
    let installed = run(Path::new("/usr/bin/dpkg-query"), &["-W", "-f", "${Version}", "certhub"]);
    assert_eq!(installed, "0.0.1-test2");
    let hub = start_installed(port).await;
    let rsp = http
        .post(format!("http://127.0.0.1:{port}/api/v1/tokens"))
        .json(&login)
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 201, "the admin made before the upgrade cannot sign in");
    stop(hub).await;

    // Removed, then purged: the binary and settings go, the database and master key stay.
    run(&dpkg, &["-r", "certhub"]);
    assert!(!Path::new("/usr/bin/certhub").exists());
    assert!(Path::new("/etc/default/certhub").exists(), "a removal keeps the settings");
    run(&dpkg, &["--purge", "certhub"]);
    assert!(!Path::new("/etc/default/certhub").exists());
    for kept in ["certhub.db", "master.key"] {
        assert!(Path::new("/var/lib/certhub").join(kept).exists(), "{kept} went with the package");
    }
    std::fs::remove_dir_all("/var/lib/certhub").unwrap();
}
