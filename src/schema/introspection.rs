//! Introspection: the generated schema as the `__schema` JSON tree of the GraphQL spec, built
//! once per schema, plus the field types of the introspection types, so documents that select
//! into `__schema` and `__type` can be validated and shaped like any other selection.

use serde_json::{Value as Json, json};

use super::{GraphqlSchema, InputField, RootKind, TypeDef, TypeRef};

/// The type of `field` on introspection type `type_name`, or None when it has no such field.
pub fn introspection_field_type(type_name: &str, field: &str) -> Option<&'static str> {
    Some(match (type_name, field) {
        ("__Schema", "description") => "String",
        ("__Schema", "types" | "queryType" | "mutationType" | "subscriptionType") => "__Type",
        ("__Schema", "directives") => "__Directive",
        ("__Type", "kind") => "__TypeKind",
        ("__Type", "name" | "description" | "specifiedByURL") => "String",
        ("__Type", "isOneOf") => "Boolean",
        ("__Type", "fields") => "__Field",
        ("__Type", "interfaces" | "possibleTypes" | "ofType") => "__Type",
        ("__Type", "enumValues") => "__EnumValue",
        ("__Type", "inputFields") => "__InputValue",
        ("__Field", "name" | "description" | "deprecationReason") => "String",
        ("__Field", "args") => "__InputValue",
        ("__Field", "type") => "__Type",
        ("__Field", "isDeprecated") => "Boolean",
        ("__InputValue", "name" | "description" | "defaultValue" | "deprecationReason") => "String",
        ("__InputValue", "type") => "__Type",
        ("__InputValue", "isDeprecated") => "Boolean",
        ("__EnumValue", "name" | "description" | "deprecationReason") => "String",
        ("__EnumValue", "isDeprecated") => "Boolean",
        ("__Directive", "name" | "description") => "String",
        ("__Directive", "locations") => "__DirectiveLocation",
        ("__Directive", "args") => "__InputValue",
        ("__Directive", "isRepeatable") => "Boolean",
        _ => return None,
    })
}

/// True for the introspection object types (their fields are listed above).
pub fn is_introspection_object(type_name: &str) -> bool {
    matches!(type_name, "__Schema" | "__Type" | "__Field" | "__InputValue" | "__EnumValue" | "__Directive")
}

impl GraphqlSchema {
    /// The `__schema` value: every type (ours, the built-in scalars and the introspection
    /// types), the root types and the directives.
    pub fn introspection(&self) -> Json {
        let mut types: Vec<Json> =
            ["String", "Int", "Float", "Boolean", "ID"].iter().map(|name| scalar_type(name, None)).collect();
        for (name, def) in &self.types {
            types.push(self.type_json(name, def));
        }
        let mut root_types = std::collections::BTreeMap::new();
        for (kind, name) in
            [(RootKind::Query, "Query"), (RootKind::Mutation, "Mutation"), (RootKind::Subscription, "Subscription")]
        {
            if let Some(fields) = self.roots.get(&kind).filter(|f| !f.is_empty()) {
                let fields: Vec<Json> = fields
                    .iter()
                    .map(|f| {
                        let args = args_json(self, &f.arguments);
                        field_json(self, &f.name, f.description.as_deref(), &f.output, args, f.deprecated)
                    })
                    .collect();
                let root = object_type(name, None, fields);
                types.push(root.clone());
                root_types.insert(kind, root);
            }
        }
        types.extend(meta_types(self));
        // The root types in full: clients select their fields through `queryType` too.
        let root = |kind: RootKind| root_types.get(&kind).cloned().unwrap_or(Json::Null);
        json!({
            "description": null,
            "types": types,
            "queryType": root(RootKind::Query),
            "mutationType": root(RootKind::Mutation),
            "subscriptionType": root(RootKind::Subscription),
            "directives": directives(),
        })
    }

