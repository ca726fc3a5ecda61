//! Config files: any text is either a config (with warnings) or a non-empty list of problems,
//! each saying something; nothing panics, however the TOML is broken or nested.

pub(crate) fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let lookup = |name: &str| (name == "SECRET").then(|| "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t".to_owned());
    match switchyard::config::parse_config(text, &lookup) {
        Ok((config, warnings)) => {
            serde_json::to_value(&config).expect("a loaded config serialises");
            assert!(warnings.iter().all(|w| !w.to_string().is_empty()), "an empty warning");
        }
        Err(problems) => {
            assert!(!problems.is_empty(), "refused without a problem");
            assert!(problems.iter().all(|p| !p.to_string().is_empty()), "an empty problem");
        }
    }
}
