//! `[rest]`: JSON REST transcoding settings — limits, deadline, stream format, the rules file,
//! and the JSON mapping's choices, globally and per service, with the `grpc-gateway` profile
//! that sets all of grpc-gateway v2's choices at once.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ConfigDuration;

/// JSON REST transcoding: limits, deadline and the JSON mapping's options.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RestConfig {
    /// Largest request body accepted, in bytes (413 above it).
    #[schemars(range(min = 1))]
    pub max_body_bytes: u64,
    /// Deadline of a transcoded call when the client asks for none.
    pub timeout: ConfigDuration,
    /// Per-method deadlines overriding `timeout`, by method full name
    /// (`"catalog.v1.Catalog.ListBooks" = "5s"`).
    pub method_timeouts: BTreeMap<String, ConfigDuration>,
    /// JSON profile for every service: `standard` (default) or `grpc-gateway`.
    pub profile: Option<JsonProfile>,
    /// Write fields that hold their default value (default: the profile's choice).
    pub emit_defaults: Option<bool>,
    /// Write original proto field names instead of lowerCamelCase json names.
    pub proto_field_names: Option<bool>,
    /// Ignore unknown JSON fields and query parameters instead of answering 400.
    pub ignore_unknown_fields: Option<bool>,
    /// Deepest JSON nesting accepted in a request body (400 above it).
    #[schemars(range(min = 1, max = 100))]
    pub max_json_depth: u32,
    /// How server-streaming responses are written when the client does not ask for
    /// `text/event-stream`: one JSON message per line, or one JSON array.
    pub stream_format: StreamFormat,
    /// An HTTP rules file (grpc-gateway's service-config YAML, `http: rules:`); a selector in it
    /// replaces all of that method's annotated bindings.
    pub http_rules: Option<PathBuf>,
    /// Per-service JSON choices, by service full name (`catalog.v1.Catalog`).
    pub services: BTreeMap<String, JsonChoices>,
    /// Path prefixes services' annotated routes are mounted under, by service full name:
    /// `{ "catalog.v2.Catalog" = "/next" }` serves `GET /v1/{name=shelves/*}` of catalog.v2 as
    /// `GET /next/v1/{name=shelves/*}` (so two versions whose rules share paths can be served
    /// side by side).
    pub mounts: BTreeMap<String, String>,
    /// Choosing a version on one path: a request header or query parameter whose value names a
    /// mount prefix the request is routed under.
    pub versions: Option<VersionSelector>,
    /// Honour `X-HTTP-Method-Override` on POST requests (for clients that can only send GET
    /// and POST).
    pub method_override: bool,
    /// Read `application/x-www-form-urlencoded` bodies like query parameters into the body
    /// target.
    pub form_bodies: bool,
    /// Request fields filled from headers, per method full name: header name → field path
    /// (`"catalog.v1.Catalog.ListBooks" = { "x-shelf" = "parent" }`).
    pub header_bindings: BTreeMap<String, BTreeMap<String, String>>,
}

impl Default for RestConfig {
    fn default() -> Self {
        RestConfig {
            max_body_bytes: 4 * 1024 * 1024,
            timeout: ConfigDuration::from_secs(30),
            method_timeouts: BTreeMap::new(),
            profile: None,
            emit_defaults: None,
            proto_field_names: None,
            ignore_unknown_fields: None,
            max_json_depth: 64,
            stream_format: StreamFormat::Ndjson,
            http_rules: None,
            services: BTreeMap::new(),
            mounts: BTreeMap::new(),
            versions: None,
            method_override: false,
            form_bodies: false,
            header_bindings: BTreeMap::new(),
        }
    }
}

/// JSON mapping choices. Unset choices come from the profile.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct JsonChoices {
    /// `standard` (the proto3 JSON spec, as Envoy's transcoder) or `grpc-gateway` (emit
    /// defaults, discard unknown fields, `{"result": ...}` stream lines).
    pub profile: Option<JsonProfile>,
    /// Write fields that hold their default value.
    pub emit_defaults: Option<bool>,
    /// Write original proto field names instead of lowerCamelCase json names.
    pub proto_field_names: Option<bool>,
    /// Ignore unknown JSON fields and query parameters instead of answering 400.
    pub ignore_unknown_fields: Option<bool>,
}

