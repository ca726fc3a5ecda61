//! The REST ingress: matches a request against the snapshot's route table (honouring
//! `X-HTTP-Method-Override` when enabled), reads and checks the body (content type and coding,
//! size), binds path, query, header-bound fields and body into the request message, and hands
//! the gateway a one-call Operation; `rest_output` writes the answer, `rest_stream` and
//! `rest_ws` handle streams. Every refusal names the header, field or parameter at fault.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, header};
use axum::response::Response;

use super::encoding::{decode_request_body, too_large_message};
use super::etag;
use super::forward::request_context;
use super::respond::{add_backend_metadata, error_response};
use super::rest_output::{
    answer_response, gateway_error_response, http_body_stream_response, is_written_from_wire, single_output,
};
use super::rest_stream::{Framing, ndjson_requests, stream_response};
use super::rest_ws::{BidiSession, run_bidi};
use crate::config::RestConfig;
use crate::error::ErrorCode;
use crate::gateway::{Gateway, Served, execute_operation, execute_streaming_operation};
use crate::operation::{CallInput, Operation, RequestContext, RootCall, Selection};
use crate::registry::CallKind;
use crate::transcode::binding::{BodyFormat, HTTP_BODY, HttpParts, bind_request, bind_request_wire};
use crate::transcode::json::JsonOptions;
use crate::transcode::route_table::MatchError;
use crate::transcode::routes::RestRoute;

/// Why a REST request is refused before any backend call; becomes a response at the edge.
struct Refusal {
    code: ErrorCode,
    message: String,
    allow: Option<String>,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal { code, message: message.into(), allow: None }
    }

    fn into_response(self) -> Response {
        let mut response = error_response(self.code, &self.message);
        if let Some(value) = self.allow.and_then(|list| HeaderValue::from_str(&list).ok()) {
            response.headers_mut().insert(header::ALLOW, value);
        }
        response
    }
}

/// Everything about one REST request that the call kinds share.
struct Call {
    /// The method the request is routed by (after any override).
    method: Method,
    route: RestRoute,
    /// The route's index in the table (authorization rules are indexed by it).
    route_index: usize,
    variables: Vec<String>,
    options: JsonOptions,
    result_wrapper: bool,
    limit: usize,
    format: OwnedFormat,
    header_fields: Vec<(String, String)>,
    context: RequestContext,
}

/// `BodyFormat` without the borrow.
enum OwnedFormat {
    Json,
    Form,
    Raw(String),
}

impl Call {
    fn parts<'a>(
        &'a self,
        query: Option<&'a str>,
        body: &'a [u8],
        fields: &'a [(&'a str, &'a str)],
        patch: bool,
    ) -> HttpParts<'a> {
        let body_format = match &self.format {
            OwnedFormat::Json => BodyFormat::Json,
            OwnedFormat::Form => BodyFormat::Form,
            OwnedFormat::Raw(content_type) => BodyFormat::Raw(content_type),
        };
        HttpParts { variables: &self.variables, query, body, body_format, headers: fields, is_patch: patch }
    }
}

/// `uri` without the query parameter `name` (every occurrence).
fn without_query_parameter(uri: &http::Uri, name: &str) -> http::Uri {
    let Some(query) = uri.query() else { return uri.clone() };
    let kept: Vec<&str> = query.split('&').filter(|pair| pair.split('=').next() != Some(name)).collect();
    let path_and_query =
        if kept.is_empty() { uri.path().to_owned() } else { format!("{}?{}", uri.path(), kept.join("&")) };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = path_and_query.parse().ok();
    http::Uri::from_parts(parts).unwrap_or_else(|_| uri.clone())
}

/// 401 for a credential that did not verify, with its `WWW-Authenticate` challenge.
fn unauthenticated_response(error: &crate::policy::AuthError) -> Response {
    let mut response = error_response(ErrorCode::Unauthenticated, &error.message);
    if let Ok(challenge) = header::HeaderValue::from_str(&error.challenge()) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
    }
    response
}

/// A JSON answer with a transformation's body edits applied (other answers as they are).
async fn with_edited_json(response: Response, edits: &crate::transform::JsonEdits) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if response.status() != http::StatusCode::OK || !is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return error_response(ErrorCode::Internal, "the answer could not be read");
    };
    let edited = edits.apply_bytes(&bytes).map_or(bytes, bytes::Bytes::from);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(edited))
}

/// A GET answer tagged from its body (`etag::of_body`); 304 without the body when the client's
/// `If-None-Match` holds the tag.
async fn with_etag(response: Response, if_none_match: &[HeaderValue]) -> Response {
    if response.status() != http::StatusCode::OK {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return error_response(ErrorCode::Internal, "the answer could not be read");
    };
    with_tag(Response::from_parts(parts, Body::from(bytes.clone())), etag::of_body(&bytes), if_none_match)
}

