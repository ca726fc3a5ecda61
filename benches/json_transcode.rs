//! JSON ⇄ protobuf through DynamicMessage for a small (~300 B) and a ~10 KiB message, as the
//! REST path does it: JSON → message → wire bytes, and wire bytes → message → JSON.
//! Run: `cargo bench --bench json_transcode`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use std::hint::black_box;
use switchyard::transcode::json::{JsonOptions, json_to_message, message_to_json};

fn descriptor(name: &str) -> MessageDescriptor {
    let registration = switchyard::demo::demo_registration().expect("demo compiles");
    let registry = switchyard::registry::merge_registrations(vec![registration]).expect("merges");
    registry.pool.get_message_by_name(name).expect("message")
}

fn book(i: usize) -> serde_json::Value {
    serde_json::json!({
        "name": format!("shelves/1/books/{i}"),
        "title": "The Left Hand of Darkness",
        "author": "Ursula K. Le Guin",
        "isbn": "9780441478125",
        "publishTime": "1969-03-01T00:00:00Z",
        "rating": 46,
        "genre": "FICTION",
        "labels": {"series": "Hainish", "format": "paperback"},
        "inStock": true,
        "coverThumbnail": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk",
        "tags": ["classic", "science-fiction", "anthropology"],
        "copiesSold": "1000000"
    })
}

fn json_transcode(c: &mut Criterion) {
    let small = serde_json::to_vec(&book(1)).expect("json");
    let large_value = serde_json::json!({
        "books": (0..20).map(book).collect::<Vec<_>>(),
        "nextPageToken": "20",
        "totalSize": "1000"
    });
    let large = serde_json::to_vec(&large_value).expect("json");
    let options = JsonOptions::default();
    let mut group = c.benchmark_group("json_transcode");
    for (label, descriptor, json) in
        [("small", descriptor("catalog.v1.Book"), small), ("10KiB", descriptor("catalog.v1.ListBooksResponse"), large)]
    {
        group.throughput(Throughput::Bytes(json.len() as u64));
        group.bench_with_input(BenchmarkId::new("json_to_protobuf", label), &json, |b, json| {
            b.iter(|| {
                let message = json_to_message(descriptor.clone(), black_box(json), &options).expect("valid");
                message.encode_to_vec()
            })
        });
        let wire = json_to_message(descriptor.clone(), &json, &options).expect("valid").encode_to_vec();
        group.bench_with_input(BenchmarkId::new("protobuf_to_json", label), &wire, |b, wire| {
            b.iter(|| {
                let message = DynamicMessage::decode(descriptor.clone(), black_box(wire.as_slice())).expect("decodes");
                message_to_json(&message, &options)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, json_transcode);
criterion_main!(benches);
