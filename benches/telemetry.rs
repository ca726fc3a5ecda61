//! What every request pays for telemetry: taking or making its `x-request-id`, continuing its
//! trace (parse `traceparent`, a new span id, the header for the next hop), counting it in
//! the metrics when it finishes, building its access-log line, and rendering /metrics with a
//! hundred endpoints (a scrape, off the request path). Run: `cargo bench --bench telemetry`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use switchyard::config::AccessLogConfig;
use switchyard::telemetry::access_log::{AccessEntry, line};
use switchyard::telemetry::histogram::LatencyHistogram;
use switchyard::telemetry::metrics::{EndpointSample, FinishedRequest, Metrics, Scrape};
use switchyard::telemetry::request_id;
use switchyard::telemetry::trace_context::{TraceParent, of_span};

fn telemetry(c: &mut Criterion) {
    let mut headers = http::HeaderMap::new();
    headers.insert("x-request-id", "0190b6c2-7f4e-7c1a-9f3e-2d1c0b9a8f7e".parse().expect("header"));
    c.bench_function("request_id/accept", |b| b.iter(|| request_id::accept_or_generate(black_box(&headers))));
    let none = http::HeaderMap::new();
    c.bench_function("request_id/generate", |b| b.iter(|| request_id::accept_or_generate(black_box(&none))));

    let traceparent = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    c.bench_function("trace_context/continue", |b| {
        b.iter(|| {
            let parent = TraceParent::parse(black_box(traceparent)).expect("valid");
            of_span(&tracing::Span::none(), parent).header()
        })
    });

    let metrics = Metrics::default();
    let errors = vec!["NOT_FOUND".to_owned()];
    c.bench_function("metrics/finished", |b| {
        b.iter(|| {
            metrics.finished(black_box(&FinishedRequest {
                protocol: "rest",
                operation: Some("GET /v1/{name=shelves/*/books/*}"),
                status: "404".into(),
                duration: Duration::from_micros(840),
                errors: &errors,
                rejected_by: None,
            }))
        })
    });

    let config = AccessLogConfig { enabled: true, ..AccessLogConfig::default() };
    let entry = AccessEntry {
        time: "2026-11-30T17:00:00.000Z".into(),
        request_id: "0190b6c2-7f4e-7c1a-9f3e-2d1c0b9a8f7e",
        client: Some("127.0.0.1".into()),
        identity: Some("corp/ada"),
        protocol: "rest",
        method: "GET",
        path: "/v1/shelves/1/books/1",
        query: Some("view=full&key=abc"),
        api_key_parameter: Some("key"),
        operation: Some("GET /v1/{name=shelves/*/books/*}"),
        status: 200,
        duration_ms: 0.84,
        bytes_sent: 512,
        backend_calls: 1,
        cache: Some("MISS"),
        ..AccessEntry::default()
    };
    c.bench_function("access_log/line", |b| b.iter(|| line(black_box(&config), black_box(&entry))));

    let histogram = LatencyHistogram::default();
    for micros in 0..1000 {
        histogram.observe(Duration::from_micros(micros * 37));
    }
    c.bench_function("histogram/observe", |b| b.iter(|| histogram.observe(black_box(Duration::from_micros(930)))));
    c.bench_function("metrics/render_100_endpoints", |b| {
        b.iter(|| {
            let endpoints = (0..100)
                .map(|i| EndpointSample {
                    cluster: format!("cluster{}", i / 10),
                    endpoint: format!("http://10.0.0.{i}:50051"),
                    calls: 1000,
                    failures: 3,
                    in_flight: 2,
                    healthy: true,
                    ejected: false,
                    latency: histogram.snapshot(),
                })
                .collect();
            metrics.render(Scrape { generation: 7, endpoints, ..Scrape::default() }, false)
        })
    });
}

criterion_group!(benches, telemetry);
criterion_main!(benches);