/// A 200 `response` carrying `tag`, or 304 with the same head but no body when the client
/// holds it (RFC 9110 section 15.4.5). Other statuses are left untagged.
fn with_tag(response: Response, tag: HeaderValue, if_none_match: &[HeaderValue]) -> Response {
    if response.status() != http::StatusCode::OK {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let matched = etag::is_matched(if_none_match, &tag);
    parts.headers.insert(header::ETAG, tag);
    if !matched {
        return Response::from_parts(parts, body);
    }
    parts.status = http::StatusCode::NOT_MODIFIED;
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::empty())
}

/// Checks the call's method and route against the authorization rules.
fn authorize(snapshot: &crate::snapshot::Snapshot, call: &Call) -> Result<(), crate::policy::Denial> {
    let policies = &snapshot.policies;
    if policies.is_empty() {
        return Ok(());
    }
    let identity = call.context.identity.as_deref();
    policies.check_method(&call.route.method, identity)?;
    let entry = snapshot.routes.route(call.route_index);
    policies.check_route(call.route_index, &format_args!("{} {}", entry.method, entry.template), identity)
}

/// Routes a request that names a version (`rest.versions`) under that version's mount prefix:
/// the header's value, else the query parameter's (which is then removed from the URL).
fn select_version(parts: &mut Parts, selector: &crate::config::VersionSelector) -> Result<(), Refusal> {
    let from_header = selector
        .header
        .as_deref()
        .and_then(|name| parts.headers.get(name))
        .map(|v| v.to_str().map(str::to_owned).unwrap_or_default());
    let from_query = selector.query.as_deref().and_then(|name| {
        parts.uri.query()?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then(|| value.to_owned())
        })
    });
    let Some(version) = from_header.or(from_query) else { return Ok(()) };
    let Some(prefix) = selector.prefixes.get(&version) else {
        let known: Vec<&str> = selector.prefixes.keys().map(String::as_str).collect();
        let message = format!("version `{version}` is not served; the versions are {}", known.join(", "));
        return Err(Refusal::new(ErrorCode::InvalidArgument, message));
    };
    let query = selector.query.as_deref().map_or_else(
        || parts.uri.query().map(str::to_owned),
        |name| without_query_parameter(&parts.uri, name).query().map(str::to_owned),
    );
    let path_and_query = match query {
        Some(query) => format!("{prefix}{}?{query}", parts.uri.path()),
        None => format!("{prefix}{}", parts.uri.path()),
    };
    let mut uri = parts.uri.clone().into_parts();
    uri.path_and_query = path_and_query.parse().ok();
    if let Ok(rewritten) = http::Uri::from_parts(uri) {
        parts.uri = rewritten;
    }
    Ok(())
}

/// Charges the call against the rate limits and quotas that count it.
async fn admit(
    snapshot: &crate::snapshot::Snapshot,
    call: &Call,
    headers: &http::HeaderMap,
) -> Result<crate::policy::limits::Admitted, crate::policy::limits::Refused> {
    let limiter = &snapshot.limiter;
    if limiter.is_empty() {
        return Ok(Default::default());
    }
    let usage = limiter.usage_of_call(&call.route.method, Some(call.route_index));
    let caller = crate::policy::limits::Caller {
        identity: call.context.identity.as_deref(),
        headers,
        client_ip: call.context.hash.client_ip,
    };
    limiter.admit(&caller, &usage).await
}

/// 429 with `Retry-After` and the limit's `RateLimit` headers; 503 when the store is down.
fn refused_response(refused: &crate::policy::limits::Refused) -> Response {
    let mut response = error_response(refused.code(), &refused.to_string());
    response.headers_mut().extend(refused.headers().iter().cloned());
    response
}

/// 401 (with a `WWW-Authenticate` challenge) for an anonymous client a rule wants
/// authenticated, else 403.
fn denial_response(denial: &crate::policy::Denial) -> Response {
    let mut response = error_response(denial.code(), &denial.message);
    if denial.anonymous {
        let challenge = "Bearer realm=\"switchyard\"";
        response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static(challenge));
    }
    response
}

