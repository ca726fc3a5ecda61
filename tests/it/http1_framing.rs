//! HTTP/1 framing and request smuggling, byte for byte on a raw socket: every ambiguous framing
//! is refused and the connection closed (Transfer-Encoding with Content-Length is read by
//! Transfer-Encoding alone, then closed), a request smuggled inside another's body never
//! reaches a backend, and header names with underscores cannot
//! pass for the identity headers the gateway sets.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{HANG, TestGateway};

/// Writes `raw`, then reads until the server closes or stays quiet for a while. Returns the
/// status codes of the responses, in order, and whether the server closed.
async fn exchange(base: &str, raw: &[u8]) -> (Vec<u16>, bool, String) {
    let mut stream = tokio::net::TcpStream::connect(base.trim_start_matches("http://")).await.expect("connect");
    stream.write_all(raw).await.expect("write");
    let mut seen = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let closed = loop {
        match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => seen.extend_from_slice(&chunk[..n]),
            Err(_) => break false,
        }
    };
    let text = String::from_utf8_lossy(&seen).into_owned();
    let statuses = text
        .match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| text.get(at + 9..at + 12))
        .filter_map(|code| code.parse().ok())
        .collect();
    (statuses, closed, text)
}

const BOOK: &str = "GET /v1/shelves/1/books/1 HTTP/1.1\r\nHost: x\r\n\r\n";

#[tokio::test]
async fn ambiguous_framing_is_refused_and_smuggled_requests_never_reach_a_backend() {
    let gateway = TestGateway::demo().await;
    let graphql = r#"{"query":"{ __typename }"}"#;
    let smuggled = "GET /v1/shelves/1/books/2 HTTP/1.1\r\nHost: x\r\n\r\n";
    // (what, bytes, statuses, closed, GetBook calls, a phrase the first answer must hold)
    type Row = (&'static str, String, Vec<u16>, bool, usize, &'static str);
    let table: Vec<Row> = vec![
        ("a plain GET", BOOK.into(), vec![200], false, 1, "Left Hand"),
        (
            // RFC 9112 section 6.3: read by Transfer-Encoding alone, then the connection closes;
            // what follows the chunks is never read as a request.
            "Transfer-Encoding with Content-Length, a request smuggled after the chunks",
            format!(
                "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4\r\n\
                 Transfer-Encoding: chunked\r\n\r\n1a\r\n{graphql}\r\n0\r\n\r\n{smuggled}"
            ),
            vec![200],
            true,
            0,
            "__typename",
        ),
        (
            "Transfer-Encoding gzip, chunked",
            "POST /graphql HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n".into(),
            vec![501],
            true,
            0,
            "Transfer-Encoding `gzip, chunked` is not supported",
        ),
        (
            "an unknown transfer coding",
            format!("POST /graphql HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n{smuggled}"),
            vec![400],
            true,
            0,
            "",
        ),
        (
            "two Content-Length values",
            format!(
                "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 26\r\n\
                 Content-Length: 0\r\n\r\n{graphql}{smuggled}"
            ),
            vec![400],
            true,
            0,
            "",
        ),
        (
            "obs-fold",
            format!("GET /v1/shelves/1/books/1 HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n{smuggled}"),
            vec![400],
            true,
            0,
            "",
        ),
        (
            "a space before the colon",
            "GET /v1/shelves/1/books/1 HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\n".into(),
            vec![400],
            true,
            0,
            "",
        ),
        (
            "a signed length",
            "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Length: +26\r\n\r\n".into(),
            vec![400],
            true,
            0,
            "",
        ),
        (
            "no Host",
            "GET /v1/shelves/1/books/1 HTTP/1.1\r\n\r\n".into(),
            vec![400],
            false,
            0,
            "the Host header is missing",
        ),
        (
            "two Hosts",
            "GET /v1/shelves/1/books/1 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into(),
            vec![400],
            false,
            0,
            "2 Host headers",
        ),
        (
            "a header name with an underscore",
            "GET /v1/shelves/1/books/1 HTTP/1.1\r\nHost: x\r\nX_User_Id: admin\r\n\r\n".into(),
            vec![400],
            false,
            0,
            "header name `x_user_id` contains an underscore",
        ),
        (
            "a request inside a GET's body, by Content-Length",
            format!(
                "GET /v1/shelves/1/books/1 HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{smuggled}",
                smuggled.len()
            ),
            vec![200],
            false,
            1,
            "Left Hand",
        ),
        (
            "bare LF line endings with a request inside the body",
            format!("GET /v1/shelves/1/books/1 HTTP/1.1\nHost: x\nContent-Length: {}\n\n{smuggled}", smuggled.len()),
            vec![200],
            false,
            1,
            "Left Hand",
        ),
        (
            "a chunk extension ended by a bare LF",
            format!(
                "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
                 1a;x\n{graphql}\r\n0\r\n\r\n"
            ),
            vec![400],
            true,
            0,
            "",
        ),
        ("two pipelined requests", format!("{BOOK}{BOOK}"), vec![200, 200], false, 2, "Left Hand"),
    ];
    let mut failures = Vec::new();
    for (what, raw, statuses, closed, calls, phrase) in table {
        let before = gateway.backend().calls("GetBook");
        let (seen, was_closed, text) =
            tokio::time::timeout(HANG, exchange(&gateway.base, raw.as_bytes())).await.expect("answered");
        let made = gateway.backend().calls("GetBook") - before;
        if seen != statuses || was_closed != closed || made != calls || !text.contains(phrase) {
            failures.push(format!(
                "{what}: statuses {seen:?} (want {statuses:?}), closed {was_closed} (want {closed}), \
                 calls {made} (want {calls}):\n{text}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    gateway.shutdown().await;
}

#[tokio::test]
async fn hop_by_hop_headers_cannot_remove_what_the_gateway_sets_and_underscored_names_follow_the_setting() {
    // `Connection` naming the request id: it still reaches the backend, because the gateway sets
    // the request id itself and only strips the fixed hop-by-hop set.
    let gateway = TestGateway::demo().await;
    let raw =
        "GET /v1/shelves/1/books/1 HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, x-request-id, traceparent\r\n\r\n";
    let (statuses, _, text) = exchange(&gateway.base, raw.as_bytes()).await;
    assert_eq!(statuses, vec![200], "{text}");
    let seen = gateway.backend().last_headers("GetBook").expect("the backend was called");
    assert!(seen.get("x-request-id").is_some() && seen.get("traceparent").is_some(), "{seen:?}");
    // gRPC passes metadata through: an underscored key is refused by default, dropped or passed
    // as configured.
    let refused = crate::support::grpc_get_book(&gateway, &[("x_user_id", "admin".into())]).await;
    let status = refused.expect_err("refused");
    assert!(status.message().contains("`x_user_id` contains an underscore"), "{status:?}");
    gateway.shutdown().await;
    for (setting, passed) in [("drop", false), ("allow", true)] {
        let (gateway, _dir) =
            TestGateway::demo_with_config(&format!("[listener]\nheaders_with_underscores = \"{setting}\"\n")).await;
        crate::support::grpc_get_book(&gateway, &[("x_user_id", "admin".into())]).await.expect("served");
        let seen = gateway.backend().last_headers("GetBook").expect("the backend was called");
        assert_eq!(seen.contains_key("x_user_id"), passed, "{setting}: {seen:?}");
        gateway.shutdown().await;
    }
}
