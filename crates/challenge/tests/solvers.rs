//! Solvers on their own: the http-01 and tls-alpn-01 responders, the webroot writer, and
//! RFC 2136 against a real BIND 9.

use std::sync::Arc;
use std::time::Duration;

use certhub_challenge::Solvers;
use certhub_challenge::dns::{DnsCheckConfig, txt_value};
use certhub_challenge::http01::Http01Responder;
use certhub_challenge::tls_alpn::TlsAlpnResponder;
use certhub_challenge::webroot::WebrootSolver;
use certhub_core::{
    ChallengeKind, ChallengeSpec, Identifier, PendingChallenge, Solver, SolverError,
};
use certhub_testkit::bind::Bind;

fn challenge(kind: ChallengeKind, id: Identifier, token: &str) -> PendingChallenge {
    PendingChallenge {
        cert: "test".to_string(),
        kind,
        identifier: id,
        token: token.to_string(),
        key_authorization: format!("{token}.thumbprint"),
    }
}

fn dns(name: &str) -> Identifier {
    Identifier::Dns(name.to_string())
}

#[tokio::test]
async fn http01_serves_every_token_in_flight_and_nothing_else() {
    let r = Http01Responder::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let a = challenge(ChallengeKind::Http01, dns("a.test"), "tokA");
    let b = challenge(ChallengeKind::Http01, dns("b.test"), "tokB");
    r.present(&a).await.unwrap();
    r.present(&b).await.unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let get = |t: &str| {
        http.get(format!("http://{}/.well-known/acme-challenge/{t}", r.local_addr())).send()
    };
    for c in [&a, &b] {
        let rsp = get(&c.token).await.unwrap();
        assert_eq!(rsp.status(), 200);
        assert_eq!(rsp.text().await.unwrap(), c.key_authorization);
    }
    assert_eq!(get("other").await.unwrap().status(), 404);
    r.cleanup(&a).await.unwrap();
    assert_eq!(get("tokA").await.unwrap().status(), 404);
    assert_eq!(get("tokB").await.unwrap().status(), 200);

    let err = Http01Responder::bind(r.local_addr()).await.err().expect("the port is taken");
    assert!(err.to_string().contains(&r.local_addr().to_string()), "{err}");
}

#[tokio::test]
async fn solvers_share_one_listener_per_address() {
    let solvers = Solvers::new(DnsCheckConfig::default());
    let port = certhub_testkit::free_port();
    let spec = ChallengeSpec::parse(&format!("http-01:listen=127.0.0.1:{port}")).unwrap();
    let one = solvers.for_spec(&spec).await.unwrap();
    let two = solvers.for_spec(&spec).await.unwrap();
    assert!(Arc::ptr_eq(&one, &two));
    // Another process (here: another set of solvers) cannot listen there meanwhile…
    let other = Solvers::new(DnsCheckConfig::default());
    let busy = other.for_spec(&spec).await.err().expect("the address is in use");
    assert!(busy.to_string().contains(&port.to_string()), "{busy}");
    // …and can once no order holds the listener, and so can this process again after it.
    drop((one, two));
    let theirs = other.for_spec(&spec).await.expect("the released address");
    drop(theirs);
    solvers.for_spec(&spec).await.expect("bound anew");
}

#[tokio::test]
async fn tls_alpn01_orders_for_one_name_take_turns() {
    let solvers = Arc::new(Solvers::new(DnsCheckConfig::default()));
    let port = certhub_testkit::free_port();
    let spec = ChallengeSpec::parse(&format!("tls-alpn-01:listen=127.0.0.1:{port}")).unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let ip = Identifier::Ip("127.0.0.1".parse().unwrap());
    let sni = "1.0.0.127.in-addr.arpa";
    // Eight orders validate the same address at once, each checking that the validator
    // sees its own key authorization while its challenge is presented.
    let orders: Vec<_> = (0..8)
        .map(|i| {
            let (solvers, spec, ip) = (solvers.clone(), spec.clone(), ip.clone());
            tokio::spawn(async move {
                let c = challenge(ChallengeKind::TlsAlpn01, ip, &format!("order{i}"));
                let solver = solvers.for_spec(&spec).await.unwrap();
                solver.present(&c).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
                let served = handshake(addr, sni, true).await.expect("a certificate");
                solver.cleanup(&c).await.unwrap();
                let want = aws_lc_rs::digest::digest(
                    &aws_lc_rs::digest::SHA256,
                    c.key_authorization.as_bytes(),
                );
                let (_, parsed) = x509_parser::parse_x509_certificate(&served).unwrap();
                let ext = parsed
                    .extensions()
                    .iter()
                    .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
                    .expect("the acmeIdentifier extension")
                    .value
                    .to_vec();
                ext == [&[0x04, 0x20][..], want.as_ref()].concat()
            })
        })
        .collect();
    let mut seen = Vec::new();
    for order in orders {
        seen.push(order.await.unwrap());
    }
    assert_eq!(seen, [true; 8], "each order's validator saw that order's certificate");
    // A cleanup of a challenge that never had its turn leaves the current one alone.
    let r = TlsAlpnResponder::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let current = challenge(ChallengeKind::TlsAlpn01, dns("turn.test"), "current");
    r.present(&current).await.unwrap();
    r.cleanup(&challenge(ChallengeKind::TlsAlpn01, dns("turn.test"), "failed")).await.unwrap();
    assert!(handshake(r.local_addr(), "turn.test", true).await.is_some());
}