/// A set of JSON choices taken at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum JsonProfile {
    /// proto3 JSON: defaults omitted, unknown fields refused, json names.
    #[default]
    Standard,
    /// grpc-gateway v2: defaults emitted, unknown fields discarded, stream lines wrapped as
    /// `{"result": message}`.
    GrpcGateway,
}

/// The JSON choices in force for one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedJson {
    /// Write default values.
    pub emit_defaults: bool,
    /// Write proto names.
    pub proto_field_names: bool,
    /// Ignore unknown fields.
    pub ignore_unknown_fields: bool,
    /// Wrap server-stream messages as `{"result": message}`.
    pub stream_result_wrapper: bool,
}

impl RestConfig {
    /// The default deadline of `method` (full name).
    pub fn timeout_for(&self, method: &str) -> std::time::Duration {
        self.method_timeouts.get(method).copied().unwrap_or(self.timeout).get()
    }

    /// The choices for `service`: its profile's baseline, then the global choices, then its own.
    pub fn json_for(&self, service: &str) -> ResolvedJson {
        let global = JsonChoices {
            profile: self.profile,
            emit_defaults: self.emit_defaults,
            proto_field_names: self.proto_field_names,
            ignore_unknown_fields: self.ignore_unknown_fields,
        };
        let own = self.services.get(service);
        let profile = own.and_then(|c| c.profile).or(global.profile).unwrap_or_default();
        let grpc_gateway = profile == JsonProfile::GrpcGateway;
        let pick = |field: fn(&JsonChoices) -> Option<bool>, baseline: bool| {
            own.and_then(field).or(field(&global)).unwrap_or(baseline)
        };
        ResolvedJson {
            emit_defaults: pick(|c| c.emit_defaults, grpc_gateway),
            proto_field_names: pick(|c| c.proto_field_names, false),
            ignore_unknown_fields: pick(|c| c.ignore_unknown_fields, grpc_gateway),
            stream_result_wrapper: grpc_gateway,
        }
    }
}

/// The body format of server-streaming REST responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StreamFormat {
    /// Newline-delimited JSON (`application/x-ndjson`), one message per line.
    #[default]
    Ndjson,
    /// One JSON array (`application/json`) whose elements arrive as the backend sends them.
    JsonArray,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_resolve_profile_then_global_then_service() {
        let mut rest = RestConfig::default();
        let standard = rest.json_for("a.S");
        assert_eq!(
            standard,
            ResolvedJson {
                emit_defaults: false,
                proto_field_names: false,
                ignore_unknown_fields: false,
                stream_result_wrapper: false
            }
        );
        rest.profile = Some(JsonProfile::GrpcGateway);
        rest.ignore_unknown_fields = Some(false);
        rest.services.insert(
            "a.S".into(),
            JsonChoices {
                profile: Some(JsonProfile::Standard),
                proto_field_names: Some(true),
                ..JsonChoices::default()
            },
        );
        let gateway = rest.json_for("b.T");
        assert!(gateway.emit_defaults && gateway.stream_result_wrapper && !gateway.ignore_unknown_fields);
        let own = rest.json_for("a.S");
        assert!(!own.emit_defaults && own.proto_field_names && !own.stream_result_wrapper);
    }
}

/// `[rest.versions]`: `header = "api-version"` and/or `query = "api-version"`, and
/// `prefixes = { "2" = "/next" }`: a request saying version 2 is routed as if its path began
/// with `/next`. Without either, the request is routed as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct VersionSelector {
    /// The request header naming the version.
    pub header: Option<String>,
    /// The query parameter naming the version (removed before binding).
    pub query: Option<String>,
    /// Version → the mount prefix it is served under (`""` for the unprefixed routes).
    pub prefixes: BTreeMap<String, String>,
}
