//! The demo schema as a snapshot with a backend that is never called: for benches that plan
//! or refuse GraphQL without running it.

use switchyard::snapshot::{BackendFlag, Snapshot, SnapshotSources, build_snapshot};

pub(crate) fn demo_snapshot() -> Snapshot {
    let sources = SnapshotSources {
        embedded: vec![switchyard::demo::demo_registration().expect("demo compiles")],
        no_descriptor_dir: true,
        backends: vec![BackendFlag { name: "catalog.v1".into(), urls: vec!["http://127.0.0.1:1".into()] }],
        ..SnapshotSources::default()
    };
    build_snapshot(&sources, 1).expect("snapshot")
}
