//! Debian's PowerDNS Authoritative Server (`pdns_server`) as a child process, with the
//! SQLite backend and its HTTP API on: authoritative for the zones a test names (each with
//! an NS `ns1.ZONE` at 127.0.0.1), answering DNS on one port and its API on another.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::{free_port, require_tool, wait_until};

const SCHEMA: &str = "/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql";

/// A running `pdns_server`, killed on drop.
pub struct PowerDns {
    /// Where it answers DNS, UDP and TCP.
    pub addr: SocketAddr,
    /// Its HTTP API's base address, `http://127.0.0.1:PORT`.
    pub api_url: String,
    /// The key its API takes (`X-API-Key`).
    pub api_key: String,
    child: Child,
    dir: TempDir,
}

impl Drop for PowerDns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PowerDns {
    /// Starts `pdns_server` authoritative for `zones` and waits until its API answers.
    pub async fn start(zones: &[&str]) -> PowerDns {
        let pdns = require_tool("pdns_server", "apt-get install pdns-server pdns-backend-sqlite3");
        let sqlite = require_tool("sqlite3", "apt-get install sqlite3");
        assert!(
            std::path::Path::new(SCHEMA).exists(),
            "{SCHEMA} is missing: apt-get install pdns-backend-sqlite3"
        );
        let dir = TempDir::new().unwrap();
        let db = dir.path().join("pdns.sqlite3");
        let schema = std::fs::read(SCHEMA).unwrap();
        let mut init = Command::new(sqlite).arg(&db).stdin(Stdio::piped()).spawn().unwrap();
        std::io::Write::write_all(&mut init.stdin.take().unwrap(), &schema).unwrap();
        assert!(init.wait().unwrap().success(), "sqlite3 could not create the pdns database");
        let (port, api_port) = (free_port(), free_port());
        let api_key = "certhub-pdns-test-key".to_string();
        let d = dir.path().display();
        let conf = format!(
            "launch=gsqlite3\ngsqlite3-database={}\nlocal-address=127.0.0.1\nlocal-port={port}\n\
             api=yes\napi-key={api_key}\nwebserver=yes\nwebserver-address=127.0.0.1\n\
             webserver-port={api_port}\nwebserver-allow-from=127.0.0.0/8\nsocket-dir={d}\n\
             daemon=no\nguardian=no\ndisable-syslog=yes\nloglevel=4\n",
            db.display()
        );
        std::fs::write(dir.path().join("pdns.conf"), conf).unwrap();
        let log = std::fs::File::create(dir.path().join("pdns.log")).unwrap();
        let child = Command::new(pdns)
            .arg(format!("--config-dir={d}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("pdns_server starts");
        let server = PowerDns {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            api_url: format!("http://127.0.0.1:{api_port}"),
            api_key,
            child,
            dir,
        };
        let client = reqwest::Client::new();
        let (url, key, pid) = (server.api_url.clone(), server.api_key.clone(), server.child.id());
        let log_path = server.dir.path().join("pdns.log");
        wait_until("pdns_server's API to answer", Duration::from_secs(20), || {
            let (client, url, key, log_path) =
                (client.clone(), url.clone(), key.clone(), log_path.clone());
            async move {
                if crate::process_gone(pid) {
                    panic!("pdns_server exited:\n{}", std::fs::read_to_string(log_path).unwrap());
                }
                let r = client.get(format!("{url}/api/v1/servers/localhost"));
                let r = r.header("X-API-Key", key).send().await.ok()?;
                r.status().is_success().then_some(())
            }
        })
        .await;
        for zone in zones {
            server.create_zone(zone).await;
        }
        server
    }

    /// Creates `zone` (Native), with NS ns1.ZONE and ns1.ZONE at 127.0.0.1.
    async fn create_zone(&self, zone: &str) {
        let zone = format!("{}.", zone.trim_end_matches('.'));
        let body = serde_json::json!({
            "name": zone, "kind": "Native", "nameservers": [format!("ns1.{zone}")],
            "rrsets": [{
                "name": format!("ns1.{zone}"), "type": "A", "ttl": 60, "changetype": "REPLACE",
                "records": [{"content": "127.0.0.1", "disabled": false}]
            }]
        });
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/servers/localhost/zones", self.api_url))
            .header("X-API-Key", &self.api_key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        assert!(
            status.is_success(),
            "pdns refused zone {zone}: {status} {}",
            r.text().await.unwrap()
        );
    }

    /// pdns_server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pdns.log")).unwrap_or_default()
    }
}
