//! gRPC calls to a cluster: one tonic channel per cluster (the first endpoint; balanced pools
//! come with the pools issue), requests encoded by the caller, responses returned as raw
//! protobuf bytes with their metadata.

use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use tonic::client::Grpc;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use super::UpstreamError;
use super::grpc_codec::RawCodec;
use crate::operation::Metadata;

/// A connection (lazily established, re-established on failure) to one cluster.
#[derive(Debug, Clone)]
pub struct GrpcClient {
    cluster: String,
    channel: Channel,
}

/// A unary call's answer.
#[derive(Debug)]
pub struct UnaryReply {
    /// The response message, still encoded.
    pub body: Bytes,
    /// Response headers and trailers.
    pub metadata: MetadataMap,
}

impl GrpcClient {
    /// A client for `cluster` at `endpoint`; connects on first use.
    pub fn new(cluster: &str, endpoint: &http::Uri) -> Result<Self, UpstreamError> {
        let endpoint = Endpoint::from(endpoint.clone())
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(false);
        Ok(GrpcClient { cluster: cluster.to_owned(), channel: endpoint.connect_lazy() })
    }

    /// Calls `path` (`/package.Service/Method`) with an encoded request.
    pub async fn unary(
        &self,
        path: &str,
        request: Bytes,
        metadata: &Metadata,
        timeout: Option<Duration>,
    ) -> Result<UnaryReply, UpstreamError> {
        let path = PathAndQuery::try_from(path)
            .map_err(|_| UpstreamError::Internal(format!("`{path}` is not a valid gRPC path")))?;
        let mut request = tonic::Request::new(request);
        copy_metadata(metadata, request.metadata_mut());
        if let Some(timeout) = timeout {
            request.set_timeout(timeout);
        }
        let mut grpc = Grpc::new(self.channel.clone());
        let call = async {
            grpc.ready().await.map_err(|e| UpstreamError::unavailable(&self.cluster, &e))?;
            grpc.unary(request, path, RawCodec)
                .await
                .map_err(|status| UpstreamError::from_status(&self.cluster, status))
        };
        let response = match timeout {
            Some(timeout) => {
                tokio::time::timeout(timeout, call).await.map_err(|_| UpstreamError::DeadlineExceeded)??
            }
            None => call.await?,
        };
        let (metadata, body, _) = response.into_parts();
        Ok(UnaryReply { body, metadata })
    }
}

fn copy_metadata(from: &Metadata, to: &mut MetadataMap) {
    for (name, value) in from.iter() {
        if name.ends_with("-bin") {
            if let Ok(key) = MetadataKey::from_bytes(name.as_bytes()) {
                to.append_bin(key, MetadataValue::from_bytes(value));
            }
        } else if let (Ok(key), Ok(value)) = (MetadataKey::from_bytes(name.as_bytes()), MetadataValue::try_from(value))
        {
            to.append(key, value);
        }
    }
}
