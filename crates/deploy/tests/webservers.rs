//! nginx: and apache: tasks against a real nginx and a real Apache httpd: the server block
//! (virtual host) answering to the name is pointed at the new files and the new certificate
//! is served; a configuration that fails the server's own test is put back, and the previous
//! certificate is still served.

use std::path::PathBuf;
use std::time::Duration;

use certhub_core::DeployTask;
use certhub_deploy::{Facts, Issued, Outcome, Run};
use certhub_testkit::apache::Apache;
use certhub_testkit::nginx::{Nginx, served_chain};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SerialNumber};
use zeroize::Zeroizing;

/// A test CA: its PEM, and certificates for web.test signed by it.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        Ca { pem, issuer: Issuer::new(params, key) }
    }

    fn issue(&self, serial: u64) -> Issued {
        let key = KeyPair::generate().unwrap();
        let mut leaf = CertificateParams::new(vec!["web.test".to_string()]).unwrap();
        leaf.serial_number = Some(SerialNumber::from(serial.to_be_bytes().to_vec()));
        let leaf = leaf.signed_by(&key, &self.issuer).unwrap();
        Issued {
            serial_hex: format!("{serial:016x}"),
            not_before: 1_700_000_000,
            not_after: 4_000_000_000,
            domains: vec!["web.test".into()],
            chain_der: vec![leaf.der().to_vec()],
            key_pkcs8: Zeroizing::new(key.serialize_der()),
        }
    }
}

/// A CA, a directory, and in it the certificate (serial 1) and key a server starts with.
fn start_with_serial_1() -> (Ca, tempfile::TempDir, PathBuf, PathBuf) {
    let ca = Ca::new();
    let dir = tempfile::TempDir::new().unwrap();
    let first = ca.issue(1);
    let (full, key) = (dir.path().join("start.pem"), dir.path().join("start.key"));
    std::fs::write(&full, certhub_core::pem_block("CERTIFICATE", &first.chain_der[0])).unwrap();
    std::fs::write(&key, certhub_core::pem_block("PRIVATE KEY", &first.key_pkcs8)).unwrap();
    (ca, dir, full, key)
}

async fn deploy(spec: &str, issued: Issued) -> Outcome {
    let facts = Facts { cert_name: "web".into(), issued: Some(issued), error: None };
    let task = DeployTask::parse(spec, "t").unwrap_or_else(|e| panic!("{spec}: {e}"));
    Run::new(&facts, false).task(&task).await
}

/// Waits until the server at `addr` serves serial `want` for web.test (servers reload in
/// the background).
async fn serves(addr: std::net::SocketAddr, ca: &Ca, want: u64) {
    let der = certhub_testkit::wait_until(
        "the server to serve the serial",
        Duration::from_secs(20),
        || async {
            let chain = served_chain(addr, "web.test", &ca.pem).await.ok()?;
            let leaf = chain.first()?.clone();
            let (_, cert) = x509_parser::parse_x509_certificate(&leaf).ok()?;
            let serial = cert.raw_serial().iter().fold(0u64, |a, b| (a << 8) | u64::from(*b));
            (serial == want).then_some(leaf)
        },
    )
    .await;
    assert!(!der.is_empty());
}

#[tokio::test]
async fn nginx_serves_the_new_certificate_and_a_failed_test_is_put_back() {
    let (ca, dir, full, key) = start_with_serial_1();
    let nginx = Nginx::start_named(&full, &key, &["web.test", "www.web.test"]).await;
    serves(nginx.addr, &ca, 1).await;

    let files = dir.path().join("certs");
    let spec = format!(
        "nginx:server=web.test,config={},dir={},test={},reload={}",
        nginx.conf.display(),
        files.display(),
        nginx.test_command(),
        nginx.reload_command()
    );
    let o = deploy(&spec, ca.issue(2)).await;
    assert!(matches!(o, Outcome::Done(_)), "{o:?}\n{}", nginx.log());
    serves(nginx.addr, &ca, 2).await;
    let conf = std::fs::read_to_string(&nginx.conf).unwrap();
    let fullchain = files.join(format!("fullchain-{:016x}.pem", 2));
    assert!(conf.contains(&format!("ssl_certificate {};", fullchain.display())), "{conf}");
    // Serial 3, after 2 is in use: 2's files go.
    let o = deploy(&spec, ca.issue(3)).await;
    assert!(matches!(o, Outcome::Done(_)), "{o:?}");
    serves(nginx.addr, &ca, 3).await;
    assert!(!fullchain.exists());

    // A key that is not the certificate's: nginx -t refuses, the configuration is put back,
    // the new files go, and serial 3 is still served.
    let before = std::fs::read_to_string(&nginx.conf).unwrap();
    let mut broken = ca.issue(4);
    broken.key_pkcs8 = ca.issue(5).key_pkcs8;
    let o = deploy(&spec, broken).await;
    let Outcome::Failed(why) = o else { panic!("{o:?}") };
    assert!(why.contains("the configuration test") && why.contains("is back"), "{why}");
    assert!(why.contains("key values mismatch"), "nginx's own words: {why}");
    assert_eq!(std::fs::read_to_string(&nginx.conf).unwrap(), before);
    assert!(!files.join(format!("fullchain-{:016x}.pem", 4)).exists());
    nginx_reload(&nginx).await;
    serves(nginx.addr, &ca, 3).await;

    // A name no server block answers to changes nothing.
    let other = spec.replace("server=web.test", "server=mail.test");
    let Outcome::Failed(why) = deploy(&other, ca.issue(6)).await else { panic!() };
    assert!(why.contains("no server block") && why.contains("mail.test"), "{why}");
    assert_eq!(std::fs::read_to_string(&nginx.conf).unwrap(), before);
}

async fn nginx_reload(nginx: &Nginx) {
    let out = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(nginx.reload_command())
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn apache_serves_the_new_certificate_and_a_broken_configuration_is_put_back() {
    let (ca, dir, full, key) = start_with_serial_1();
    let apache = Apache::start(&full, &key, &["web.test", "www.web.test"]).await;
    serves(apache.addr, &ca, 1).await;

    let files = dir.path().join("certs");
    let spec = format!(
        "apache:vhost=www.web.test,config={},dir={},test={},reload={}",
        apache.conf.display(),
        files.display(),
        apache.test_command(),
        apache.reload_command()
    );
    let o = deploy(&spec, ca.issue(2)).await;
    assert!(matches!(o, Outcome::Done(_)), "{o:?}\n{}", apache.log());
    serves(apache.addr, &ca, 2).await;
    let conf = std::fs::read_to_string(&apache.conf).unwrap();
    let key2 = files.join(format!("privkey-{:016x}.pem", 2));
    assert!(conf.contains(&format!("SSLCertificateKeyFile {}", key2.display())), "{conf}");

    // Someone left a typo elsewhere in the configuration: httpd -t fails, certhub's change
    // is put back (the typo stays theirs), and serial 2 is still served.
    let broken = format!("{conf}SSLProtocl all\n");
    std::fs::write(&apache.conf, &broken).unwrap();
    let Outcome::Failed(why) = deploy(&spec, ca.issue(3)).await else { panic!() };
    assert!(why.contains("the configuration test") && why.contains("is back"), "{why}");
    assert!(why.contains("SSLProtocl"), "httpd's own words: {why}");
    assert_eq!(std::fs::read_to_string(&apache.conf).unwrap(), broken);
    assert!(!files.join(format!("privkey-{:016x}.pem", 3)).exists());
    serves(apache.addr, &ca, 2).await;
}
