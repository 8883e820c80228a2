//! `GET /metrics`: the hub in Prometheus's exposition format (OpenMetrics text), for a token
//! with the `metrics` scope or a scraper at an allowed address (`serve --metrics-allow`).
//! Counters (HTTP requests here, orders, CA requests and deployments in the engine) count in
//! this process; certificates by state, their expiry, the renewal queue and the connected
//! agents are read when scraped.

use std::net::IpAddr;
use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::auth::{Caller, Need};
use crate::problem::Problem;
use crate::state::AppState;

/// The exposition format's media type.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    /// The route's pattern (`/api/v1/certificates/{name}`), or `unmatched`.
    route: String,
    method: String,
    status: u16,
}

static HTTP: LazyLock<Family<HttpLabels, Counter>> = LazyLock::new(Family::default);

/// Counts each request the router answers, by route, method and status.
pub(crate) async fn count_requests(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().as_str().to_string();
    let rsp = next.run(req).await;
    HTTP.get_or_create(&HttpLabels { route, method, status: rsp.status().as_u16() }).inc();
    rsp
}

/// An address range allowed to scrape without a token: `ADDRESS` or `ADDRESS/PREFIX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScraperRange {
    addr: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for ScraperRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?}: expected an address or ADDRESS/PREFIX, e.g. 10.0.0.0/8");
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(ScraperRange { addr, prefix })
    }
}

impl ScraperRange {
    fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let bits = |a: IpAddr| match a {
            IpAddr::V4(a) => (u128::from(a.to_bits()) << 96, 32),
            IpAddr::V6(a) => (a.to_bits(), 128),
        };
        let ((net, net_len), (addr, addr_len)) = (bits(self.addr), bits(ip));
        if net_len != addr_len {
            return false;
        }
        // Either family's bits are at the top: the prefix masks from there.
        let mask = match self.prefix {
            0 => 0,
            p => u128::MAX << (128 - u32::from(p)),
        };
        net & mask == addr & mask
    }
}

/// `GET /metrics`.
pub(crate) async fn scrape(State(state): State<AppState>, req: Request) -> Response {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<crate::listen::Peer>>()
        .map(|c| c.0.0.ip());
    let allowed = peer.is_some_and(|ip| state.scrapers.iter().any(|r| r.contains(ip)));
    if !allowed {
        let (mut parts, _) = req.into_parts();
        let caller =
            match <Caller as axum::extract::FromRequestParts<AppState>>::from_request_parts(
                &mut parts, &state,
            )
            .await
            {
                Ok(caller) => caller,
                Err(p) => return p.into_response(),
            };
        if let Err(p) = caller.require(Need::Metrics) {
            return p.into_response();
        }
    }
    match render(&state).await {
        Ok(text) => {
            let mut rsp = text.into_response();
            rsp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
            rsp
        }
        Err(p) => p.into_response(),
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertLabels {
    cert: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// The hub's metrics, as text.
async fn render(state: &AppState) -> Result<String, Problem> {
    let now = crate::clock::now_ms();
    let snapshot = state.store.metrics_snapshot(now).await?;
    let mut registry = Registry::with_prefix("certhub");

    let by_state = Family::<StateLabels, Gauge>::default();
    for (s, n) in &snapshot.states {
        by_state.get_or_create(&StateLabels { state: s.clone() }).set(*n);
    }
    registry.register("certificates", "Managed certificates, by state", by_state);

    let expiry = Family::<CertLabels, FloatGauge>::default();
    for (cert, not_after) in &snapshot.expiry {
        let left = (not_after - now) as f64 / 1000.0;
        expiry.get_or_create(&CertLabels { cert: cert.clone() }).set(left);
    }
    registry.register_with_unit(
        "certificate_expiry",
        "Time until each certificate's newest issued certificate expires (negative: expired)",
        Unit::Seconds,
        expiry,
    );

    let depth = Gauge::<i64>::default();
    depth.set(snapshot.queue_depth);
    registry.register(
        "renewal_queue_depth",
        "Certificates whose time to be looked at by the renewal scheduler has come",
        depth,
    );
    let lag = FloatGauge::default();
    lag.set(snapshot.queue_oldest.map_or(0.0, |t| (now - t).max(0) as f64 / 1000.0));
    registry.register_with_unit(
        "renewal_lag",
        "How long the longest-waiting certificate in the renewal queue has waited",
        Unit::Seconds,
        lag,
    );

    let agents = Gauge::<i64>::default();
    agents.set(state.agents.as_ref().map_or(0, |a| a.connected()) as i64);
    registry.register("agents_connected", "Agents connected to this hub", agents);

    registry.register("http_requests", "HTTP requests answered, by route and status", HTTP.clone());
    certhub_engine::metrics::metrics().register(&mut registry);

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).map_err(Problem::internal)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scraper_ranges_hold_the_addresses_under_their_prefix() {
        let r: ScraperRange = "10.1.0.0/16".parse().unwrap();
        assert!(r.contains("10.1.200.3".parse().unwrap()));
        assert!(!r.contains("10.2.0.1".parse().unwrap()));
        assert!(r.contains("::ffff:10.1.0.9".parse().unwrap()));
        let one: ScraperRange = "192.0.2.7".parse().unwrap();
        assert!(one.contains("192.0.2.7".parse().unwrap()));
        assert!(!one.contains("192.0.2.8".parse().unwrap()));
        let v6: ScraperRange = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:5::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        assert!(!v6.contains("10.1.0.1".parse().unwrap()));
        let all: ScraperRange = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "example.com", "10.0.0.0/x", ""] {
            assert!(bad.parse::<ScraperRange>().is_err(), "{bad}");
        }
    }
}
