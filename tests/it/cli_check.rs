//! `switchyard check`: every problem in one run, with its path and line; exit codes; `config
//! schema`.

use crate::support::{run, text, write_files};

#[test]
fn check_reports_an_unknown_key_and_a_wrong_type_in_one_run() {
    let work = tempfile::tempdir().expect("tempdir");
    let config = "\
[listener]
listen = \"127.0.0.1:8080\"
max_conections = 100

[admin]
listen = 9090
";
    write_files(work.path(), &[("switchyard.toml", config)]);
    let out = run(&["check", "--config", "switchyard.toml"], work.path());
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("switchyard.toml:3: listener.max_conections: unknown key; did you mean `max_connections`?"),
        "{stdout}"
    );
    assert!(stdout.contains("switchyard.toml:6: admin.listen: expected a string, found an integer"), "{stdout}");
    assert!(text(&out.stderr).contains("2 error(s)"), "{}", text(&out.stderr));
}

#[test]
fn check_reports_descriptor_and_schema_problems_and_warns_on_unserved_services() {
    let work = tempfile::tempdir().expect("tempdir");
    write_files(
        work.path(),
        &[("descriptors/broken.binpb", "garbage"), ("schemas/bad.graphql", "type Query {\n  hello: String\n\n")],
    );
    let out = run(&["check"], work.path());
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("broken.binpb"), "{stdout}");
    assert!(stdout.contains("bad.graphql:"), "{stdout}");

    std::fs::remove_file(work.path().join("descriptors/broken.binpb")).expect("rm");
    std::fs::remove_file(work.path().join("schemas/bad.graphql")).expect("rm");
    crate::support::register_demo_protos(work.path());
    let out = run(&["check"], work.path());
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("warning: service catalog.v1.Catalog: no backend serves it"), "{stdout}");

    let out = run(&["check", "--backend", "catalog.v1=http://127.0.0.1:1"], work.path());
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("1 service(s) (1 with a backend)"), "{stdout}");
}

#[test]
fn usage_errors_exit_2() {
    let work = tempfile::tempdir().expect("tempdir");
    let out = run(&["check", "--backend", "nonsense"], work.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("NAME=URL"), "{}", text(&out.stderr));
    let out = run(&["frobnicate"], work.path());
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_explains_the_tool() {
    let work = tempfile::tempdir().expect("tempdir");
    let out = run(&["--help"], work.path());
    let help = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    for word in ["GraphQL", "REST", "WebSocket", "gRPC", "demo", "serve", "check", "descriptors"] {
        assert!(help.contains(word), "help lacks {word}: {help}");
    }
}

#[test]
fn config_schema_prints_the_json_schema() {
    let work = tempfile::tempdir().expect("tempdir");
    let out = run(&["config", "schema"], work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    let sections: Vec<&str> =
        schema["properties"].as_object().expect("properties").keys().map(String::as_str).collect();
    for section in ["listener", "admin", "rest", "graphql", "backends", "auth", "cache", "access_log"] {
        assert!(sections.contains(&section), "{section} missing from {sections:?}");
    }
    insta::assert_snapshot!("config_schema", text(&out.stdout));
}
