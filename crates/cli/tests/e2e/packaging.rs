//! The systemd units in packaging/systemd: each passes `systemd-analyze verify` (with the
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