/// Serves any request the fixed routes and the gRPC ingress did not take.
pub(crate) async fn handle_rest(gateway: Arc<Gateway>, request: Request) -> Response {
    let served = gateway.served();
    let (mut parts, body) = request.into_parts();
    if let Some(selector) = &served.snapshot.config.rest.versions
        && let Err(refusal) = select_version(&mut parts, selector)
    {
        return refusal.into_response();
    }
    let mut call = match prepare(&served, &parts) {
        Ok(call) => call,
        Err(refusal) => return refusal.into_response(),
    };
    let credentials = crate::policy::Credentials { headers: &parts.headers, query: parts.uri.query() };
    match served.snapshot.auth.authenticate(credentials).await {
        Ok(identity) => served.snapshot.auth.admit(&mut call.context, identity, &served.snapshot.hash_claims),
        Err(error) => return unauthenticated_response(&error),
    }
    if let Err(denial) = authorize(&served.snapshot, &call) {
        return denial_response(&denial);
    }
    let admitted = match admit(&served.snapshot, &call, &parts.headers).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused_response(&refused),
    };
    // A credential in the query string is not a request field.
    if let Some(name) = served.snapshot.auth.api_key_query_parameter() {
        parts.uri = without_query_parameter(&parts.uri, name);
    }
    let rest = &served.snapshot.config.rest;
    let body = match decode_request_body(body, parts.headers.get(header::CONTENT_ENCODING), call.limit) {
        Ok(body) => body,
        Err(error) => return error_response(ErrorCode::UnsupportedMediaType, &error.to_string()),
    };
    let kind = call.route.call_kind();
    let is_patch = call.method == Method::PATCH;
    let transform = served.snapshot.transforms.methods.get(call.route.method.full_name()).cloned();
    let request_edits = transform.as_ref().map(|t| &t.request_body).filter(|e| !e.is_empty());
    let input = match kind {
        CallKind::Unary | CallKind::ServerStreaming => {
            let read_timeout = served.snapshot.config.listener.body_read_timeout.get();
            match read_message(&call, &parts, body, is_patch, read_timeout, request_edits).await {
                Ok(input) => input,
                Err(refusal) => return refusal.into_response(),
            }
        }
        CallKind::ClientStreaming => {
            let query = parts.uri.query().map(str::to_owned);
            let (route, variables, options) = (call.route.clone(), call.variables.clone(), call.options.clone());
            CallInput::Stream(ndjson_requests(body, route, variables, query, options, call.limit))
        }
        CallKind::Bidi => return upgrade_bidi(&served, &mut parts, call).await,
    };
    let is_get = call.method == Method::GET;
    let if_none_match: Vec<HeaderValue> = parts.headers.get_all(header::IF_NONE_MATCH).iter().cloned().collect();
    let Call { route, options, result_wrapper, mut context, .. } = call;
    let (who, client_ip) = (context.identity.clone(), context.hash.client_ip);
    let deprecation = served.snapshot.deprecations.get(route.method.parent_service().full_name()).cloned();
    // Unary and client-streaming calls get the route's deadline unless the client asked for a
    // shorter one; streams of responses run as long as the client wants.
    if matches!(kind, CallKind::Unary | CallKind::ClientStreaming) {
        context.bound_timeout(rest.timeout_for(route.method.full_name()));
    }
    let pool = &served.snapshot.registry.pool;
    let selection = route.response_body.clone().map_or(Selection::Whole, Selection::Field);
    let operation = Operation::single(RootCall::method(route.method.clone(), input, selection.clone()), context);
    let mut response = match kind {
        // The execution is boxed where it starts: inline, its state made the handler's future
        // (moved into axum's box on every request) over 8 KiB.
        CallKind::Unary => match Box::pin(execute_operation(&served, operation)).await {
            Ok(outputs) => {
                let output = outputs.into_iter().next().expect("a one-call operation has one output");
                // A GET's whole answer message is tagged from its bytes: when the client holds
                // the tag its JSON is never written, and otherwise a large one goes in pieces.
                // An edited answer is rewritten whole, and tagged (on a GET) from its JSON.
                let edited = transform.as_ref().is_some_and(|t| !t.response_body.is_empty());
                let wire_tag = (is_get && !edited && is_written_from_wire(&output))
                    .then(|| etag::of_wire(&served.snapshot.registry.descriptor_digest, &options, &output.body));
                let tagged = wire_tag.is_some();
                let mut response = match wire_tag {
                    Some(tag) if etag::is_matched(&if_none_match, &tag) => {
                        with_tag(Response::new(Body::empty()), tag, &if_none_match)
                    }
                    Some(tag) => {
                        with_tag(answer_response(&output, &route.output_json, &options, false, pool), tag, &[])
                    }
                    None => answer_response(&output, &route.output_json, &options, edited, pool),
                };
                add_backend_metadata(&mut response, &output.metadata);
                if let Some(status) = output.cache {
                    response
                        .headers_mut()
                        .insert(crate::ingress::observe::X_CACHE, header::HeaderValue::from_static(status.as_str()));
                }
                if let Some(edits) = transform.as_ref().map(|t| &t.response_body).filter(|e| !e.is_empty()) {
                    response = with_edited_json(response, edits).await;
                }
                if is_get && !tagged {
                    response = with_etag(response, &if_none_match).await;
                }
                response
            }
            Err(error) => gateway_error_response(&error, pool),
        },
        _ => match Box::pin(execute_streaming_operation(&served, operation)).await {
            Ok((metadata, messages)) => {
                let mut response = if kind == CallKind::ClientStreaming {
                    single_output(messages, &selection, &options, pool).await
                } else if route.method.output().full_name() == HTTP_BODY {
                    http_body_stream_response(messages, pool).await
                } else {
                    let framing = Framing::choose(parts.headers.get(header::ACCEPT), rest.stream_format);
                    stream_response(messages, framing, options, result_wrapper)
                };
                add_backend_metadata(&mut response, &metadata);
                response
            }
            Err(error) => gateway_error_response(&error, pool),
        },
    };
    response.headers_mut().extend(admitted.headers);
    if let Some(deprecation) = deprecation {
        response.headers_mut().extend(deprecation.headers.iter().cloned());
    }
    if let Some(transform) = transform {
        let values = crate::transform::Values { identity: who.as_deref(), client_ip };
        transform.response.apply_headers(response.headers_mut(), values);
    }
    response
}

