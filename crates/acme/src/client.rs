//! The HTTP side: one connection pool, the directory, the nonce pool, requests that try
//! again when a failure may pass (`badNonce` at once; no answer, a cut-off answer, 5xx and
//! 429 after the CA's `Retry-After` or a growing pause), and polling that honours
//! `Retry-After`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::HeaderMap;
use http::header::{CONTENT_TYPE, LINK, LOCATION, RETRY_AFTER};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ApiError, Error, Problem};
use crate::jws::{self, KeyId};
use crate::key::SigningKey;
use crate::types::Directory;

const REPLAY_NONCE: &str = "replay-nonce";
const JOSE_JSON: &str = "application/jose+json";

/// How the client talks to the CA.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// PEM roots to trust instead of the system's (a private CA, or a test CA).
    pub ca_bundle_pem: Option<String>,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
    /// How long one request keeps trying again: after `badNonce` at once, and after a
    /// failure that may pass (no answer, a cut-off answer, a 5xx or a 429) when the CA's
    /// `Retry-After`, or the pause, ends within it.
    pub retry_deadline: Duration,
    /// How often one request tries again after a failure that may pass (not counting
    /// `badNonce`).
    pub retries: u32,
    /// The User-Agent sent with every request.
    pub user_agent: String,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            ca_bundle_pem: None,
            request_timeout: Duration::from_secs(30),
            retry_deadline: Duration::from_secs(60),
            retries: 3,
            user_agent: format!("certhub/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// A connection to one CA: its directory, an HTTP client and a nonce pool. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    http: reqwest::Client,
    pub(crate) directory: Directory,
    pub(crate) directory_url: String,
    nonces: Mutex<Vec<String>>,
    config: ClientConfig,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("directory_url", &self.inner.directory_url).finish()
    }
}

/// A response the caller wants more of than the body.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) url: String,
}

impl Response {
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| Error::Protocol {
            url: self.url.clone(),
            message: format!("the body is not the expected JSON: {e}"),
        })
    }

    pub(crate) fn location(&self) -> Result<String, Error> {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string).ok_or_else(
            || Error::Protocol { url: self.url.clone(), message: "no Location header".into() },
        )
    }

    pub(crate) fn retry_after(&self) -> Option<Duration> {
        retry_after(&self.headers)
    }

    /// URLs of `Link` headers with the given relation.
    pub(crate) fn links(&self, rel: &str) -> Vec<String> {
        links(&self.headers, rel)
    }
}

