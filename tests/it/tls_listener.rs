//! TLS termination on the gateway listener with real rustls clients (reqwest): HTTP/2 and
//! HTTP/1.1 by ALPN, mutual TLS with the client certificate's subject as the identity (and a
//! forged X-Forwarded-Client-Cert ignored), and certificates renewed by an admin reload while an
//! open connection keeps working.

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair};

use crate::support::TestGateway;

/// A CA and PEM files it signed: a server certificate for 127.0.0.1 and localhost, and client
/// certificates by common name.
struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Authority {
    fn new(name: &str) -> Authority {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Authority { issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("ca") }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// (certificate PEM, key PEM) for `names`, with common name `cn`.
    fn leaf(&self, cn: &str, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("params");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        dn.push(DnType::OrganizationName, "Switchyard Tests");
        params.distinguished_name = dn;
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        (cert.pem(), key.serialize_pem())
    }

    /// Writes a server certificate and key as `server.pem` / `server.key` in `dir`.
    fn write_server(&self, dir: &std::path::Path) {
        let (cert, key) = self.leaf("gateway", &["127.0.0.1", "localhost"]);
        std::fs::write(dir.join("server.pem"), cert).expect("write");
        std::fs::write(dir.join("server.key"), key).expect("write");
    }
}

/// A client trusting only `ca`, presenting `identity` when given, HTTP/1.1 only when `http1`.
fn client(ca: &str, identity: Option<&(String, String)>, http1: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).expect("ca"));
    if let Some((cert, key)) = identity {
        builder = builder.identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).expect("identity"));
    }
    if http1 {
        builder = builder.http1_only();
    }
    builder.build().expect("client")
}

fn https(gateway: &TestGateway, path: &str) -> String {
    format!("{}{path}", gateway.base.replace("http://", "https://"))
}

fn listener_tls(dir: &std::path::Path, extra: &str) -> String {
    format!(
        "[listener.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n{extra}\n\
         [backends.catalog]\nendpoints = [\"{{backend}}\"]\nservices = [\"catalog.v1\"]\n",
        dir.join("server.pem").display(),
        dir.join("server.key").display()
    )
}

#[tokio::test]
async fn tls_serves_http2_and_http1_by_alpn_and_refuses_plain_text() {
    let pki = tempfile::tempdir().expect("tempdir");
    let ca = Authority::new("Test CA");
    ca.write_server(pki.path());
    let (gateway, _dir) = TestGateway::demo_with_config(&listener_tls(pki.path(), "")).await;
    for (http1, version) in [(false, http::Version::HTTP_2), (true, http::Version::HTTP_11)] {
        let response = client(&ca.pem(), None, http1).get(https(&gateway, "/v1/shelves/1/books/1")).send().await;
        let response = response.expect("a TLS answer");
        assert_eq!((response.status().as_u16(), response.version()), (200, version));
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["title"], "The Left Hand of Darkness");
    }
    // gRPC over TLS (HTTP/2 by ALPN) works too.
    let endpoint = tonic::transport::Endpoint::from_shared(https(&gateway, ""))
        .expect("url")
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(ca.pem()))
                .domain_name("localhost"),
        )
        .expect("tls");
    let mut health = tonic_health::pb::health_client::HealthClient::new(endpoint.connect().await.expect("connect"));
    let serving = health.check(tonic_health::pb::HealthCheckRequest::default()).await.expect("check").into_inner();
    assert_eq!(serving.status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);
    // Plain HTTP to the TLS port gets no HTTP answer.
    assert!(gateway.client.get(format!("{}/v1/shelves/1/books/1", gateway.base)).send().await.is_err());
    gateway.shutdown().await;
}