    fn type_json(&self, name: &str, def: &TypeDef) -> Json {
        let description = self.type_descriptions.get(name).map(String::as_str);
        match def {
            TypeDef::Scalar { description } => scalar_type(name, Some(description)),
            TypeDef::Enum { values, .. } => {
                let values: Vec<Json> = values
                    .iter()
                    .map(|v| {
                        json!({"name": v.name, "description": null, "isDeprecated": v.deprecated, "deprecationReason": reason(v.deprecated)})
                    })
                    .collect();
                json!({"kind": "ENUM", "name": name, "description": description, "fields": null, "inputFields": null,
                       "interfaces": null, "enumValues": values, "possibleTypes": null, "ofType": null, "specifiedByURL": null, "isOneOf": null})
            }
            TypeDef::Object { fields, .. } => {
                let fields = fields
                    .iter()
                    .map(|f| {
                        let args = args_json(self, &f.arguments);
                        field_json(self, &f.name, f.description.as_deref(), &f.ty, args, f.deprecated)
                    })
                    .collect();
                let mut object = object_type(name, description, fields);
                object["interfaces"] = named_refs(self, self.interfaces_of(name));
                object
            }
            TypeDef::Interface { fields, possible } => {
                let fields: Vec<Json> = fields
                    .iter()
                    .map(|f| {
                        let args = args_json(self, &f.arguments);
                        field_json(self, &f.name, f.description.as_deref(), &f.ty, args, f.deprecated)
                    })
                    .collect();
                json!({"kind": "INTERFACE", "name": name, "description": description, "fields": fields, "inputFields": null,
                       "interfaces": [], "enumValues": null, "possibleTypes": named_refs(self, possible.iter().map(String::as_str)),
                       "ofType": null, "specifiedByURL": null, "isOneOf": null})
            }
            TypeDef::Union { possible } => {
                json!({"kind": "UNION", "name": name, "description": description, "fields": null, "inputFields": null,
                       "interfaces": null, "enumValues": null, "possibleTypes": named_refs(self, possible.iter().map(String::as_str)),
                       "ofType": null, "specifiedByURL": null, "isOneOf": null})
            }
            TypeDef::Input { fields, .. } => {
                json!({"kind": "INPUT_OBJECT", "name": name, "description": description, "fields": null, "inputFields": args_json(self, fields),
                       "interfaces": null, "enumValues": null, "possibleTypes": null, "ofType": null, "specifiedByURL": null, "isOneOf": false})
            }
        }
    }
}

/// `[{kind, name, ofType}]` references to named types.
fn named_refs<'n>(schema: &GraphqlSchema, names: impl IntoIterator<Item = &'n str>) -> Json {
    names.into_iter().map(|name| json!({"kind": kind_of(schema, name), "name": name, "ofType": null})).collect()
}

fn reason(deprecated: bool) -> Json {
    if deprecated { Json::String("Deprecated in the proto definition.".into()) } else { Json::Null }
}

fn scalar_type(name: &str, description: Option<&str>) -> Json {
    json!({"kind": "SCALAR", "name": name, "description": description, "fields": null, "inputFields": null,
           "interfaces": null, "enumValues": null, "possibleTypes": null, "ofType": null, "specifiedByURL": null, "isOneOf": null})
}

fn object_type(name: &str, description: Option<&str>, fields: Vec<Json>) -> Json {
    json!({"kind": "OBJECT", "name": name, "description": description, "fields": fields, "inputFields": null,
           "interfaces": [], "enumValues": null, "possibleTypes": null, "ofType": null, "specifiedByURL": null, "isOneOf": null})
}

fn field_json(
    schema: &GraphqlSchema,
    name: &str,
    description: Option<&str>,
    ty: &TypeRef,
    args: Vec<Json>,
    deprecated: bool,
) -> Json {
    json!({"name": name, "description": description, "args": args, "type": type_ref_json(schema, ty), "isDeprecated": deprecated, "deprecationReason": reason(deprecated)})
}

fn args_json(schema: &GraphqlSchema, arguments: &[InputField]) -> Vec<Json> {
    arguments
        .iter()
        .map(|a| {
            let default = match &a.source {
                super::InputSource::Declared(Some(value)) => Json::String(value.to_string()),
                _ => Json::Null,
            };
            json!({"name": a.name, "description": a.description, "type": type_ref_json(schema, &a.ty), "defaultValue": default,
                   "isDeprecated": a.deprecated, "deprecationReason": reason(a.deprecated)})
        })
        .collect()
}

/// `{kind, name, ofType}` chains for a reference with list and non-null wrappers.
fn type_ref_json(schema: &GraphqlSchema, ty: &TypeRef) -> Json {
    let named = json!({"kind": kind_of(schema, &ty.name), "name": ty.name, "ofType": null});
    let mut inner = named;
    if ty.list {
        if ty.item_non_null {
            inner = json!({"kind": "NON_NULL", "name": null, "ofType": inner});
        }
        inner = json!({"kind": "LIST", "name": null, "ofType": inner});
    }
    if ty.non_null {
        inner = json!({"kind": "NON_NULL", "name": null, "ofType": inner});
    }
    inner
}

/// The kind of a named type, as references show it.
fn kind_of(schema: &GraphqlSchema, name: &str) -> &'static str {
    match schema.types.get(name) {
        Some(TypeDef::Scalar { .. }) => "SCALAR",
        Some(TypeDef::Enum { .. }) => "ENUM",
        Some(TypeDef::Object { .. }) => "OBJECT",
        Some(TypeDef::Interface { .. }) => "INTERFACE",
        Some(TypeDef::Union { .. }) => "UNION",
        Some(TypeDef::Input { .. }) => "INPUT_OBJECT",
        None if super::is_builtin_scalar(name) => "SCALAR",
        None => match name {
            "__TypeKind" | "__DirectiveLocation" => "ENUM",
            _ => "OBJECT",
        },
    }
}

