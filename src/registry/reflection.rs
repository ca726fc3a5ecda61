//! `descriptors pull`: imports definitions from a live server by gRPC server reflection, v1 first
//! and v1alpha when the server does not implement v1, fetching every transitive import. This is
//! a control-plane connection of its own; the running gateway never calls reflection at request
//! time.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};

use super::{Registration, RegistryError, is_builtin_file};

/// Services a pull skips unless asked for by name: the gateway serves these itself.
const INFRASTRUCTURE: &[&str] =
    &["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection", "grpc.health.v1.Health"];

const PULL_TIMEOUT: Duration = Duration::from_secs(30);

enum Query {
    ListServices,
    FileContainingSymbol(String),
    FileByFilename(String),
}

enum Answer {
    Services(Vec<String>),
    Files(Vec<Vec<u8>>),
    Error(i32, String),
}

macro_rules! reflection_version {
    ($module:ident) => {
        mod $module {
            use super::*;
            use pb::server_reflection_request::MessageRequest;
            use pb::server_reflection_response::MessageResponse;
            use tonic_reflection::pb::$module as pb;

            pub(super) struct Session {
                requests: mpsc::Sender<pb::ServerReflectionRequest>,
                responses: tonic::Streaming<pb::ServerReflectionResponse>,
            }

            impl Session {
                pub(super) async fn open(channel: Channel) -> Result<Session, tonic::Status> {
                    let (requests, receiver) = mpsc::channel(4);
                    let mut client = pb::server_reflection_client::ServerReflectionClient::new(channel);
                    let stream = tokio_stream::wrappers::ReceiverStream::new(receiver);
                    let responses = client.server_reflection_info(stream).await?.into_inner();
                    Ok(Session { requests, responses })
                }

                pub(super) async fn ask(&mut self, query: Query) -> Result<Answer, tonic::Status> {
                    let message_request = match query {
                        Query::ListServices => MessageRequest::ListServices(String::new()),
                        Query::FileContainingSymbol(s) => MessageRequest::FileContainingSymbol(s),
                        Query::FileByFilename(f) => MessageRequest::FileByFilename(f),
                    };
                    let request =
                        pb::ServerReflectionRequest { host: String::new(), message_request: Some(message_request) };
                    self.requests
                        .send(request)
                        .await
                        .map_err(|_| tonic::Status::unavailable("the reflection stream closed"))?;
                    let response = self
                        .responses
                        .message()
                        .await?
                        .ok_or_else(|| tonic::Status::unavailable("the reflection stream ended early"))?;
                    Ok(match response.message_response {
                        Some(MessageResponse::ListServicesResponse(list)) => {
                            Answer::Services(list.service.into_iter().map(|s| s.name).collect())
                        }
                        Some(MessageResponse::FileDescriptorResponse(files)) => {
                            Answer::Files(files.file_descriptor_proto)
                        }
                        Some(MessageResponse::ErrorResponse(e)) => Answer::Error(e.error_code, e.error_message),
                        _ => Answer::Error(2, "unexpected reflection response".into()),
                    })
                }
            }
        }
    };
}

reflection_version!(v1);
reflection_version!(v1alpha);

enum Session {
    V1(v1::Session),
    V1Alpha(v1alpha::Session),
}

impl Session {
    async fn ask(&mut self, query: Query) -> Result<Answer, tonic::Status> {
        match self {
            Session::V1(s) => s.ask(query).await,
            Session::V1Alpha(s) => s.ask(query).await,
        }
    }
}

/// Pulls `services` (all but infrastructure services when empty) and their imports from the
/// server at `url` into a registration named `name` (default: the first service's package).
pub async fn pull_from_server(
    url: &str,
    services: &[String],
    name: Option<&str>,
) -> Result<Registration, RegistryError> {
    tokio::time::timeout(PULL_TIMEOUT, pull(url, services, name))
        .await
        .map_err(|_| RegistryError::Reflection(format!("{url}: reflection did not finish within {PULL_TIMEOUT:?}")))?
}

