//! The fuzz targets' bodies, shared by cargo-fuzz (`tests/fuzz/fuzz_targets/`, nightly) and the
//! replay of their committed seed corpora in `cargo test` (`tests/it/fuzz_corpus.rs`, stable).
//! Each `run` takes any bytes; it may return early on input it cannot use, and panics only on a
//! bug: a panic in the code under test, or a property of the output that does not hold.

#![allow(dead_code)]

pub(crate) mod config_text;
pub(crate) mod descriptor_set;
pub(crate) mod graphql_document;
pub(crate) mod grpc_frames;
pub(crate) mod http_template;
pub(crate) mod json_message;
pub(crate) mod jwt_token;
pub(crate) mod stitched_differential;
pub(crate) mod websocket_session;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// A target's body.
pub(crate) type Target = fn(&[u8]);

/// Every target, by the name of its corpus directory and fuzz target.
pub(crate) const TARGETS: &[(&str, Target)] = &[
    ("config_text", config_text::run),
    ("descriptor_set", descriptor_set::run),
    ("graphql_document", graphql_document::run),
    ("grpc_frames", grpc_frames::run),
    ("http_template", http_template::run),
    ("json_message", json_message::run),
    ("jwt_token", jwt_token::run),
    ("stitched_differential", stitched_differential::run),
    ("websocket_session", websocket_session::run),
];

/// The demo's descriptor pool.
pub(crate) fn demo_pool() -> &'static prost_reflect::DescriptorPool {
    static POOL: OnceLock<prost_reflect::DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let registration = switchyard::demo::demo_registration().expect("demo compiles");
        switchyard::registry::merge_registrations(vec![registration]).expect("merges").pool
    })
}

/// The demo snapshot with its stitching schemas; backends at an address never called.
pub(crate) fn demo_snapshot() -> &'static switchyard::snapshot::Snapshot {
    static SNAPSHOT: OnceLock<switchyard::snapshot::Snapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        let sources = switchyard::demo::offline_sources().expect("demo compiles");
        switchyard::snapshot::build_snapshot(&sources, 1).expect("the demo snapshot builds")
    })
}

static PANICKED: AtomicBool = AtomicBool::new(false);

/// Installs, once, a panic hook that records panics on the runtime's worker threads (a gateway
/// task's panic is caught by tokio and would otherwise go unseen), after printing them as usual.
/// A panic on the calling thread fails the target by itself.
pub(crate) fn watch_panics() {
    static HOOK: OnceLock<()> = OnceLock::new();
    HOOK.get_or_init(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name().is_some_and(|name| name.starts_with("tokio-runtime-worker")) {
                PANICKED.store(true, Ordering::SeqCst);
            }
            default(info);
        }));
    });
}

/// Panics if any thread panicked since the hook was installed.
pub(crate) fn assert_no_panic(what: &str) {
    assert!(!PANICKED.load(Ordering::SeqCst), "a thread panicked while running {what}");
}

/// Splits `data` at each `sep` byte.
pub(crate) fn parts(data: &[u8], sep: u8) -> Vec<&[u8]> {
    data.split(|b| *b == sep).collect()
}
