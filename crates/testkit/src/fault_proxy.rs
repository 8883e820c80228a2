//! Faults between certhub and the CA: an HTTPS reverse proxy in front of Pebble that, on a
//! schedule, drops a request before or after the CA sees it, stalls it, answers it with an
//! error itself or cuts the CA's answer short, and records every request and what the client
//! got.
//!
//! Pebble builds every URL in its answers, and checks each JWS `url`, from the request's
//! `Host`. The proxy forwards the client's `Host` unchanged (over HTTP/1.1, where it survives
//! as written), so Pebble speaks in the proxy's URLs and nothing needs rewriting.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use http_body_util::BodyExt as _;
use hyper::body::{Bytes, Frame, Incoming, SizeHint};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{HeaderMap, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// What the proxy does to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward it and pass the answer back.
    None,
    /// Close the connection without forwarding or answering: the CA never saw it.
    ResetBefore,
    /// Forward it, let the CA act, then close the connection without answering: the answer
    /// is lost.
    ResetAfter,
    /// Hold it this long without forwarding, then close without answering: a timeout for a
    /// client that waits less.
    Stall(Duration),
    /// Answer without forwarding: this status, an `application/problem+json` body
    /// (`rateLimited` for 429, `serverInternal` otherwise), a fresh nonce from the CA and
    /// `Retry-After` in seconds when given.
    Status(u16, Option<u64>),
    /// Forward it, then send the CA's status and headers with the full `Content-Length` but
    /// only the first half of the body, and close the connection. An empty answer (to a HEAD,
    /// say) has no half to send, so then it is [`Fault::ResetAfter`].
    Truncate,
}

/// One request the proxy received, and what became of it (filled in as it happens: an
/// answer still in flight shows `None`).
#[derive(Debug, Clone)]
pub struct Seen {
    /// When it arrived.
    pub at: Instant,
    /// `GET`, `HEAD`, `POST`…
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// What the schedule did to it.
    pub fault: Fault,
    /// The CA's status; `None` when it was not forwarded or the CA did not answer.
    pub upstream_status: Option<u16>,
    /// The status the client got; `None` when the connection was dropped instead.
    pub answered_status: Option<u16>,
    /// The `Retry-After` seconds the client got.
    pub retry_after: Option<u64>,
}

/// A running proxy; it stops, with every connection it holds open, when dropped.
pub struct FaultProxy {
    /// `https://127.0.0.1:PORT`.
    pub origin: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

/// How long a truncated answer's first half gets to reach the client before the connection
/// is dropped: hyper writes what it has buffered only once the body stops yielding.
const FLUSH_PAUSE: Duration = Duration::from_millis(100);

struct Shared {
    upstream: String,
    client: reqwest::Client,
    state: Mutex<State>,
}

struct State {
    schedule: Vec<Fault>,
    /// Faults for the next request to an endpoint, before the schedule's turn.
    once: Vec<(&'static str, Fault)>,
    next: usize,
    fault_directory: bool,
    seen: Vec<Seen>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream_origin` (`https://127.0.0.1:14000`), trusting only
    /// `upstream_ca_pem` there and presenting `cert_pem`/`key_pem` (Pebble's own listener
    /// certificate does, as it is valid for 127.0.0.1) to its clients.
    pub async fn start(
        upstream_origin: &str,
        upstream_ca_pem: &str,
        cert_pem: &str,
        key_pem: &str,
        schedule: Vec<Fault>,
    ) -> FaultProxy {
        let roots = reqwest::Certificate::from_pem_bundle(upstream_ca_pem.as_bytes())
            .expect("the upstream CA PEM parses");
        let client = reqwest::Client::builder()
            .tls_certs_only(roots)
            .no_proxy()
            // HTTP/2 would carry the upstream's authority instead of the client's `Host`.
            .http1_only()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("the upstream client builds");
        // A port from `free_port`, not port 0: the kernel could hand out a port that
        // `free_port` promised to a server not yet started (an http-01 responder, say).
        let port = crate::free_port();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("the proxy binds its port on 127.0.0.1");
        let shared = Arc::new(Shared {
            upstream: upstream_origin.trim_end_matches('/').to_string(),
            client,
            state: Mutex::new(State {
                schedule,
                once: Vec::new(),
                next: 0,
                fault_directory: true,
                seen: Vec::new(),
            }),
        });
        let task = tokio::spawn(serve(listener, acceptor(cert_pem, key_pem), shared.clone()));
        FaultProxy { origin: format!("https://127.0.0.1:{port}"), shared, task }
    }

    /// `upstream_directory_url` with the proxy's origin in place of the CA's.
    pub fn directory_url(&self, upstream_directory_url: &str) -> String {
        let url = url::Url::parse(upstream_directory_url).expect("the directory URL parses");
        format!("{}{}", self.origin, &url[url::Position::BeforePath..])
    }

    /// Replaces the schedule and counts requests from 0 again.
    pub fn set_schedule(&self, schedule: Vec<Fault>) {
        let mut state = self.shared.state();
        state.schedule = schedule;
        state.next = 0;
    }

    /// Gives the next request to the endpoint `kind` (as [`classify`] names it) `fault`,
    /// whatever the schedule says; that request takes no turn of the schedule.
    pub fn fault_next(&self, kind: &'static str, fault: Fault) {
        self.shared.state().once.push((kind, fault));
    }

    /// Whether directory requests take their turn in the schedule (the default) or always
    /// pass untouched, without using up a turn.
    pub fn set_fault_directory(&self, on: bool) {
        self.shared.state().fault_directory = on;
    }

    /// Every request so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.state().seen.clone()
    }

