//! The direct transcoder checked against DynamicMessage, the oracle: for every document, either
//! both accept and the direct bytes decode to the message DynamicMessage builds, or the direct
//! transcoder steps aside. It must never accept what DynamicMessage refuses.

use proptest::prelude::*;
use prost::Message;
use prost_reflect::{DynamicMessage, MessageDescriptor};

use super::{WirePlan, direct, direct_field};
use crate::transcode::json::{JsonOptions, json_to_message, mapping_tests};

/// What happened to one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Encoded directly, to the oracle's message.
    Direct,
    /// Left to DynamicMessage, which accepted it.
    FellBack,
    /// Left to DynamicMessage, which refused it.
    Refused,
}

fn outcome(descriptor: &MessageDescriptor, plan: &WirePlan, json: &[u8], options: &JsonOptions) -> Outcome {
    let oracle = json_to_message(descriptor.clone(), json, options);
    let fast = direct(plan, json, options);
    let shown = String::from_utf8_lossy(json);
    // In pieces, every string without escapes left in the document: the same bytes.
    let held = bytes::Bytes::copy_from_slice(json);
    let pieces = super::pieces_leaving(plan, None, &held, options, 1);
    assert_eq!(pieces.as_ref().map(|m| m.to_bytes().to_vec()), fast, "{shown}: in pieces");
    match (oracle, fast) {
        (Ok(message), Some(bytes)) => {
            let ours = DynamicMessage::decode(descriptor.clone(), bytes.as_slice())
                .unwrap_or_else(|e| panic!("{shown}: the direct bytes do not decode: {e}"));
            let theirs = DynamicMessage::decode(descriptor.clone(), message.encode_to_vec().as_slice())
                .expect("the oracle's bytes decode");
            assert_eq!(ours, theirs, "{shown}: the direct bytes mean another message");
            Outcome::Direct
        }
        (Ok(_), None) => Outcome::FellBack,
        (Err(_), None) => Outcome::Refused,
        (Err(error), Some(_)) => panic!("{shown}: accepted directly, but DynamicMessage refuses it: {error}"),
    }
}

