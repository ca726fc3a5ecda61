//! The descriptor registry through the CLI: add/list/remove, versions, replacement with a
//! breaking-change report, rollback, pull by reflection (v1 and a v1alpha-only server), compile
//! errors with file:line, missing imports, conflicts.

use std::net::SocketAddr;

use crate::support::{demo_proto_root, dir_state, run, text, write_files};
use switchyard::demo::{demo_registration, start_demo_backend};
use switchyard::registry::merge_registrations;

#[test]
fn add_list_remove_round_trip() {
    let work = tempfile::tempdir().expect("tempdir");
    let proto = demo_proto_root().join("catalog/v1/catalog.proto");
    let root = demo_proto_root();
    let args =
        ["descriptors", "add", proto.to_str().expect("utf8"), "-I", root.to_str().expect("utf8"), "--dir", "reg"];
    let added = run(&args, work.path());
    assert_eq!(added.status.code(), Some(0), "{}", text(&added.stderr));
    assert!(text(&added.stdout).contains("added catalog.v1 (sha256:"), "{}", text(&added.stdout));
    assert!(work.path().join("reg/catalog.v1.binpb").is_file());

    let again = run(&args, work.path());
    assert_eq!(again.status.code(), Some(0));
    assert!(text(&again.stdout).contains("already registered with the same contents"));

    let listed = run(&["descriptors", "list", "--dir", "reg"], work.path());
    let listing = text(&listed.stdout);
    assert_eq!(listed.status.code(), Some(0));
    for expected in [
        "catalog.v1  sha256:",
        "service catalog.v1.Catalog",
        "GetBook(catalog.v1.GetBookRequest) -> catalog.v1.Book  [unary]  GET /v1/{name=shelves/*/books/*}",
        "WatchBooks(catalog.v1.WatchBooksRequest) -> catalog.v1.BookEvent  [server-streaming]",
        "ImportBooks(catalog.v1.CreateBookRequest) -> catalog.v1.ImportBooksResponse  [client-streaming]",
        "[bidi-streaming]",
        "PATCH /v1/{book.name=shelves/*/books/*} body=book",
    ] {
        assert!(listing.contains(expected), "missing {expected:?} in\n{listing}");
    }

    let removed = run(&["descriptors", "remove", "catalog.v1", "--dir", "reg"], work.path());
    assert_eq!(removed.status.code(), Some(0), "{}", text(&removed.stderr));
    let listed = run(&["descriptors", "list", "--dir", "reg"], work.path());
    assert!(text(&listed.stdout).contains("no registrations"), "{}", text(&listed.stdout));
    let missing = run(&["descriptors", "remove", "catalog.v1", "--dir", "reg"], work.path());
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("no registration named `catalog.v1`"));
}

