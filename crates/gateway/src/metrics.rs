//! Request metrics per Function and per Service — count by status code, and a latency
//! histogram — and each Function's instances, served at `/metrics` in the Prometheus text
//! format by the official client library's encoder.

use std::sync::Mutex;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// What a request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Function,
    Service,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Function => "function",
            Kind::Service => "service",
        }
    }
}

type Labels = Vec<(String, String)>;

/// Latency buckets from 100 µs to about 100 s: a Wasm handler answers in microseconds, a
/// cold start in milliseconds, a runaway request at its timeout.
#[derive(Clone)]
struct Buckets;

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
            0.0001, 4.0, 11,
        ))
    }
}

pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    latency: Family<Labels, Histogram, Buckets>,
    ready_instances: Family<Labels, Gauge>,
    desired_instances: Family<Labels, Gauge>,
    cold_starts: Family<Labels, Counter>,
    /// Encoding needs the registry exclusively.
    encoding: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        let requests = Family::<Labels, Counter>::default();
        let errors = Family::<Labels, Counter>::default();
        let latency = Family::<Labels, Histogram, Buckets>::new_with_constructor(Buckets);
        let ready_instances = Family::<Labels, Gauge>::default();
        let desired_instances = Family::<Labels, Gauge>::default();
        let cold_starts = Family::<Labels, Counter>::default();
        let mut registry = Registry::with_prefix("flotilla_gateway");
        registry.register(
            "requests",
            "Requests answered, by target and HTTP status code",
            requests.clone(),
        );
        registry.register(
            "request_errors",
            "Requests answered with a 5xx status, by target",
            errors.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from a request's arrival to its response head, by target",
            latency.clone(),
        );
        registry.register(
            "function_ready_instances",
            "Instances of a Function ready to serve",
            ready_instances.clone(),
        );
        registry.register(
            "function_desired_instances",
            "Instances of a Function the autoscaler wants",
            desired_instances.clone(),
        );
        registry.register(
            "function_cold_starts",
            "Requests that had to wait for a Function instance to start",
            cold_starts.clone(),
        );
        Metrics {
            registry,
            requests,
            errors,
            latency,
            ready_instances,
            desired_instances,
            cold_starts,
            encoding: Mutex::new(()),
        }
    }
}

fn target(kind: Kind, namespace: &str, name: &str) -> Labels {
    vec![
        ("kind".into(), kind.label().into()),
        ("namespace".into(), namespace.into()),
        ("name".into(), name.into()),
    ]
}

impl Metrics {
    /// Counts one answered request, and logs it on the `flotilla_gateway::access` target at
    /// debug level (`RUST_LOG=flotilla_gateway::access=debug` shows every request).
    fn observe(&self, kind: Kind, namespace: &str, name: &str, status: StatusCode, took: Duration) {
        tracing::debug!(
            target: "flotilla_gateway::access",
            kind = kind.label(),
            %namespace,
            %name,
            status = status.as_u16(),
            micros = took.as_micros() as u64,
            "request"
        );
        let labels = target(kind, namespace, name);
        let mut with_code = labels.clone();
        with_code.push(("code".into(), status.as_u16().to_string()));
        self.requests.get_or_create(&with_code).inc();
        if status.is_server_error() {
            self.errors.get_or_create(&labels).inc();
        }
        self.latency
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// Records a request (as [`Metrics::observe`] does) and tells the client the gateway's
    /// time in a `Server-Timing` header (`gateway;dur=MILLISECONDS`), which browsers'
    /// developer tools show and benchmarks read; a handler's own entries are kept.
    pub(crate) fn finish(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        response: &mut axum::response::Response,
        took: Duration,
    ) {
        self.observe(kind, namespace, name, response.status(), took);
        let timing = format!("gateway;dur={:.3}", took.as_secs_f64() * 1000.0);
        if let Ok(value) = http::HeaderValue::from_str(&timing) {
            response.headers_mut().append("server-timing", value);
        }
    }

    pub(crate) fn cold_start(&self, namespace: &str, name: &str) {
        self.cold_starts
            .get_or_create(&target(Kind::Function, namespace, name))
            .inc();
    }

    pub(crate) fn instances(&self, namespace: &str, name: &str, ready: i64, desired: i64) {
        let labels = target(Kind::Function, namespace, name);
        self.ready_instances.get_or_create(&labels).set(ready);
        self.desired_instances.get_or_create(&labels).set(desired);
    }

    /// The `/metrics` answer.
    pub(crate) fn render(&self) -> Response {
        let _turn = self.encoding.lock().expect("metrics lock poisoned");
        let mut text = String::new();
        if let Err(error) = encode(&mut text, &self.registry) {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("encoding metrics failed: {error}\n"),
            )
                .into_response();
        }
        (
            [(
                http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response()
    }
}