#[tokio::test]
async fn mutual_tls_identifies_clients_by_their_certificate() {
    let pki = tempfile::tempdir().expect("tempdir");
    let ca = Authority::new("Test CA");
    ca.write_server(pki.path());
    std::fs::write(pki.path().join("clients.pem"), ca.pem()).expect("write");
    let extra = format!(
        "client_ca_file = \"{}\"\nclient_auth = \"required\"\n\
         [auth]\nclient_certificates = true\n\
         [[authorization.rules]]\nmethods = [\"catalog.v1.Catalog/GetBook\"]\nclaims = [{{ claim = \"sub\", equals = \"client-a\" }}]",
        pki.path().join("clients.pem").display()
    );
    let (gateway, _dir) = TestGateway::demo_with_config(&listener_tls(pki.path(), &extra)).await;
    let (a, b) = (ca.leaf("client-a", &["client-a.test"]), ca.leaf("client-b", &["client-b.test"]));
    let book = https(&gateway, "/v1/shelves/1/books/1");

    let response = client(&ca.pem(), Some(&a), false).get(&book).send().await.expect("client-a connects");
    assert_eq!(response.status(), 200);
    // client-b is verified but not allowed; a forged certificate header changes nothing.
    let response = client(&ca.pem(), Some(&b), false)
        .get(&book)
        .header("x-forwarded-client-cert", "Hash=00;Subject=\"CN=client-a\"")
        .send()
        .await
        .expect("client-b connects");
    assert_eq!(response.status(), 403);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["message"], "catalog.v1.Catalog/GetBook requires the claim `sub` to equal `client-a`");
    // Without a certificate the handshake is refused.
    assert!(client(&ca.pem(), None, false).get(&book).send().await.is_err(), "no client certificate, no connection");
    // A certificate from another CA is refused too.
    let stranger = Authority::new("Other CA").leaf("client-a", &["client-a.test"]);
    assert!(client(&ca.pem(), Some(&stranger), false).get(&book).send().await.is_err());
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_reload_renews_the_certificate_for_new_connections_and_keeps_open_ones() {
    let pki = tempfile::tempdir().expect("tempdir");
    let (old_ca, new_ca) = (Authority::new("Old CA"), Authority::new("New CA"));
    old_ca.write_server(pki.path());
    let (gateway, _dir) = TestGateway::demo_with_config(&listener_tls(pki.path(), "")).await;
    let book = https(&gateway, "/v1/shelves/1/books/1");
    let open = client(&old_ca.pem(), None, true);
    assert_eq!(open.get(&book).send().await.expect("old CA").status(), 200);

    // A bad file refuses the reload and the old certificate keeps serving.
    std::fs::write(pki.path().join("server.pem"), "not a certificate").expect("write");
    let reload = gateway.client.post(format!("{}/admin/reload", gateway.admin)).send().await.expect("reload");
    assert_eq!(reload.status(), 400);
    let body = reload.text().await.expect("body");
    assert!(body.contains("listener.tls.cert_file"), "{body}");
    assert_eq!(client(&old_ca.pem(), None, false).get(&book).send().await.expect("old CA still").status(), 200);

    new_ca.write_server(pki.path());
    let reload = gateway.client.post(format!("{}/admin/reload", gateway.admin)).send().await.expect("reload");
    assert_eq!(reload.status(), 200, "{}", reload.text().await.unwrap_or_default());
    assert_eq!(client(&new_ca.pem(), None, false).get(&book).send().await.expect("new CA").status(), 200);
    assert!(
        client(&old_ca.pem(), None, false).get(&book).send().await.is_err(),
        "new connections get the new certificate"
    );
    // The connection opened before the reload still works.
    assert_eq!(open.get(&book).send().await.expect("kept-alive connection").status(), 200);
    gateway.shutdown().await;
}

/// Abuse at the door of a TLS listener: 100 connections reset by the client as soon as they
/// are made (SO_LINGER 0), 50 half-open handshakes (a ClientHello's first bytes, then silence)
/// and 50 connections that never say anything. The accept loop survives all of them, the
/// half-open ones are closed by the handshake deadline, and a real client is served throughout.
#[tokio::test]
async fn resets_at_accept_and_half_open_handshakes_do_not_stop_the_listener() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pki = tempfile::tempdir().expect("tempdir");
    let ca = Authority::new("Test CA");
    ca.write_server(pki.path());
    let config = format!("[listener]\nheader_read_timeout = \"1s\"\n{}", listener_tls(pki.path(), ""));
    let (gateway, _dir) = TestGateway::demo_with_config(&config).await;
    let addr = gateway.base.trim_start_matches("http://").to_owned();
    let real = client(&ca.pem(), None, false);
    let served = |real: reqwest::Client, url: String| async move {
        let response = real.get(url).send().await.expect("the real client is served");
        assert_eq!(response.status().as_u16(), 200);
    };
    for _ in 0..100 {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_zero_linger().expect("linger");
        let stream = socket.connect(addr.parse().expect("addr")).await.expect("connect");
        drop(stream);
    }
    served(real.clone(), https(&gateway, "/v1/shelves/1/books/1")).await;
    // A TLS record header and the start of a ClientHello, then nothing.
    let partial_hello: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03];
    let mut hanging = Vec::new();
    for i in 0..100 {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.expect("connect");
        if i % 2 == 0 {
            stream.write_all(partial_hello).await.expect("write");
        }
        hanging.push(stream);
    }
    served(real.clone(), https(&gateway, "/v1/shelves/1/books/1")).await;
    // Every one of them is closed by the handshake deadline (a hang detector bounds the wait).
    for mut stream in hanging {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(crate::support::HANG, stream.read(&mut buf)).await.expect("closed in time");
        assert!(matches!(read, Ok(0) | Err(_)), "a half-open handshake got an answer: {read:?}");
    }
    served(real, https(&gateway, "/v1/shelves/1/books/1")).await;
    let health = reqwest::get(format!("{}/healthz", gateway.admin)).await.expect("health");
    assert_eq!(health.status().as_u16(), 200);
    gateway.shutdown().await;
}