#[test]
fn replacements_are_versioned_breaking_ones_refused_and_rollback_restores() {
    let work = tempfile::tempdir().expect("tempdir");
    let version = |body: &str| {
        format!(
            "syntax = \"proto3\";\npackage shop;\nservice Shop {{ rpc Get(Item) returns (Item); }}\nmessage Item {{ {body} }}\n"
        )
    };
    let add = |body: &str, extra: &[&str]| {
        write_files(work.path(), &[("p/shop.proto", &version(body))]);
        let mut args = vec!["descriptors", "add", "p/shop.proto", "--dir", "reg"];
        args.extend_from_slice(extra);
        run(&args, work.path())
    };
    let first = add("string name = 1;", &[]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let digest = |out: &std::process::Output| {
        let stdout = text(&out.stdout);
        let start = stdout.find("sha256:").expect("a digest");
        stdout[start..start + 71].to_owned()
    };
    let v1 = digest(&first);
    // A compatible change replaces the registration and says what changed.
    let second = add("string name = 1; int64 price = 2;", &[]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stderr));
    let stdout = text(&second.stdout);
    assert!(stdout.contains("replaced shop with sha256:"), "{stdout}");
    assert!(stdout.contains("compatible: field shop.Item.price (2) added"), "{stdout}");
    let v2 = stdout[stdout.find("sha256:").expect("digest")..][..71].to_owned();
    // A breaking one is refused with the report, and the registry is left as it was.
    let before = dir_state(&work.path().join("reg"));
    let refused = add("string name = 1; string price = 2;", &[]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = text(&refused.stderr);
    assert!(stderr.contains("replacing `shop` would break its clients"), "{stderr}");
    assert!(stderr.contains("breaking: field shop.Item.price: type changed from int64 to string"), "{stderr}");
    assert!(stderr.contains("--allow-breaking"), "{stderr}");
    assert_eq!(dir_state(&work.path().join("reg")), before, "a refused replacement changed the registry");
    let forced = add("string name = 1; string price = 2;", &["--allow-breaking"]);
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced.stderr));
    assert!(text(&forced.stdout).contains("breaking: field shop.Item.price: type changed"), "{}", text(&forced.stdout));

    let listed = text(&run(&["descriptors", "list", "--dir", "reg"], work.path()).stdout);
    assert!(listed.contains("  versions:\n      3  sha256:"), "{listed}");
    assert!(listed.contains(&format!("      2  {v2}")) && listed.contains(&format!("      1  {v1}")), "{listed}");
    assert_eq!(listed.matches("(current)").count(), 1, "{listed}");

    // Rollback restores the version before the current one, and can be undone the same way.
    let rolled = run(&["descriptors", "rollback", "shop", "--dir", "reg"], work.path());
    assert_eq!(rolled.status.code(), Some(0), "{}", text(&rolled.stderr));
    assert!(text(&rolled.stdout).contains(&format!("rolled shop back to {v2}")), "{}", text(&rolled.stdout));
    let current = std::fs::read(work.path().join("reg/shop.binpb")).expect("current");
    let restored = switchyard::registry::Registration::decode("shop", &current).expect("decodes");
    assert_eq!(restored.digest, v2);
    let listed = text(&run(&["descriptors", "list", "--dir", "reg"], work.path()).stdout);
    assert!(listed.contains(&format!("      4  {v2}  ")) && listed.contains("(current)"), "{listed}");
    // A removed registration comes back with rollback.
    assert_eq!(run(&["descriptors", "remove", "shop", "--dir", "reg"], work.path()).status.code(), Some(0));
    let back = run(&["descriptors", "rollback", "shop", "--dir", "reg"], work.path());
    assert_eq!(back.status.code(), Some(0), "{}", text(&back.stderr));
    assert!(text(&back.stdout).contains(&format!("rolled shop back to {v2}")), "{}", text(&back.stdout));
    let none = run(&["descriptors", "rollback", "nothing", "--dir", "reg"], work.path());
    assert_eq!(none.status.code(), Some(1));
    assert!(text(&none.stderr).contains("`nothing` has no earlier version to roll back to"), "{}", text(&none.stderr));
}

#[test]
fn a_registration_without_a_package_needs_a_name() {
    let work = tempfile::tempdir().expect("tempdir");
    write_files(work.path(), &[("p/plain.proto", "syntax = \"proto3\";\nmessage Plain { string a = 1; }\n")]);
    let refused = run(&["descriptors", "add", "p/plain.proto", "--dir", "reg"], work.path());
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused.stderr).contains("pass --name"), "{}", text(&refused.stderr));
    let named = run(&["descriptors", "add", "p/plain.proto", "--name", "plain", "--dir", "reg"], work.path());
    assert_eq!(named.status.code(), Some(0), "{}", text(&named.stderr));
}

#[test]
fn a_syntax_error_names_file_and_line() {
    let work = tempfile::tempdir().expect("tempdir");
    let source = "syntax = \"proto3\";\npackage shop.v1;\n\nmessage Item {\n  string name = 1\n  int32 count = 2;\n}\n";
    write_files(work.path(), &[("protos/shop.proto", source)]);
    let out = run(&["descriptors", "add", "protos/shop.proto", "--dir", "reg"], work.path());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("protos/shop.proto:6:"), "file:line missing: {stderr}");
    assert!(!work.path().join("reg").join("shop.v1.binpb").exists());
}