#[tokio::test]
async fn webroot_writes_and_removes_the_token_and_refuses_traversal() {
    let root = tempfile::TempDir::new().unwrap();
    let w = WebrootSolver::new(root.path().to_path_buf());
    let c = challenge(ChallengeKind::Http01, dns("a.test"), "abc_DEF-123");
    w.present(&c).await.unwrap();
    let file = root.path().join(".well-known/acme-challenge/abc_DEF-123");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), c.key_authorization);
    w.cleanup(&c).await.unwrap();
    assert!(!file.exists());
    assert!(!root.path().join(".well-known").exists(), "the directories it made are gone");
    w.cleanup(&c).await.unwrap();
    let evil = challenge(ChallengeKind::Http01, dns("a.test"), "../../etc/passwd");
    assert!(matches!(w.present(&evil).await, Err(SolverError::Unsupported(_))));
}

#[tokio::test]
async fn tls_alpn01_serves_the_acme_identifier_only_with_the_alpn() {
    let r = TlsAlpnResponder::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let c = challenge(ChallengeKind::TlsAlpn01, dns("alpn.test"), "tok");
    r.present(&c).await.unwrap();
    let cert = handshake(r.local_addr(), "alpn.test", true)
        .await
        .expect("a certificate for a presented name");
    let (_, parsed) = x509_parser::parse_x509_certificate(&cert).unwrap();
    let ext = parsed
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
        .expect("the acmeIdentifier extension");
    assert!(ext.critical);
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, c.key_authorization.as_bytes());
    // DER OCTET STRING of the 32-byte digest.
    assert_eq!(ext.value, [&[0x04, 0x20][..], digest.as_ref()].concat());
    assert!(handshake(r.local_addr(), "other.test", true).await.is_none(), "unknown names fail");
    assert!(
        handshake(r.local_addr(), "alpn.test", false).await.is_none(),
        "no acme-tls/1, no certificate"
    );
    r.cleanup(&c).await.unwrap();
    assert!(handshake(r.local_addr(), "alpn.test", true).await.is_none());
}

/// The certificate the server presents, if the handshake gets that far.
async fn handshake(addr: std::net::SocketAddr, sni: &str, alpn: bool) -> Option<Vec<u8>> {
    let offered = alpn.then_some(b"acme-tls/1".as_slice());
    match certhub_challenge::probe::handshake(addr, sni, offered).await {
        Ok(served) => Some(served.leaf),
        Err(e) => {
            eprintln!("handshake for {sni}: {e}");
            None
        }
    }
}

#[tokio::test]
async fn rfc2136_values_coexist_and_cleanup_removes_only_its_own() {
    let bind = Bind::start(&["test"]).await;
    let config = DnsCheckConfig {
        resolver: Some(bind.addr),
        authoritative_port: bind.addr.port(),
        timeout: Duration::from_secs(10),
        ..DnsCheckConfig::default()
    };
    let spec = ChallengeSpec::parse(&format!(
        "dns-01:rfc2136={},key-name={},key-secret={}",
        bind.addr, bind.tsig_key_name, bind.tsig_secret
    ))
    .unwrap();
    let solver = Solvers::new(config).for_spec(&spec).await.unwrap();
    // A wildcard and its base name share one record name.
    let apex = challenge(ChallengeKind::Dns01, dns("w.test"), "one");
    let wild = challenge(ChallengeKind::Dns01, dns("w.test"), "two");
    solver.present(&apex).await.unwrap();
    solver.present(&wild).await.unwrap();
    let mut values = bind.txt_values("_acme-challenge.w.test.").await;
    values.sort();
    let mut want = vec![txt_value(&apex.key_authorization), txt_value(&wild.key_authorization)];
    want.sort();
    assert_eq!(values, want);
    solver.cleanup(&apex).await.unwrap();
    assert_eq!(
        bind.txt_values("_acme-challenge.w.test.").await,
        vec![txt_value(&wild.key_authorization)]
    );
    solver.cleanup(&wild).await.unwrap();
    assert!(bind.txt_values("_acme-challenge.w.test.").await.is_empty());
}

