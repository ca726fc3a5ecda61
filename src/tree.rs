//! A compact JSON value for answers on the federation path. Objects are vectors of fields in
//! their order, found by comparing names (a subgraph's objects have a handful of fields, so
//! no hashing pays off); strings and names up to 24 bytes are stored inline (compact_str).
//! Subgraph answers are parsed into it, entity answers merged into it in place, and the
//! response is projected from it and written from it. It converts to and from serde_json's
//! `Value`, which the rest of the gateway takes.
//!
//! A name that occurs twice in one parsed object is kept twice; lookups find the last one, as
//! serde_json's map keeps the last one.

use std::fmt;

use compact_str::CompactString;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value as Json};

/// A string or an object field's name.
pub type Str = CompactString;

/// A JSON value.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Value {
    /// `null`.
    #[default]
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as serde_json reads it.
    Number(Number),
    /// A string.
    String(Str),
    /// A list.
    Array(Vec<Value>),
    /// An object.
    Object(Object),
}

/// An object: its fields in their order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Object(Vec<(Str, Value)>);

impl Object {
    /// An empty object with room for `capacity` fields.
    pub fn with_capacity(capacity: usize) -> Object {
        Object(Vec::with_capacity(capacity))
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it has no fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.0.iter().rposition(|(key, _)| key == name)
    }

    /// The value of field `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().rev().find(|(key, _)| key == name).map(|(_, value)| value)
    }

    /// The value of field `name`, to change.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Value> {
        self.0.iter_mut().rev().find(|(key, _)| key == name).map(|(_, value)| value)
    }

    /// Sets field `name` (replacing its value, or adding it last).
    pub fn insert(&mut self, name: impl Into<Str> + AsRef<str>, value: Value) {
        match self.position(name.as_ref()) {
            Some(at) => self.0[at].1 = value,
            None => self.0.push((name.into(), value)),
        }
    }

    /// Adds field `name` last, without looking for it first: the caller knows it is new.
    pub fn push(&mut self, name: Str, value: Value) {
        self.0.push((name, value));
    }

    /// Removes and returns field `name`'s value.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        self.position(name).map(|at| self.0.remove(at).1)
    }

    /// Takes field `name`'s value, leaving null in its place (cheaper than removing it).
    pub fn take(&mut self, name: &str) -> Option<Value> {
        self.get_mut(name).map(std::mem::take)
    }

    /// Merges `from` into this object, moving its values: objects merge field by field,
    /// anything else replaces.
    pub fn merge(&mut self, from: Object) {
        for (name, value) in from.0 {
            match (self.position(&name), value) {
                (Some(at), Value::Object(inner)) => match &mut self.0[at].1 {
                    Value::Object(existing) => existing.merge(inner),
                    slot => *slot = Value::Object(inner),
                },
                (Some(at), value) => self.0[at].1 = value,
                (None, value) => self.0.push((name, value)),
            }
        }
    }
}

impl IntoIterator for Object {
    type Item = (Str, Value);
    type IntoIter = std::vec::IntoIter<(Str, Value)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl FromIterator<(Str, Value)> for Object {
    fn from_iter<I: IntoIterator<Item = (Str, Value)>>(fields: I) -> Object {
        Object(fields.into_iter().collect())
    }
}

impl Value {
    /// Parses JSON text. (sonic-rs parsed the bench's answer a quarter faster with this
    /// visitor, but cost more CPU per request under the federation load; serde_json stays.)
    pub fn from_slice(text: &[u8]) -> Result<Value, serde_json::Error> {
        serde_json::from_slice(text)
    }

    /// Field `name` of an object (None for anything else).
    pub fn get(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Object(object) => object.get(name),
            _ => None,
        }
    }

    /// The string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    /// The object, if it is one.
    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(object) => Some(object),
            _ => None,
        }
    }

    /// Whether it is null.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// What kind of value it is, as error messages say it.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "a list",
            Value::Object(_) => "an object",
        }
    }

    /// The same value as serde_json's.
    pub fn into_json(self) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(b),
            Value::Number(n) => Json::Number(n),
            Value::String(s) => Json::String(s.into_string()),
            Value::Array(items) => Json::Array(items.into_iter().map(Value::into_json).collect()),
            Value::Object(object) => {
                let mut out = serde_json::Map::with_capacity(object.len());
                for (name, value) in object {
                    out.insert(name.into_string(), value.into_json());
                }
                Json::Object(out)
            }
        }
    }

    /// A serde_json value as this one.
    pub fn from_json(json: Json) -> Value {
        match json {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(b),
            Json::Number(n) => Value::Number(n),
            Json::String(s) => Value::String(Str::from(s)),
            Json::Array(items) => Value::Array(items.into_iter().map(Value::from_json).collect()),
            Json::Object(map) => {
                Value::Object(map.into_iter().map(|(name, value)| (Str::from(name), Value::from_json(value))).collect())
            }
        }
    }

    /// A copy as serde_json's value.
    pub fn to_json(&self) -> Json {
        self.clone().into_json()
    }
}

