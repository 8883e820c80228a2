//! Helpers shared by several topic files: name sets, webroots, serials, bought certificates.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::Env;

pub(crate) fn names(v: &Value) -> BTreeSet<String> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

pub(crate) fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

pub(crate) fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A webroot served where Pebble validates http-01, and the challenge spec that writes to it.
pub(crate) async fn webroot_site(
    env: &Env,
) -> (tempfile::TempDir, String, tokio::task::JoinHandle<()>) {
    let webroot = tempfile::TempDir::new().unwrap();
    let server = serve_dir(webroot.path().to_path_buf(), env.pebble.http_port).await;
    let spec = format!("http-01:webroot={}", webroot.path().display());
    (webroot, spec, server)
}

/// Serves files below `root` on 127.0.0.1:`port`, as a web server in front of a webroot.
async fn serve_dir(root: std::path::PathBuf, port: u16) -> tokio::task::JoinHandle<()> {
    use axum::extract::Path;
    use axum::http::StatusCode;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let app = axum::Router::new().route(
        "/.well-known/acme-challenge/{token}",
        axum::routing::get(move |Path(token): Path<String>| {
            let path = root.join(".well-known/acme-challenge").join(token);
            async move { std::fs::read(path).map_err(|_| StatusCode::NOT_FOUND) }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

/// The serial of a DER certificate as certhub shows it: lowercase hex, no leading zeros.
pub(crate) fn serial_of(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let hex: String =
        cert.tbs_certificate.raw_serial().iter().map(|b| format!("{b:02x}")).collect();
    hex.trim_start_matches('0').to_string()
}

pub(crate) fn shown_serial(show: &Value) -> String {
    show["serial"].as_str().unwrap().to_ascii_lowercase().trim_start_matches('0').to_string()
}

/// A certificate from a CA other than the ACME one (an OV certificate bought elsewhere):
/// (fullchain PEM, key PEM, serial hex).
pub(crate) fn bought_certificate(
    names: &[&str],
    days: i64,
    serial: u8,
) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SerialNumber};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "Bought Elsewhere OV CA");
    ca.key_identifier_method = rcgen::KeyIdMethod::Sha256;
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    leaf.serial_number = Some(SerialNumber::from(vec![0x42, serial]));
    leaf.use_authority_key_identifier_extension = true;
    let now = time::OffsetDateTime::now_utc();
    leaf.not_before = now - time::Duration::days(1);
    leaf.not_after = now + time::Duration::days(days);
    let leaf = leaf.signed_by(&key, &issuer).unwrap();
    (format!("{}{}", leaf.pem(), ca_cert.pem()), key.serialize_pem(), format!("42{serial:02x}"))
}
