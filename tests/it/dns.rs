//! DNS re-resolution against a real DNS server on loopback: a small authoritative responder
//! (hickory-proto messages over UDP) whose answer for `catalog.test` the test changes, as a
//! Kubernetes headless service's answer changes when pods come and go. The replicas listen on
//! 127.0.0.1, 127.0.0.2 and 127.0.0.3 with one port, as pods of one service do.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};

use crate::support::{HANG, TestGateway};

/// What the test DNS server answers for `catalog.test`: addresses, or SERVFAIL when None.
type Answer = Arc<Mutex<Option<Vec<Ipv4Addr>>>>;

/// Serves A records for `catalog.test` from `answer` on an ephemeral loopback UDP port.
async fn dns_server(answer: Answer) -> SocketAddr {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 4096];
        while let Ok((n, peer)) = socket.recv_from(&mut buffer).await {
            let Ok(query) = Message::from_vec(&buffer[..n]) else { continue };
            let mut response = Message::new();
            response
                .set_id(query.id())
                .set_message_type(MessageType::Response)
                .set_op_code(query.op_code())
                .set_recursion_desired(query.recursion_desired())
                .set_recursion_available(true)
                .set_authoritative(true)
                .add_queries(query.queries().to_vec());
            let addresses = answer.lock().expect("answer").clone();
            match addresses {
                None => {
                    response.set_response_code(ResponseCode::ServFail);
                }
                Some(addresses) => {
                    for question in query.queries() {
                        let asks_catalog = question.name().to_ascii().trim_end_matches('.') == "catalog.test";
                        if asks_catalog && question.query_type() == RecordType::A {
                            for ip in &addresses {
                                response.add_answer(Record::from_rdata(question.name().clone(), 1, RData::A(A(*ip))));
                            }
                        } else if !asks_catalog {
                            response.set_response_code(ResponseCode::NXDomain);
                        }
                    }
                }
            }
            if let Ok(bytes) = response.to_vec() {
                let _ = socket.send_to(&bytes, peer).await;
            }
        }
    });
    addr
}

/// The admin API's endpoint URLs and call counts for the catalog cluster.
async fn endpoints(gateway: &TestGateway) -> Vec<(String, u64)> {
    let admin: serde_json::Value = gateway
        .client
        .get(format!("{}/admin/clusters", gateway.admin))
        .send()
        .await
        .expect("admin")
        .json()
        .await
        .expect("json");
    let cluster =
        admin["clusters"].as_array().and_then(|c| c.iter().find(|c| c["name"] == "catalog")).expect("catalog");
    cluster["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .map(|e| (e["url"].as_str().unwrap_or_default().to_owned(), e["calls"].as_u64().unwrap_or(0)))
        .collect()
}

/// Waits until the cluster's endpoints are exactly `urls`.
async fn wait_for_endpoints(gateway: &TestGateway, urls: &[String]) {
    let deadline = tokio::time::Instant::now() + HANG;
    loop {
        let now: Vec<String> = endpoints(gateway).await.into_iter().map(|(url, _)| url).collect();
        if now == urls {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "endpoints stayed {now:?}, want {urls:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn endpoint_names_are_re_resolved_and_the_pool_follows_without_dropping_calls() {
    // Three replicas on one port of three loopback addresses.
    let first = switchyard::demo::start_demo_backend("127.0.0.1:0".parse().expect("addr")).await.expect("backend");
    let port = first.addr.port();
    let mut replicas = vec![first];
    for ip in ["127.0.0.2", "127.0.0.3"] {
        let addr = SocketAddr::new(ip.parse().expect("ip"), port);
        replicas.push(switchyard::demo::start_demo_backend(addr).await.expect("backend on the same port"));
    }
    let url = |i: usize| format!("http://127.0.0.{}:{port}", i + 1);
    let answer: Answer = Arc::new(Mutex::new(Some(vec![Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(127, 0, 0, 2)])));
    let dns = dns_server(answer.clone()).await;
    let config = format!(
        "[backends.catalog]\nendpoints = [\"http://catalog.test:{port}\"]\nservices = [\"catalog.v1\"]\ncoalesce = false\n\
         dns = {{ refresh = \"50ms\", nameservers = [\"{dns}\"] }}\n"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("switchyard.toml");
    std::fs::write(&file, config).expect("write config");
    let gateway = TestGateway::start_with_config(None, file).await;

    // The name's two addresses are the cluster's two endpoints.
    wait_for_endpoints(&gateway, &[url(0), url(1)]).await;
    let calls = (0..20).map(|_| gateway.call("GET", "/v1/shelves/1/books/1", ""));
    for (status, body, _) in join_all(calls).await {
        assert_eq!(status, 200, "{body}");
    }
    let counts: Vec<usize> = replicas.iter().map(|r| r.calls("GetBook")).collect();
    assert_eq!(counts, [10, 10, 0]);

    // Pods come and go while calls are in flight on the one that leaves: those calls finish.
    replicas[0].set_latency(Duration::from_millis(300));
    let slow = join_all((0..4).map(|_| gateway.call("GET", "/v1/shelves/1/books/1", "")));
    let change = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        *answer.lock().expect("answer") = Some(vec![Ipv4Addr::new(127, 0, 0, 3), Ipv4Addr::new(127, 0, 0, 2)]);
        wait_for_endpoints(&gateway, &[url(1), url(2)]).await;
    };
    let (answers, ()) = tokio::join!(slow, change);
    for (status, body, _) in answers {
        assert_eq!(status, 200, "a call in flight on the leaving endpoint: {body}");
    }
    // The endpoint in both answers kept its state (its call count), the new one starts at 0.
    let kept = endpoints(&gateway).await;
    assert!(kept[0].1 >= 10 && kept[1].1 == 0, "{kept:?}");
    let before = replicas[0].calls("GetBook");
    let calls = (0..20).map(|_| gateway.call("GET", "/v1/shelves/1/books/1", ""));
    for (status, body, _) in join_all(calls).await {
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(replicas[0].calls("GetBook"), before, "the address that left gets no new calls");
    assert!(replicas[2].calls("GetBook") >= 9, "the new address takes its share");

    // The DNS server fails: the last answer stays in use.
    *answer.lock().expect("answer") = None;
    tokio::time::sleep(Duration::from_millis(200)).await;
    wait_for_endpoints(&gateway, &[url(1), url(2)]).await;
    let (status, body, _) = gateway.call("GET", "/v1/shelves/1/books/1", "").await;
    assert_eq!(status, 200, "{body}");

    gateway.shutdown().await;
    for replica in replicas {
        replica.shutdown().await;
    }
}