#[test]
fn each_mapping_rule_is_encoded_directly_or_left_to_the_oracle() {
    use Outcome::*;
    let all = mapping_tests::descriptor();
    let plan = WirePlan::new(&all);
    let options = JsonOptions::default();
    let table: &[(&str, Outcome)] = &[
        (r#"{}"#, Direct),
        (r#" { "i64" : 5 , "s" : "x" } "#, Direct),
        (r#"{"i64":"-9223372036854775808","u64":"18446744073709551615","i32":-2147483648}"#, Direct),
        (r#"{"i64":0,"s":"","b":false,"d":0.0,"f":-0.0,"by":""}"#, Direct),
        (r#"{"d":1.5e300,"f":3.4028234e38,"f":1}"#, Refused),
        (r#"{"d":1.5e300,"f":3.4028234e38}"#, Direct),
        (r#"{"f":3.5e38}"#, Refused),
        (r#"{"d":1e400}"#, Refused),
        (r#"{"d":"NaN"}"#, FellBack),
        (r#"{"d":"1.5"}"#, FellBack),
        (r#"{"i32":2147483648}"#, Refused),
        (r#"{"i32":1.0}"#, FellBack),
        (r#"{"i32":1e2}"#, FellBack),
        (r#"{"i32":"+5"}"#, Direct),
        (r#"{"i32":-0}"#, FellBack),
        (r#"{"u64":-1}"#, Refused),
        (r#"{"i64":18446744073709551616}"#, Refused),
        (r#"{"s":"caf\u00e9 \ud83d\ude00","by":"-_8"}"#, Direct),
        (r#"{"by":"+/8="}"#, Direct),
        (r#"{"by":"***"}"#, Refused),
        (r#"{"color":"RED"}"#, Direct),
        (r#"{"color":1}"#, Direct),
        (r#"{"color":7}"#, Direct),
        (r#"{"color":"BLUE"}"#, Refused),
        (r#"{"byInt":{"1":"a","-2":"b"},"byBool":{"true":{"id":"x"},"false":{}}}"#, Direct),
        (r#"{"byInt":{"01":"a","1":"b"}}"#, Direct),
        (r#"{"byInt":{"one":"a"}}"#, Refused),
        (r#"{"byInt":{"1":"a","1":"b"}}"#, Refused),
        (r#"{"byInt":{"1":null}}"#, Refused),
        (r#"{"byName":{"k":{"longName":"v","id":"7"}}}"#, Direct),
        (r#"{"st":{"a":[1,"b",null,{"c":true}],"n":-2.5e-3,"big":18446744073709551615}}"#, Direct),
        (r#"{"st":{"a":1,"a":2}}"#, Refused),
        (r#"{"lv":[1,"two",[],{}]}"#, Direct),
        (r#"{"dur":"1.500s","ts":"1969-03-01T00:00:00Z"}"#, Direct),
        (r#"{"dur":"-1.5s"}"#, FellBack),
        (r#"{"ts":"1970-01-01T00:00:01.5+01:00"}"#, FellBack),
        (r#"{"ts":"10000-01-01T00:00:00Z"}"#, Refused),
        (r#"{"ts":"2023-02-29T00:00:00Z"}"#, Refused),
        (r#"{"w64":"5","w64":"6"}"#, Refused),
        (r#"{"w64":"0"}"#, Direct),
        (r#"{"w64":null,"i32":null,"inner":null}"#, Direct),
        (r#"{"empty":{}}"#, Direct),
        (r#"{"empty":{"x":1}}"#, Refused),
        (r#"{"any":{"@type":"type.googleapis.com/t.Inner","id":"x"}}"#, FellBack),
        (r#"{"mask":"a.b,cD"}"#, FellBack),
        (r#"{"a":"x","inner":{"id":"y"}}"#, Refused),
        (r#"{"a":null,"inner":{"id":"y"}}"#, Direct),
        (r#"{"a":""}"#, Direct),
        (r#"{"nums":[1,"2",-3],"inners":[{"id":"a"},{}]}"#, Direct),
        (r#"{"nums":[1,null]}"#, Refused),
        (r#"{"nums":null,"byInt":null}"#, Direct),
        (r#"{"maybe":0}"#, Direct),
        (r#"{"renamed":"x"}"#, Direct),
        (r#"{"custom":"x"}"#, Direct),
        (r#"{"renamed":"x","custom":"y"}"#, Refused),
        (r#"{"long_name":"x"}"#, Refused),
        (r#"{"nope":1}"#, Refused),
        (r#"{"i64":"1","i64":"2"}"#, Refused),
        (r#"{"byInt":{"1":"a"},"by_int":{"2":"b"}}"#, Refused),
        (r#"{"d":NaN}"#, Refused),
        (r#"{"s":"x"} trailing"#, Refused),
        (r#"{"s":"x",}"#, Refused),
        (r#"{"s":"tab	in string"}"#, Refused),
        ("{\"s\":\"\u{feff}\"}", Direct),
        ("\u{feff}{}", Refused),
        (r#"[1]"#, Refused),
        (r#"{"inner":{"id":"x","long_name":"y","longName":"z"}}"#, Refused),
    ];
    for (input, want) in table {
        assert_eq!(outcome(&all, &plan, input.as_bytes(), &options), *want, "{input}");
    }
}

/// A lenient profile skips unknown keys; their values are still read as JSON, with the same
/// depth and duplicate-key rules.
#[test]
fn a_lenient_profile_skips_unknown_keys_directly() {
    use Outcome::*;
    let all = mapping_tests::descriptor();
    let plan = WirePlan::new(&all);
    let lenient = JsonOptions { ignore_unknown: true, ..JsonOptions::default() };
    let table: &[(&str, Outcome)] = &[
        (r#"{"nope":1,"s":"x"}"#, Direct),
        (r#"{"s":"x","extra":{"a":[1,null,{"b":"c"}],"d":true},"more":null}"#, Direct),
        (r#"{"inner":{"id":"y","unknownToo":[[]]}}"#, Direct),
        (r#"{"nope":1,"nope":2}"#, Refused),
        (r#"{"nope":{"a":1,"a":2}}"#, Refused),
        (r#"{"nope":1e400}"#, FellBack),
        (r#"{"nope":[1,}"#, Refused),
        (r#"{"[t.ext]":1}"#, FellBack),
        (r#"{"color":"BLUE"}"#, FellBack),
    ];
    for (input, want) in table {
        assert_eq!(outcome(&all, &plan, input.as_bytes(), &lenient), *want, "{input}");
    }
    let options = JsonOptions { ignore_unknown: true, max_depth: 3, ..JsonOptions::default() };
    assert_eq!(outcome(&all, &plan, br#"{"nope":{"a":{"b":{}}}}"#, &options), Refused);
    assert_eq!(outcome(&all, &plan, br#"{"nope":{"a":{}}}"#, &options), Direct);
}

#[test]
fn nesting_past_the_limit_is_left_to_the_oracle() {
    let all = mapping_tests::descriptor();
    let plan = WirePlan::new(&all);
    let options = JsonOptions { max_depth: 4, ..JsonOptions::default() };
    let within = r#"{"st":{"a":{"b":{"c":1}}}}"#;
    let beyond = r#"{"st":{"a":{"b":{"c":{}}}}}"#;
    assert_eq!(outcome(&all, &plan, within.as_bytes(), &options), Outcome::Direct, "{within}");
    assert_eq!(outcome(&all, &plan, beyond.as_bytes(), &options), Outcome::Refused, "{beyond}");
    let deep = format!("{}{}", r#"{"lv":"#, "[".repeat(100_000));
    assert_eq!(outcome(&all, &plan, deep.as_bytes(), &JsonOptions::default()), Outcome::Refused);
}

/// A body that is one field's value (`body: "field"`) is read in place to exactly the bytes the
/// wrapped document `{"field": body}` gives, and steps aside exactly where that one does.
#[test]
fn a_field_body_reads_as_its_wrapped_document() {
    let all = mapping_tests::descriptor();
    let plan = WirePlan::new(&all);
    let table: &[(&str, &str, bool)] = &[
        ("i64", "5", true),
        ("i64", r#" "-7" "#, true),
        ("s", r#""text""#, true),
        ("inner", r#"{"id":"q"}"#, true),
        ("inner", "null", true),
        ("nums", "[1, 2, 3]", true),
        ("st", r#"{"a":{"b":[1,"x",null]}}"#, true),
        ("lv", r#"[1, {"k": true}]"#, true),
        ("i64", "5 6", false),
        ("inner", r#"{"id":"q"}}"#, false),
        ("inner", r#"{"id":"q","id":"r"}"#, false),
        ("d", r#""NaN""#, false),
        ("nope", "1", false),
        ("i64", "", false),
    ];
    for max_depth in [JsonOptions::default().max_depth, 1, 2, 3] {
        let options = JsonOptions { max_depth, ..JsonOptions::default() };
        for (field, body, direct_at_default) in table {
            let wrapped = format!(r#"{{"{field}":{body}}}"#);
            let want = direct(&plan, wrapped.as_bytes(), &JsonOptions { max_depth: max_depth + 1, ..options.clone() });
            let got = direct_field(&plan, field, body.as_bytes(), &options);
            assert_eq!(got, want, "{field}: {body} at depth {max_depth}");
            let held = bytes::Bytes::copy_from_slice(body.as_bytes());
            let pieces = super::pieces_leaving(&plan, Some(field), &held, &options, 1);
            assert_eq!(pieces.map(|m| m.to_bytes().to_vec()), got, "{field}: {body} in pieces");
            if max_depth == JsonOptions::default().max_depth {
                assert_eq!(got.is_some(), *direct_at_default, "{field}: {body}");
            }
        }
    }
}

#[test]
fn long_records_get_multi_byte_length_prefixes() {
    let all = mapping_tests::descriptor();
    let plan = WirePlan::new(&all);
    let long = "x".repeat(70_000);
    let nums: Vec<String> = (0..5_000).map(|i| (i * 7919).to_string()).collect();
    let json = format!(r#"{{"inner":{{"id":"{long}"}},"nums":[{}],"st":{{"k":"{long}"}}}}"#, nums.join(","));
    assert_eq!(outcome(&all, &plan, json.as_bytes(), &JsonOptions::default()), Outcome::Direct);
}

#[test]
fn demo_messages_written_by_the_gateway_are_read_back_directly() {
    let registration = crate::demo::demo_registration().expect("demo compiles");
    let pool = crate::registry::merge_registrations(vec![registration]).expect("merges").pool;
    let book = pool.get_message_by_name("catalog.v1.Book").expect("Book");
    let plan = WirePlan::new(&book);
    let json = br#"{"name":"shelves/1/books/1","title":"The Left Hand of Darkness","author":"Ursula K. Le Guin",
        "publishTime":"1969-03-01T00:00:00Z","genre":"FICTION","labels":{"series":"Hainish"},"inStock":true,
        "tags":["classic","science-fiction"],"copiesSold":"1000000","rating":46}"#;
    assert_eq!(outcome(&book, &plan, json, &JsonOptions::default()), Outcome::Direct);
}

/// JSON values that fit, nearly fit, or do not fit the fields of `t.All`.
pub(super) fn field_value() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i32>().prop_map(|n| n.to_string()),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| format!("{f:e}")),
        any::<f32>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| f.to_string()),
        "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?",
        Just("-0".to_owned()),
        Just("2.0".to_owned()),
    ];
    let text = prop_oneof![
        "[a-zA-Z0-9 _\\-+/=]{0,12}",
        Just("\\u00e9\\n".to_owned()),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,10})?Z",
        "-?[0-9]{1,13}(\\.[0-9]{0,10})?s",
        Just("RED".to_owned()),
        Just("COLOR_UNSPECIFIED".to_owned()),
        Just("NaN".to_owned()),
        Just("-Infinity".to_owned()),
        Just("1970-01-01T00:00:00+01:00".to_owned()),
    ]
    .prop_map(|s| format!("\"{s}\""));
    let leaf =
        prop_oneof![number.clone(), text, Just("true".to_owned()), Just("false".to_owned()), Just("null".to_owned())];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|items| format!("[{}]", items.join(","))),
            prop::collection::vec(("[a-z0-9]{1,3}|id|longName|long_name|true|-1", inner), 0..4).prop_map(|pairs| {
                let members: Vec<String> = pairs.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

pub(super) const FIELDS: &[&str] = &[
    "i64", "u64", "i32", "d", "f", "b", "s", "by", "color", "byInt", "by_int", "byBool", "st", "lv", "dur", "w64",
    "ts", "empty", "a", "inner", "nums", "maybe", "inners", "renamed", "custom", "byName", "mask", "any",
];

/// Thousands of generated documents (seeded, so the run is the same every time): each agrees
/// with the oracle, and the mix exercises all three outcomes, so the direct path is really being
/// checked. Fallbacks are rare here; the table above covers each kind.
#[test]
fn generated_documents_agree_with_the_oracle() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let all = mapping_tests::descriptor();
    let plan = WirePlan::new(&all);
    let options = JsonOptions::default();
    let document = prop::collection::vec((prop::sample::select(FIELDS), field_value()), 0..3);
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let mut tally = [0usize; 3];
    for _ in 0..6_000 {
        let members = document.new_tree(&mut runner).expect("generates").current();
        let members: Vec<String> = members.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        let json = format!("{{{}}}", members.join(","));
        tally[outcome(&all, &plan, json.as_bytes(), &options) as usize] += 1;
    }
    let [direct, fell_back, refused] = tally;
    assert!(
        direct >= 1_500 && fell_back >= 5 && refused >= 1_500,
        "direct {direct}, fell back {fell_back}, refused {refused}"
    );
}
