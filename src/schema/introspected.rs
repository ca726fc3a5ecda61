//! A GraphQL source's schema from its introspection answer: the query the gateway sends, and
//! the answer printed as SDL, which then goes through the same path as a source's SDL file.
//! Pure: the fetch is the snapshot builder's.

use std::fmt::Write;

use serde_json::Value as Json;

/// The introspection query sent to a GraphQL source (types, fields, arguments, enum values,
/// input fields, defaults and deprecation; type references seven wrappers deep).
pub const INTROSPECTION_QUERY: &str = "query SwitchyardIntrospection { __schema { \
    queryType { name } mutationType { name } subscriptionType { name } \
    types { kind name \
      fields(includeDeprecated: true) { name isDeprecated args { name defaultValue type { ...Ref } } type { ...Ref } } \
      inputFields { name defaultValue type { ...Ref } } \
      enumValues(includeDeprecated: true) { name isDeprecated } interfaces { name } possibleTypes { name } } } } \
    fragment Ref on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name \
      ofType { kind name ofType { kind name ofType { kind name } } } } } } } }";

/// The SDL of an introspection answer (`{"data": {"__schema": …}}` or the `__schema` itself).
pub fn introspection_sdl(answer: &Json) -> Result<String, String> {
    let schema = answer.pointer("/data/__schema").or_else(|| answer.get("__schema")).ok_or_else(|| {
        let reported = answer.pointer("/errors/0/message").and_then(Json::as_str);
        match reported {
            Some(message) => format!("the source refused introspection: {message}"),
            None => "the answer has no data.__schema".to_owned(),
        }
    })?;
    let mut out = String::from("schema {\n");
    for (key, field) in [("query", "queryType"), ("mutation", "mutationType"), ("subscription", "subscriptionType")] {
        if let Some(name) = schema.pointer(&format!("/{field}/name")).and_then(Json::as_str) {
            let _ = writeln!(out, "  {key}: {name}");
        }
    }
    out.push_str("}\n");
    let types = schema.get("types").and_then(Json::as_array).ok_or("__schema.types is missing")?;
    for ty in types {
        let name = ty.get("name").and_then(Json::as_str).ok_or("a type without a name")?;
        if name.starts_with("__") || super::is_builtin_scalar(name) {
            continue;
        }
        out.push('\n');
        match ty.get("kind").and_then(Json::as_str) {
            Some("SCALAR") => {
                let _ = writeln!(out, "scalar {name}");
            }
            Some("ENUM") => {
                let _ = writeln!(out, "enum {name} {{");
                for value in ty.get("enumValues").and_then(Json::as_array).into_iter().flatten() {
                    let value_name = value.get("name").and_then(Json::as_str).ok_or("an enum value without a name")?;
                    let _ = writeln!(out, "  {value_name}{}", deprecated(value));
                }
                out.push_str("}\n");
            }
            Some("INPUT_OBJECT") => {
                let _ = writeln!(out, "input {name} {{");
                for field in ty.get("inputFields").and_then(Json::as_array).into_iter().flatten() {
                    let _ = writeln!(out, "  {}", input_value(field)?);
                }
                out.push_str("}\n");
            }
            Some(kind @ ("OBJECT" | "INTERFACE")) => {
                let keyword = if kind == "OBJECT" { "type" } else { "interface" };
                let interfaces = names(ty.get("interfaces"));
                let implements = if interfaces.is_empty() {
                    String::new()
                } else {
                    format!(" implements {}", interfaces.join(" & "))
                };
                let _ = writeln!(out, "{keyword} {name}{implements} {{");
                for field in ty.get("fields").and_then(Json::as_array).into_iter().flatten() {
                    let field_name = field.get("name").and_then(Json::as_str).ok_or("a field without a name")?;
                    let args: Vec<String> = field
                        .get("args")
                        .and_then(Json::as_array)
                        .into_iter()
                        .flatten()
                        .map(input_value)
                        .collect::<Result<_, _>>()?;
                    let args = if args.is_empty() { String::new() } else { format!("({})", args.join(", ")) };
                    let field_type = type_ref(field.get("type").ok_or("a field without a type")?)?;
                    let _ = writeln!(out, "  {field_name}{args}: {field_type}{}", deprecated(field));
                }
                out.push_str("}\n");
            }
            Some("UNION") => {
                let members = names(ty.get("possibleTypes"));
                if members.is_empty() {
                    return Err(format!("union {name} has no possibleTypes"));
                }
                let _ = writeln!(out, "union {name} = {}", members.join(" | "));
            }
            other => return Err(format!("type {name} has an unknown kind {other:?}")),
        }
    }
    Ok(out)
}

