//! Apollo Federation v2: supergraphs composed by a standard composition tool (The Guild's, from
//! tests/npm, installed by `bash .ci/run`) from the subgraphs in tests/fixtures/federation —
//! the public gateways benchmark's accounts, inventory, products and reviews, with a directive
//! of each kind added — read into the supergraph model; unsupported features named.

use switchyard::schema::{SuperKind, Supergraph, parse_supergraph};

pub(crate) const SUBGRAPHS: [&str; 4] = ["accounts", "inventory", "products", "reviews"];

/// Composes the fixture subgraphs (subgraph `i` at port 4001 + i) with the npm composer.
fn compose() -> String {
    let urls: Vec<(&str, String)> = SUBGRAPHS
        .iter()
        .enumerate()
        .map(|(i, name)| (*name, format!("http://127.0.0.1:{}/graphql", 4001 + i)))
        .collect();
    compose_with(&urls)
}

/// The npm test tools' directory, checked to be installed.
pub(crate) fn npm_dir() -> std::path::PathBuf {
    let npm = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/npm");
    assert!(
        npm.join("node_modules/@theguild/federation-composition").exists(),
        "the npm test tools are not installed: run `(cd tests/npm && npm ci)` (bash .ci/run does)"
    );
    npm
}

/// Composes the fixture subgraphs named in `urls`, each served at its URL, with The Guild's
/// composition (as a team's build would); the supergraph SDL.
pub(crate) fn compose_with(urls: &[(&str, String)]) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let files: Vec<(&str, String, std::path::PathBuf)> = urls
        .iter()
        .map(|(name, url)| (*name, url.clone(), root.join(format!("tests/fixtures/federation/{name}.graphql"))))
        .collect();
    compose_files(&files)
}

/// Composes the subgraphs whose SDL is in the files, each served at its URL.
pub(crate) fn compose_files(subgraphs: &[(&str, String, std::path::PathBuf)]) -> String {
    let args: Vec<String> =
        subgraphs.iter().map(|(name, url, file)| format!("{name}={url}={}", file.display())).collect();
    let out =
        std::process::Command::new("node").arg(npm_dir().join("compose.mjs")).args(&args).output().expect("node runs");
    assert!(out.status.success(), "composition failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf8")
}

fn subgraph(supergraph: &Supergraph, name: &str) -> usize {
    supergraph.subgraphs.iter().position(|s| s.name == name).expect("a subgraph")
}

#[test]
fn a_composed_supergraph_is_read_with_every_join() {
    let text = compose();
    let (supergraph, warnings) = parse_supergraph(&text).expect("a supported supergraph");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(supergraph.join_version, "0.3");
    let names: Vec<(&str, &str)> = supergraph.subgraphs.iter().map(|s| (s.name.as_str(), s.url.as_str())).collect();
    assert_eq!(
        names,
        [
            ("accounts", "http://127.0.0.1:4001/graphql"),
            ("inventory", "http://127.0.0.1:4002/graphql"),
            ("products", "http://127.0.0.1:4003/graphql"),
            ("reviews", "http://127.0.0.1:4004/graphql"),
        ]
    );
    let [accounts, inventory, products, reviews] = SUBGRAPHS.map(|name| subgraph(&supergraph, name));
    assert_eq!(supergraph.roots.get("query").map(String::as_str), Some("Query"));
    assert!(!supergraph.types.keys().any(|name| name.starts_with("join__") || name.starts_with("link__")));

    // Root fields are owned by one subgraph each.
    let query = &supergraph.types["Query"];
    let owner = |field: &str| query.resolving(query.field(field).expect("a root field"));
    assert_eq!((owner("me"), owner("topProducts")), (vec![accounts], vec![products]));

    // Keys: per subgraph, compound and multiple, and a reference-only (resolvable: false) one.
    let product = &supergraph.types["Product"];
    assert_eq!(product.kind, SuperKind::Object);
    assert_eq!(product.keys_in(products).collect::<Vec<_>>(), ["upc", "sku variant { id }"]);
    assert_eq!(product.keys_in(inventory).collect::<Vec<_>>(), ["upc"]);
    let user = &supergraph.types["User"];
    assert_eq!(user.keys_in(inventory).count(), 0, "inventory only references users");
    assert!(user.joins.iter().any(|j| j.graph == inventory && !j.resolvable && j.key.as_deref() == Some("id")));

    // @requires, @external, @provides, @shareable, @override.
    let field = |ty: &switchyard::schema::SuperType, name: &str| ty.field(name).expect("a field").clone();
    let estimate = field(product, "shippingEstimate");
    assert_eq!(estimate.joins[0].requires.as_deref(), Some("price weight"));
    assert_eq!(product.resolving(&estimate), [inventory]);
    assert_eq!(product.resolving(&field(product, "price")), [products], "inventory's price is external");
    let review = &supergraph.types["Review"];
    assert_eq!(field(review, "author").joins[0].provides.as_deref(), Some("username"));
    assert_eq!(user.resolving(&field(user, "username")), [accounts], "reviews' username is external");
    assert_eq!(user.resolving(&field(user, "name")), [accounts, reviews], "shareable: both resolve it");
    let birthday = field(user, "birthday");
    assert_eq!(
        (user.resolving(&birthday), birthday.joins[0].override_from.as_deref()),
        (vec![reviews], Some("accounts"))
    );
    // A field without @join__field is resolved wherever the type is defined.
    assert_eq!(review.resolving(&field(review, "body")), [reviews]);
    // @inaccessible.
    assert!(field(product, "internalCode").inaccessible && !field(product, "name").inaccessible);
    // `resolves` answers as `resolving` does, for every field and subgraph.
    for ty in supergraph.types.values() {
        for f in &ty.fields {
            for graph in 0..supergraph.subgraphs.len() {
                assert_eq!(ty.resolves(f, graph), ty.resolving(f).contains(&graph), "{}.{}", ty.name, f.name);
            }
        }
    }
}

