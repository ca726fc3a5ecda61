//! Filling a request's FieldMask when the client left it out (DESIGN.md): for a Query method,
//! from the GraphQL selection on the response (proto field paths, dotted through messages);
//! for a Mutation method, from the fields present in its one message-typed argument. Only a
//! request with exactly one top-level FieldMask field is filled. Pure.

use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage, Value};

use crate::operation::Selection;
use crate::operation::{CallInput, CallTarget, OperationKind, RootCall, SelectionSet};
use crate::schema::GraphqlSchema;

const FIELD_MASK: &str = "google.protobuf.FieldMask";

/// Fills `call`'s FieldMask per the operation kind, if it has one and it is unset.
pub(super) fn fill_field_mask(call: &mut RootCall, kind: OperationKind, schema: Option<&GraphqlSchema>) {
    let CallTarget::Method(method) = &call.target else { return };
    let Selection::Graphql { fields, type_name, .. } = &call.selection else { return };
    let CallInput::Message(input) = &mut call.input else { return };
    let descriptor = input.descriptor();
    let masks: Vec<FieldDescriptor> = descriptor
        .fields()
        .filter(|f| !f.is_list() && matches!(f.kind(), Kind::Message(m) if m.full_name() == FIELD_MASK))
        .collect();
    let [mask] = masks.as_slice() else { return };
    if input.has_field(mask) {
        return;
    }
    let paths = match kind {
        OperationKind::Query | OperationKind::Subscription => {
            let mut paths = Vec::new();
            selection_paths(schema, type_name, &method.output(), fields, "", &mut paths);
            paths
        }
        OperationKind::Mutation => {
            let targets: Vec<FieldDescriptor> = descriptor
                .fields()
                .filter(|f| f.number() != mask.number() && !f.is_list() && !f.is_map())
                .filter(|f| matches!(f.kind(), Kind::Message(m) if !m.full_name().starts_with("google.protobuf.")))
                .collect();
            let [target] = targets.as_slice() else { return };
            match input.get_field(target).as_ref() {
                Value::Message(value) if input.has_field(target) => {
                    let mut paths = Vec::new();
                    present_paths(value, "", &mut paths);
                    paths
                }
                _ => return,
            }
        }
    };
    if paths.is_empty() {
        return;
    }
    let Kind::Message(mask_type) = mask.kind() else { return };
    let mut value = DynamicMessage::new(mask_type);
    value.set_field_by_name("paths", Value::List(paths.into_iter().map(Value::String).collect()));
    input.set_field(mask, Value::Message(value));
}

/// Proto paths of the selected fields: leaves, and message fields selected through. A field's
/// proto field is the schema's (it may be renamed there), else the one of its json_name.
fn selection_paths(
    schema: Option<&GraphqlSchema>,
    type_name: &str,
    message: &MessageDescriptor,
    selection: &SelectionSet,
    prefix: &str,
    out: &mut Vec<String>,
) {
    for selected in selection.fields.iter().filter(|f| f.forbidden.is_none()) {
        let definition = schema.and_then(|s| s.object_field(type_name, &selected.field_name));
        let field = match definition.map(|d| &d.source) {
            Some(crate::schema::FieldSource::Proto(field)) => Some(field.clone()),
            _ => message.get_field_by_json_name(&selected.field_name),
        };
        let Some(field) = field else { continue };
        let inner_type = definition.map_or("", |d| d.ty.name.as_str());
        let path = join(prefix, field.name());
        match field.kind() {
            Kind::Message(inner)
                if !field.is_map()
                    && !field.is_list()
                    && !inner.full_name().starts_with("google.")
                    && !selected.children.fields.is_empty() =>
            {
                selection_paths(schema, inner_type, &inner, &selected.children, &path, out);
            }
            _ => out.push(path),
        }
        out.dedup();
    }
}