/// The `name`s of a list of type references (`interfaces`, `possibleTypes`).
fn names(list: Option<&Json>) -> Vec<&str> {
    list.and_then(Json::as_array).into_iter().flatten().filter_map(|t| t.get("name").and_then(Json::as_str)).collect()
}

fn deprecated(value: &Json) -> &'static str {
    if value.get("isDeprecated") == Some(&Json::Bool(true)) { " @deprecated" } else { "" }
}

fn input_value(value: &Json) -> Result<String, String> {
    let name = value.get("name").and_then(Json::as_str).ok_or("an argument without a name")?;
    let ty = type_ref(value.get("type").ok_or("an argument without a type")?)?;
    Ok(match value.get("defaultValue").and_then(Json::as_str) {
        Some(default) => format!("{name}: {ty} = {default}"),
        None => format!("{name}: {ty}"),
    })
}

/// `{kind, name, ofType}` chains as `[T!]!` text.
fn type_ref(value: &Json) -> Result<String, String> {
    match value.get("kind").and_then(Json::as_str) {
        Some("NON_NULL") => Ok(format!("{}!", type_ref(value.get("ofType").ok_or("NON_NULL without ofType")?)?)),
        Some("LIST") => Ok(format!("[{}]", type_ref(value.get("ofType").ok_or("LIST without ofType")?)?)),
        _ => value
            .get("name")
            .and_then(Json::as_str)
            .map(str::to_owned)
            .ok_or_else(|| "a type reference without a name".into()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn introspection_answers_print_as_sdl() {
        let named = |kind: &str, name: &str| json!({"kind": kind, "name": name, "ofType": null});
        let non_null = |inner: Json| json!({"kind": "NON_NULL", "name": null, "ofType": inner});
        let list = |inner: Json| json!({"kind": "LIST", "name": null, "ofType": inner});
        let answer = json!({"data": {"__schema": {
            "queryType": {"name": "Root"}, "mutationType": null, "subscriptionType": null,
            "types": [
                {"kind": "OBJECT", "name": "Root", "fields": [
                    {"name": "review", "isDeprecated": false, "args": [{"name": "id", "defaultValue": null, "type": non_null(named("SCALAR", "ID"))}], "type": named("OBJECT", "Review")},
                    {"name": "old", "isDeprecated": true, "args": [], "type": list(non_null(named("SCALAR", "String")))}
                ]},
                {"kind": "OBJECT", "name": "Review", "fields": [
                    {"name": "stars", "isDeprecated": false, "args": [{"name": "scale", "defaultValue": "5", "type": named("SCALAR", "Int")}], "type": named("SCALAR", "Int")},
                    {"name": "mood", "isDeprecated": false, "args": [], "type": named("ENUM", "Mood")}
                ]},
                {"kind": "ENUM", "name": "Mood", "enumValues": [{"name": "HAPPY", "isDeprecated": false}, {"name": "MEH", "isDeprecated": true}]},
                {"kind": "INPUT_OBJECT", "name": "Filter", "inputFields": [{"name": "min", "defaultValue": null, "type": non_null(named("SCALAR", "Int"))}]},
                {"kind": "SCALAR", "name": "Date"},
                {"kind": "SCALAR", "name": "String"},
                {"kind": "OBJECT", "name": "__Type", "fields": []}
            ]
        }}});
        let sdl = introspection_sdl(&answer).expect("prints");
        assert_eq!(
            sdl,
            "schema {\n  query: Root\n}\n\ntype Root {\n  review(id: ID!): Review\n  old: [String!] @deprecated\n}\n\n\
             type Review {\n  stars(scale: Int = 5): Int\n  mood: Mood\n}\n\nenum Mood {\n  HAPPY\n  MEH @deprecated\n}\n\n\
             input Filter {\n  min: Int!\n}\n\nscalar Date\n"
        );
        async_graphql_parser::parse_schema(&sdl).expect("the SDL parses");
        let refused = json!({"errors": [{"message": "introspection is disabled"}]});
        assert_eq!(
            introspection_sdl(&refused).expect_err("refused"),
            "the source refused introspection: introspection is disabled"
        );
    }
}