#[test]
fn an_import_that_cannot_be_found_is_named_with_its_line() {
    let work = tempfile::tempdir().expect("tempdir");
    let source = "syntax = \"proto3\";\npackage shop.v1;\nimport \"google/api/annotations.proto\";\nimport \"common/money.proto\";\nmessage Item { string name = 1; }\n";
    write_files(work.path(), &[("protos/shop.proto", source)]);
    let out = run(&["descriptors", "add", "protos/shop.proto", "-I", "protos", "--dir", "reg"], work.path());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("protos/shop.proto:4:"), "{stderr}");
    assert!(stderr.contains("common/money.proto") && stderr.contains("not found"), "{stderr}");
}

#[test]
fn a_conflicting_registration_leaves_the_registry_unchanged() {
    let work = tempfile::tempdir().expect("tempdir");
    write_files(
        work.path(),
        &[
            ("a/shop/item.proto", "syntax = \"proto3\";\npackage shop;\nmessage Item { string name = 1; }\n"),
            ("b/shop/other.proto", "syntax = \"proto3\";\npackage shop;\nmessage Item { int64 id = 1; }\n"),
            ("c/shop/item.proto", "syntax = \"proto3\";\npackage shop;\nmessage Item { string title = 1; }\n"),
        ],
    );
    let first =
        run(&["descriptors", "add", "a/shop/item.proto", "-I", "a", "--name", "first", "--dir", "reg"], work.path());
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let before = dir_state(&work.path().join("reg"));

    let clash =
        run(&["descriptors", "add", "b/shop/other.proto", "-I", "b", "--name", "second", "--dir", "reg"], work.path());
    let stderr = text(&clash.stderr);
    assert_eq!(clash.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("`shop.Item`") && stderr.contains("`first`") && stderr.contains("`second`"), "{stderr}");
    assert!(stderr.contains("shop/item.proto") && stderr.contains("shop/other.proto"), "{stderr}");

    let same_file =
        run(&["descriptors", "add", "c/shop/item.proto", "-I", "c", "--name", "third", "--dir", "reg"], work.path());
    let stderr = text(&same_file.stderr);
    assert_eq!(same_file.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("file `shop/item.proto` differs"), "{stderr}");

    let taken =
        run(&["descriptors", "add", "c/shop/item.proto", "-I", "c", "--name", "first", "--dir", "reg"], work.path());
    assert_eq!(taken.status.code(), Some(1));
    let stderr = text(&taken.stderr);
    assert!(stderr.contains("replacing `first` would break its clients"), "{stderr}");
    assert!(stderr.contains("breaking: field shop.Item.name (1) renamed to title"), "{stderr}");

    assert_eq!(dir_state(&work.path().join("reg")), before, "the registry changed");
}

#[test]
fn identical_shared_imports_are_allowed_and_removal_keeps_dependents_whole() {
    let work = tempfile::tempdir().expect("tempdir");
    let money = "syntax = \"proto3\";\npackage common;\nmessage Money { int64 units = 1; string currency = 2; }\n";
    write_files(
        work.path(),
        &[
            ("p/common/money.proto", money),
            (
                "p/shop/cart.proto",
                "syntax = \"proto3\";\npackage shop;\nimport \"common/money.proto\";\nmessage Cart { common.Money total = 1; }\n",
            ),
            (
                "p/bank/account.proto",
                "syntax = \"proto3\";\npackage bank;\nimport \"common/money.proto\";\nmessage Account { common.Money balance = 1; }\n",
            ),
        ],
    );
    for file in ["p/shop/cart.proto", "p/bank/account.proto"] {
        let out = run(&["descriptors", "add", file, "-I", "p", "--dir", "reg"], work.path());
        assert_eq!(out.status.code(), Some(0), "{file}: {}", text(&out.stderr));
    }
    let removed = run(&["descriptors", "remove", "shop", "--dir", "reg"], work.path());
    assert_eq!(removed.status.code(), Some(0), "{}", text(&removed.stderr));
    let listed = run(&["descriptors", "list", "--dir", "reg"], work.path());
    assert!(text(&listed.stdout).contains("bank  sha256:"), "{}", text(&listed.stdout));
}

