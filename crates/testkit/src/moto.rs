//! moto's server (`moto_server`, from PyPI) as a child process: a real implementation of
//! the AWS APIs, of which the tests use Route 53's (REST and XML, API version 2013-04-01).
//! `scripts/test` installs it into the test virtual environment and names it in
//! `CERTHUB_MOTO`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::{free_port, wait_until};

/// A running `moto_server`, killed on drop.
pub struct Moto {
    /// `http://127.0.0.1:PORT`: the endpoint of every AWS API it serves.
    pub url: String,
    child: Child,
    dir: TempDir,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts `moto_server` and waits until it answers.
    pub async fn start() -> Moto {
        let program = std::env::var("CERTHUB_MOTO").unwrap_or_else(|_| "moto_server".into());
        let port = free_port();
        let dir = TempDir::new().unwrap();
        let log = std::fs::File::create(dir.path().join("moto.log")).unwrap();
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {program} ({e}): scripts/test installs moto into its virtual \
                     environment and names it in CERTHUB_MOTO; or pip install 'moto[server]==5.2.6'"
                )
            });
        let moto = Moto { url: format!("http://127.0.0.1:{port}"), child, dir };
        let (url, pid) = (moto.url.clone(), moto.child.id());
        let log_path = moto.dir.path().join("moto.log");
        wait_until("moto_server to answer", Duration::from_secs(30), || {
            let (url, log_path) = (url.clone(), log_path.clone());
            async move {
                if crate::process_gone(pid) {
                    panic!("moto_server exited:\n{}", std::fs::read_to_string(log_path).unwrap());
                }
                let r = reqwest::get(format!("{url}/moto-api/")).await.ok()?;
                r.status().is_success().then_some(())
            }
        })
        .await;
        moto
    }

    /// Creates the public hosted zone `zone` in Route 53 and returns its ID.
    pub async fn create_hosted_zone(&self, zone: &str) -> String {
        let body = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<CreateHostedZoneRequest xmlns="https://route53.amazonaws.com/doc/2013-04-01/">
  <Name>{zone}.</Name><CallerReference>certhub-{zone}</CallerReference>
</CreateHostedZoneRequest>"#
        );
        let r = route53(reqwest::Client::new().post(format!("{}/2013-04-01/hostedzone", self.url)))
            .body(body)
            .send()
            .await
            .unwrap();
        let text = r.text().await.unwrap();
        let id = between(&text, "<Id>", "</Id>").unwrap_or_else(|| panic!("no zone ID in {text}"));
        id.trim_start_matches("/hostedzone/").to_string()
    }

    /// The TXT values at `name` in hosted zone `zone_id`, unquoted.
    pub async fn txt_values(&self, zone_id: &str, name: &str) -> Vec<String> {
        let url = format!("{}/2013-04-01/hostedzone/{zone_id}/rrset", self.url);
        let r = route53(reqwest::Client::new().get(url)).send().await.unwrap();
        let text = r.text().await.unwrap();
        let want = format!("{}.", name.trim_end_matches('.'));
        text.split("<ResourceRecordSet>")
            .skip(1)
            .filter(|set| {
                between(set, "<Name>", "</Name>").is_some_and(|n| n.eq_ignore_ascii_case(&want))
                    && between(set, "<Type>", "</Type>") == Some("TXT")
            })
            .flat_map(|set| set.split("<Value>").skip(1).map(|v| v.to_string()).collect::<Vec<_>>())
            .filter_map(|v| v.split("</Value>").next().map(|v| v.replace("&quot;", "\"")))
            .map(|v| v.trim_matches('"').to_string())
            .collect()
    }
}

/// A Route 53 request as moto takes it: moto knows the service by the credential scope of
/// the Authorization header (it checks no signature).
fn route53(r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    r.header(
        "Authorization",
        "AWS4-HMAC-SHA256 Credential=AKIDCERTHUBTEST/20260101/us-east-1/route53/aws4_request, \
         SignedHeaders=host, Signature=0",
    )
    .header("Content-Type", "text/xml")
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let to = text[from..].find(end)? + from;
    Some(&text[from..to])
}
