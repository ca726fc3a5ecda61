//! The GraphQL schema generated from descriptors: the demo's SDL as a snapshot, and the rules
//! for kinds, names, prefixes, overrides and collisions.

use crate::support::{run, text, write_files};

fn demo_sdl() -> String {
    let registration = switchyard::demo::demo_registration().expect("demo");
    let registry = switchyard::registry::merge_registrations(vec![registration]).expect("merges");
    let services = vec!["catalog.v1.Catalog".to_owned()];
    let (schema, problems) =
        switchyard::schema::generate_schema(&registry.pool, &services, &switchyard::config::GraphqlConfig::default());
    assert!(problems.is_empty(), "{problems:?}");
    schema.to_sdl()
}

#[test]
fn the_demo_schema() {
    let sdl = demo_sdl();
    async_graphql_parser::parse_schema(&sdl).expect("the SDL parses");
    insta::assert_snapshot!("demo_schema", sdl);
}

/// The demo as `switchyard demo` serves it: the protos plus schemas/demo/authors.graphql.
#[test]
fn the_stitched_demo_schema() {
    let sources = switchyard::snapshot::SnapshotSources {
        embedded: vec![switchyard::demo::demo_registration().expect("demo")],
        embedded_schemas: switchyard::demo::demo_schemas(),
        no_descriptor_dir: true,
        schemas: Some("/nonexistent".into()),
        ..Default::default()
    };
    let snapshot = switchyard::snapshot::build_snapshot(&sources, 1).expect("the demo builds");
    let sdl = snapshot.graphql.to_sdl();
    async_graphql_parser::parse_schema(&sdl).expect("the SDL parses");
    insta::assert_snapshot!("stitched_demo_schema", sdl);
}

fn registry_with(work: &std::path::Path, files: &[(&str, &str)]) {
    write_files(work, files);
    for (path, _) in files {
        let out = run(&["descriptors", "add", path, "-I", "p"], work);
        assert_eq!(out.status.code(), Some(0), "{path}: {}", text(&out.stderr));
    }
}

const V1: &str = "syntax = \"proto3\";\npackage shop.v1;\n\
    message Item { string id = 1; }\nmessage GetItemRequest { string id = 1; }\n\
    message Order { string id = 1; }\nmessage PlaceOrderRequest { repeated Item items = 1; }\n\
    service Shop {\n  rpc GetItem(GetItemRequest) returns (Item);\n  rpc PlaceOrder(PlaceOrderRequest) returns (Order);\n\
      rpc Upload(stream Item) returns (Order);\n  rpc Chat(stream Item) returns (stream Item);\n}\n";
const V2: &str = "syntax = \"proto3\";\npackage shop.v2;\n\
    message Item { string id = 1; string name = 2; }\nmessage GetItemRequest { string id = 1; }\n\
    service Shop {\n  rpc GetItem(GetItemRequest) returns (Item);\n}\n";

#[test]
fn collisions_are_check_errors_and_a_prefix_resolves_them() {
    let work = tempfile::tempdir().expect("tempdir");
    registry_with(work.path(), &[("p/shop/v1/shop.proto", V1), ("p/shop/v2/shop.proto", V2)]);
    let out = run(&["check"], work.path());
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("graphql Query.getItem: both shop.v1.Shop.GetItem and shop.v2.Shop.GetItem"), "{stdout}");
    assert!(stdout.contains("prefix"), "the error suggests the prefix option: {stdout}");

    write_files(work.path(), &[("prefixed.toml", "[graphql.services.\"shop.v2.Shop\"]\nprefix = \"v2\"\n")]);
    let out = run(&["schema", "--config", "prefixed.toml"], work.path());
    let sdl = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(sdl.contains("  getItem(id: String): Item\n"), "{sdl}");
    assert!(sdl.contains("  v2GetItem(id: String): V2Item\n"), "{sdl}");
    assert!(sdl.contains("type V2Item {\n  id: String!\n  name: String!\n}"), "{sdl}");
    assert!(
        !sdl.contains("upload") && !sdl.contains("chat"),
        "client-streaming and bidi methods are not in GraphQL: {sdl}"
    );
    assert!(sdl.contains("  placeOrder(items: [ItemInput!]): Order\n"), "PlaceOrder is a mutation: {sdl}");
}