#[test]
fn binary_descriptor_sets_are_accepted_and_must_carry_their_imports() {
    let work = tempfile::tempdir().expect("tempdir");
    let registration = demo_registration().expect("demo compiles");
    std::fs::write(work.path().join("catalog.binpb"), registration.encode()).expect("write");
    let out = run(&["descriptors", "add", "catalog.binpb", "--dir", "reg"], work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&registration.digest), "same digest as compiled: {}", text(&out.stdout));

    write_files(work.path(), &[("garbage.pb", "not a descriptor set")]);
    let bad = run(&["descriptors", "add", "garbage.pb", "--dir", "reg2"], work.path());
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("garbage.pb"), "{}", text(&bad.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_from_a_reflection_v1_server() {
    let backend = start_demo_backend(SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("demo backend");
    let work = tempfile::tempdir().expect("tempdir");
    let url = backend.url();
    let path = work.path().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        run(&["descriptors", "pull", &url, "--service", "catalog.v1.Catalog", "--dir", "reg"], &path)
    })
    .await
    .expect("join");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let expected = demo_registration().expect("demo").digest;
    assert!(text(&out.stdout).contains(&format!("added catalog.v1 ({expected})")), "{}", text(&out.stdout));
    // Without --service, every service the backend serves (both catalog versions), named by
    // the first one's package.
    let (url, path) = (backend.url(), work.path().to_owned());
    let out = tokio::task::spawn_blocking(move || run(&["descriptors", "pull", &url, "--dir", "reg2"], &path))
        .await
        .expect("join");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("added catalog.v1 (") && stdout.contains("services: catalog.v1.Catalog, catalog.v2.Catalog"),
        "{stdout}"
    );
    backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_falls_back_to_v1alpha_and_fetches_transitive_imports() {
    let registry = merge_registrations(vec![demo_registration().expect("demo")]).expect("merges");
    let encoded = registry.pool.encode_to_vec();
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(&encoded)
        .build_v1alpha()
        .expect("v1alpha service");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(reflection)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let work = tempfile::tempdir().expect("tempdir");
    let path = work.path().to_owned();
    let url = format!("http://{addr}");
    let out = tokio::task::spawn_blocking(move || {
        run(&["descriptors", "pull", &url, "--service", "catalog.v1.Catalog", "--dir", "reg"], &path)
    })
    .await
    .expect("join");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let expected = demo_registration().expect("demo").digest;
    assert!(text(&out.stdout).contains(&expected), "{}", text(&out.stdout));

    let path = work.path().to_owned();
    let url = format!("http://{addr}");
    let unknown = tokio::task::spawn_blocking(move || {
        run(&["descriptors", "pull", &url, "--service", "nope.Nope", "--dir", "reg2"], &path)
    })
    .await
    .expect("join");
    assert_eq!(unknown.status.code(), Some(3));
    assert!(text(&unknown.stderr).contains("`nope.Nope` is not served"), "{}", text(&unknown.stderr));
    server.abort();
}

#[test]
fn pull_from_nowhere_is_a_runtime_failure() {
    let work = tempfile::tempdir().expect("tempdir");
    // Bound but not listening: connections are refused, and the port is not handed to another
    // test's server while the socket lives.
    let held = tokio::net::TcpSocket::new_v4().expect("socket");
    held.bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let addr = held.local_addr().expect("addr");
    let out = run(&["descriptors", "pull", &format!("http://{addr}"), "--dir", "reg"], work.path());
    drop(held);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("cannot connect"), "{}", text(&out.stderr));
}

