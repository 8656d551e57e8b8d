//! Logs, traces and trace propagation.
//!
//! - JSON logs on stdout (or `pretty` for local reading) with personal data redacted:
//!   fields named like credentials or contact details are replaced, and anything that
//!   looks like an email address is masked wherever it appears.
//! - Spans get W3C trace ids always (so context propagates through gRPC metadata and NATS
//!   headers even when this process exports nothing); they are exported over OTLP/gRPC
//!   when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

use std::collections::HashMap;
use std::io::{self, Write};

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::TelemetryConfig;

/// Flushes and shuts down the trace exporter when dropped.
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

/// Installs the global subscriber and propagator for `service`. Call once, from `main`.
pub fn init(service: &str, config: &TelemetryConfig) -> anyhow::Result<TelemetryGuard> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

    let mut builder = SdkTracerProvider::builder()
        .with_resource(opentelemetry_sdk::Resource::builder().with_service_name(format!("festival-{service}")).build());
    if let Some(endpoint) = config.otlp_endpoint.as_deref().filter(|e| !e.is_empty()) {
        use opentelemetry_otlp::WithExportConfig;
        let exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic().with_endpoint(endpoint).build()?;
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = builder.build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("festival"));

    // The log filter applies to log output only: spans reach the trace layer at INFO
    // whatever the log level, so trace context propagates even when logs are quiet.
    let filter = EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(&config.log_level))?;
    let fmt = if config.log_format == "pretty" {
        tracing_subscriber::fmt::layer().with_target(false).with_filter(filter).boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(RedactingStdout)
            .with_filter(filter)
            .boxed()
    };
    let otel = otel.with_filter(tracing_subscriber::filter::LevelFilter::INFO);
    tracing_subscriber::registry().with(fmt).with(otel).try_init()?;
    Ok(TelemetryGuard { provider })
}

// ---- propagation -------------------------------------------------------------------

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(k, v);
        }
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct NatsExtractor<'a>(&'a async_nats::HeaderMap);

impl Extractor for NatsExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

/// The current span's W3C trace context (`traceparent`, `tracestate`) as a map,
/// for storing with an outbox row and sending as NATS headers.
pub fn current_trace_headers() -> HashMap<String, String> {
    let cx = tracing::Span::current().context();
    let mut map = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut map));
    map
}

/// Adds the current trace context to outgoing gRPC metadata (client interceptor).
pub fn inject_trace_context(metadata: &mut tonic::metadata::MetadataMap) {
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut MetadataInjector(metadata)));
}

/// A tonic client interceptor that propagates the caller's trace.
pub fn propagate_trace(mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    inject_trace_context(request.metadata_mut());
    Ok(request)
}

/// The span of one incoming gRPC call, continuing the caller's trace.
pub fn grpc_server_span<B>(request: &http::Request<B>) -> tracing::Span {
    let path = request.uri().path();
    let (service, method) = path.trim_start_matches('/').split_once('/').unwrap_or((path, ""));
    let span = tracing::info_span!(
        "grpc.request",
        otel.name = %path,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
        trace_id = tracing::field::Empty,
    );
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(request.headers())));
    let _ = span.set_parent(parent);
    record_trace_id(&span);
    span
}

/// Puts the span's trace id into its fields, so every JSON log line inside it carries
/// `span.trace_id` and logs can be joined with traces.
fn record_trace_id(span: &tracing::Span) {
    use opentelemetry::trace::TraceContextExt;
    let trace_id = span.context().span().span_context().trace_id();
    if trace_id != opentelemetry::trace::TraceId::INVALID {
        span.record("trace_id", tracing::field::display(trace_id));
    }
}

/// The span of one HTTP request at the edge, continuing the caller's trace if it sent one.
/// Carries `path` as the caller gives it (the gateway passes the route template when the
/// path holds a secret, see [`is_sensitive_key`]) and never the query string (it may hold
/// personal data).
pub fn http_server_span<B>(request: &http::Request<B>, path: &str, request_id: &str) -> tracing::Span {
    let span = tracing::info_span!(
        "http.request",
        otel.name = %format_args!("{} {}", request.method(), path),
        otel.kind = "server",
        http.method = %request.method(),
        url.path = %path,
        request_id = %request_id,
        trace_id = tracing::field::Empty,
    );
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(request.headers())));
    let _ = span.set_parent(parent);
    record_trace_id(&span);
    span
}

