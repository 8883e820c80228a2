//! Every parser here that reads outside input, fed what a broken peer or an attacker might
//! send: random bytes, valid documents cut short or with bytes changed, and strings made of
//! the format's own tokens. None may panic, and every refusal says why (a message that is not
//! empty). The budget is fixed ([`CASES`] per property), so CI runs the same amount each
//! time; the figures are in docs/reliability.md.

use std::path::PathBuf;

use certhub_core::agent::{Label, Target};
use certhub_core::budget::RateLimits;
use certhub_core::cert::CertInfo;
use certhub_core::challenge::ChallengeSpec;
use certhub_core::csr::ParsedCsr;
use certhub_core::deploy::DeployTask;
use certhub_core::discover::{self, Source};
use certhub_core::identifier::RequestRules;
use certhub_core::key::PrivateKey;
use certhub_core::renewal::RenewalPolicy;
use certhub_testkit::fuzz::{config, mutated, said_why};
use proptest::prelude::*;

/// Cases tried per property.
const CASES: u32 = 20_000;

/// Text made of `tokens`, joined at random.
fn soup(tokens: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(tokens), 0..40).prop_map(|t| t.concat())
}

/// A key, a self-signed certificate and a CSR for `www.example.test`, as rcgen makes them.
fn valid() -> (String, String, Vec<u8>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["www.example.test".into()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let csr = params.serialize_request(&key).unwrap();
    (key.serialize_pem(), cert.pem(), csr.der().to_vec())
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn csrs(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        said_why(ParsedCsr::parse(&bytes))?;
    }

    #[test]
    fn csrs_changed(der in mutated(valid().2)) {
        said_why(ParsedCsr::parse(&der))?;
        let pem = certhub_core::pem_block("CERTIFICATE REQUEST", &der);
        said_why(ParsedCsr::parse(pem.as_bytes()))?;
    }

    #[test]
    fn certificate_chains_changed(pem in mutated(valid().1.into_bytes())) {
        said_why(CertInfo::from_pem_chain(&String::from_utf8_lossy(&pem)))?;
    }

    #[test]
    fn private_keys_changed(pem in mutated(valid().0.into_bytes())) {
        said_why(PrivateKey::from_pem(&String::from_utf8_lossy(&pem)))?;
    }

    #[test]
    fn challenge_specs(spec in soup(&[
        "http-01", "dns-01", "tls-alpn-01", ":", ";", ",", "=", "listen", "127.0.0.1:80", "[::1]:0",
        "rfc2136", "192.0.2.1:53", "key-name", "key-secret", "algorithm", "hmac-sha256", "webroot",
        "/var/www", "exec", "provider", "cloudflare", "credential", "zone", "domains", "*.", "a.test",
        "propagation", "wait", "10s", "%", "\"", " ", "\n", "\0", "é", "..", "=", ";;",
    ])) {
        said_why(ChallengeSpec::parse(&spec))?;
    }

    #[test]
    fn challenge_specs_random(spec in any::<String>()) {
        said_why(ChallengeSpec::parse(&spec))?;
    }

    #[test]
    fn deployment_specs(spec in soup(&[
        "files", "command", "webhook", "nginx", "apache", "sftp", "ssh", "pkcs12", "agent", ":", ";",
        ",", "=", "dir", "/etc/ssl", "..", "name", "mode", "0600", "0999", "owner", "on", "renew",
        "url", "https://h.test/x", "host", "h.test:22", "user", "fingerprint", "SHA256:", "server",
        "vhost", "password", "legacy", "%", "\"", " ", "\n", "\0", "é",
    ])) {
        said_why(DeployTask::parse(&spec, "task"))?;
    }

    #[test]
    fn deployment_specs_random(spec in any::<String>()) {
        said_why(DeployTask::parse(&spec, "task"))?;
    }

    #[test]
    fn small_vocabularies(s in soup(&[
        "orders", "domain", "=", "300", "/", "3h", "7d", "0", "ari-exempt", ",", "none", "%", "75",
        "30d", "agent:", "label:", "k", "v", "-", " ", "é", "99999999999999999999",
    ])) {
        said_why(s.parse::<RateLimits>())?;
        said_why(s.parse::<RenewalPolicy>())?;
        said_why(Label::parse(&s))?;
        said_why(Target::parse(&s))?;
    }

    #[test]
    fn web_server_configurations(main in soup(CONFIG_TOKENS), included in soup(CONFIG_TOKENS)) {
        let source = || Source { path: PathBuf::from("/etc/web/main.conf"), text: main.clone() };
        // Every include names the other file, which may include itself again.
        let resolve = |req: &discover::IncludeRequest<'_>| {
            Ok(vec![Source { path: req.pattern.clone(), text: included.clone() }])
        };
        let rules = RequestRules::default();
        said_why(discover::nginx(source(), &rules, resolve).map_err(|e| e.message))?;
        said_why(discover::apache(source(), &rules, resolve).map_err(|e| e.message))?;
    }
}

/// The words of nginx and Apache configurations.
const CONFIG_TOKENS: &[&str] = &[
    "server",
    " {",
    "}",
    ";",
    "\n",
    " ",
    "listen",
    "443",
    "ssl",
    "server_name",
    "a.test",
    "*.b.test",
    "~^(www)\\.c\\.test$",
    "include",
    "sites/*.conf",
    "/etc/web/other.conf",
    "ssl_certificate",
    "/etc/ssl/a.pem",
    "#",
    "\"",
    "'",
    "\\",
    "$host",
    "http",
    "events",
    "<VirtualHost *:443>",
    "</VirtualHost>",
    "ServerName",
    "ServerAlias",
    "SSLEngine on",
    "Include",
    "IncludeOptional",
    "ServerRoot",
    "/etc/apache2",
    "<IfModule x>",
    "</IfModule>",
    "Define",
    "${X}",
    "é",
    "\0",
];
