//! TLS to backends: the PEM material a cluster's `tls` block names, read and checked when the
//! snapshot is built (a missing or unparsable file refuses the snapshot, naming the key), then
//! made into a rustls client configuration (gRPC connections, WebSocket sources) or handed to
//! reqwest (REST, GraphQL over HTTP).

use std::path::Path;

use crate::config::TlsConfig;

/// A cluster's TLS material, loaded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsMaterial {
    /// PEM CA certificates to trust instead of the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// The name to verify instead of each URL's host.
    pub server_name: Option<String>,
    /// PEM client certificate chain and key, for mutual TLS.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// A problem with a `tls` block: the key it concerns and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct TlsError {
    /// The key under the cluster's `tls` block (`ca_file`, `client_key_file`, ...).
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

impl TlsMaterial {
    /// Reads and checks the files `config` names (relative paths from the working directory,
    /// like every path in config).
    pub fn load(config: &TlsConfig) -> Result<Self, TlsError> {
        let ca_pem = match &config.ca_file {
            Some(path) => {
                let pem = read("ca_file", path)?;
                let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| TlsError { key: "ca_file", message: format!("{}: {e}", path.display()) })?;
                if certificates.is_empty() {
                    return Err(TlsError {
                        key: "ca_file",
                        message: format!("{} holds no PEM certificate", path.display()),
                    });
                }
                Some(pem)
            }
            None => None,
        };
        let identity = match (&config.client_cert_file, &config.client_key_file) {
            (Some(cert), Some(key)) => {
                let (cert_pem, key_pem) = (read("client_cert_file", cert)?, read("client_key_file", key)?);
                let mut both = cert_pem.clone();
                both.extend_from_slice(&key_pem);
                reqwest::Identity::from_pem(&both).map_err(|e| TlsError {
                    key: "client_cert_file",
                    message: format!("{} with {}: {e}", cert.display(), key.display()),
                })?;
                Some((cert_pem, key_pem))
            }
            (Some(_), None) => return Err(missing("client_key_file", "client_cert_file")),
            (None, Some(_)) => return Err(missing("client_cert_file", "client_key_file")),
            (None, None) => None,
        };
        if let Some(name) = &config.server_name
            && rustls_pki_types::ServerName::try_from(name.as_str()).is_err()
        {
            return Err(TlsError { key: "server_name", message: format!("`{name}` is not a DNS name or IP address") });
        }
        Ok(TlsMaterial { ca_pem, server_name: config.server_name.clone(), identity })
    }

    /// Applies the material to a reqwest client (the CA replaces the system's roots).
    pub fn http(&self, mut builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        if let Some(pem) = &self.ca_pem {
            builder = builder.tls_built_in_root_certs(false);
            for certificate in reqwest::Certificate::from_pem_bundle(pem).unwrap_or_default() {
                builder = builder.add_root_certificate(certificate);
            }
        }
        if let Some((cert, key)) = &self.identity {
            let mut both = cert.clone();
            both.extend_from_slice(key);
            if let Ok(identity) = reqwest::Identity::from_pem(&both) {
                builder = builder.identity(identity);
            }
        }
        builder
    }
}

impl TlsMaterial {
    /// A rustls client configuration with this material (for gRPC connections and WebSocket
    /// connections to GraphQL sources): the CA file's roots or the system's, and the client
    /// certificate.
    pub fn rustls_client(&self) -> Result<rustls::ClientConfig, String> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_pem {
            Some(pem) => {
                for certificate in CertificateDer::pem_slice_iter(pem) {
                    let certificate = certificate.map_err(|e| format!("ca_file: {e}"))?;
                    roots.add(certificate).map_err(|e| format!("ca_file: {e}"))?;
                }
            }
            None => {
                for certificate in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(certificate);
                }
            }
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
        match &self.identity {
            Some((cert, key)) => {
                let chain = CertificateDer::pem_slice_iter(cert)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("client_cert_file: {e}"))?;
                let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| format!("client_key_file: {e}"))?;
                builder.with_client_auth_cert(chain, key).map_err(|e| format!("client_cert_file: {e}"))
            }
            None => Ok(builder.with_no_client_auth()),
        }
    }
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError { key, message: format!("cannot read {}: {e}", path.display()) })
}

fn missing(key: &'static str, given: &str) -> TlsError {
    TlsError { key, message: format!("{given} is set, so {key} must be set too") }
}