#[test]
fn unsupported_features_are_named() {
    let text = compose();
    let with_link = |link: &str| {
        text.replacen(
            "@link(url: \"https://specs.apollo.dev/link/v1.0\")",
            &format!("@link(url: \"https://specs.apollo.dev/link/v1.0\") {link}"),
            1,
        )
    };
    // (edited supergraph, error?, the message names)
    let cases = [
        (with_link("@link(url: \"https://specs.apollo.dev/authenticated/v0.1\", for: SECURITY)"), true, "links authenticated v0.1"),
        (with_link("@link(url: \"https://specs.apollo.dev/cost/v0.1\")"), false, "links cost v0.1, which this router does not support; its directives are ignored"),
        (text.replacen("@join__field(graph: INVENTORY, requires: \"price weight\")", "@join__field(graph: INVENTORY, requires: \"price weight\", contextArguments: [])", 1), true, "field Product.shippingEstimate: @context / @fromContext is not supported yet"),
        (text.replacen("@join__field(graph: REVIEWS, override: \"accounts\")", "@join__field(graph: REVIEWS, override: \"accounts\", overrideLabel: \"percent(5)\")", 1), true, "progressive @override(label:)"),
        (text.replacen("type Variant @join__type(graph: ACCOUNTS)", "type Variant @join__type(graph: ACCOUNTS) @join__directive(graphs: [PRODUCTS], name: \"connect\", args: {})", 1), true, "type Variant: @join__directive"),
        (text.replacen("@join__field(graph: INVENTORY, requires: \"price weight\")", "@join__field(graph: INVENTORY, requires: \"price {\")", 1), true, "field Product.shippingEstimate: `price {`"),
        (text.replacen("name: String @join__field(graph: PRODUCTS)", "name: String @join__field(graph: NOWHERE)", 1), true, "`NOWHERE`, which is no subgraph"),
        (text.replace("https://specs.apollo.dev/join/v0.3", "https://specs.apollo.dev/join/v0.1"), true, "no @link to the join spec"),
        ("type Query { a: Int".to_owned(), true, "line 1"),
    ];
    for (edited, error, message) in cases {
        assert_ne!(edited, text, "{message}: the edit did not apply");
        let problems = match parse_supergraph(&edited) {
            Ok((_, warnings)) => warnings,
            Err(problems) => problems,
        };
        let found = problems.iter().find(|p| p.message.contains(message));
        assert!(found.is_some_and(|p| p.is_error() == error && p.path == "supergraph"), "{message}: {problems:?}");
    }
}