impl fmt::Display for Value {
    /// Compact JSON text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Number(n) => n.serialize(serializer),
            Value::String(s) => serializer.serialize_str(s),
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Object(object) => object.serialize(serializer),
        }
    }
}

impl Serialize for Object {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name.as_str(), value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Value, E> {
        Ok(Number::from_f64(n).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Value, E> {
        Ok(Value::String(Str::new(text)))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Value, E> {
        Ok(Value::String(Str::from(text)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(0).clamp(4, 4096));
        while let Some(name) = map.next_key_seed(NameSeed)? {
            fields.push((name, map.next_value()?));
        }
        Ok(Value::Object(Object(fields)))
    }
}

/// Reads an object field's name straight into a `Str`.
struct NameSeed;

impl<'de> DeserializeSeed<'de> for NameSeed {
    type Value = Str;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Str, D::Error> {
        deserializer.deserialize_str(NameSeed)
    }
}

impl Visitor<'_> for NameSeed {
    type Value = Str;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Str, E> {
        Ok(Str::new(text))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_and_writes_json_as_serde_json_does() {
        let table = [
            r#"{"a":1,"b":[true,null,"x",-2,1.5],"c":{"d":"a string longer than twenty-four bytes"}}"#,
            r#"[]"#,
            r#""é\n\u0000""#,
            r#"{"dup":1,"dup":2}"#,
            r#"18446744073709551615"#,
        ];
        for text in table {
            let ours = Value::from_slice(text.as_bytes()).expect(text);
            let theirs: Json = serde_json::from_str(text).expect(text);
            assert_eq!(ours.to_json(), theirs, "{text}");
            assert_eq!(Value::from_json(theirs.clone()).to_json(), theirs, "{text}");
            if !text.contains("dup") {
                assert_eq!(serde_json::to_string(&ours).expect("writes"), serde_json::to_string(&theirs).expect("w"));
            }
        }
        // Edge cases: parsed exactly as serde_json parses them, or refused as it refuses them.
        let edges: [&[u8]; 16] = [
            b"{",
            br#"{"a" 1}"#,
            b"[1,]",
            b"nul",
            b"{} x",
            b"01",
            b"1e400",
            b"-0",
            b"1.0",
            b"-9223372036854775809",
            b"123456789012345678901234567890",
            br#""\ud83d\ude00""#,
            br#""\ud83d""#,
            b"\"tab\there\"",
            b"\"\xff\"",
            b"  [ {\"a\" : [ ] } , 2.5e-3 ]  ",
        ];
        for text in edges {
            let ours = Value::from_slice(text).map(|v| v.to_json()).ok();
            let theirs = serde_json::from_slice::<Json>(text).ok();
            assert_eq!(ours, theirs, "{}", String::from_utf8_lossy(text));
        }
        // A repeated name: the last one is found, as serde_json keeps it.
        let twice = Value::from_slice(br#"{"dup":1,"dup":2}"#).expect("parses");
        assert_eq!(twice.get("dup"), Some(&Value::Number(2.into())));
    }

    #[test]
    fn objects_merge_deeply_in_order() {
        let Value::Object(mut into) =
            Value::from_json(json!({"upc": "1", "dimensions": {"w": 1}, "name": {"was": "an object"}}))
        else {
            unreachable!()
        };
        let Value::Object(from) = Value::from_json(json!({"inStock": true, "dimensions": {"h": 2}, "name": "Chair"}))
        else {
            unreachable!()
        };
        into.merge(from);
        let merged = serde_json::to_string(&into).expect("writes");
        assert_eq!(merged, r#"{"upc":"1","dimensions":{"w":1,"h":2},"name":"Chair","inStock":true}"#);
        assert_eq!(into.take("upc"), Some(Value::String("1".into())));
        assert_eq!(into.get("upc"), Some(&Value::Null));
        assert_eq!(into.remove("inStock"), Some(Value::Bool(true)));
        assert_eq!(into.get("inStock"), None);
    }
}