/// A zone the resolver certhub uses cannot see (split-horizon DNS): the default check fails
/// naming the options; through a resolver that sees it, or with a plain wait, it works.
#[tokio::test]
async fn propagation_goes_through_a_resolver_or_only_waits_for_a_zone_not_seen_here() {
    let bind = Bind::start(&["test"]).await;
    // The resolver certhub is given knows another zone only.
    let blind = Bind::start(&["other"]).await;
    let config = DnsCheckConfig {
        resolver: Some(blind.addr),
        authoritative_port: bind.addr.port(),
        timeout: Duration::from_secs(3),
        query_timeout: Duration::from_secs(1),
        ..DnsCheckConfig::default()
    };
    let solvers = Solvers::new(config);
    let rfc2136 = format!(
        "dns-01:rfc2136={},key-name={},key-secret={}",
        bind.addr, bind.tsig_key_name, bind.tsig_secret
    );
    let solver_for = async |options: &str| {
        let spec = ChallengeSpec::parse(&format!("{rfc2136}{options}")).unwrap();
        solvers.for_spec(&spec).await.unwrap()
    };
    let c = challenge(ChallengeKind::Dns01, dns("split.test"), "tok");
    let checked = solver_for("").await.present(&c).await.unwrap_err().to_string();
    for option in [";propagation=resolver:HOST:PORT", ";propagation=wait:SECONDS"] {
        assert!(checked.contains(option), "{option} in {checked}");
    }
    // A wait: no lookups, the record is published, and the CA may look after it.
    let waiting = solver_for(";propagation=wait:1").await;
    let started = std::time::Instant::now();
    waiting.present(&c).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    let record = "_acme-challenge.split.test.";
    assert_eq!(bind.txt_values(record).await, vec![txt_value(&c.key_authorization)]);
    waiting.cleanup(&c).await.unwrap();
    assert!(bind.txt_values(record).await.is_empty());
    // Through a resolver that sees the zone.
    let through = solver_for(&format!(";propagation=resolver:{}", bind.addr)).await;
    through.present(&c).await.unwrap();
    through.cleanup(&c).await.unwrap();
    // A value that never comes: the error names the resolver option it was checked with.
    let none = challenge(ChallengeKind::Dns01, dns("never.test"), "tok");
    let checker = certhub_challenge::dns::PropagationChecker::new(DnsCheckConfig {
        timeout: Duration::from_secs(1),
        propagation: certhub_core::Propagation::Resolver { address: bind.addr },
        ..DnsCheckConfig::default()
    });
    let said = checker
        .wait_visible(&certhub_challenge::dns::record_name(&none), "value")
        .await
        .unwrap_err()
        .to_string();
    assert!(said.contains(&format!(";propagation=resolver:{}", bind.addr)), "{said}");
}

#[tokio::test]
async fn a_callbacks_credentials_stay_out_of_its_errors() {
    use certhub_challenge::dns::PropagationChecker;
    use certhub_challenge::dns::callback::CallbackSolver;
    // A callback that refuses, and one nobody listens on.
    let refusing = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = refusing.local_addr().unwrap();
    let app =
        axum::Router::new().fallback(|| async { (axum::http::StatusCode::FORBIDDEN, "no entry") });
    tokio::spawn(async move { axum::serve(refusing, app).await });
    let closed = certhub_testkit::free_port();
    let c = challenge(ChallengeKind::Dns01, dns("cb.test"), "tok");
    for url in [
        format!("http://ops:pa55word@{addr}/s3cr3t-path?token=t0ken"),
        format!("http://ops:pa55word@127.0.0.1:{closed}/s3cr3t-path?token=t0ken"),
    ] {
        let solver = CallbackSolver::new(
            url,
            certhub_core::Secret::new("k3y"),
            PropagationChecker::new(DnsCheckConfig::default()),
            reqwest::Client::builder().no_proxy().build().unwrap(),
        );
        let said = solver.present(&c).await.unwrap_err().to_string();
        assert!(said.contains("127.0.0.1"), "the host is named: {said}");
        for secret in ["ops:", "s3cr3t-path", "t0ken"] {
            assert!(!said.contains(secret), "{secret} in {said}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_tls_alpn01_turn_not_given_back_is_taken_after_its_limit() {
    let r = TlsAlpnResponder::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    // An order cut short after presenting: it never cleans up.
    let abandoned = challenge(ChallengeKind::TlsAlpn01, dns("turn.test"), "abandoned");
    r.present(&abandoned).await.unwrap();
    // The next order for the name waits for it, then takes the turn once it is stale.
    let next = challenge(ChallengeKind::TlsAlpn01, dns("turn.test"), "next");
    let started = tokio::time::Instant::now();
    r.present(&next).await.unwrap();
    let waited = started.elapsed();
    assert!(waited >= certhub_challenge::tls_alpn::TURN_LIMIT, "{waited:?}");
    assert!(waited < 3 * certhub_challenge::tls_alpn::TURN_LIMIT, "{waited:?}");
    // The late cleanup of the abandoned order leaves the new one's certificate alone.
    r.cleanup(&abandoned).await.unwrap();
    r.cleanup(&next).await.unwrap();
}
