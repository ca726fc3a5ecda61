//! JSON ⇄ protobuf for request and response bodies, at about 1 KiB, 64 KiB and 1 MiB of JSON,
//! for four shapes: demo books (strings, enums, maps, a timestamp, an int64), int64 arrays,
//! Struct documents and Timestamp-heavy event lists. JSON → protobuf is measured both ways the
//! gateway can do it: the direct descriptor-driven transcoder (`direct`) and DynamicMessage
//! (`dynamic`, its oracle and fallback), and protobuf → JSON through the direct writer and
//! through DynamicMessage + serde.
//! Throughput is in bytes of JSON. Run: `cargo bench --bench json_transcode`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};
use serde_json::{Value, json};
use std::hint::black_box;
use switchyard::transcode::json::{JsonOptions, json_to_message, message_to_json};
use switchyard::transcode::json_wire::{WirePlan, direct, direct_len, write_direct, write_direct_in_pieces};

const SHAPES_PROTO: &str = r#"
syntax = "proto3";
package bench;
import "google/protobuf/struct.proto";
import "google/protobuf/timestamp.proto";
message Numbers { repeated int64 values = 1; }
message Document { google.protobuf.Struct body = 1; }
message Event { string id = 1; google.protobuf.Timestamp at = 2; google.protobuf.Timestamp until = 3; }
message Events { repeated Event events = 1; }
"#;

fn pools() -> (DescriptorPool, DescriptorPool) {
    let demo = switchyard::demo::demo_registration().expect("demo compiles");
    let demo = switchyard::registry::merge_registrations(vec![demo]).expect("merges").pool;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.proto");
    std::fs::write(&path, SHAPES_PROTO).expect("write");
    let shapes =
        switchyard::registry::compile_sources(&[path], &[dir.path().to_owned()], Some("bench")).expect("compiles");
    let shapes = switchyard::registry::merge_registrations(vec![shapes]).expect("merges").pool;
    (demo, shapes)
}

fn book(i: usize) -> Value {
    json!({
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

fn struct_entry(i: usize) -> Value {
    json!({"id": i, "name": format!("item {i}"), "price": 12.5 + i as f64, "tags": ["a", "b"], "active": i.is_multiple_of(2), "note": null})
}

fn event(i: usize) -> Value {
    json!({"id": format!("e{i}"), "at": "2026-12-02T08:47:26.123456789Z", "until": "2026-12-02T09:00:00Z"})
}

/// A document of about `bytes` bytes of JSON in the given shape, its message type's name.
fn document(shape: &str, bytes: usize) -> (&'static str, Vec<u8>) {
    let grow = |item: &dyn Fn(usize) -> Value, wrap: &dyn Fn(Vec<Value>) -> Value| {
        let one = serde_json::to_vec(&item(0)).expect("json").len() + 1;
        let count = (bytes / one).max(1);
        serde_json::to_vec(&wrap((0..count).map(item).collect())).expect("json")
    };
    match shape {
        "books" => {
            ("catalog.v1.ListBooksResponse", grow(&book, &|books| json!({"books": books, "nextPageToken": "20"})))
        }
        "int64s" => {
            let value = |i: usize| json!(format!("{}", (i as i64 * 7_919_000_003) ^ 0x5555));
            ("bench.Numbers", grow(&value, &|values| json!({"values": values})))
        }
        "struct" => (
            "bench.Document",
            grow(&struct_entry, &|items| {
                let body: serde_json::Map<String, Value> =
                    items.into_iter().enumerate().map(|(i, v)| (format!("k{i}"), v)).collect();
                json!({"body": body})
            }),
        ),
        "timestamps" => ("bench.Events", grow(&event, &|events| json!({"events": events}))),
        _ => unreachable!("known shapes"),
    }
}

fn json_transcode(c: &mut Criterion) {
    let (demo, shapes) = pools();
    let options = JsonOptions::default();
    for (size, bytes) in [("1KiB", 1 << 10), ("64KiB", 64 << 10), ("1MiB", 1 << 20)] {
        let mut group = c.benchmark_group(format!("json_transcode/{size}"));
        if bytes >= 1 << 20 {
            group.sample_size(10);
        }
        for shape in ["books", "int64s", "struct", "timestamps"] {
            let (name, json) = document(shape, bytes);
            let descriptor: MessageDescriptor =
                demo.get_message_by_name(name).or_else(|| shapes.get_message_by_name(name)).expect("message type");
            let plan = WirePlan::new(&descriptor);
            let wire = direct(&plan, &json, &options).expect("the direct transcoder reads every bench shape");
            let oracle = json_to_message(descriptor.clone(), &json, &options).expect("valid").encode_to_vec();
            assert_eq!(
                DynamicMessage::decode(descriptor.clone(), wire.as_slice()).expect("decodes"),
                DynamicMessage::decode(descriptor.clone(), oracle.as_slice()).expect("decodes"),
                "{shape}: the direct bytes mean the oracle's message"
            );
            group.throughput(Throughput::Bytes(json.len() as u64));
            group.bench_with_input(BenchmarkId::new("json_to_protobuf/direct", shape), &json, |b, json| {
                b.iter(|| direct(&plan, black_box(json), &options).expect("valid"))
            });
            group.bench_with_input(BenchmarkId::new("json_to_protobuf/dynamic", shape), &json, |b, json| {
                b.iter(|| {
                    json_to_message(descriptor.clone(), black_box(json), &options).expect("valid").encode_to_vec()
                })
            });
            let written = write_direct(&plan, &wire, &options).expect("the direct writer writes every bench shape");
            let oracle_json = message_to_json(
                &DynamicMessage::decode(descriptor.clone(), wire.as_slice()).expect("decodes"),
                &options,
            )
            .expect("writes");
            assert_eq!(written.len(), oracle_json.len(), "{shape}: the direct JSON is the oracle's");
            // Answers as a prost backend encodes them (Struct entries in key order).
            let wire = oracle;
            group.bench_with_input(BenchmarkId::new("protobuf_to_json/direct", shape), &wire, |b, wire| {
                b.iter(|| write_direct(&plan, black_box(wire), &options).expect("valid"))
            });
            if bytes >= 1 << 20 {
                // What a large REST answer costs: counted, then written in 32 KiB pieces.
                group.bench_with_input(BenchmarkId::new("protobuf_to_json/in_pieces", shape), &wire, |b, wire| {
                    b.iter(|| {
                        let length = direct_len(&plan, black_box(wire), &options).expect("valid");
                        let mut sent = 0;
                        assert!(write_direct_in_pieces(&plan, wire, &options, 32 << 10, &mut |piece| {
                            sent += piece.len();
                            true
                        }));
                        assert_eq!(sent, length);
                    })
                });
            }
            group.bench_with_input(BenchmarkId::new("protobuf_to_json/dynamic", shape), &wire, |b, wire| {
                b.iter(|| {
                    let message =
                        DynamicMessage::decode(descriptor.clone(), black_box(wire.as_slice())).expect("decodes");
                    message_to_json(&message, &options).expect("writes")
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, json_transcode);
criterion_main!(benches);
