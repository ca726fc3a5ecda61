//! Connections to backends. TLS: a real rustls terminator (tokio-rustls) in front of the demo's
//! catalog and authors services, with certificates made for the test by rcgen; the gateway must
//! trust only the CA it is given, verify the name it is told, and present a client certificate
//! when the backend asks for one. HTTP versions: a REST pool speaks HTTP/1.1 or HTTP/2 as
//! configured.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::StreamExt;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::support::TestGateway;

/// A test CA with a server certificate for `localhost`, `127.0.0.1` and `catalog.internal`,
/// and a client certificate, all as PEM files in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    ca: CertificateDer<'static>,
    server: (CertificateDer<'static>, PrivateKeyDer<'static>),
}

impl Pki {
    fn new() -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("ca");
        let leaf = |names: &[&str]| {
            let key = KeyPair::generate().expect("key");
            let params =
                CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("params");
            let cert = params.signed_by(&key, &ca).expect("signed");
            (cert, key)
        };
        let (server_cert, server_key) = leaf(&["localhost", "127.0.0.1", "catalog.internal"]);
        let (client_cert, client_key) = leaf(&["gateway.internal"]);
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write");
        std::fs::write(dir.path().join("client.pem"), client_cert.pem()).expect("write");
        std::fs::write(dir.path().join("client.key"), client_key.serialize_pem()).expect("write");
        std::fs::write(dir.path().join("garbage.pem"), "not a certificate\n").expect("write");
        let server_key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        Pki { ca: ca.der().clone(), server: (server_cert.der().clone(), server_key), dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// A TLS terminator on an ephemeral port forwarding to `backend`, offering `alpn`; with
    /// `client_auth`, it refuses clients without a certificate from the CA.
    async fn terminator(&self, backend: SocketAddr, alpn: &[u8], client_auth: bool) -> SocketAddr {
        let builder = rustls::ServerConfig::builder();
        let builder = if client_auth {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.ca.clone()).expect("root");
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots)).build().expect("verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config =
            builder.with_single_cert(vec![self.server.0.clone()], self.server.1.clone_key()).expect("server config");
        config.alpn_protocols = vec![alpn.to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                    let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else { return };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        addr
    }
}

fn socket_addr(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").trim_end_matches('/').parse().expect("backend address")
}

#[tokio::test]
async fn grpc_backends_are_reached_over_tls_with_the_configured_ca_name_and_client_certificate() {
    let pki = Pki::new();
    let backend = switchyard::demo::start_demo_backend("127.0.0.1:0".parse().expect("addr")).await.expect("backend");
    let plain = pki.terminator(socket_addr(&backend.url()), b"h2", false).await;
    let mutual = pki.terminator(socket_addr(&backend.url()), b"h2", true).await;
    let http1_only = pki.terminator(socket_addr(&backend.url()), b"http/1.1", false).await;
    let (ca, cert, key) = (pki.path("ca.pem"), pki.path("client.pem"), pki.path("client.key"));
    // (terminator, tls block, expected status)
    let table: Vec<(SocketAddr, String, u16)> = vec![
        (plain, format!("tls = {{ ca_file = \"{ca}\" }}"), 200),
        (plain, format!("tls = {{ ca_file = \"{ca}\", server_name = \"catalog.internal\" }}"), 200),
        // Not signed by a root the system trusts.
        (plain, String::new(), 503),
        // The certificate does not carry this name.
        (plain, format!("tls = {{ ca_file = \"{ca}\", server_name = \"billing.internal\" }}"), 503),
        (
            mutual,
            format!("tls = {{ ca_file = \"{ca}\", client_cert_file = \"{cert}\", client_key_file = \"{key}\" }}"),
            200,
        ),
        // The backend wants a client certificate.
        (mutual, format!("tls = {{ ca_file = \"{ca}\" }}"), 503),
        // TLS is fine, but the backend will not speak HTTP/2 (ALPN offers http/1.1 only).
        (http1_only, format!("tls = {{ ca_file = \"{ca}\" }}"), 503),
    ];
    for (terminator, tls, want) in table {
        let config = format!(
            "[backends.catalog]\nendpoints = [\"https://{terminator}\"]\nservices = [\"catalog.v1\"]\n\
             retries = {{ max_retries = 0 }}\n{tls}\n"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("switchyard.toml");
        std::fs::write(&file, &config).expect("write config");
        let gateway = TestGateway::start_with_config(None, file).await;
        let (status, body, _) = gateway.call("GET", "/v1/shelves/1/books/1", "").await;
        assert_eq!(status, want, "{config}: {body}");
        if want == 200 {
            assert!(body["title"].is_string(), "{body}");
        } else {
            assert_eq!(body["code"], 14, "{body}");
        }
        gateway.shutdown().await;
    }
    backend.shutdown().await;
}

#[tokio::test]
async fn rest_backends_are_reached_over_tls_with_the_configured_ca() {
    let pki = Pki::new();
    let authors = switchyard::demo::start_demo_authors("127.0.0.1:0".parse().expect("addr")).await.expect("authors");
    let terminator = pki.terminator(socket_addr(&authors.url()), b"http/1.1", false).await;
    let ca = pki.path("ca.pem");
    for (tls, ok) in [(Some(ca.as_str()), true), (None, false)] {
        let config = switchyard::config::BackendConfig {
            tls: tls.map(|ca| switchyard::config::TlsConfig { ca_file: Some(ca.into()), ..Default::default() }),
            ..switchyard::config::BackendConfig::new(
                switchyard::config::BackendProtocol::Http,
                vec![switchyard::config::EndpointConfig::Url(format!("https://localhost:{}", terminator.port()))],
            )
        };
        let cluster = switchyard::snapshot::cluster_from_config("authors", &config).expect("cluster");
        let client = switchyard::upstream::HttpClient::new(&cluster).expect("client");
        let request = switchyard::upstream::HttpRequest {
            method: http::Method::GET,
            path_and_query: "/authors".into(),
            headers: Vec::new(),
            body: None,
            idempotent: true,
        };
        let answer = client.send(&request, &Default::default(), None).await;
        match answer {
            Ok((body, _)) => assert!(ok && String::from_utf8_lossy(&body).contains("name"), "{body:?}"),
            Err(error) => assert!(!ok && error.to_string().contains("authors"), "{error}"),
        }
    }
    authors.shutdown().await;
}

#[test]
fn unreadable_or_unparsable_tls_files_refuse_the_config_naming_the_key() {
    let pki = Pki::new();
    let table = [
        (format!("ca_file = \"{}\"", pki.path("missing.pem")), "backends.catalog.tls.ca_file", "cannot read"),
        (format!("ca_file = \"{}\"", pki.path("garbage.pem")), "backends.catalog.tls.ca_file", "no PEM certificate"),
        (
            format!("client_cert_file = \"{}\"", pki.path("client.pem")),
            "backends.catalog.tls.client_key_file",
            "must be set too",
        ),
        ("server_name = \"not a name\"".to_owned(), "backends.catalog.tls.server_name", "not a DNS name"),
    ];
    for (tls, key, message) in table {
        let text = format!(
            "[backends.catalog]\nendpoints = [\"https://127.0.0.1:1\"]\nservices = [\"catalog.v1\"]\ntls = {{ {tls} }}\n"
        );
        let problems = match switchyard::config::parse_config(&text, &|_| None) {
            Ok((config, _)) => {
                switchyard::snapshot::cluster_from_config("catalog", &config.backends["catalog"]).expect_err(&tls)
            }
            Err(problems) => problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"),
        };
        assert!(problems.contains(key) && problems.contains(message), "{tls}: {problems}");
    }
}

#[tokio::test]
async fn rest_pools_speak_the_configured_http_version() {
    // A REST backend that answers with the HTTP version each request arrived in (it serves
    // HTTP/1.1 and h2c, as the gateway's own listener does).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = axum::Router::new().route(
        "/version",
        axum::routing::get(|request: axum::extract::Request| async move {
            axum::Json(serde_json::json!({ "version": format!("{:?}", request.version()) }))
        }),
    );
    let settings = switchyard::server::ListenerSettings {
        max_connections: 64,
        header_read_timeout: std::time::Duration::from_secs(10),
        idle_timeout: std::time::Duration::from_secs(30),
        keepalive_interval: std::time::Duration::from_secs(30),
        keepalive_timeout: std::time::Duration::from_secs(10),
        shutdown_timeout: std::time::Duration::from_secs(1),
        max_header_bytes: 16 * 1024,
        max_headers: 100,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(switchyard::server::serve_listener(listener, router, settings, stopped));
    let table = [
        (switchyard::config::HttpVersion::Auto, "HTTP/1.1"),
        (switchyard::config::HttpVersion::Http1, "HTTP/1.1"),
        (switchyard::config::HttpVersion::Http2, "HTTP/2.0"),
    ];
    for (version, want) in table {
        let mut config = switchyard::config::BackendConfig::new(
            switchyard::config::BackendProtocol::Http,
            vec![switchyard::config::EndpointConfig::Url(format!("http://{addr}"))],
        );
        config.connection.http_version = version;
        let cluster = switchyard::snapshot::cluster_from_config("versions", &config).expect("cluster");
        let client = switchyard::upstream::HttpClient::new(&cluster).expect("client");
        let request = switchyard::upstream::HttpRequest {
            method: http::Method::GET,
            path_and_query: "/version".into(),
            headers: Vec::new(),
            body: None,
            idempotent: true,
        };
        let (body, _) = client.send(&request, &Default::default(), None).await.expect("answer");
        let answer: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(answer["version"], want, "{version:?}");
    }
    let _ = stop.send(true);
    let _ = server.await;
}

#[tokio::test]
async fn graphql_source_subscriptions_use_the_cluster_tls_over_wss() {
    let pki = Pki::new();
    let gateway = TestGateway::demo().await;
    let target = socket_addr(&gateway.base);
    let terminator = pki.terminator(target, b"http/1.1", true).await;
    let material = |ca: bool, client: bool| {
        let config = switchyard::config::TlsConfig {
            ca_file: ca.then(|| pki.path("ca.pem").into()),
            client_cert_file: client.then(|| pki.path("client.pem").into()),
            client_key_file: client.then(|| pki.path("client.key").into()),
            server_name: None,
        };
        let material = switchyard::upstream::tls::TlsMaterial::load(&config).expect("material");
        Arc::new(material.rustls_client().expect("rustls config"))
    };
    let subscription = |tls| switchyard::upstream::graphql_ws::WsSubscription {
        cluster: "books".into(),
        url: format!("wss://localhost:{}/graphql", terminator.port()),
        query: "subscription { watchBooks(parent: \"shelves/1\") { kind book { title } } }".into(),
        variables: Default::default(),
        init: Default::default(),
        tls,
    };
    // Without the CA, or without the client certificate the source asks for: unreachable.
    for tls in [None, Some(material(true, false))] {
        let refused = subscription(tls).open().await.err().expect("refused");
        assert!(matches!(refused, switchyard::upstream::UpstreamError::Unavailable { .. }), "{refused:?}");
    }
    let mut events = subscription(Some(material(true, true))).open().await.expect("subscribed over wss");
    // The subscription is live once the source has it: create books until one arrives.
    let deadline = tokio::time::Instant::now() + crate::support::HANG;
    let event = loop {
        let (status, body, _) = gateway.call("POST", "/v1/shelves/1/books", "{\"title\":\"Over TLS\"}").await;
        assert_eq!(status, 200, "{body}");
        if let Ok(Some(event)) = tokio::time::timeout(std::time::Duration::from_millis(200), events.next()).await {
            break event.expect("an event");
        }
        assert!(tokio::time::Instant::now() < deadline, "no event arrived");
    };
    let switchyard::upstream::graphql_ws::WsEvent::Next(payload) = event else { panic!("{event:?}") };
    assert_eq!(payload["data"]["watchBooks"]["book"]["title"], "Over TLS", "{payload}");
    gateway.shutdown().await;
}

/// The HTTP/2 stream window a gRPC cluster's connections advertise is the cluster's
/// `connection.stream_window_bytes`, 256 KiB when unset: read off the SETTINGS frame the gateway
/// sends a raw TCP backend when a call makes it connect.
#[tokio::test]
async fn grpc_connections_advertise_the_clusters_stream_window() {
    use tokio::io::AsyncReadExt;
    for (setting, want) in [("", 256 * 1024), ("stream_window_bytes = 100000\n", 100_000u32)] {
        let backend = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = backend.local_addr().expect("address");
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("switchyard.toml");
        let toml = format!(
            "[backends.catalog]\nendpoints = [\"http://{address}\"]\nservices = [\"catalog.v1\"]\n\
             [backends.catalog.connection]\n{setting}"
        );
        std::fs::write(&file, toml).expect("write config");
        let gateway = TestGateway::start_with_config(None, file).await;
        let call = tokio::spawn(gateway.client.get(format!("{}/v1/shelves/1/books/1", gateway.base)).send());
        let hang = std::time::Duration::from_secs(30);
        let (mut socket, _) =
            tokio::time::timeout(hang, backend.accept()).await.expect("a connection").expect("accept");
        let mut preface = [0u8; 24];
        tokio::time::timeout(hang, socket.read_exact(&mut preface)).await.expect("preface in time").expect("preface");
        assert_eq!(&preface, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        let mut head = [0u8; 9];
        socket.read_exact(&mut head).await.expect("frame head");
        assert_eq!(head[3], 0x4, "the client's first frame is SETTINGS");
        let length = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let mut payload = vec![0u8; length];
        socket.read_exact(&mut payload).await.expect("settings");
        let window = payload
            .chunks_exact(6)
            .find(|setting| setting[..2] == [0x00, 0x04])
            .map(|setting| u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]));
        assert_eq!(window, Some(want), "SETTINGS_INITIAL_WINDOW_SIZE with {setting:?}");
        drop(socket);
        call.abort();
        gateway.shutdown().await;
    }
}
