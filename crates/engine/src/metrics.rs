//! What the engine counts for the hub's `/metrics`: orders and their failures by CA and
//! problem type, the CAs' request latency, and deployments by outcome. Counted in this
//! process since it started (Prometheus adds up the hubs' series); what the store knows at
//! any moment (certificates by state, expiry, the renewal queue) is read when scraped.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// A CA, by directory URL.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CaLabels {
    pub ca: String,
}

/// A failed order: its CA, and the problem type (the CA's, without the
/// `urn:ietf:params:acme:error:` prefix, or certhub's kind of failure when the CA sent none).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub ca: String,
    pub problem: String,
}

/// A request to a CA: its CA and endpoint (see [`certhub_acme::Observer`]).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub ca: String,
    pub endpoint: String,
}

/// A deployment's outcome: `done`, `failed` or `skipped`; `agent` tells an agent's from the
/// hub's own.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeployLabels {
    pub outcome: String,
    pub by: String,
}

/// The engine's counters, shared by every engine of the process.
pub struct Metrics {
    /// Orders completed with a certificate.
    pub issued: Family<CaLabels, Counter>,
    /// Orders that failed.
    pub failed: Family<FailureLabels, Counter>,
    /// Seconds each request to a CA took.
    pub requests: Family<RequestLabels, Histogram>,
    /// Deployments run.
    pub deployments: Family<DeployLabels, Counter>,
}

fn latency() -> Histogram {
    // 5 ms to about 40 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let _ = certhub_acme::set_observer(Arc::new(Observed));
    Metrics {
        issued: Family::default(),
        failed: Family::default(),
        requests: Family::new_with_constructor(latency),
        deployments: Family::default(),
    }
});

/// The process's engine metrics (the first call starts timing the CAs' requests).
pub fn metrics() -> &'static Metrics {
    &METRICS
}

struct Observed;

impl certhub_acme::Observer for Observed {
    fn request(&self, directory_url: &str, endpoint: &'static str, took: Duration, _: Option<u16>) {
        let labels = RequestLabels { ca: directory_url.to_string(), endpoint: endpoint.into() };
        METRICS.requests.get_or_create(&labels).observe(took.as_secs_f64());
    }
}

impl Metrics {
    /// Adds the engine's metrics to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "orders_issued",
            "Orders completed with a certificate",
            self.issued.clone(),
        );
        registry.register(
            "orders_failed",
            "Orders that failed, by CA and problem type",
            self.failed.clone(),
        );
        registry.register_with_unit(
            "acme_request_duration",
            "How long requests to the CAs took",
            Unit::Seconds,
            self.requests.clone(),
        );
        registry.register("deployments", "Deployments run, by outcome", self.deployments.clone());
    }

    pub(crate) fn order_ended(&self, ca: &str, error: Option<&crate::Error>) {
        match error {
            None => {
                self.issued.get_or_create(&CaLabels { ca: ca.to_string() }).inc();
            }
            Some(e) => {
                let problem = match e.problem.as_ref().and_then(|p| p.kind.as_deref()) {
                    Some(kind) => {
                        kind.trim_start_matches("urn:ietf:params:acme:error:").to_string()
                    }
                    None => format!("{:?}", e.kind).to_lowercase(),
                };
                let labels = FailureLabels { ca: ca.to_string(), problem };
                self.failed.get_or_create(&labels).inc();
            }
        }
    }

    pub(crate) fn deployed(&self, outcome: &str, by: &str) {
        let labels = DeployLabels { outcome: outcome.to_string(), by: by.to_string() };
        self.deployments.get_or_create(&labels).inc();
    }
}