/// Routes the request and gathers its settings, or refuses it.
fn prepare(served: &Served, parts: &Parts) -> Result<Call, Refusal> {
    let snapshot = &served.snapshot;
    let rest = &snapshot.config.rest;
    let method = effective_method(parts, rest)?;
    let found =
        snapshot.routes.find(&method, parts.uri.path()).map_err(|error| route_refusal(error, &method, parts))?;
    let route = found.route.value.clone();
    let choices = rest.json_for(route.method.parent_service().full_name());
    let options = JsonOptions {
        emit_defaults: choices.emit_defaults,
        proto_names: choices.proto_field_names,
        ignore_unknown: choices.ignore_unknown_fields,
        max_depth: rest.max_json_depth as usize,
    };
    let mut context = request_context(&parts.headers, &snapshot.config.headers)
        .map_err(|error| Refusal::new(ErrorCode::InvalidArgument, error.to_string()))?;
    let client = parts.extensions.get::<crate::server::ClientAddr>().map(|c| c.0);
    crate::ingress::forward::capture_hash_inputs(&mut context, &parts.headers, client, snapshot);
    context.route = Some(found.index);
    let entry = snapshot.routes.route(found.index);
    crate::telemetry::record::note_operation(entry.name.clone());
    let format = body_format(&route, parts, rest)?;
    let header_fields = rest
        .header_bindings
        .get(route.method.full_name())
        .map(|bindings| {
            bindings
                .iter()
                .filter_map(|(header, field)| {
                    let value = parts.headers.get(header.as_str())?.to_str().ok()?;
                    Some((field.clone(), value.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Call {
        method,
        route,
        route_index: found.index,
        variables: found.variables,
        options,
        result_wrapper: choices.stream_result_wrapper,
        limit: usize::try_from(rest.max_body_bytes).unwrap_or(usize::MAX),
        format,
        header_fields,
        context,
    })
}

/// The request's method, or the `X-HTTP-Method-Override` of a POST when that is enabled.
fn effective_method(parts: &Parts, rest: &RestConfig) -> Result<Method, Refusal> {
    let Some(value) = parts.headers.get("x-http-method-override").filter(|_| rest.method_override) else {
        return Ok(parts.method.clone());
    };
    if parts.method != Method::POST {
        let message = "header `X-HTTP-Method-Override` is only honoured on POST requests";
        return Err(Refusal::new(ErrorCode::InvalidArgument, message));
    }
    Method::from_bytes(value.as_bytes())
        .map_err(|_| Refusal::new(ErrorCode::InvalidArgument, "header `X-HTTP-Method-Override` is not an HTTP method"))
}

fn route_refusal(error: MatchError, method: &Method, parts: &Parts) -> Refusal {
    match error {
        MatchError::NotFound => {
            Refusal::new(ErrorCode::UnknownRoute, format!("no route matches {method} {}", parts.uri.path()))
        }
        MatchError::MethodNotAllowed { allowed } => {
            let list = allowed.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
            let message = format!("{} does not accept {method}; it accepts {list}", parts.uri.path());
            Refusal { allow: Some(list), ..Refusal::new(ErrorCode::MethodNotAllowed, message) }
        }
        MatchError::BadPath(message) => Refusal::new(ErrorCode::InvalidArgument, message),
    }
}

/// How to read the body: raw for HttpBody targets, form pairs when enabled, else JSON (any
/// other content type is a 415 naming it).
fn body_format(route: &RestRoute, parts: &Parts, rest: &RestConfig) -> Result<OwnedFormat, Refusal> {
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if route.takes_raw_body() {
        let content_type = if content_type.is_empty() { "application/octet-stream" } else { content_type };
        return Ok(OwnedFormat::Raw(content_type.to_owned()));
    }
    let has_body = parts.headers.contains_key(header::TRANSFER_ENCODING)
        || parts.headers.get(header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() != b"0");
    let essence = super::request_head::media_type(parts.headers.get(header::CONTENT_TYPE)).to_ascii_lowercase();
    if !has_body || essence.is_empty() {
        return Ok(OwnedFormat::Json);
    }
    if essence == "application/x-www-form-urlencoded" && rest.form_bodies {
        return Ok(OwnedFormat::Form);
    }
    let is_json = essence == "application/json"
        || essence == "application/x-ndjson"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if is_json {
        return Ok(OwnedFormat::Json);
    }
    let message = format!("Content-Type `{content_type}` is not supported; send the body as application/json");
    Err(Refusal::new(ErrorCode::UnsupportedMediaType, message))
}

/// Reads the whole body (bounded) and binds the request message.
async fn read_message(
    call: &Call,
    parts: &Parts,
    body: Body,
    is_patch: bool,
    read_timeout: std::time::Duration,
    edits: Option<&crate::transform::JsonEdits>,
) -> Result<CallInput, Refusal> {
    let limit = call.limit;
    let Ok(read) = tokio::time::timeout(read_timeout, super::encoding::read_body(body, limit)).await else {
        let message = format!(
            "the request body did not arrive within {} (listener.body_read_timeout)",
            humantime::format_duration(read_timeout)
        );
        return Err(Refusal::new(ErrorCode::RequestTimeout, message));
    };
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(error) => {
            if let Some(message) = too_large_message(&error, limit) {
                return Err(Refusal::new(ErrorCode::PayloadTooLarge, message));
            }
            return Err(Refusal::new(ErrorCode::InvalidArgument, format!("cannot read the request body: {error}")));
        }
    };
    // A transformation's body edits, when the body is a JSON object.
    let bytes = match edits.and_then(|edits| edits.apply_bytes(&bytes)) {
        Some(edited) => bytes::Bytes::from(edited),
        None => bytes,
    };
    let fields: Vec<(&str, &str)> = call.header_fields.iter().map(|(f, v)| (f.as_str(), v.as_str())).collect();
    let http = call.parts(parts.uri.query(), &bytes, &fields, is_patch);
    bind_request_wire(&call.route, http, Some(&bytes), &call.options)
        .map(CallInput::Encoded)
        .map_err(|error| Refusal::new(ErrorCode::InvalidArgument, error.to_string()))
}

/// A bidi method's route: upgrade to a WebSocket, binding the URL's fields once.
async fn upgrade_bidi(served: &Arc<Served>, parts: &mut Parts, call: Call) -> Response {
    let allowed = &served.snapshot.config.listener.websocket_origins;
    if let Some(message) = super::cors::websocket_origin_refused(allowed, &parts.headers) {
        return error_response(ErrorCode::Forbidden, &message);
    }
    let upgrade = match WebSocketUpgrade::from_request_parts(parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(_) => {
            let message = format!(
                "{} is a bidirectional stream; open a WebSocket on this route (GET with Upgrade: websocket)",
                call.route.method.full_name()
            );
            return error_response(ErrorCode::InvalidArgument, &message);
        }
    };
    let fields: Vec<(&str, &str)> = call.header_fields.iter().map(|(f, v)| (f.as_str(), v.as_str())).collect();
    let http = HttpParts { body_format: BodyFormat::Json, ..call.parts(parts.uri.query(), b"", &fields, false) };
    let url_fields = match bind_request(&call.route, http, &call.options) {
        Ok(fields) => prost::Message::encode_to_vec(&fields),
        Err(error) => return error_response(ErrorCode::InvalidArgument, &error.to_string()),
    };
    let limit = call.limit;
    let session = BidiSession { route: call.route, url_fields, options: call.options, context: call.context };
    let served = served.clone();
    upgrade.max_message_size(limit).max_frame_size(limit).on_upgrade(move |socket| async move {
        let open = served.telemetry.metrics.websocket_opened();
        run_bidi(served, socket, session).await;
        drop(open);
    })
}