impl Client {
    /// Fetches the directory at `directory_url`.
    pub async fn new(directory_url: &str, config: ClientConfig) -> Result<Self, Error> {
        let mut builder = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(config.user_agent.clone())
            .pool_idle_timeout(Duration::from_secs(90));
        if let Some(pem) = &config.ca_bundle_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| Error::Key(format!("the CA bundle is not valid PEM: {e}")))?;
            if certs.is_empty() {
                return Err(Error::Key("the CA bundle holds no certificate".into()));
            }
            builder = builder.tls_certs_only(certs);
        }
        let http = builder.build().map_err(|e| Error::http(directory_url, e))?;
        let rsp = retrying(directory_url, &config, || async {
            let sent = Instant::now();
            let rsp = send(http.get(directory_url), directory_url).await;
            crate::observe::observe(directory_url, "directory", sent.elapsed(), status_of(&rsp));
            rsp.map_err(Error::from)
        })
        .await?;
        let directory: Directory = rsp.json()?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                directory,
                directory_url: directory_url.to_string(),
                nonces: Mutex::new(Vec::new()),
                config,
            }),
        })
    }

    /// The directory as the CA serves it.
    pub fn directory(&self) -> &Directory {
        &self.inner.directory
    }

    /// The directory URL this client was made for.
    pub fn directory_url(&self) -> &str {
        &self.inner.directory_url
    }

    /// An unauthenticated GET (renewalInfo).
    pub(crate) async fn get(&self, url: &str) -> Result<Response, Error> {
        retrying(url, &self.inner.config, || async {
            let rsp = self.send(self.inner.http.get(url), url).await?;
            self.keep_nonce(&rsp.headers);
            Ok(rsp)
        })
        .await
    }

    /// Sends a request to this CA, and tells the observer how it went.
    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<Response, ErrorWithHeaders> {
        let sent = Instant::now();
        let rsp = send(req, url).await;
        let d = &self.inner.directory;
        let endpoint = match url {
            u if u == d.new_nonce => "newNonce",
            u if u == d.new_account => "newAccount",
            u if u == d.new_order => "newOrder",
            u if u == d.revoke_cert => "revokeCert",
            u if u == d.key_change => "keyChange",
            u if d.renewal_info.as_deref().is_some_and(|r| u.starts_with(r)) => "renewalInfo",
            _ => "resource",
        };
        crate::observe::observe(
            &self.inner.directory_url,
            endpoint,
            sent.elapsed(),
            status_of(&rsp),
        );
        rsp
    }

    fn keep_nonce(&self, headers: &HeaderMap) {
        if let Some(n) = headers.get(REPLAY_NONCE).and_then(|v| v.to_str().ok()) {
            let mut pool = self.inner.nonces.lock().unwrap_or_else(|p| p.into_inner());
            // A handful is plenty; an unbounded pool would only hold stale nonces.
            if pool.len() >= 32 {
                pool.remove(0);
            }
            pool.push(n.to_string());
        }
    }

    async fn nonce(&self) -> Result<String, Error> {
        if let Some(n) = self.inner.nonces.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(n);
        }
        let url = &self.inner.directory.new_nonce;
        let rsp = self.send(self.inner.http.head(url), url).await?;
        rsp.headers.get(REPLAY_NONCE).and_then(|v| v.to_str().ok()).map(str::to_string).ok_or_else(
            || Error::Protocol {
                url: url.clone(),
                message: "newNonce sent no Replay-Nonce header".into(),
            },
        )
    }

    /// A signed POST. `payload: None` is POST-as-GET. Each try has a fresh nonce; a failure
    /// that may pass is tried again as [`retrying`] says.
    pub(crate) async fn post(
        &self,
        url: &str,
        key: &SigningKey,
        id: KeyId<'_>,
        payload: Option<&Value>,
        accept: Option<&str>,
    ) -> Result<Response, Error> {
        retrying(url, &self.inner.config, || async {
            let nonce = self.nonce().await?;
            let body = jws::sign(key, id, Some(&nonce), url, payload)?;
            let mut req =
                self.inner.http.post(url).header(CONTENT_TYPE, JOSE_JSON).body(body.to_string());
            if let Some(accept) = accept {
                req = req.header(http::header::ACCEPT, accept);
            }
            let sent = Instant::now();
            match self.send(req, url).await {
                Ok(rsp) => {
                    tracing::debug!(url, ms = sent.elapsed().as_millis(), "POST");
                    self.keep_nonce(&rsp.headers);
                    Ok(rsp)
                }
                Err(ErrorWithHeaders { error, headers }) => {
                    if let Some(h) = &headers {
                        self.keep_nonce(h);
                    }
                    Err(error)
                }
            }
        })
        .await
    }
}

/// The pause before a failure that may pass is tried again the first time; each next pause
/// is twice as long, unless the CA's `Retry-After` asks for longer. With the default three
/// tries again, a CA that is down costs a request seven seconds before it fails.
const FIRST_PAUSE: Duration = Duration::from_secs(1);

/// Makes a request with `attempt`, and tries again:
/// - on `badNonce`, at once, however often, until `config.retry_deadline` has passed since
///   the first try;
/// - on no answer (refused, reset, timed out), a cut-off answer, a 5xx or a 429, up to
///   `config.retries` times: after a pause that doubles from [`FIRST_PAUSE`], or the CA's
///   `Retry-After` when that is longer; never past `config.retry_deadline`. A longer
///   `Retry-After` ends the request with the error, which carries it to whoever schedules
///   the next one.
///
/// Requests are safe to send twice: a lost answer to newOrder leaves an order the CA drops
/// once it expires; a finalize, challenge answer or key rollover whose answer was lost is
/// read back (see [`crate::Account`]); a revocation sent again is `alreadyRevoked`.
pub(crate) async fn retrying<F, Fut>(
    url: &str,
    config: &ClientConfig,
    mut attempt: F,
) -> Result<Response, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Response, Error>>,
{
    // Tokio's clock, so tests can run the waits in paused time.
    let deadline = tokio::time::Instant::now() + config.retry_deadline;
    let (mut retries, mut pause, mut bad_nonces) = (0, FIRST_PAUSE, 0u32);
    loop {
        let error = match attempt().await {
            Ok(rsp) => return Ok(rsp),
            Err(e) => e,
        };
        let now = tokio::time::Instant::now();
        if matches!(&error, Error::Api(e) if e.problem.is("badNonce")) {
            if now >= deadline {
                return Err(error);
            }
            bad_nonces += 1;
            tracing::debug!(url, rejected = bad_nonces, "badNonce, trying with a fresh nonce");
            continue;
        }
        let passing = match &error {
            Error::Http { .. } => true,
            Error::Api(e) => e.status >= 500 || e.status == 429,
            _ => false,
        };
        // A Retry-After of nothing (or a date past) is no reason to try again at once.
        let wait = match &error {
            Error::Api(e) => e.retry_after.map_or(pause, |ra| ra.max(pause)),
            _ => pause,
        };
        if !passing || retries >= config.retries || now + wait >= deadline {
            return Err(error);
        }
        retries += 1;
        tracing::info!(
            url,
            retry = retries,
            wait_ms = wait.as_millis() as u64,
            "{error}; trying again"
        );
        tokio::time::sleep(wait).await;
        pause *= 2;
    }
}