/// Runs the CLI off the test's runtime (the gateway it talks to runs on that runtime).
async fn run_cli(args: Vec<String>, cwd: std::path::PathBuf) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&args, &cwd)
    })
    .await
    .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn descriptors_commands_work_against_a_running_gateway() {
    let work = tempfile::tempdir().expect("tempdir");
    let descriptors = work.path().join("descriptors");
    switchyard::registry::RegistryDir::new(&descriptors).add(&demo_registration().expect("demo"), false).expect("add");
    let backend = start_demo_backend(SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("demo backend");
    let sources = switchyard::snapshot::SnapshotSources {
        descriptors: Some(descriptors.clone()),
        schemas: Some(work.path().join("no-schemas")),
        backends: vec![switchyard::snapshot::BackendFlag { name: "catalog".into(), urls: vec![backend.url()] }],
        ..Default::default()
    };
    let gateway = crate::support::TestGateway::from_sources(sources, Some(backend)).await;
    let root = demo_proto_root();
    let cli = |args: &[&str]| {
        let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        all.extend(["--gateway".to_owned(), gateway.admin.clone()]);
        run_cli(all, work.path().to_owned())
    };
    let v2 = root.join("catalog/v2/catalog.proto");
    let (v2, include) = (v2.to_str().expect("utf8"), root.to_str().expect("utf8"));
    assert_eq!(get_status(&gateway, "/v2/shelves/1/books/1").await, 404, "not registered yet");

    // Added through the gateway: served at once, and written through to its directory.
    let added = cli(&["descriptors", "add", v2, "-I", include]).await;
    assert_eq!(added.status.code(), Some(0), "{}", text(&added.stderr));
    let stdout = text(&added.stdout);
    assert!(stdout.contains("added catalog.v2 (sha256:") && stdout.contains("serving generation 2"), "{stdout}");
    assert_eq!(get_status(&gateway, "/v2/shelves/1/books/1").await, 200);
    let answer = gateway.graphql("{ v2GetBook(name: \"shelves/1/books/1\") { authors } }").await;
    assert_eq!(answer["data"]["v2GetBook"]["authors"][0], "Ursula K. Le Guin", "{answer}");
    assert!(descriptors.join("catalog.v2.binpb").is_file());
    let listed = cli(&["descriptors", "list"]).await;
    let listing = text(&listed.stdout);
    assert!(listing.contains("service catalog.v2.Catalog") && listing.contains("(current)"), "{listing}");

    // A breaking replacement is refused with its report; allowed, it is served.
    let changed = work.path().join("changed");
    let edited = std::fs::read_to_string(root.join("catalog/v2/catalog.proto"))
        .expect("read")
        .replace("  repeated string tags = 8;\n", "");
    write_files(&changed, &[("catalog/v2/catalog.proto", &edited)]);
    let edited_path = changed.join("catalog/v2/catalog.proto");
    let (edited_path, changed_root) = (edited_path.to_str().expect("utf8"), changed.to_str().expect("utf8"));
    let refused = cli(&["descriptors", "add", edited_path, "-I", changed_root]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("breaking: field catalog.v2.Book.tags (8) removed"),
        "{}",
        text(&refused.stderr)
    );
    let forced = cli(&["descriptors", "add", edited_path, "-I", changed_root, "--allow-breaking"]).await;
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced.stderr));
    assert!(text(&forced.stdout).contains("replaced catalog.v2 with sha256:"), "{}", text(&forced.stdout));
    let (_, book, _) = crate::support::get_with(&gateway, "/v2/shelves/1/books/1", &[]).await;
    assert!(book.get("tags").is_none(), "the new version serves: {book}");
    let rolled = cli(&["descriptors", "rollback", "catalog.v2"]).await;
    assert_eq!(rolled.status.code(), Some(0), "{}", text(&rolled.stderr));
    assert!(
        text(&rolled.stdout).contains("compatible: field catalog.v2.Book.tags (8) added"),
        "{}",
        text(&rolled.stdout)
    );
    let (_, book, _) = crate::support::get_with(&gateway, "/v2/shelves/1/books/1", &[]).await;
    assert_eq!(book["tags"], serde_json::json!(["classic"]), "the restored version serves: {book}");

    // A registration the gateway cannot serve (its GraphQL root fields collide) writes nothing.
    let clash = "syntax = \"proto3\";\npackage catalog.v3;\nservice Catalog { rpc GetBook(Req) returns (Req); }\nmessage Req { string name = 1; }\n";
    write_files(work.path(), &[("v3/catalog.proto", clash)]);
    let before = dir_state(&descriptors);
    let generation = gateway.admin_json("/readyz").await["generation"].clone();
    let unserved = cli(&["descriptors", "add", "v3/catalog.proto"]).await;
    assert_eq!(unserved.status.code(), Some(1));
    let stderr = text(&unserved.stderr);
    assert!(stderr.contains("the gateway would not serve the change, so nothing was written"), "{stderr}");
    assert!(stderr.contains("want this root field"), "{stderr}");
    assert_eq!(dir_state(&descriptors), before, "a refused change was written");
    assert_eq!(gateway.admin_json("/readyz").await["generation"], generation, "a refused change was served");

    let removed = cli(&["descriptors", "remove", "catalog.v2"]).await;
    assert_eq!(removed.status.code(), Some(0), "{}", text(&removed.stderr));
    assert_eq!(get_status(&gateway, "/v2/shelves/1/books/1").await, 404);
    assert!(!descriptors.join("catalog.v2.binpb").exists());
    let unreachable = run_cli(
        ["descriptors", "list", "--gateway", "http://127.0.0.1:9"].map(str::to_owned).to_vec(),
        work.path().to_owned(),
    )
    .await;
    assert_eq!(unreachable.status.code(), Some(3), "{}", text(&unreachable.stderr));
    gateway.shutdown().await;
}