#[test]
fn a_damaged_supergraph_is_refused_with_a_reason_never_a_panic() {
    let text = compose();
    let mut refused = 0;
    // Every 37th cut of the text, and every line dropped in turn.
    let mut damaged: Vec<String> =
        (0..text.len()).step_by(37).filter(|i| text.is_char_boundary(*i)).map(|i| text[..i].to_owned()).collect();
    let lines: Vec<&str> = text.lines().collect();
    damaged.extend((0..lines.len()).map(|skip| {
        lines.iter().enumerate().filter(|(i, _)| *i != skip).map(|(_, l)| *l).collect::<Vec<_>>().join("\n")
    }));
    for edited in &damaged {
        match parse_supergraph(edited) {
            Ok(_) => {}
            Err(problems) => {
                refused += 1;
                assert!(!problems.is_empty() && problems.iter().any(|p| p.is_error()), "refused without a reason");
                assert!(problems.iter().all(|p| p.path == "supergraph" && !p.message.is_empty()), "{problems:?}");
            }
        }
    }
    assert!(refused > damaged.len() / 2, "most damage is refused ({refused} of {})", damaged.len());
}

/// Each query and its plan, as `switchyard plan` prints it.
fn plans_text(snapshot: &switchyard::snapshot::Snapshot, queries: &[&str]) -> String {
    let caches = switchyard::ingress::GraphqlCaches::default();
    let mut text = String::new();
    for query in queries {
        let plan = switchyard::ingress::plan_query(snapshot, &caches, query, None, &serde_json::Map::new())
            .unwrap_or_else(|e| panic!("{query}: {e:?}"));
        text.push_str(&format!("# {query}\n{plan}\n\n"));
    }
    text
}

#[test]
fn plans_are_snapshot_tested() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("supergraph.graphql");
    std::fs::write(&file, compose()).expect("write");
    let sources = switchyard::snapshot::SnapshotSources {
        supergraph: Some(file),
        no_descriptor_dir: true,
        schemas: Some("/nonexistent".into()),
        ..Default::default()
    };
    let snapshot = switchyard::snapshot::build_snapshot(&sources, 1).expect("snapshot");
    let queries = [
        // The benchmark's heavy query: every level, both root fields.
        "{ users { id username name reviews { id body product { inStock name price shippingEstimate upc weight reviews { id body author { id username name reviews { id body product { inStock name price shippingEstimate upc weight } } } } } } } topProducts { inStock name price shippingEstimate upc weight reviews { id body author { id username name reviews { id body product { inStock name price shippingEstimate upc weight } } } } } }",
        // @provides: no fetch below author; a key chain (sku variant { id } → upc); @override.
        "{ topProducts(first: 2) { reviews { author { username } } } me { birthday favoriteProduct { inStock } } }",
        // Aliases, arguments as variables, a client key that would clash with a planner key.
        "{ a: user(id: \"1\") { upc: name reviews { product { shippingEstimate } } } }",
    ];
    let text = plans_text(&snapshot, &queries);
    insta::assert_snapshot!("federation_plans", text);
}

/// The media subgraphs (an interface entity, unions, an `@interfaceObject`) composed at
/// closed ports: enough to validate and plan, nothing is fetched.
fn media_snapshot() -> (switchyard::snapshot::Snapshot, tempfile::TempDir) {
    fixture_snapshot("tests/fixtures/federation", &["library", "ratings", "shops"])
}

/// The fixture subgraphs `names` in `fixtures` composed at a closed port, as a snapshot.
fn fixture_snapshot(fixtures: &str, names: &[&str]) -> (switchyard::snapshot::Snapshot, tempfile::TempDir) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(fixtures);
    let files: Vec<(&str, String, std::path::PathBuf)> = names
        .iter()
        .map(|name| (*name, "http://127.0.0.1:9/graphql".to_owned(), root.join(format!("{name}.graphql"))))
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("supergraph.graphql");
    std::fs::write(&file, compose_files(&files)).expect("write");
    let sources = switchyard::snapshot::SnapshotSources {
        supergraph: Some(file),
        no_descriptor_dir: true,
        schemas: Some("/nonexistent".into()),
        ..Default::default()
    };
    (switchyard::snapshot::build_snapshot(&sources, 1).expect("snapshot"), dir)
}

