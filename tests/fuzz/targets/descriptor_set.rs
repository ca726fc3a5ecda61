//! Uploaded FileDescriptorSets: any bytes are refused with a reason or registered; a
//! registration encodes to the same registration, and one that merges builds a whole snapshot
//! (routes, GraphQL schema) or is refused by the snapshot build, never a panic.

use switchyard::registry::{Registration, merge_registrations};

pub(crate) fn run(data: &[u8]) {
    let Ok(registration) = Registration::decode("fuzz", data) else { return };
    let again = Registration::decode("fuzz", &registration.encode()).expect("our own encoding decodes");
    assert_eq!(again.digest, registration.digest, "normalising twice changed it");
    if merge_registrations(vec![registration.clone()]).is_err() {
        return;
    }
    let sources = switchyard::snapshot::SnapshotSources {
        embedded: vec![registration],
        no_descriptor_dir: true,
        schemas: Some("/nonexistent".into()),
        ..Default::default()
    };
    let _ = switchyard::snapshot::build_snapshot(&sources, 1);
}