/// Proto paths of the fields set in `message`, dotted through nested messages.
fn present_paths(message: &DynamicMessage, prefix: &str, out: &mut Vec<String>) {
    for (field, value) in message.fields() {
        let path = join(prefix, field.name());
        match value {
            Value::Message(inner) if !field.is_map() && !inner.descriptor().full_name().starts_with("google.") => {
                present_paths(inner, &path, out);
            }
            _ => out.push(path),
        }
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_owned() } else { format!("{prefix}.{name}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operation::FieldSelection;

    const PROTO: &str = r#"
syntax = "proto3";
package m;
import "google/protobuf/field_mask.proto";
import "google/protobuf/timestamp.proto";
message Inner { string a = 1; string b = 2; }
message Thing { string name = 1; Inner inner = 2; string other = 3; google.protobuf.Timestamp at = 4; }
message GetThingRequest { string name = 1; google.protobuf.FieldMask read_mask = 2; }
message UpdateThingRequest { Thing thing = 1; google.protobuf.FieldMask update_mask = 2; }
service S { rpc GetThing(GetThingRequest) returns (Thing); rpc UpdateThing(UpdateThingRequest) returns (Thing); }
"#;

    fn method(name: &str) -> prost_reflect::MethodDescriptor {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("m.proto"), PROTO).expect("write");
        let registration =
            crate::registry::compile_sources(&[dir.path().join("m.proto")], &[dir.path().to_owned()], Some("m"))
                .expect("compiles");
        let pool = crate::registry::merge_registrations(vec![registration]).expect("merges").pool;
        pool.get_service_by_name("m.S").expect("service").methods().find(|m| m.name() == name).expect("method")
    }

    fn leaf(name: &str) -> FieldSelection {
        FieldSelection {
            response_key: name.into(),
            field_name: name.into(),
            children: SelectionSet::default(),
            arguments: Vec::new(),
            defer: None,
            forbidden: None,
        }
    }

    fn mask_of(call: &RootCall) -> Option<Vec<String>> {
        let CallInput::Message(input) = &call.input else { return None };
        let CallTarget::Method(method) = &call.target else { return None };
        let mask = input.get_field_by_name(match method.name() {
            "GetThing" => "read_mask",
            _ => "update_mask",
        })?;
        let Value::Message(mask) = mask.as_ref() else { return None };
        match mask.get_field_by_name("paths").as_deref() {
            Some(Value::List(paths)) if !paths.is_empty() => {
                Some(paths.iter().filter_map(|p| p.as_str().map(str::to_owned)).collect())
            }
            _ => None,
        }
    }

    #[test]
    fn a_query_mask_follows_the_selection() {
        let get = method("GetThing");
        let fields = SelectionSet::new(vec![
            leaf("name"),
            FieldSelection {
                response_key: "i".into(),
                field_name: "inner".into(),
                children: SelectionSet::new(vec![leaf("a")]),
                arguments: Vec::new(),
                defer: None,
                forbidden: None,
            },
            leaf("at"),
            leaf("__typename"),
        ]);
        let selection =
            Selection::Graphql { response_key: "getThing".into(), type_name: "Thing".into(), fields: fields.into() };
        let mut call = RootCall::method(get.clone(), CallInput::Message(DynamicMessage::new(get.input())), selection);
        fill_field_mask(&mut call, OperationKind::Query, None);
        assert_eq!(mask_of(&call), Some(vec!["name".into(), "inner.a".into(), "at".into()]));
    }

    #[test]
    fn a_mutation_mask_follows_the_input_keys_and_a_given_mask_is_kept() {
        let update = method("UpdateThing");
        let input = DynamicMessage::deserialize(
            update.input(),
            serde_json::json!({"thing": {"other": "x", "inner": {"b": "y"}}}),
        )
        .expect("valid");
        let selection = Selection::Graphql {
            response_key: "u".into(),
            type_name: "Thing".into(),
            fields: SelectionSet::new(vec![leaf("name")]).into(),
        };
        let mut call = RootCall::method(update.clone(), CallInput::Message(input), selection.clone());
        fill_field_mask(&mut call, OperationKind::Mutation, None);
        assert_eq!(mask_of(&call), Some(vec!["inner.b".into(), "other".into()]));

        let given = DynamicMessage::deserialize(
            update.input(),
            serde_json::json!({"thing": {"other": "x"}, "updateMask": "name"}),
        )
        .expect("valid");
        let mut call = RootCall::method(update, CallInput::Message(given), selection);
        fill_field_mask(&mut call, OperationKind::Mutation, None);
        assert_eq!(mask_of(&call), Some(vec!["name".into()]), "a mask the client sent is kept");
    }
}