async fn pull(url: &str, wanted: &[String], name: Option<&str>) -> Result<Registration, RegistryError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| RegistryError::Reflection(format!("{url}: {what}: {e}"));
    let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|e| fail("not a valid URL", &e))?;
    let channel =
        endpoint.connect_timeout(Duration::from_secs(5)).connect().await.map_err(|e| fail("cannot connect", &e))?;
    let mut session = open_session(channel).await.map_err(|e| fail("server reflection", &e))?;
    let listed = match session.ask(Query::ListServices).await.map_err(|e| fail("list services", &e))? {
        Answer::Services(names) => names,
        Answer::Error(code, message) => return Err(fail("list services", &format!("error {code}: {message}"))),
        Answer::Files(_) => return Err(fail("list services", &"answered with files")),
    };
    let chosen: Vec<String> = if wanted.is_empty() {
        listed.iter().filter(|s| !INFRASTRUCTURE.contains(&s.as_str())).cloned().collect()
    } else {
        for service in wanted {
            if !listed.contains(service) {
                return Err(fail("", &format!("service `{service}` is not served; it serves: {}", listed.join(", "))));
            }
        }
        wanted.to_vec()
    };
    if chosen.is_empty() {
        return Err(fail("", &"the server lists no services besides health and reflection"));
    }
    let mut files: Vec<Bytes> = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut missing: VecDeque<String> = VecDeque::new();
    let mut first_package = None;
    for service in &chosen {
        let answer = session.ask(Query::FileContainingSymbol(service.clone())).await.map_err(|e| fail(service, &e))?;
        let received = accept_files(answer, service, url)?;
        if first_package.is_none() {
            first_package = received.first().map(|(f, _)| f.package().to_owned());
        }
        absorb(received, &mut files, &mut seen, &mut missing);
    }
    while let Some(file_name) = missing.pop_front() {
        if seen.contains(&file_name) {
            continue;
        }
        let answer = session.ask(Query::FileByFilename(file_name.clone())).await.map_err(|e| fail(&file_name, &e))?;
        let received = accept_files(answer, &file_name, url)?;
        absorb(received, &mut files, &mut seen, &mut missing);
        if !seen.contains(&file_name) {
            return Err(fail(&file_name, &"the server did not return the file it was asked for"));
        }
    }
    let name = match name {
        Some(name) => name.to_owned(),
        None => first_package
            .filter(|p| !p.is_empty())
            .ok_or_else(|| RegistryError::InvalidName(format!("{} has no package; pass --name", chosen[0])))?,
    };
    Registration::from_files(&name, files)
}

async fn open_session(channel: Channel) -> Result<Session, tonic::Status> {
    match v1::Session::open(channel.clone()).await {
        Ok(session) => Ok(Session::V1(session)),
        Err(status) if status.code() == tonic::Code::Unimplemented => {
            Ok(Session::V1Alpha(v1alpha::Session::open(channel).await?))
        }
        Err(status) => Err(status),
    }
}

fn accept_files(
    answer: Answer,
    what: &str,
    url: &str,
) -> Result<Vec<(prost_types::FileDescriptorProto, Bytes)>, RegistryError> {
    match answer {
        Answer::Files(files) => files
            .into_iter()
            .map(|raw| {
                let raw = Bytes::from(raw);
                prost_types::FileDescriptorProto::decode(raw.clone())
                    .map(|proto| (proto, raw))
                    .map_err(|e| RegistryError::Reflection(format!("{url}: {what}: undecodable file descriptor: {e}")))
            })
            .collect(),
        Answer::Error(code, message) => {
            Err(RegistryError::Reflection(format!("{url}: {what}: error {code}: {message}")))
        }
        Answer::Services(_) => Err(RegistryError::Reflection(format!("{url}: {what}: answered with a service list"))),
    }
}

fn absorb(
    received: Vec<(prost_types::FileDescriptorProto, Bytes)>,
    files: &mut Vec<Bytes>,
    seen: &mut BTreeSet<String>,
    missing: &mut VecDeque<String>,
) {
    for (proto, raw) in received {
        if !seen.insert(proto.name().to_owned()) {
            continue;
        }
        for dependency in &proto.dependency {
            if !seen.contains(dependency) && !is_builtin_file(dependency) {
                missing.push_back(dependency.clone());
            }
        }
        files.push(raw);
    }
}
