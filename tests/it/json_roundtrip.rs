//! Property: for the demo's messages, protobuf → JSON → protobuf is the identity, and JSON
//! written by the gateway reads back to the same JSON.

use proptest::prelude::*;
use prost_reflect::{DynamicMessage, MessageDescriptor, ReflectMessage, Value};
use switchyard::transcode::json::{JsonOptions, json_to_message, message_to_json};

fn descriptor(name: &str) -> MessageDescriptor {
    let registration = switchyard::demo::demo_registration().expect("demo compiles");
    switchyard::registry::merge_registrations(vec![registration])
        .expect("merges")
        .pool
        .get_message_by_name(name)
        .expect("message")
}

#[derive(Debug, Clone)]
struct BookInput {
    name: String,
    title: String,
    isbn: i64,
    seconds: i64,
    nanos: i32,
    rating: Option<i32>,
    genre: i32,
    labels: Vec<(String, String)>,
    availability: Option<Result<bool, i64>>,
    cover: Vec<u8>,
    tags: Vec<String>,
    copies_sold: u64,
}

fn book_input() -> impl Strategy<Value = BookInput> {
    (
        "[a-z0-9/]{0,20}",
        "\\PC{0,24}",
        any::<i64>(),
        -62_135_596_800i64..253_402_300_799i64,
        0i32..1_000_000_000,
        proptest::option::of(any::<i32>()),
        0i32..5,
        proptest::collection::vec(("[a-z]{1,6}", "\\PC{0,8}"), 0..4),
        proptest::option::of(prop_oneof![any::<bool>().prop_map(Ok), (0i64..4_000_000_000).prop_map(Err)]),
        proptest::collection::vec(any::<u8>(), 0..32),
        proptest::collection::vec("\\PC{0,10}", 0..4),
        any::<u64>(),
    )
        .prop_map(
            |(name, title, isbn, seconds, nanos, rating, genre, labels, availability, cover, tags, copies_sold)| {
                BookInput {
                    name,
                    title,
                    isbn,
                    seconds,
                    nanos,
                    rating,
                    genre,
                    labels,
                    availability,
                    cover,
                    tags,
                    copies_sold,
                }
            },
        )
}

fn timestamp(seconds: i64, nanos: i32) -> DynamicMessage {
    let mut ts = DynamicMessage::new(descriptor("google.protobuf.Timestamp"));
    ts.set_field_by_name("seconds", Value::I64(seconds));
    ts.set_field_by_name("nanos", Value::I32(nanos));
    ts
}

fn build(input: &BookInput) -> DynamicMessage {
    let mut book = DynamicMessage::new(descriptor("catalog.v1.Book"));
    book.set_field_by_name("name", Value::String(input.name.clone()));
    book.set_field_by_name("title", Value::String(input.title.clone()));
    book.set_field_by_name("isbn", Value::I64(input.isbn));
    book.set_field_by_name("publish_time", Value::Message(timestamp(input.seconds, input.nanos)));
    if let Some(rating) = input.rating {
        let mut wrapper = DynamicMessage::new(descriptor("google.protobuf.Int32Value"));
        wrapper.set_field_by_name("value", Value::I32(rating));
        book.set_field_by_name("rating", Value::Message(wrapper));
    }
    book.set_field_by_name("genre", Value::EnumNumber(input.genre));
    let labels = input.labels.iter().map(|(k, v)| (prost_reflect::MapKey::String(k.clone()), Value::String(v.clone())));
    book.set_field_by_name("labels", Value::Map(labels.collect()));
    match input.availability {
        Some(Ok(in_stock)) => book.set_field_by_name("in_stock", Value::Bool(in_stock)),
        Some(Err(seconds)) => book.set_field_by_name("restock_time", Value::Message(timestamp(seconds, 0))),
        None => {}
    }
    book.set_field_by_name("cover_thumbnail", Value::Bytes(input.cover.clone().into()));
    book.set_field_by_name("tags", Value::List(input.tags.iter().cloned().map(Value::String).collect()));
    book.set_field_by_name("copies_sold", Value::U64(input.copies_sold));
    book
}

/// A map-order-independent view of a message: its JSON with defaults, as a value tree.
fn canonical(message: &DynamicMessage) -> serde_json::Value {
    use prost::Message;
    let decoded = DynamicMessage::decode(message.descriptor(), message.encode_to_vec().as_slice()).expect("decodes");
    parsed(&message_to_json(&decoded, &JsonOptions { emit_defaults: true, ..JsonOptions::default() }).expect("writes"))
}

fn parsed(json: &[u8]) -> serde_json::Value {
    serde_json::from_slice(json).expect("valid JSON")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn protobuf_json_protobuf_is_the_identity(input in book_input(), emit_defaults in any::<bool>(), proto_names in any::<bool>()) {
        let options = JsonOptions { emit_defaults, proto_names, ..JsonOptions::default() };
        let book = build(&input);
        let json = message_to_json(&book, &options).expect("writes");
        let back = json_to_message(book.descriptor(), &json, &options).expect("the gateway reads what it writes");
        // Wire bytes are the identity check, decoded once more so map order cannot matter.
        prop_assert_eq!(canonical(&back), canonical(&book), "via {}", String::from_utf8_lossy(&json));
        let again = message_to_json(&back, &options).expect("writes");
        prop_assert_eq!(parsed(&again), parsed(&json));
    }
}