#[test]
fn abstract_types_are_planned_per_object_type_and_snapshot_tested() {
    let (snapshot, _dir) = media_snapshot();
    let queries = [
        // An interface: each implementation's fields, entity fetches only for its values.
        "{ media { __typename id title ... on Book { pages price } ... on Film { minutes streams } } }",
        // A union, fragments on an interface inside it, a field an @interfaceObject adds.
        "{ search(text: \"x\") { ... on Media { title stars } ... on Person { name } } }",
        // Values from the @interfaceObject's subgraph: their types come from the library.
        "{ topRated { id title stars ... on Book { pages price } } }",
        // A union whose members come from two subgraphs; a named fragment on an interface.
        "{ bestsellers { ... on Book { ...M price } ... on Gadget { sku price } } } fragment M on Media { title }",
    ];
    let text = plans_text(&snapshot, &queries);
    insta::assert_snapshot!("abstract_plans", text);
}

/// Plans each (document, its first error or "" when valid) of `table` on `snapshot`; an
/// error is reported once, however many object types it was checked for.
fn assert_validation_table(snapshot: &switchyard::snapshot::Snapshot, table: &[(&str, &str)]) {
    let caches = switchyard::ingress::GraphqlCaches::default();
    for &(document, expected) in table {
        let got = switchyard::ingress::plan_query(snapshot, &caches, document, None, &serde_json::Map::new());
        match (got, expected) {
            (Ok(_), "") => {}
            (Ok(plan), _) => panic!("{document}: planned, expected {expected:?}\n{plan}"),
            (Err(errors), "") => panic!("{document}: {errors:?}"),
            (Err(errors), _) => {
                assert_eq!(errors[0], expected, "{document}: {errors:?}");
                let mut distinct = errors.clone();
                distinct.dedup();
                assert_eq!(distinct, errors, "{document}");
            }
        }
    }
}

#[test]
fn selections_on_interfaces_and_unions_follow_the_validation_rules() {
    let (snapshot, _dir) = media_snapshot();
    // (document, the first error, or "" when it is valid)
    let table = [
        ("{ media { id title } }", ""),
        ("{ search(text: \"\") { __typename } }", ""),
        ("{ search(text: \"\") { ... on Media { id } ... on Person { name } } }", ""),
        ("{ media { ... on Book { pages } ... on Media { title } } }", ""),
        ("{ media { ... on SearchResult { __typename } } }", ""),
        ("{ bestsellers { ... on Media { title } } }", ""),
        (
            "{ search(text: \"\") { name } }",
            "Cannot query field \"name\" on type \"SearchResult\". Did you mean to use an inline fragment on a member type?",
        ),
        ("{ media { pages } }", "Cannot query field \"pages\" on type \"Media\"."),
        (
            "{ media { ... on Person { name } } }",
            "Fragment cannot be spread here as objects of type \"Media\" can never be of type \"Person\".",
        ),
        (
            "{ media { ...P } } fragment P on Gadget { sku }",
            "Fragment \"P\" cannot be spread here as objects of type \"Media\" can never be of type \"Gadget\".",
        ),
        ("{ media { ... on Nothing { id } } }", "Unknown type \"Nothing\"."),
        ("{ media { ... on String { id } } }", "Fragment cannot condition on non composite type \"String\"."),
        ("{ media }", "Field \"media\" of type \"Media\" must have a selection of subfields."),
        ("{ media { ... on Book { nope } } }", "Cannot query field \"nope\" on type \"Book\"."),
        ("query ($m: Media) { media { id } }", "Variable \"$m\" cannot be non-input type \"Media\"."),
        // Field merging (5.3.2): one key, two fields, only on two different object types.
        ("{ search(text: \"\") { ... on Film { t: title } ... on Person { t: name } } }", ""),
        (
            "{ search(text: \"\") { ... on Media { t: title } ... on Person { t: name } } }",
            "Fields \"t\" conflict because \"title\" and \"name\" are different fields.",
        ),
        (
            "{ media { t: id ...F } } fragment F on Book { t: title }",
            "Fields \"t\" conflict because \"id\" and \"title\" are different fields.",
        ),
        // One key, one shape (SameResponseShape), even on two different object types.
        ("{ media { ... on Book { n: pages } ... on Film { n: minutes } } }", ""),
        (
            "{ media { ... on Book { x: pages } ... on Film { x: title } } }",
            "Fields \"x\" conflict because they return conflicting types \"Int!\" and \"String!\".",
        ),
        (
            "{ search(text: \"\") { ... on Book { x: id } ... on Person { x: name } } }",
            "Fields \"x\" conflict because they return conflicting types \"ID!\" and \"String!\".",
        ),
    ];
    assert_validation_table(&snapshot, &table);
}