    /// How many requests so far match `pred`.
    pub fn count(&self, pred: impl Fn(&Seen) -> bool) -> usize {
        self.shared.state().seen.iter().filter(|s| pred(s)).count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The ACME endpoint a Pebble 2.4 path belongs to: "directory", "newNonce", "newAccount",
/// "newOrder", "authz", "challenge", "finalize", "order", "certificate", "revoke",
/// "keyChange", "account" or "other". Pebble answers newNonce to HEAD and GET alike.
pub fn classify(path: &str, _method: &str) -> &'static str {
    const PREFIXES: [(&str, &str); 7] = [
        ("/my-account/", "account"),
        ("/my-order/", "order"),
        ("/finalize-order/", "finalize"),
        ("/authZ/", "authz"),
        ("/chalZ/", "challenge"),
        ("/certZ/", "certificate"),
        ("/list-orderz/", "other"),
    ];
    match path {
        p if p.ends_with("/dir") => "directory",
        "/nonce-plz" => "newNonce",
        "/sign-me-up" => "newAccount",
        "/order-plz" => "newOrder",
        "/revoke-cert" => "revoke",
        "/rollover-account-key" => "keyChange",
        p => PREFIXES.iter().find(|(pre, _)| p.starts_with(pre)).map_or("other", |&(_, kind)| kind),
    }
}

/// A TLS acceptor presenting `cert_pem` (leaf first) with `key_pem`, HTTP/1.1 only.
fn acceptor(cert_pem: &str, key_pem: &str) -> tokio_rustls::TlsAcceptor {
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("the proxy's certificate PEM parses");
    let key =
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("the proxy's key PEM parses");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("the proxy's certificate and key make a TLS identity");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// Accepts connections until aborted. They live in a `JoinSet` owned by this task, so
/// aborting it drops them too.
async fn serve(
    listener: tokio::net::TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    shared: Arc<Shared>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        while connections.try_join_next().is_some() {}
        let (tls, shared) = (tls.clone(), shared.clone());
        connections.spawn(async move {
            let Ok(stream) = tls.accept(tcp).await else { return };
            let service = hyper::service::service_fn(move |req| handle(shared.clone(), req));
            // An `Err` from `handle`, or from a body, makes hyper drop the connection without
            // (finishing) an answer: that is how the faults close connections.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// One request: picks its fault, applies it, records what happened.
async fn handle(
    shared: Arc<Shared>,
    req: hyper::Request<Incoming>,
) -> Result<Response<Reply>, io::Error> {
    let (parts, body) = req.into_parts();
    // The whole request first, so that dropping the connection closes it cleanly rather than
    // resetting it over unread bytes.
    let body = body.collect().await.map_err(io::Error::other)?.to_bytes();
    let (index, fault) = shared.arrive(parts.method.as_str(), parts.uri.path());
    let answer = match fault {
        Fault::ResetBefore => Err(dropped()),
        Fault::Stall(pause) => {
            tokio::time::sleep(pause).await;
            Err(dropped())
        }
        Fault::Status(status, retry_after) => Ok(shared.injected(status, retry_after).await),
        Fault::None | Fault::ResetAfter | Fault::Truncate => {
            let upstream = shared.forward(&parts, body).await;
            let status = upstream.as_ref().ok().map(|u| u.status.as_u16());
            shared.update(index, |s| s.upstream_status = status);
            match (fault, upstream) {
                (Fault::None, Ok(u)) => Ok(u.into_response(false)),
                (Fault::None, Err(e)) => Ok(bad_gateway(&e)),
                (Fault::Truncate, Ok(u)) if !u.body.is_empty() => Ok(u.into_response(true)),
                _ => Err(dropped()),
            }
        }
    };
    if let Ok(rsp) = &answer {
        let retry_after =
            rsp.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()?.parse().ok());
        shared.update(index, |s| {
            s.answered_status = Some(rsp.status().as_u16());
            s.retry_after = retry_after;
        });
    }
    answer
}

fn dropped() -> io::Error {
    io::Error::other("injected fault: connection dropped without an answer")
}

/// A 502 for a request the CA did not answer when no fault was due.
fn bad_gateway(e: &reqwest::Error) -> Response<Reply> {
    let mut rsp =
        Response::new(Reply::full(format!("fault proxy: the CA did not answer: {e}").into()));
    *rsp.status_mut() = StatusCode::BAD_GATEWAY;
    rsp
}

/// The CA's answer, read whole.
struct Upstream {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Upstream {
    /// The answer as the client gets it: whole, or half of it under the full length.
    fn into_response(self, truncate: bool) -> Response<Reply> {
        let len = self.body.len();
        let body = if truncate {
            let pause = Box::pin(tokio::time::sleep(FLUSH_PAUSE));
            Reply { data: Some(self.body.slice(..len / 2)), then_fail: Some(pause) }
        } else {
            Reply::full(self.body)
        };
        let mut rsp = Response::new(body);
        *rsp.status_mut() = self.status;
        *rsp.headers_mut() = self.headers;
        if truncate {
            rsp.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(len));
        }
        rsp
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a request in, picks its fault and records it; returns its index in `seen`.
    fn arrive(&self, method: &str, path: &str) -> (usize, Fault) {
        let mut state = self.state();
        let kind = classify(path, method);
        let fault = if let Some(i) = state.once.iter().position(|(k, _)| *k == kind) {
            state.once.remove(i).1
        } else {
            let exempt = kind == "directory" && !state.fault_directory;
            let fault = match state.schedule.len() {
                0 => Fault::None,
                _ if exempt => Fault::None,
                n => state.schedule[state.next % n],
            };
            state.next += usize::from(!exempt);
            fault
        };
        state.seen.push(Seen {
            at: Instant::now(),
            method: method.to_string(),
            path: path.to_string(),
            fault,
            upstream_status: None,
            answered_status: None,
            retry_after: None,
        });
        (state.seen.len() - 1, fault)
    }

    fn update(&self, index: usize, f: impl FnOnce(&mut Seen)) {
        f(&mut self.state().seen[index]);
    }

    /// Sends the request on to the CA with its method, path, query, body and end-to-end
    /// headers, `Host` included.
    async fn forward(
        &self,
        parts: &hyper::http::request::Parts,
        body: Bytes,
    ) -> reqwest::Result<Upstream> {
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let rsp = self
            .client
            .request(parts.method.clone(), format!("{}{target}", self.upstream))
            .headers(end_to_end(&parts.headers))
            .body(body)
            .send()
            .await?;
        let (status, headers) = (rsp.status(), end_to_end(rsp.headers()));
        Ok(Upstream { status, headers, body: rsp.bytes().await? })
    }

    /// The answer for [`Fault::Status`]: a problem document the CA never wrote.
    async fn injected(&self, status: u16, retry_after: Option<u64>) -> Response<Reply> {
        let kind = if status == 429 { "rateLimited" } else { "serverInternal" };
        let problem = serde_json::json!({
            "type": format!("urn:ietf:params:acme:error:{kind}"),
            "detail": format!("injected fault: the proxy answered {status} without asking the CA"),
            "status": status,
        });
        let mut rsp = Response::new(Reply::full(problem.to_string().into()));
        *rsp.status_mut() =
            StatusCode::from_u16(status).expect("a fault's status is an HTTP status");
        let headers = rsp.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(nonce) = self.fresh_nonce().await {
            headers.insert("replay-nonce", nonce);
        }
        if let Some(secs) = retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        rsp
    }

    /// A nonce from Pebble's newNonce, as a real CA puts one on its errors; `None` if Pebble
    /// does not give one.
    async fn fresh_nonce(&self) -> Option<HeaderValue> {
        let rsp = self.client.head(format!("{}/nonce-plz", self.upstream)).send().await.ok()?;
        rsp.headers().get("replay-nonce").cloned()
    }
}

/// `headers` without the hop-by-hop ones (RFC 9110 §7.6.1) and without `Content-Length`,
/// which hyper and reqwest set again for the body they actually send.
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    const DROP: [&str; 10] = [
        "connection",
        "content-length",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ];
    let mut out = headers.clone();
    for name in DROP {
        out.remove(name);
    }
    out
}

/// A response body: all of it, or a first part and then, once hyper has had time to send
/// that, an error that makes hyper drop the connection.
struct Reply {
    data: Option<Bytes>,
    then_fail: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Reply {
    fn full(body: Bytes) -> Reply {
        Reply { data: (!body.is_empty()).then_some(body), then_fail: None }
    }
}

impl hyper::body::Body for Reply {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        match &mut self.then_fail {
            None => Poll::Ready(None),
            Some(pause) => {
                ready!(pause.as_mut().poll(cx));
                Poll::Ready(Some(Err(io::Error::other("injected fault: answer truncated"))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.then_fail.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.data, &self.then_fail) {
            (data, None) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            // Unknown, so that hyper takes the `Content-Length` header set by hand.
            (_, Some(_)) => SizeHint::default(),
        }
    }
}
