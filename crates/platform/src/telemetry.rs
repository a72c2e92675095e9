//! Logs through `tracing` (pretty for people, JSON for machines), traces through OpenTelemetry
//! (`telemetry.otlp_endpoint`: OTLP over HTTP, off by default) and metrics through the `metrics`
//! facade with one Prometheus recorder per process.
//!
//! A trace crosses every hop with W3C trace context (`traceparent`): HTTP requests in and out
//! ([`extract_http`], [`inject_http`]), calls between processes (NATS headers, [`inject_nats`],
//! [`extract_nats`]) and events (the envelope's headers, kept in the outbox and on JetStream:
//! [`inject_map`], [`extract_map`]). Log lines inside a request carry its `trace_id`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::{Context, global};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogConfig, LogFormat, TelemetryConfig};

/// The exporter of this process, flushed by [`shutdown`].
static PROVIDER: OnceLock<Mutex<Option<SdkTracerProvider>>> = OnceLock::new();
/// Whether spans are exported: without, the request, call and event spans are not made at all
/// (they would cost every request and every event a formatted name for nothing).
static TRACES_ON: AtomicBool = AtomicBool::new(false);

/// Whether this process exports traces (`telemetry.otlp_endpoint`).
pub fn traces_on() -> bool {
    TRACES_ON.load(Ordering::Relaxed)
}

/// Installs the global subscriber, without traces; later calls (tests spawning many apps) are
/// no-ops.
pub fn init_tracing(config: &LogConfig) {
    init(config, &TelemetryConfig::default(), "rickshaw");
}

/// Installs the global subscriber: logs, and with `telemetry.otlp_endpoint` the OpenTelemetry
/// layer exporting this process's spans as `service_name` (or `telemetry.service_name`). Later
/// calls are no-ops.
pub fn init(log: &LogConfig, telemetry: &TelemetryConfig, service_name: &str) {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let fmt = match log.format {
        LogFormat::Json => fmt.json().boxed(),
        LogFormat::Pretty => fmt.compact().boxed(),
    };
    let otel = telemetry.otlp_endpoint.as_deref().and_then(|endpoint| {
        let name = telemetry.service_name.as_deref().unwrap_or(service_name);
        match tracer_provider(endpoint, name) {
            Ok(provider) => {
                let tracer = provider.tracer("rickshaw");
                TRACES_ON.store(true, Ordering::Relaxed);
                *PROVIDER
                    .get_or_init(Mutex::default)
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(provider);
                Some(tracing_opentelemetry::layer().with_tracer(tracer))
            }
            Err(e) => {
                eprintln!("warning: traces are off: cannot export to {endpoint}: {e}");
                None
            }
        }
    });
    let _already_set = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init();
}

fn tracer_provider(
    endpoint: &str,
    service_name: &str,
) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        // Used as given: the SDK appends `/v1/traces` only to the environment's endpoint.
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .with_timeout(std::time::Duration::from_secs(5))
        .build()?;
    Ok(SdkTracerProvider::builder()
        .with_resource(
            Resource::builder()
                .with_service_name(service_name.to_owned())
                .build(),
        )
        .with_batch_exporter(exporter)
        .build())
}

/// Sends the spans still buffered (blocking, at most a few seconds): call once, at exit.
pub fn shutdown() {
    let provider = PROVIDER
        .get()
        .and_then(|p| p.lock().unwrap_or_else(PoisonError::into_inner).take());
    if let Some(provider) = provider
        && let Err(e) = provider.shutdown()
    {
        eprintln!("warning: the last spans were not all sent: {e}");
    }
}

/// The trace id of `span` as 32 hex digits, if it has one (traces on).
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// Fills `span`'s `trace_id` field (declared `Empty`), so every log line inside it names its
/// trace.
pub fn record_trace_id(span: &tracing::Span) {
    if let Some(id) = trace_id(span) {
        span.record("trace_id", id.as_str());
    }
}

/// Makes `span` a child of the context `carrier` holds (a `traceparent`), if any. Call before the
/// span is entered.
fn adopt(span: &tracing::Span, carrier: &dyn Extractor) {
    let parent = global::get_text_map_propagator(|p| p.extract(carrier));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

fn inject(carrier: &mut dyn Injector) {
    let context: Context = tracing::Span::current().context();
    if context.span().span_context().is_valid() {
        global::get_text_map_propagator(|p| p.inject_context(&context, carrier));
    }
}

struct MapCarrier<'a>(&'a mut BTreeMap<String, String>);

impl Injector for MapCarrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_ascii_lowercase(), value);
    }
}

struct MapReader<'a>(&'a BTreeMap<String, String>);

impl Extractor for MapReader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(&key.to_ascii_lowercase()).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// The current span's context into an event's headers.
pub fn inject_map(headers: &mut BTreeMap<String, String>) {
    inject(&mut MapCarrier(headers));
}

/// `span` as a child of the context in an event's headers.
pub fn extract_map(span: &tracing::Span, headers: &BTreeMap<String, String>) {
    adopt(span, &MapReader(headers));
}

struct HttpCarrier<'a>(&'a mut axum::http::HeaderMap);

impl Injector for HttpCarrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(key.as_bytes()),
            axum::http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

struct HttpReader<'a>(&'a axum::http::HeaderMap);

impl Extractor for HttpReader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(axum::http::HeaderName::as_str).collect()
    }
}

/// The current span's context into an outgoing HTTP request's headers.
pub fn inject_http(headers: &mut axum::http::HeaderMap) {
    inject(&mut HttpCarrier(headers));
}

/// `span` as a child of the context an incoming HTTP request carries.
pub fn extract_http(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    adopt(span, &HttpReader(headers));
}

struct NatsCarrier<'a>(&'a mut async_nats::HeaderMap);

impl Injector for NatsCarrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

struct NatsReader<'a>(&'a async_nats::HeaderMap);

impl Extractor for NatsReader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(async_nats::HeaderValue::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_ref()).collect()
    }
}

/// The current span's context into a NATS request's headers.
pub fn inject_nats(headers: &mut async_nats::HeaderMap) {
    inject(&mut NatsCarrier(headers));
}

/// `span` as a child of the context a NATS request carries.
pub fn extract_nats(span: &tracing::Span, headers: Option<&async_nats::HeaderMap>) {
    if let Some(headers) = headers {
        adopt(span, &NatsReader(headers));
    }
}

/// The process's Prometheus handle, installing the recorder on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("duration_seconds".to_owned()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                    ],
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (a test harness): render from a detached one.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}