#[test]
fn fields_under_one_key_share_their_response_shape_down_to_their_subfields() {
    // A GraphQL source's union and interface whose object types have composite fields of
    // different types: SameResponseShape (5.3.2) compares what is selected below them.
    let dir = tempfile::tempdir().expect("tempdir");
    crate::support::write_files(
        dir.path(),
        &[
            (
                "schemas/shapes.graphql",
                "extend schema @source(name: \"shapes\", kind: GRAPHQL, schema: \"shapes.sdl\")\n",
            ),
            (
                "schemas/shapes.sdl",
                "type Query { search: [Result!]! node: Node }\n\
                 union Result = Book | Film\n\
                 interface Node { id: ID! }\n\
                 type Book implements Node { id: ID! author: Person pages: Int! }\n\
                 type Film implements Node { id: ID! director: Director crew: [Person!]! }\n\
                 type Person { name: String! born: Int }\n\
                 type Director { name: String! born: String awards: [String!] }\n",
            ),
        ],
    );
    let sources = switchyard::snapshot::SnapshotSources {
        no_descriptor_dir: true,
        schemas: Some(dir.path().join("schemas")),
        ..Default::default()
    };
    let snapshot = switchyard::snapshot::build_snapshot(&sources, 1).expect("snapshot");
    // (document, the first error; "" when it is valid)
    let table = [
        ("{ search { ... on Book { p: author { name } } ... on Film { p: director { name } } } }", ""),
        ("{ search { ... on Book { p: author { n: name } } ... on Film { p: director { n: name } } } }", ""),
        ("{ node { ... on Book { p: author { born } } ... on Film { p: director { name } } } }", ""),
        (
            "{ search { ... on Book { p: author { x: born } } ... on Film { p: director { x: born } } } }",
            "Fields \"p\" conflict because subfields \"x\" conflict because they return conflicting types \"Int\" and \"String\".",
        ),
        (
            "{ search { ... on Book { p: author { name } } ... on Film { p: crew { name } } } }",
            "Fields \"p\" conflict because they return conflicting types \"Person\" and \"[Person!]!\".",
        ),
        (
            "{ node { ...B ... on Film { p: director { n: awards } } } } fragment B on Book { p: author { n: name } }",
            "Fields \"p\" conflict because subfields \"n\" conflict because they return conflicting types \"String!\" and \"[String!]\".",
        ),
        (
            "{ search { ... on Book { p: author { ... on Person { x: born } } } ... on Film { p: director { x: name } } } }",
            "Fields \"p\" conflict because subfields \"x\" conflict because they return conflicting types \"Int\" and \"String!\".",
        ),
    ];
    assert_validation_table(&snapshot, &table);
}

#[test]
fn abstract_types_appear_in_introspection_and_the_printed_schema() {
    let (snapshot, _dir) = media_snapshot();
    let sdl = snapshot.graphql.to_sdl();
    for line in [
        "interface Media {",
        "type Book implements Media {",
        "union SearchResult = Book | Film | Person",
        "union Product = Book | Gadget",
    ] {
        assert!(sdl.contains(line), "{line}: {sdl}");
    }
    let introspected = snapshot.graphql.introspected();
    let ty = |name: &str| introspected["types"].as_array().and_then(|t| t.iter().find(|t| t["name"] == name)).cloned();
    let media = ty("Media").expect("Media");
    assert_eq!(media["kind"], "INTERFACE");
    let names = |list: &serde_json::Value| -> Vec<String> {
        list.as_array().into_iter().flatten().filter_map(|t| t["name"].as_str().map(str::to_owned)).collect()
    };
    assert_eq!(names(&media["possibleTypes"]), ["Book", "Film"]);
    assert_eq!(names(&media["fields"]), ["id", "title", "stars"]);
    let search = ty("SearchResult").expect("SearchResult");
    assert_eq!(
        (search["kind"].as_str(), names(&search["possibleTypes"])),
        (Some("UNION"), vec!["Book".to_owned(), "Film".into(), "Person".into()])
    );
    assert_eq!(names(&ty("Book").expect("Book")["interfaces"]), ["Media"]);
}

