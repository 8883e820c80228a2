//! Test support: real Pebble, BIND 9, nginx, an SMTP server and headless Chromium (through
//! ChromeDriver) started as child processes on free loopback ports, databases of their own on
//! the local PostgreSQL, and helpers to wait for conditions without fixed sleeps; and a scripted fake CA for what Pebble lacks (ARI, profiles, Retry-After).

pub mod apache;
pub mod bind;
pub mod browser;
pub mod dns_apis;
pub mod fake_ca;
pub mod fault_proxy;
pub mod fuzz;
pub mod moto;
pub mod nginx;
pub mod pebble;
pub mod postgres;
pub mod powerdns;
pub mod smtp;
pub mod sshd;

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A port that was free a moment ago on 127.0.0.1, for both TCP and UDP, and never handed out
/// before by this process: the kernel readily gives a just-released port to the next caller,
/// and two servers started side by side on one port would answer each other's tests.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("the loopback interface can bind an ephemeral port");
        let port = tcp.local_addr().expect("a bound socket has an address").port();
        if given.contains(&port) || std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        given.push(port);
        return port;
    }
}

/// Polls `f` with backoff (10 ms up to 500 ms) until it returns `Some`, or panics naming
/// `what` after `deadline`.
pub async fn wait_until<T, F, Fut>(what: &str, deadline: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    let mut delay = Duration::from_millis(10);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if start.elapsed() > deadline {
            panic!("gave up after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    }
}

/// The path of a tool the tests need, or a panic naming the install step.
pub fn require_tool(name: &str, install_hint: &str) -> PathBuf {
    let dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    dirs.into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found: {install_hint}"))
}

/// Stops a server that takes its children with it on SIGTERM (nginx, httpd): SIGTERM, up
/// to 5 s for it to end, then SIGKILL.
pub(crate) fn terminate(child: &mut std::process::Child) {
    let _ = std::process::Command::new("kill")
        .arg(child.id().to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Is the process gone (exited, or a zombie nobody has reaped yet)?
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}
