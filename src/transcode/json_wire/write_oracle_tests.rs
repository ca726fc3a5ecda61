//! The direct writer checked against DynamicMessage + `message_to_json`, the oracle: for any
//! bytes, either both write JSON and it is the same JSON (map entries, whose order the oracle
//! leaves to a hash map, compared as sets), or the writer steps aside. It must never write
//! JSON for bytes the oracle refuses.

use prost::Message;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use serde_json::Value as Json;

use super::{WirePlan, write_direct};
use crate::transcode::json::{JsonOptions, json_to_message, mapping_tests, message_to_json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Direct,
    FellBack,
    Refused,
}

/// JSON with every object's keys sorted, so map entries compare as sets.
fn canonical(json: &[u8]) -> String {
    fn sort(value: Json) -> Json {
        match value {
            Json::Object(map) => {
                let mut entries: Vec<(String, Json)> = map.into_iter().map(|(k, v)| (k, sort(v))).collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                Json::Object(entries.into_iter().collect())
            }
            Json::Array(items) => Json::Array(items.into_iter().map(sort).collect()),
            other => other,
        }
    }
    let value: Json = serde_json::from_slice(json).expect("the writer's output is JSON");
    serde_json::to_string(&sort(value)).expect("writes")
}

fn outcome(descriptor: &MessageDescriptor, plan: &WirePlan, bytes: &[u8], options: &JsonOptions) -> Outcome {
    let oracle = DynamicMessage::decode(descriptor.clone(), bytes)
        .map_err(|e| e.to_string())
        .and_then(|message| message_to_json(&message, options).map_err(|e| e.to_string()));
    let written = write_direct(plan, bytes, options);
    in_pieces_as_whole(plan, bytes, options, written.as_deref());
    match (oracle, written) {
        (Ok(theirs), Some(ours)) => {
            if ours != theirs {
                assert_eq!(canonical(&ours), canonical(&theirs), "{bytes:?}: the writer wrote other JSON");
            }
            Outcome::Direct
        }
        (Ok(_), None) => Outcome::FellBack,
        (Err(_), None) => Outcome::Refused,
        (Err(error), Some(ours)) => panic!(
            "{bytes:?}: written directly as {}, but the oracle refuses it: {error}",
            String::from_utf8_lossy(&ours)
        ),
    }
}

/// The streaming writer against the whole one: the length it counts, and its pieces (at
/// several sizes) joined, are the whole document's; where the whole one steps aside, so does it.
fn in_pieces_as_whole(plan: &WirePlan, bytes: &[u8], options: &JsonOptions, whole: Option<&[u8]>) {
    assert_eq!(super::direct_len(plan, bytes, options), whole.map(<[u8]>::len), "{bytes:?}: the counted length");
    for at in [1, 5, 64] {
        let mut joined = Vec::new();
        let mut pieces = 0;
        let written = super::write_direct_in_pieces(plan, bytes, options, at, &mut |piece| {
            assert!(!piece.is_empty(), "{bytes:?}: an empty piece at {at}");
            joined.extend_from_slice(&piece);
            pieces += 1;
            true
        });
        match whole {
            Some(whole) => {
                assert!(written, "{bytes:?}: not written in pieces of {at}");
                assert_eq!(joined, whole, "{bytes:?}: pieces of {at}");
            }
            None => assert!(!written, "{bytes:?}: written in pieces of {at} but not whole"),
        }
    }
}

/// Wire bytes of `t.All` from proto3 JSON, through the oracle.
fn wire(all: &MessageDescriptor, json: &str) -> Vec<u8> {
    json_to_message(all.clone(), json.as_bytes(), &JsonOptions::default()).expect(json).encode_to_vec()
}

/// A record: field `number` with a length-delimited value.
fn len_record(number: u32, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::bytes::encode(number, &value.to_vec(), &mut out);
    out
}

fn varint_record(number: u32, value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_key(number, prost::encoding::WireType::Varint, &mut out);
    prost::encoding::encode_varint(value, &mut out);
    out
}