/// Adds the current trace context to outgoing HTTP headers.
pub fn inject_trace_headers(headers: &mut http::HeaderMap) {
    let mut map = HashMap::new();
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut map));
    for (k, v) in map {
        if let (Ok(k), Ok(v)) = (http::HeaderName::from_bytes(k.as_bytes()), http::HeaderValue::from_str(&v)) {
            headers.insert(k, v);
        }
    }
}

/// The span of one consumed event, continuing the publisher's trace.
pub fn consumer_span(message: &async_nats::jetstream::Message, consumer: &str) -> tracing::Span {
    let span = tracing::info_span!(
        "event.consume",
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.destination = %message.subject,
        consumer = %consumer,
        trace_id = tracing::field::Empty,
    );
    if let Some(headers) = message.headers.as_ref() {
        let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&NatsExtractor(headers)));
        let _ = span.set_parent(parent);
    }
    record_trace_id(&span);
    span
}

// ---- redaction ---------------------------------------------------------------------

/// Field names whose values never reach the logs.
const REDACTED_KEYS: &[&str] = &[
    "email",
    "password",
    "token",
    "access_token",
    "refresh_token",
    "authorization",
    "cookie",
    "phone",
    "address",
    "secret",
    "ip",
    "card",
];

/// Whether a field of this name holds something that must never reach logs or traces.
pub fn is_sensitive_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    REDACTED_KEYS.iter().any(|k| key == *k || key.ends_with(&format!("_{k}")) || key.ends_with(&format!(".{k}")))
}

/// Masks every word that looks like an email address: `ana@example.com` → `a***@***`.
pub fn mask_emails(text: &str) -> String {
    if !text.contains('@') {
        return text.to_owned();
    }
    text.split_inclusive(|c: char| c.is_whitespace() || c == '"' || c == ',' || c == '<' || c == '>')
        .map(|word| {
            let (core, tail) = word.split_at(word.trim_end_matches(|c: char| !c.is_alphanumeric()).len());
            match core.split_once('@') {
                Some((local, domain)) if !local.is_empty() && domain.contains('.') => {
                    format!("{}***@***{tail}", local.chars().next().unwrap_or('*'))
                }
                _ => word.to_owned(),
            }
        })
        .collect()
}

/// Redacts one JSON log line.
pub fn redact_line(line: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(mut value) => {
            redact_value(&mut value);
            value.to_string()
        }
        Err(_) => mask_emails(line),
    }
}

fn redact_value(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if is_sensitive_key(k) {
                    *v = serde_json::Value::String("[redacted]".into());
                } else {
                    redact_value(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_value),
        serde_json::Value::String(s) if s.contains('@') => *s = mask_emails(s),
        _ => {}
    }
}

/// Stdout writer that redacts each JSON line before it leaves the process.
struct RedactingStdout;

struct LineBuffer(Vec<u8>);

impl<'a> MakeWriter<'a> for RedactingStdout {
    type Writer = LineBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        LineBuffer(Vec::with_capacity(256))
    }
}

impl Write for LineBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineBuffer {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let mut out = String::with_capacity(text.len());
        for line in text.lines().filter(|l| !l.is_empty()) {
            out.push_str(&redact_line(line));
            out.push('\n');
        }
        let _ = io::stdout().lock().write_all(out.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_fields_and_email_addresses_are_redacted() {
        let line = r#"{"message":"login failed for ana@example.com","email":"ana@example.com","user_id":"42","fields":{"refresh_token":"rt_x"}}"#;
        let out = redact_line(line);
        assert!(!out.contains("ana@example.com"), "{out}");
        assert!(!out.contains("rt_x"), "{out}");
        assert!(out.contains(r#""user_id":"42""#), "{out}");
        assert!(out.contains("a***@***"), "{out}");
    }

    #[test]
    fn text_without_addresses_is_untouched() {
        assert_eq!(mask_emails("no address here @ all"), "no address here @ all");
    }
}