#[test]
fn required_fields_that_need_fetches_of_their_own_are_fetched_in_order() {
    // cost requires weight (from weights), which requires size (from sizes): three levels.
    let (snapshot, _dir) =
        fixture_snapshot("tests/fixtures/federation/requires", &["root", "sizes", "weights", "costs"]);
    let chain = plans_text(&snapshot, &["{ item { cost } }", "{ item { weight cost } }"]);
    insta::assert_snapshot!("requires_plans", chain);
    // The order is what matters: each fetch below every fetch it needs.
    let at = |what: &str| chain.find(what).unwrap_or_else(|| panic!("{what} in {chain}"));
    assert!(at("from sizes") < at("from weights") && at("from weights") < at("from costs"), "{chain}");
}

#[test]
fn check_names_what_a_supergraph_uses_that_is_not_supported() {
    let work = tempfile::tempdir().expect("tempdir");
    let text = compose();
    let with_policy = text.replacen(
        "@link(url: \"https://specs.apollo.dev/link/v1.0\")",
        "@link(url: \"https://specs.apollo.dev/link/v1.0\") @link(url: \"https://specs.apollo.dev/policy/v0.1\", for: SECURITY)",
        1,
    );
    let with_cost = text.replacen(
        "@link(url: \"https://specs.apollo.dev/link/v1.0\")",
        "@link(url: \"https://specs.apollo.dev/link/v1.0\") @link(url: \"https://specs.apollo.dev/cost/v0.1\")",
        1,
    );
    // (supergraph, exit code, what the output names)
    let table = [
        (with_policy, 1, "links policy v0.1, which this router does not support; it is for SECURITY"),
        (with_cost, 0, "links cost v0.1, which this router does not support; its directives are ignored"),
        (text.clone(), 0, "a supergraph of 4 subgraph(s), 0 warning(s)"),
    ];
    for (supergraph, code, names) in table {
        std::fs::write(work.path().join("supergraph.graphql"), &supergraph).expect("write");
        let out = crate::support::run(&["check", "--supergraph", "supergraph.graphql"], work.path());
        let printed = format!("{}{}", crate::support::text(&out.stdout), crate::support::text(&out.stderr));
        assert_eq!(out.status.code(), Some(code), "{printed}");
        assert!(printed.contains(names), "{names}: {printed}");
        if code == 1 {
            assert!(printed.contains("supergraph.graphql"), "the file is named: {printed}");
        }
    }
}

#[test]
fn plans_show_entity_fetches_below_stitched_fields_and_streams() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("supergraph.graphql");
    std::fs::write(&file, compose_with(&[("critics", "http://127.0.0.1:4005/graphql".into())])).expect("write");
    let sources = switchyard::snapshot::SnapshotSources {
        supergraph: Some(file),
        embedded: vec![switchyard::demo::demo_registration().expect("demo")],
        embedded_schemas: [switchyard::demo::demo_schemas(), vec![switchyard::schema::SchemaFile {
            path: "entities.graphql".into(),
            text: r#"extend type Author @rest(source: "authors", path: "/authors", query: {name: "{keys}"}, select: "authors", batch: {key: "{parent.name}", match: "name"})"#.into(),
        }]]
        .concat(),
        backends: ["catalog.v1", "authors"]
            .map(|name| switchyard::snapshot::BackendFlag { name: name.into(), urls: vec!["http://127.0.0.1:9".into()] })
            .into(),
        no_descriptor_dir: true,
        schemas: Some("/nonexistent".into()),
        ..Default::default()
    };
    let snapshot = switchyard::snapshot::build_snapshot(&sources, 1).expect("snapshot");
    let text = plans_text(
        &snapshot,
        &[
            "{ authors { books { title averageStars } } }",
            "subscription { watchBooks(parent: \"shelves/1\") { book { reviews { stars } } } }",
        ],
    );
    // Below the stitched field, at the path inside its answer; below each streamed event.
    assert!(text.contains("then Author.books at books"), "{text}");
    assert!(text.contains("then _entities Book by { name } at (root) from critics"), "{text}");
    assert!(text.contains("then _entities Book by { name } at book from critics"), "{text}");
}