#[test]
fn methods_can_be_renamed_reclassified_and_hidden() {
    let work = tempfile::tempdir().expect("tempdir");
    let annotated = "syntax = \"proto3\";\npackage lib.v1;\nimport \"switchyard/options.proto\";\n\
        message Req { string id = 1; }\nmessage Res { string id = 1; }\n\
        service Lib {\n  rpc Checkout(Req) returns (Res) { option (switchyard.v1.method) = { graphql_kind: QUERY graphql_name: \"checkoutPreview\" }; }\n\
          rpc Secret(Req) returns (Res) { option (switchyard.v1.method).graphql_kind = HIDDEN; }\n\
          rpc Search(Req) returns (Res) { option idempotency_level = IDEMPOTENT; }\n\
          rpc Peek(Req) returns (Res) { option idempotency_level = NO_SIDE_EFFECTS; }\n}\n";
    registry_with(work.path(), &[("p/lib/v1/lib.proto", annotated)]);
    let out = run(&["schema"], work.path());
    let sdl = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let query = sdl.split("type Query {").nth(1).and_then(|s| s.split('}').next()).unwrap_or_default();
    assert!(query.contains("checkoutPreview(") && query.contains("search(") && query.contains("peek("), "{sdl}");
    assert!(!sdl.contains("secret"), "{sdl}");

    write_files(
        work.path(),
        &[(
            "override.toml",
            "[graphql.methods.\"lib.v1.Lib.Search\"]\nkind = \"mutation\"\nname = \"runSearch\"\n[graphql.methods.\"lib.v1.Lib.Peek\"]\nhidden = true\n",
        )],
    );
    let out = run(&["schema", "--config", "override.toml"], work.path());
    let sdl = text(&out.stdout);
    let mutation = sdl.split("type Mutation {").nth(1).and_then(|s| s.split('}').next()).unwrap_or_default();
    assert!(mutation.contains("runSearch("), "{sdl}");
    assert!(!sdl.contains("peek"), "{sdl}");
}

#[test]
fn the_plan_command_prints_the_calls_and_refuses_bad_documents() {
    let work = tempfile::tempdir().expect("tempdir");
    crate::support::register_demo_protos(work.path());
    let query = r#"mutation { a: createBook(parent: "shelves/1", book: {title: "x"}) { name } deleteBook(name: "shelves/1/books/a") }"#;
    let out = run(&["plan", query, "--backend", "catalog.v1=http://127.0.0.1:1"], work.path());
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        stdout,
        "Plan (serial) {\n  [0] catalog.v1.Catalog.CreateBook via catalog.v1 as a { name }\n  [1] catalog.v1.Catalog.DeleteBook via catalog.v1 as deleteBook\n}\n"
    );
    let out = run(&["plan", "{ nope }", "--backend", "catalog.v1=http://127.0.0.1:1"], work.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("Cannot query field \"nope\" on type \"Query\"."), "{}", text(&out.stderr));
}