#[test]
fn each_wire_rule_is_written_directly_or_left_to_the_oracle() {
    use Outcome::*;
    let all = mapping_tests::descriptor();
    let plan = WirePlan::new(&all);
    let plain = JsonOptions::default();
    let with_defaults = JsonOptions { emit_defaults: true, proto_names: true, ..JsonOptions::default() };
    let from_json = |json: &str| wire(&all, json);
    // The direct encoder keeps the document's order, so these entries are out of key order.
    let unsorted = super::direct(&plan, br#"{"st":{"b":1,"a":{"d":true,"c":null}}}"#, &plain).expect("direct");
    let table: Vec<(&str, Vec<u8>, Outcome)> = vec![
        ("empty", vec![], Direct),
        (
            "scalars",
            from_json(
                r#"{"i64":"-5","u64":"18446744073709551615","i32":-7,"d":0.1,"f":1.5,"b":true,"s":"a\"b\u0001é"}"#,
            ),
            Direct,
        ),
        ("bytes and enums", from_json(r#"{"by":"+/8=","color":"RED","nums":["1","-2"]}"#), Direct),
        ("an unknown enum number", varint_record(9, 7), Direct),
        ("maps", from_json(r#"{"byInt":{"-1":"a","2":"b"},"byBool":{"true":{"id":"x"}},"byName":{"k":{}}}"#), Direct),
        (
            "well-known types",
            from_json(
                r#"{"ts":"1969-03-01T00:00:00.120Z","dur":"1.000340s","w64":"0","empty":{},"lv":[1,"a",null,true,{"z":[]}]}"#,
            ),
            Direct,
        ),
        ("a Struct", from_json(r#"{"st":{"b":1,"a":{"c":[null,"x"]}}}"#), Direct),
        ("a Struct's keys out of order", unsorted.clone(), Direct),
        ("a Struct key given twice", len_record(13, &[&unsorted[2..], &unsorted[2..]].concat()), FellBack),
        ("oneof and optional", from_json(r#"{"inner":{"id":"y"},"maybe":0}"#), Direct),
        ("a repeated message", from_json(r#"{"inners":[{"id":"a"},{},{"longName":"z"}]}"#), Direct),
        (
            "an unknown field",
            [from_json(r#"{"s":"x"}"#), varint_record(999, 1), len_record(1000, b"zz")].concat(),
            Direct,
        ),
        ("a scalar given twice", [varint_record(3, 1), varint_record(3, 2)].concat(), Direct),
        ("packed and unpacked together", [from_json(r#"{"nums":[1,2]}"#), varint_record(23, 3)].concat(), Direct),
        ("a negative int32", varint_record(3, (-5i64) as u64), Direct),
        (
            "a message given twice",
            [len_record(22, &varint_record(1, 0)[..0]), len_record(22, b"\x0a\x01q")].concat(),
            FellBack,
        ),
        ("two oneof members", [len_record(21, b"x"), len_record(22, b"")].concat(), FellBack),
        (
            "a map key given twice",
            [len_record(10, b"\x08\x01\x12\x01a"), len_record(10, b"\x08\x01\x12\x01b")].concat(),
            FellBack,
        ),
        ("an Any", from_json(r#"{"any":{"@type":"type.googleapis.com/t.Inner","id":"x"}}"#), FellBack),
        ("a FieldMask", from_json(r#"{"mask":"a.b"}"#), FellBack),
        ("a negative duration", from_json(r#"{"dur":"-1.5s"}"#), FellBack),
        ("a wrong wire type", varint_record(7, 1), Refused),
        ("a string that is not UTF-8", len_record(7, b"\xff"), Refused),
        ("a timestamp past 9999", len_record(19, &varint_record(1, 1_000_000_000_000)), Refused),
        ("a NaN in a Value", len_record(15, &len_record(1, &[0x11, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f])), Refused),
        ("a cut-off record", from_json(r#"{"s":"hello"}"#)[..4].to_vec(), Refused),
        ("a group", vec![0x0b, 0x0c], Refused),
        ("field number zero", vec![0x00, 0x01], Refused),
    ];
    for (what, bytes, want) in &table {
        assert_eq!(outcome(&all, &plan, bytes, &plain), *want, "{what}");
        let with = outcome(&all, &plan, bytes, &with_defaults);
        assert!(with == *want || (*want == Direct && with == FellBack), "{what} with defaults: {with:?}");
    }
}

#[test]
fn defaults_and_names_follow_the_options() {
    let all = mapping_tests::descriptor();
    let plan = WirePlan::new(&all);
    let bytes = wire(&all, r#"{"inner":{"longName":"x"},"renamed":"y"}"#);
    let options = JsonOptions { emit_defaults: true, proto_names: true, ..JsonOptions::default() };
    let written = write_direct(&plan, &bytes, &options).expect("direct");
    let oracle = message_to_json(&DynamicMessage::decode(all.clone(), bytes.as_slice()).expect("decodes"), &options)
        .expect("writes");
    assert_eq!(canonical(&written), canonical(&oracle));
    let text = String::from_utf8(written).expect("utf8");
    assert!(
        text.contains(r#""i64":"0""#) && text.contains(r#""custom":"y""#) && text.contains(r#""by_int":{}"#),
        "{text}"
    );
}

/// Bytes from generated documents, and the same bytes damaged: the writer agrees with the
/// oracle on all of them, and writes most of the undamaged ones itself.
#[test]
fn generated_and_damaged_bytes_agree_with_the_oracle() {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let all = mapping_tests::descriptor();
    let plan = WirePlan::new(&all);
    let options = [JsonOptions::default(), JsonOptions { emit_defaults: true, ..JsonOptions::default() }];
    let document = prop::collection::vec(
        (prop::sample::select(super::oracle_tests::FIELDS), super::oracle_tests::field_value()),
        0..4,
    );
    let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &[11; 32]));
    let (mut accepted, mut direct) = (0, 0);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..8_000 {
        let members = document.new_tree(&mut runner).expect("generates").current();
        let members: Vec<String> = members.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        let json = format!("{{{}}}", members.join(","));
        let Ok(message) = json_to_message(all.clone(), json.as_bytes(), &JsonOptions::default()) else { continue };
        let bytes = message.encode_to_vec();
        accepted += 1;
        for options in &options {
            direct += usize::from(outcome(&all, &plan, &bytes, options) == Outcome::Direct);
        }
        if bytes.is_empty() {
            continue;
        }
        // Damage: flip a byte, or cut the bytes short.
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let at = (state >> 33) as usize % bytes.len();
        let mut damaged = bytes.clone();
        if state & 1 == 0 {
            damaged[at] ^= (state >> 8) as u8 | 1;
        } else {
            damaged.truncate(at);
        }
        outcome(&all, &plan, &damaged, &options[0]);
    }
    assert!(accepted >= 1_000 && direct * 10 >= accepted * 2 * 8, "{direct} of {accepted} × 2 written directly");
}

/// Long strings, bytes, lists, Struct members and map values, written in pieces much smaller
/// than they are: each piece is handed on as soon as it is full (a map stays whole, since its
/// key check reads back what it wrote), and a refusing receiver stops the writer at once.
#[test]
fn long_values_are_handed_on_in_pieces_as_they_are_written() {
    let all = mapping_tests::descriptor();
    let plan = WirePlan::new(&all);
    let options = JsonOptions::default();
    let long = r#"é\"\u0001x"#.repeat(700);
    let documents = [
        format!(r#"{{"s":"{long}"}}"#),
        format!(r#"{{"by":"{}"}}"#, base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 1001])),
        format!(r#"{{"nums":[{}]}}"#, (0..500).map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(",")),
        format!(r#"{{"st":{{"a":"{long}","b":[1,"{long}"]}}}}"#),
        format!(r#"{{"inners":[{{"id":"{long}"}},{{"longName":"{long}"}}]}}"#),
        format!(r#"{{"byName":{{"k":{{"id":"{long}"}}}},"s":"{long}"}}"#),
    ];
    for document in &documents {
        let bytes = wire(&all, document);
        let whole = write_direct(&plan, &bytes, &options).expect("direct");
        in_pieces_as_whole(&plan, &bytes, &options, Some(&whole));
        let at = 256;
        let mut largest = 0;
        let mut joined = Vec::new();
        assert!(super::write_direct_in_pieces(&plan, &bytes, &options, at, &mut |piece| {
            largest = largest.max(piece.len());
            joined.extend_from_slice(&piece);
            true
        }));
        assert_eq!(joined, whole, "{document:.60}");
        let in_a_map = document.contains("byName");
        // A piece runs past `at` by at most one escaped piece of text (6 bytes a byte) and a key.
        assert!(in_a_map || largest <= at * 7 + 64, "{document:.60}: a piece of {largest}");
        assert!(whole.len() > 4 * at);

        let mut handed = 0;
        assert!(!super::write_direct_in_pieces(&plan, &bytes, &options, at, &mut |_| {
            handed += 1;
            handed < 2
        }));
        assert_eq!(handed, 2, "{document:.60}: the writer goes on after a refusal");
    }
}
