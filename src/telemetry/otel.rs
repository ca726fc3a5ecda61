//! OpenTelemetry export: an OpenTelemetry layer for the process's tracing subscriber, made
//! when the process starts from the config's `[tracing]` (so changing it takes a restart).
//! Spans go to an OTLP collector over gRPC (tonic) or HTTP/protobuf (through our reqwest
//! client, run on the gateway's runtime), batched, with a parent-based ratio sampler.
//! `shutdown` flushes what is buffered. Process-wide by nature: one subscriber per process.

use std::sync::Mutex;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use tracing_subscriber::Registry;

use crate::config::{OtlpProtocol, TracingConfig};

/// The layer, placed directly on the registry.
pub type OtelLayer = tracing_opentelemetry::OpenTelemetryLayer<Registry, SdkTracer>;

static PROVIDER: Mutex<Option<SdkTracerProvider>> = Mutex::new(None);

/// The layer exporting spans as `config` says; None when no endpoint is set. Must run on the
/// gateway's tokio runtime: the exporters' connections live there.
pub fn layer(config: &TracingConfig) -> Result<Option<OtelLayer>, String> {
    let Some(endpoint) = &config.otlp_endpoint else { return Ok(None) };
    let timeout = Duration::from_secs(10);
    let exporter = match config.protocol {
        OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .with_timeout(timeout)
            .build(),
        OtlpProtocol::Http => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(RuntimeClient::new(timeout))
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
            .with_timeout(timeout)
            .build(),
    }
    .map_err(|e| format!("tracing.otlp_endpoint: cannot build the exporter: {e}"))?;
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sampling_ratio)));
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(config.service_name.clone()).build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(sampler)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("switchyard");
    if let Ok(mut current) = PROVIDER.lock()
        && let Some(previous) = current.replace(provider)
    {
        let _ = previous.shutdown();
    }
    Ok(Some(tracing_opentelemetry::layer().with_tracer(tracer)))
}

/// Exports what is buffered and stops exporting (at shutdown). Blocks while it flushes.
pub fn shutdown() {
    let provider = PROVIDER.lock().ok().and_then(|mut p| p.take());
    if let Some(provider) = provider {
        if let Err(error) = provider.force_flush() {
            tracing::warn!(%error, "spans could not be flushed");
        }
        let _ = provider.shutdown();
    }
}

/// OTLP/HTTP through reqwest, each request run on the runtime the client was made on (the
/// batch exporter calls from its own thread, which has no runtime).
#[derive(Debug)]
struct RuntimeClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl RuntimeClient {
    fn new(timeout: Duration) -> Self {
        let client = reqwest::Client::builder().timeout(timeout).build().unwrap_or_default();
        RuntimeClient { client, runtime: tokio::runtime::Handle::current() }
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for RuntimeClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let (parts, body) = request.into_parts();
            let url = parts.uri.to_string();
            let response = client.request(parts.method, url).headers(parts.headers).body(body).send().await?;
            let mut answer = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                answer = answer.header(name, value);
            }
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>(answer.body(body))
        });
        let answer = sent.await.map_err(|e| Box::new(e) as opentelemetry_http::HttpError)??;
        answer.map_err(|e| Box::new(e) as opentelemetry_http::HttpError)
    }
}