fn directives() -> Json {
    let if_arg = json!([{"name": "if", "description": null, "defaultValue": null, "isDeprecated": false, "deprecationReason": null,
        "type": {"kind": "NON_NULL", "name": null, "ofType": {"kind": "SCALAR", "name": "Boolean", "ofType": null}}}]);
    json!([
        {"name": "skip", "description": "Skips this field or fragment when `if` is true.", "locations": ["FIELD", "FRAGMENT_SPREAD", "INLINE_FRAGMENT"], "args": if_arg.clone(), "isRepeatable": false},
        {"name": "include", "description": "Includes this field or fragment only when `if` is true.", "locations": ["FIELD", "FRAGMENT_SPREAD", "INLINE_FRAGMENT"], "args": if_arg, "isRepeatable": false},
        {"name": "deprecated", "description": "Marks an element as deprecated.", "locations": ["FIELD_DEFINITION", "ARGUMENT_DEFINITION", "INPUT_FIELD_DEFINITION", "ENUM_VALUE"],
         "args": [{"name": "reason", "description": null, "defaultValue": "\"No longer supported\"", "isDeprecated": false, "deprecationReason": null, "type": {"kind": "SCALAR", "name": "String", "ofType": null}}], "isRepeatable": false},
    ])
}

/// The introspection types themselves, as the spec requires them in `types`.
fn meta_types(schema: &GraphqlSchema) -> Vec<Json> {
    let meta = |name: &str, fields: &[(&str, &str, bool, bool)]| {
        let fields: Vec<Json> = fields
            .iter()
            .map(|(field, ty, list, non_null)| {
                let ty = TypeRef { name: (*ty).into(), list: *list, non_null: *non_null, item_non_null: *list };
                field_json(schema, field, None, &ty, Vec::new(), false)
            })
            .collect();
        object_type(name, None, fields)
    };
    let enum_type = |name: &str, values: &[&str]| {
        let values: Vec<Json> = values
            .iter()
            .map(|v| json!({"name": v, "description": null, "isDeprecated": false, "deprecationReason": null}))
            .collect();
        json!({"kind": "ENUM", "name": name, "description": null, "fields": null, "inputFields": null, "interfaces": null,
               "enumValues": values, "possibleTypes": null, "ofType": null, "specifiedByURL": null, "isOneOf": null})
    };
    vec![
        meta(
            "__Schema",
            &[
                ("description", "String", false, false),
                ("types", "__Type", true, true),
                ("queryType", "__Type", false, true),
                ("mutationType", "__Type", false, false),
                ("subscriptionType", "__Type", false, false),
                ("directives", "__Directive", true, true),
            ],
        ),
        meta(
            "__Type",
            &[
                ("kind", "__TypeKind", false, true),
                ("name", "String", false, false),
                ("description", "String", false, false),
                ("specifiedByURL", "String", false, false),
                ("fields", "__Field", true, false),
                ("interfaces", "__Type", true, false),
                ("possibleTypes", "__Type", true, false),
                ("enumValues", "__EnumValue", true, false),
                ("inputFields", "__InputValue", true, false),
                ("ofType", "__Type", false, false),
                ("isOneOf", "Boolean", false, false),
            ],
        ),
        meta(
            "__Field",
            &[
                ("name", "String", false, true),
                ("description", "String", false, false),
                ("args", "__InputValue", true, true),
                ("type", "__Type", false, true),
                ("isDeprecated", "Boolean", false, true),
                ("deprecationReason", "String", false, false),
            ],
        ),
        meta(
            "__InputValue",
            &[
                ("name", "String", false, true),
                ("description", "String", false, false),
                ("type", "__Type", false, true),
                ("defaultValue", "String", false, false),
                ("isDeprecated", "Boolean", false, true),
                ("deprecationReason", "String", false, false),
            ],
        ),
        meta(
            "__EnumValue",
            &[
                ("name", "String", false, true),
                ("description", "String", false, false),
                ("isDeprecated", "Boolean", false, true),
                ("deprecationReason", "String", false, false),
            ],
        ),
        meta(
            "__Directive",
            &[
                ("name", "String", false, true),
                ("description", "String", false, false),
                ("locations", "__DirectiveLocation", true, true),
                ("args", "__InputValue", true, true),
                ("isRepeatable", "Boolean", false, true),
            ],
        ),
        enum_type(
            "__TypeKind",
            &["SCALAR", "OBJECT", "INTERFACE", "UNION", "ENUM", "INPUT_OBJECT", "LIST", "NON_NULL"],
        ),
        enum_type(
            "__DirectiveLocation",
            &[
                "QUERY",
                "MUTATION",
                "SUBSCRIPTION",
                "FIELD",
                "FRAGMENT_DEFINITION",
                "FRAGMENT_SPREAD",
                "INLINE_FRAGMENT",
                "VARIABLE_DEFINITION",
                "SCHEMA",
                "SCALAR",
                "OBJECT",
                "FIELD_DEFINITION",
                "ARGUMENT_DEFINITION",
                "INTERFACE",
                "UNION",
                "ENUM",
                "ENUM_VALUE",
                "INPUT_OBJECT",
                "INPUT_FIELD_DEFINITION",
            ],
        ),
    ]
}