async fn get_status(gateway: &crate::support::TestGateway, path: &str) -> u16 {
    gateway.client.get(format!("{}{path}", gateway.base)).send().await.expect("send").status().as_u16()
}

#[tokio::test]
async fn a_gateway_without_a_descriptor_directory_refuses_registry_changes() {
    let gateway = crate::support::TestGateway::demo().await;
    let response =
        gateway.client.delete(format!("{}/admin/descriptors/catalog.v1", gateway.admin)).send().await.expect("send");
    assert_eq!(response.status().as_u16(), 400);
    let body: serde_json::Value = response.json().await.expect("json");
    assert!(body["message"].as_str().unwrap_or_default().contains("no descriptor directory"), "{body}");
    let listed = gateway.admin_json("/admin/descriptors").await;
    assert_eq!(
        (&listed["directory"], &listed["registrations"][0]["name"]),
        (&serde_json::Value::Null, &serde_json::json!("catalog.v1"))
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn bad_registry_requests_to_a_gateway_are_refused_naming_what_is_wrong() {
    let work = tempfile::tempdir().expect("tempdir");
    let descriptors = work.path().join("descriptors");
    switchyard::registry::RegistryDir::new(&descriptors).add(&demo_registration().expect("demo"), false).expect("add");
    let sources = switchyard::snapshot::SnapshotSources {
        descriptors: Some(descriptors.clone()),
        schemas: Some(work.path().join("no-schemas")),
        ..Default::default()
    };
    let gateway = crate::support::TestGateway::from_sources(sources, None).await;
    let before = dir_state(&descriptors);
    let url = format!("{}/admin/descriptors", gateway.admin);
    let encoded = demo_registration().expect("demo").encode();
    // (query, body, status, message fragment)
    let cases: [(&str, Vec<u8>, u16, &str); 5] = [
        ("?name=shop", b"not a descriptor set".to_vec(), 400, "not a FileDescriptorSet"),
        ("", encoded.clone(), 400, "name"),
        ("?name=bad%2Fname", encoded.clone(), 400, "not a valid registration name"),
        ("?name=shop&allow_breaking=perhaps", encoded.clone(), 400, "allow_breaking"),
        ("?name=catalog.v1&extra=1", encoded.clone(), 400, "extra"),
    ];
    for (query, body, status, message) in cases {
        let response = gateway.client.post(format!("{url}{query}")).body(body).send().await.expect("send");
        assert_eq!(response.status().as_u16(), status, "{query}");
        let text = response.text().await.expect("text");
        assert!(text.contains(message), "{query}: {text}");
    }
    let missing = gateway.client.delete(format!("{url}/nothing")).send().await.expect("send");
    assert_eq!(missing.status().as_u16(), 404);
    assert!(missing.text().await.expect("text").contains("no registration named `nothing`"));
    assert_eq!(dir_state(&descriptors), before, "a refused request changed the registry");
    gateway.shutdown().await;
}