/// Every problem in a schema file is refused with its file and line, and names what is wrong.
#[test]
fn schema_file_problems_name_file_line_and_cause() {
    const SOURCE: &str = "extend schema @source(name: \"s\", kind: REST)\n";
    let table: &[(&str, &str)] = &[
        (
            "extend type Query { a: String @rest(source: \"nope\", path: \"/a\") }",
            "bad.graphql:2: Query.a: unknown source `nope`",
        ),
        ("type A { b: Missing }", "bad.graphql:2: A.b: unknown type `Missing`"),
        (
            "extend type Query {\n  a(id: ID): String @rest(source: \"s\", path: \"/a/{args.x}\")\n}",
            "bad.graphql:3: Query.a: {args.x}: the field has no argument `x`",
        ),
        (
            "extend type Book { w: String @rest(source: \"s\", path: \"/{parent.nope}\") }",
            "bad.graphql:2: Book.w: {parent.nope}: Book has no field `nope`",
        ),
        ("extend type Book { w: String @rest(source: \"s\", path: \"/{parent.labels}\") }", "`labels` is an object"),
        (
            "extend type Book { w: String @rest(source: \"s\", path: \"/{parent.writer2}\") writer2: String @rest(source: \"s\", path: \"/x\") }",
            "`writer2` is itself a stitched field",
        ),
        (
            "extend type Nope { a: String @rest(source: \"s\", path: \"/a\") }",
            "bad.graphql:2: extend type Nope: there is no object type Nope to extend",
        ),
        ("extend type Book { x: String }", "Book.x: a field added to an existing type needs @rest or @grpc"),
        (
            "extend type Book { w: String @rest(source: \"s\", path: \"/a\") @cacheControl(maxAge: 0) }",
            "bad.graphql:2: Book.w: @cacheControl needs `maxAge`, a number of seconds above 0",
        ),
        (
            "extend type Book { w: [String] @rest(source: \"s\", path: \"/a\", query: {k: \"{keys}\"}) }",
            "{keys} is only for batched calls",
        ),
        (
            "extend type Book { w: String @rest(source: \"s\", path: \"/a\", batch: {key: \"{parent.name}\", match: \"id\"}) }",
            "a batched call must send the keys",
        ),
        (
            "extend type Query { a: String @grpc(method: \"catalog.v1.Catalog/Nope\") }",
            "@grpc method `catalog.v1.Catalog/Nope` is not registered",
        ),
        (
            "extend type Query { a: String @grpc(method: \"catalog.v1.Catalog/WatchBooks\") }",
            "streams; only unary methods answer fields",
        ),
        (
            "extend type Query { a: String @grpc(method: \"catalog.v1.Catalog/GetBook\", request: {zzz: 1}) }",
            "catalog.v1.GetBookRequest has no field `zzz`",
        ),
        ("type Book { a: String }", "type Book: the name is taken by catalog.v1.Book"),
        (
            "extend type Query { getBook: String @rest(source: \"s\", path: \"/a\") }",
            "Query.getBook: already defined by catalog.v1.Catalog.GetBook",
        ),
        (
            "extend type Query { a: String @rest(source: \"s\", path: \"/a\", method: \"TRACE\") }",
            "@rest method `TRACE` is not one of",
        ),
        ("extend schema @source(name: \"x\", kind: SOAP)", "`kind` must be REST or GRAPHQL, not SOAP"),
        (
            "extend type Query { a: String @rest(source: \"s\", path: \"/{parent.x}\") }",
            "{parent.x}: root fields have no parent",
        ),
        (
            "extend type Query { a: String @rest(source: \"s\", path: \"/a\", bogus: 1) }",
            "@rest has no argument `bogus`",
        ),
        ("extend type Query { a: String @rest(source: \"s\", path: \"/a/{args.id\") }", "is not closed"),
        ("extend type Query { a: String @rest(source: \"s\", path: \"a\") }", "@rest needs `path`, starting with `/`"),
        (
            "extend type Query { a(x: Book): String @rest(source: \"s\", path: \"/a\") }",
            "`Book` is an object type; arguments and input fields need input types",
        ),
        ("type A { b: String @from(path: \"a..b\") }", "@from needs `path`, a dotted key path"),
        ("type A { b(x: Int): String }", "only fields answered by @rest or @grpc take arguments"),
        (
            "extend type Subscription { a: String @rest(source: \"s\", path: \"/a\") }",
            "subscriptions come from server-streaming methods only",
        ),
        ("type A {\n  b: String\n", "bad.graphql:4: GraphQL syntax"),
    ];
    for (text, want) in table {
        let sources = switchyard::snapshot::SnapshotSources {
            embedded: vec![switchyard::demo::demo_registration().expect("demo")],
            embedded_schemas: vec![switchyard::schema::SchemaFile {
                path: "bad.graphql".into(),
                text: format!("{SOURCE}{text}"),
            }],
            no_descriptor_dir: true,
            schemas: Some("/nonexistent".into()),
            ..Default::default()
        };
        let problems = switchyard::snapshot::build_snapshot(&sources, 1).expect_err(text);
        let shown: Vec<String> = problems.iter().filter(|p| p.is_error()).map(ToString::to_string).collect();
        assert!(shown.iter().any(|p| p.contains(want)), "{text}\nwant: {want}\ngot: {shown:#?}");
    }
}

#[test]
fn check_reports_schema_problems_and_the_demo_schema_passes() {
    let work = tempfile::tempdir().expect("tempdir");
    crate::support::register_demo_protos(work.path());
    let demo =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/demo/authors.graphql"))
            .expect("demo schema");
    write_files(work.path(), &[("schemas/authors.graphql", &demo)]);
    let out = run(
        &["check", "--backend", "catalog.v1=http://127.0.0.1:1", "--backend", "authors=http://127.0.0.1:2"],
        work.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));

    let out = run(&["check", "--backend", "catalog.v1=http://127.0.0.1:1"], work.path());
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "a source without a backend is a warning: {stdout}");
    assert!(stdout.contains("warning: source authors: no backend serves it"), "{stdout}");

    write_files(
        work.path(),
        &[("schemas/more.graphql", "extend type Book {\n  x: Author @rest(source: \"authorz\", path: \"/a\")\n}\n")],
    );
    let out = run(&["check", "--backend", "catalog.v1=http://127.0.0.1:1"], work.path());
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("more.graphql:2: Book.x: unknown source `authorz`"), "{stdout}");
}
