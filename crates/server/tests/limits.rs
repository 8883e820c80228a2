//! The hub under unauthenticated pressure, over real sockets: silent connections, slow
//! headers and stalled TLS handshakes from one address must not keep another out, and a
//! silent connection is closed once its time is up.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use certhub_server::{AppState, HubCert, Limits, router};
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpSocket, TcpStream};

struct Hub {
    addr: SocketAddr,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

const LIMITS: Limits = Limits {
    connections: 64,
    per_address: 8,
    header_timeout: Duration::from_secs(1),
    handshake_timeout: Duration::from_secs(1),
    body_timeout: Duration::from_secs(2),
};

async fn start(tls: bool) -> Hub {
    let dir = tempfile::tempdir().unwrap();
    let store = certhub_store::Store::open(dir.path()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = tls.then(|| {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let identity = HubCert::new(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap();
        identity.server_config().unwrap()
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = router(AppState::new(store));
    tokio::spawn(certhub_server::serve(listener, config, app, LIMITS, async {
        let _ = stopped.await;
    }));
    Hub { addr, _dir: dir, _stop: stop }
}

/// A connection to `to` from the loopback address `from`, which sends nothing.
async fn silent(from: IpAddr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    socket.connect(to).await.unwrap()
}

/// GET /api/v1/health from the loopback address `from`: its status.
async fn health(from: &str, hub: &Hub, tls: bool) -> Result<u16, String> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .local_address(from.parse::<IpAddr>().unwrap())
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let scheme = if tls { "https" } else { "http" };
    client
        .get(format!("{scheme}://{}/api/v1/health", hub.addr))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("{e:?}"))
}

#[tokio::test]
async fn silent_connections_from_one_address_keep_no_one_else_out() {
    for tls in [false, true] {
        let hub = start(tls).await;
        // Far more silent connections from one address than it may hold, and than a
        // handshake pool of the old kind had slots for.
        let attacker: IpAddr = "127.0.0.1".parse().unwrap();
        let mut held = Vec::new();
        for _ in 0..300 {
            held.push(silent(attacker, hub.addr).await);
        }
        assert_eq!(health("127.0.0.2", &hub, tls).await, Ok(200), "tls: {tls}");
        // Past its share, the attacker's connections are closed at once.
        let mut closed = 0;
        for conn in held.iter_mut().skip(LIMITS.per_address) {
            let mut byte = [0u8; 1];
            if let Ok(Ok(0) | Err(_)) =
                tokio::time::timeout(Duration::from_millis(500), conn.read(&mut byte)).await
            {
                closed += 1;
            }
        }
        assert!(closed >= 300 - LIMITS.per_address - 4, "tls: {tls}: {closed} closed");
        drop(held);
    }
}

#[tokio::test]
async fn a_silent_or_slow_connection_is_closed_when_its_time_is_up() {
    for tls in [false, true] {
        let hub = start(tls).await;
        let mut conn = silent("127.0.0.1".parse().unwrap(), hub.addr).await;
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut byte)).await;
        assert!(matches!(read, Ok(Ok(0) | Err(_))), "tls: {tls}: the hub closes it: {read:?}");
    }
    // Headers sent a byte at a time, slower than the limit allows, are cut off too.
    let hub = start(false).await;
    let mut conn = silent("127.0.0.1".parse().unwrap(), hub.addr).await;
    let started = std::time::Instant::now();
    let mut cut = false;
    for b in b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
        use tokio::io::AsyncWriteExt as _;
        if conn.write_all(&[*b]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        if started.elapsed() > Duration::from_secs(10) {
            break;
        }
    }
    if !cut {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut rest)).await;
        cut = matches!(read, Ok(Ok(_)) | Ok(Err(_)));
        assert!(!String::from_utf8_lossy(&rest).contains("200 OK"), "no answer to slow headers");
    }
    assert!(cut, "slow headers are cut off");
}

#[tokio::test]
async fn a_body_trickled_slower_than_its_limit_is_cut_off() {
    use tokio::io::AsyncWriteExt as _;
    let hub = start(false).await;
    let mut conn = silent("127.0.0.1".parse().unwrap(), hub.addr).await;
    let head = "POST /api/v1/tokens HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n\
                content-length: 1000\r\n\r\n";
    conn.write_all(head.as_bytes()).await.unwrap();
    // A byte every half second: 1000 of them would take over eight minutes.
    let trickle = async {
        loop {
            if conn.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(4), trickle).await;
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut answer))
        .await
        .expect("the hub answers")
        .unwrap_or(0);
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive within 2 s"), "{answer}");
}
