//! TLS termination on the gateway listener with rustls: the certificate and key (and the client
//! CAs, for mutual TLS) are read when a snapshot is built, so a reload picks up renewed files
//! and a bad file refuses the reload naming the key; each new connection takes the newest
//! config, open connections keep theirs. ALPN offers h2 and http/1.1. A verified client
//! certificate is described to the rest of the gateway in `X-Forwarded-Client-Cert`, which the
//! listener always removes from what clients send.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::HeaderValue;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::config::{ClientAuth, ListenerTlsConfig};
pub use crate::policy::client_cert::CLIENT_CERT_HEADER;

/// The listener's TLS settings, ready to accept with.
pub type ServerTls = Arc<rustls::ServerConfig>;

/// Builds the server config `config` describes; an error names the key and the fault.
pub fn server_config(config: &ListenerTlsConfig) -> Result<ServerTls, (String, String)> {
    let read = |key: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| (key.to_owned(), format!("cannot read {}: {e}", path.display())))
    };
    let chain_pem = read("cert_file", &config.cert_file)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| ("cert_file".to_owned(), format!("{}: {e}", config.cert_file.display())))?;
    if chain.is_empty() {
        return Err(("cert_file".into(), format!("{} holds no PEM certificate", config.cert_file.display())));
    }
    let key_pem = read("key_file", &config.key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| ("key_file".to_owned(), format!("{} holds no PEM private key: {e}", config.key_file.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ("cert_file".to_owned(), e.to_string()))?;
    let builder = match (config.client_auth, &config.client_ca_file) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (_, None) => {
            return Err(("client_ca_file".into(), "client_auth needs the CAs client certificates chain to".into()));
        }
        (auth, Some(path)) => {
            let pem = read("client_ca_file", path)?;
            let mut roots = rustls::RootCertStore::empty();
            for certificate in CertificateDer::pem_slice_iter(&pem) {
                let certificate =
                    certificate.map_err(|e| ("client_ca_file".to_owned(), format!("{}: {e}", path.display())))?;
                roots
                    .add(certificate)
                    .map_err(|e| ("client_ca_file".to_owned(), format!("{}: {e}", path.display())))?;
            }
            if roots.is_empty() {
                return Err(("client_ca_file".into(), format!("{} holds no PEM certificate", path.display())));
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == ClientAuth::Optional { verifier.allow_unauthenticated() } else { verifier };
            builder
                .with_client_cert_verifier(verifier.build().map_err(|e| ("client_ca_file".to_owned(), e.to_string()))?)
        }
    };
    let mut server = builder
        .with_single_cert(chain, key)
        .map_err(|e| ("key_file".to_owned(), format!("the key does not fit the certificate: {e}")))?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(server))
}

/// A connection's transport: plain TCP, or TLS over it.
pub(super) enum Transport {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Transport {
    /// `X-Forwarded-Client-Cert` for the verified client certificate, if one was presented.
    pub(super) fn client_cert(&self) -> Option<HeaderValue> {
        let Transport::Tls(stream) = self else { return None };
        let leaf = stream.get_ref().1.peer_certificates()?.first()?;
        let hash = hex::encode(Sha256::digest(leaf.as_ref()));
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
        let subject = parsed.subject().to_string().replace('"', "'");
        HeaderValue::from_str(&format!("Hash={hash};Subject=\"{subject}\"")).ok()
    }
}

impl AsyncRead for Transport {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_write(cx, data),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, data),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Transport::Plain(stream) => stream.is_write_vectored(),
            Transport::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}