#[test]
fn entity_declarations_in_schemas_are_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("supergraph.graphql");
    std::fs::write(&file, compose_with(&[("critics", "http://127.0.0.1:4005/graphql".into())])).expect("write");
    let build = |text: &str| {
        let sources = switchyard::snapshot::SnapshotSources {
            supergraph: Some(file.clone()),
            embedded: vec![switchyard::demo::demo_registration().expect("demo")],
            embedded_schemas: vec![switchyard::schema::SchemaFile {
                path: "entities.graphql".into(),
                text: text.into(),
            }],
            no_descriptor_dir: true,
            schemas: Some("/nonexistent".into()),
            ..Default::default()
        };
        switchyard::snapshot::build_snapshot(&sources, 1)
    };
    let book = r#"extend type Book @grpc(method: "catalog.v1.Catalog/GetBook", request: {name: "{parent.name}"})"#;
    let served = build(book).expect("one entity");
    assert!(served.graphql.entities.contains_key("Book"));
    let merged: Vec<String> = match served.graphql.types.get("Book") {
        Some(switchyard::schema::TypeDef::Object { fields, .. }) => fields.iter().map(|f| f.name.clone()).collect(),
        _ => Vec::new(),
    };
    assert!(["title", "author", "reviews", "averageStars"].iter().all(|f| merged.iter().any(|m| m == f)), "{merged:?}");
    // (schema file, what the problem says)
    let table = [
        ("", "to make them one entity, declare how it is resolved in schemas/ (`extend type Book @grpc(...)`)"),
        ("extend type Book @cacheControl(maxAge: 5)", "@cacheControl is not a directive for types"),
        (r#"extend type Nope @grpc(method: "catalog.v1.Catalog/GetBook")"#, "there is no object type Nope"),
        (
            r#"extend type Book @grpc(method: "catalog.v1.Catalog/GetBook", request: {name: "shelves/1/books/1"})"#,
            "the call reads no key",
        ),
        (
            r#"extend type Book @grpc(method: "catalog.v1.Catalog/GetBook", request: {name: "{parent.isbn13}"})"#,
            "{parent.isbn13}: Book has no field `isbn13`",
        ),
        (
            r#"extend type Book @grpc(method: "catalog.v1.Catalog/ListBooks", request: {parent: "{parent.name}"})"#,
            "answers catalog.v1.ListBooksResponse, not Book",
        ),
        (
            r#"extend type Book @grpc(method: "catalog.v1.Catalog/Nope", request: {name: "{parent.name}"})"#,
            "is not registered",
        ),
    ];
    // A GraphQL source's type under a supergraph type's name: its fetches could not ask the
    // source for the supergraph's fields, so it is refused, naming the remedy.
    let sdl = dir.path().join("shelf.sdl");
    std::fs::write(&sdl, "type Query { shelfReview: Review }\ntype Review { id: ID! body: String }\n").expect("write");
    let shelf = format!("extend schema @source(name: \"shelf\", kind: GRAPHQL, schema: \"{}\")\n{book}", sdl.display());
    let table = table.into_iter().map(|(text, says)| (text.to_owned(), says)).chain([(
        shelf,
        "type Review: a GraphQL source's type (shelf's) cannot be one entity with the supergraph's; serve shelf as a subgraph",
    )]);
    for (text, says) in table {
        let text = text.as_str();
        let problems = build(text).expect_err(text);
        assert!(problems.iter().any(|p| p.is_error() && p.to_string().contains(says)), "{text}: {problems:#?}");
    }
}

#[test]
fn the_demo_supergraph_is_the_composition_of_the_demo_subgraph() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sdl = dir.path().join("critics.graphql");
    std::fs::write(&sdl, switchyard::demo::critics_sdl()).expect("write");
    let composed = compose_files(&[("critics", "http://127.0.0.1:4000/graphql".into(), sdl)]);
    assert_eq!(
        composed,
        switchyard::demo::DEMO_SUPERGRAPH,
        "descriptors/demo/supergraph.graphql is stale: write this composition there"
    );
}