/// When a poll takes its first look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// At once: what is polled may already be done (an order whose authorizations just
    /// became valid is ready).
    Now,
    /// After the first interval: the CA was just set to work (a challenge answered, an order
    /// finalized), and a look at once would only find it still at it.
    Soon,
}

/// The first interval between looks; each next one is half as long again, up to
/// [`POLL_MAX`]. A CA that validates or issues within milliseconds (a local one) is seen
/// done within 5 to 13 ms; one that takes seconds is looked at about as often as with a
/// slower start and an immediate first look.
const POLL_START: Duration = Duration::from_millis(5);
const POLL_MAX: Duration = Duration::from_secs(2);

/// Polls `fetch` until `done` holds, honouring Retry-After and otherwise starting at
/// [`POLL_START`] with backoff, until `deadline`.
pub(crate) async fn poll<T, F, Fut>(
    what: &str,
    deadline: Duration,
    first: Look,
    mut fetch: F,
    done: impl Fn(&T) -> bool,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(T, Option<Duration>), Error>>,
{
    // Tokio's clock, so tests can run the waits in paused time.
    let start = tokio::time::Instant::now();
    let mut delay = POLL_START;
    if first == Look::Soon {
        tokio::time::sleep(delay).await;
        delay = delay * 3 / 2;
    }
    loop {
        let (value, retry_after) = fetch().await?;
        if done(&value) {
            tracing::debug!(what, ms = start.elapsed().as_millis(), "polled: done");
            return Ok(value);
        }
        let wait = retry_after.unwrap_or(delay);
        if start.elapsed() + wait > deadline {
            return Err(Error::Timeout { what: what.to_string(), after: start.elapsed() });
        }
        tokio::time::sleep(wait).await;
        delay = (delay * 3 / 2).min(POLL_MAX);
    }
}

/// Some errors come with headers (a fresh Replay-Nonce on badNonce).
struct ErrorWithHeaders {
    error: Error,
    headers: Option<HeaderMap>,
}

impl From<ErrorWithHeaders> for Error {
    fn from(e: ErrorWithHeaders) -> Self {
        e.error
    }
}

async fn send(req: reqwest::RequestBuilder, url: &str) -> Result<Response, ErrorWithHeaders> {
    let rsp = req
        .send()
        .await
        .map_err(|source| ErrorWithHeaders { error: Error::http(url, source), headers: None })?;
    let status = rsp.status();
    let headers = rsp.headers().clone();
    let body = rsp.bytes().await.map_err(|source| ErrorWithHeaders {
        error: Error::http(url, source),
        headers: Some(headers.clone()),
    })?;
    if status.is_success() {
        return Ok(Response { status: status.as_u16(), headers, body, url: url.to_string() });
    }
    let problem = serde_json::from_slice::<Problem>(&body)
        .ok()
        .filter(|p| p.kind.is_some() || p.detail.is_some())
        .unwrap_or_else(|| Problem {
            kind: None,
            detail: Some(format!(
                "{}{}",
                status.canonical_reason().unwrap_or("error"),
                snippet(&body)
            )),
            status: Some(status.as_u16()),
            ..Problem::default()
        });
    Err(ErrorWithHeaders {
        error: Error::Api(Box::new(ApiError {
            url: url.to_string(),
            status: status.as_u16(),
            problem,
            retry_after: retry_after(&headers),
        })),
        headers: Some(headers),
    })
}

/// The HTTP status a request got, if an answer came.
fn status_of(rsp: &Result<Response, ErrorWithHeaders>) -> Option<u16> {
    match rsp {
        Ok(r) => Some(r.status),
        Err(ErrorWithHeaders { error: Error::Api(e), .. }) => Some(e.status),
        Err(_) => None,
    }
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let cut: String = text.chars().take(200).collect();
    format!(" ({cut})")
}

/// Retry-After as delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
    let when = SystemTime::from(when);
    Some(when.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// `Link: <url>;rel="alternate", <url2>;rel="up"` (RFC 8288), possibly over several headers.
pub(crate) fn links(headers: &HeaderMap, rel: &str) -> Vec<String> {
    let mut out = Vec::new();
    for value in headers.get_all(LINK).iter().filter_map(|v| v.to_str().ok()) {
        for link in value.split(',') {
            let mut parts = link.split(';');
            let Some(target) = parts.next().map(str::trim) else {
                continue;
            };
            let Some(target) = target.strip_prefix('<').and_then(|t| t.strip_suffix('>')) else {
                continue;
            };
            let has_rel = parts.any(|p| {
                let p = p.trim();
                p.strip_prefix("rel=")
                    .map(|r| {
                        r.trim_matches('"').split_whitespace().any(|r| r.eq_ignore_ascii_case(rel))
                    })
                    .unwrap_or(false)
            });
            if has_rel {
                out.push(target.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A poll that is done on call `done_at`, each earlier call asking for `retry_after`;
    /// returns the result and the (paused) time of each call since the start.
    async fn poll_times(
        deadline: Duration,
        done_at: usize,
        retry_after: Option<Duration>,
    ) -> (Result<usize, Error>, Vec<Duration>) {
        poll_times_from(Look::Now, deadline, done_at, retry_after).await
    }

    async fn poll_times_from(
        first: Look,
        deadline: Duration,
        done_at: usize,
        retry_after: Option<Duration>,
    ) -> (Result<usize, Error>, Vec<Duration>) {
        let start = tokio::time::Instant::now();
        let calls = std::sync::Mutex::new(Vec::new());
        let result = poll(
            "the order",
            deadline,
            first,
            || {
                let mut calls = calls.lock().unwrap();
                calls.push(start.elapsed());
                let n = calls.len();
                async move { Ok((n, retry_after)) }
            },
            |n| *n >= done_at,
        )
        .await;
        (result, calls.into_inner().unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn polling_starts_fast_and_backs_off_to_two_seconds() {
        let (result, times) = poll_times(Duration::from_secs(600), 18, None).await;
        assert_eq!(result.unwrap(), 18);
        assert_eq!(times[0], Duration::ZERO, "the first look is at once");
        let gaps: Vec<u128> = times.windows(2).map(|w| (w[1] - w[0]).as_millis()).collect();
        // 5 ms times 1.5 per attempt up to 2 s; tokio's timer rounds up to whole milliseconds.
        assert_eq!(
            gaps,
            [5, 8, 12, 17, 26, 38, 57, 86, 129, 193, 289, 433, 649, 974, 1460, 2000, 2000]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn polling_soon_waits_the_first_interval_then_goes_on_as_usual() {
        let (result, times) = poll_times_from(Look::Soon, Duration::from_secs(600), 4, None).await;
        assert_eq!(result.unwrap(), 4);
        let ms: Vec<u128> = times.iter().map(|t| t.as_millis()).collect();
        // Looks at 5 ms, then 8, 12 and 17 ms apart: no look is spent at once.
        assert_eq!(ms, [5, 13, 25, 42]);
    }

    #[tokio::test(start_paused = true)]
    async fn polling_waits_as_long_as_retry_after_says() {
        let (result, times) =
            poll_times(Duration::from_secs(600), 3, Some(Duration::from_secs(7))).await;
        assert_eq!(result.unwrap(), 3);
        assert_eq!(times, [Duration::ZERO, Duration::from_secs(7), Duration::from_secs(14)]);
    }

    #[tokio::test(start_paused = true)]
    async fn polling_gives_up_at_the_deadline_not_after_it() {
        let (result, times) =
            poll_times(Duration::from_secs(20), usize::MAX, Some(Duration::from_secs(6))).await;
        // Calls at 0, 6, 12 and 18 s; a fifth at 24 s would pass the deadline.
        assert_eq!(times.len(), 4);
        match result {
            Err(Error::Timeout { what, after }) => {
                assert_eq!(what, "the order");
                assert_eq!(after, Duration::from_secs(18));
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
    }

    /// A CA's error answer with `status`, problem `kind` and Retry-After seconds.
    fn answer(status: u16, kind: &str, retry_after: Option<u64>) -> Error {
        Error::Api(Box::new(ApiError {
            url: "https://ca/order-plz".into(),
            status,
            problem: Problem {
                kind: Some(format!("urn:ietf:params:acme:error:{kind}")),
                ..Problem::default()
            },
            retry_after: retry_after.map(Duration::from_secs),
        }))
    }

    /// Runs [`retrying`] over `answers` in turn (then success); the result and the (paused)
    /// time of each try since the start.
    async fn tries(limit: u64, answers: Vec<Error>) -> (Result<Response, Error>, Vec<u64>) {
        let config =
            ClientConfig { retry_deadline: Duration::from_secs(limit), ..Default::default() };
        let start = tokio::time::Instant::now();
        let answers = Mutex::new(answers.into_iter());
        let times = Mutex::new(Vec::new());
        let result = retrying("https://ca/order-plz", &config, || {
            times.lock().unwrap().push(start.elapsed().as_secs());
            let next = answers.lock().unwrap().next();
            async move {
                match next {
                    Some(e) => Err(e),
                    None => Ok(Response {
                        status: 200,
                        headers: HeaderMap::new(),
                        body: Bytes::new(),
                        url: "https://ca/order-plz".into(),
                    }),
                }
            }
        })
        .await;
        (result, times.into_inner().unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn a_passing_failure_is_tried_again_after_retry_after_or_a_doubling_pause() {
        let (result, times) = tries(
            60,
            vec![
                answer(500, "serverInternal", None),
                answer(503, "serverInternal", Some(7)),
                answer(502, "serverInternal", None),
            ],
        )
        .await;
        assert!(result.is_ok());
        // 1 s after the 500, the 7 s the 503 asked for, then 4 s (the pause doubled twice).
        assert_eq!(times, [0, 1, 8, 12]);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_after_three_and_at_the_limit() {
        let five = (0..5).map(|_| answer(503, "serverInternal", None)).collect();
        let (result, times) = tries(60, five).await;
        assert_eq!(times, [0, 1, 3, 7], "three tries again, then the fourth failure is the answer");
        assert!(matches!(result, Err(Error::Api(e)) if e.status == 503));
        // A Retry-After that ends past the limit is not waited for: the error carries it.
        let (result, times) = tries(60, vec![answer(429, "rateLimited", Some(3600))]).await;
        assert_eq!(times, [0]);
        match result {
            Err(Error::Api(e)) => assert_eq!(e.retry_after, Some(Duration::from_secs(3600))),
            other => panic!("expected the 429, got {:?}", other.map(|r| r.status)),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn bad_nonce_is_tried_again_at_once_and_refusals_not_at_all() {
        let nonces = (0..10).map(|_| answer(400, "badNonce", None)).collect();
        let (result, times) = tries(60, nonces).await;
        assert!(result.is_ok());
        assert_eq!(times, [0; 11]);
        let (result, times) = tries(60, vec![answer(403, "unauthorized", None)]).await;
        assert_eq!(times, [0]);
        assert!(matches!(result, Err(Error::Api(e)) if e.status == 403));
    }

    #[test]
    fn parses_link_headers_with_several_values() {
        let mut h = HeaderMap::new();
        h.append(LINK, "<https://ca/cert/1/1>;rel=\"alternate\"".parse().unwrap());
        h.append(
            LINK,
            "<https://ca/dir>;rel=\"index\", <https://ca/cert/1/2>; rel=alternate".parse().unwrap(),
        );
        assert_eq!(links(&h, "alternate"), vec!["https://ca/cert/1/1", "https://ca/cert/1/2"]);
        assert_eq!(links(&h, "index"), vec!["https://ca/dir"]);
    }

    #[test]
    fn parses_retry_after_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "120".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(120)));
        h.insert(RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }
}
