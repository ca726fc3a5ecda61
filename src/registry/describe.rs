//! Human-readable listing of a registration: digest, services, methods with call kinds and
//! HTTP bindings, and its versions (`switchyard descriptors list`, locally or from a gateway).

use std::fmt::Write;

use prost_reflect::DescriptorPool;

use super::{CallKind, Registration, http_bindings};

/// Describes `registration`, resolving its services in `pool`.
pub fn describe_registration(registration: &Registration, pool: &DescriptorPool) -> String {
    let mut out = String::new();
    let files = registration.files.len();
    let _ = writeln!(
        out,
        "{}  {}  ({files} file{})",
        registration.name,
        registration.digest,
        if files == 1 { "" } else { "s" }
    );
    let mut any = false;
    for service_name in registration.service_names() {
        let Some(service) = pool.get_service_by_name(&service_name) else { continue };
        any = true;
        let _ = writeln!(out, "  service {service_name}");
        for method in service.methods() {
            let kind = CallKind::of(&method);
            let _ = write!(
                out,
                "    {}({}) -> {}  [{}]",
                method.name(),
                method.input().full_name(),
                method.output().full_name(),
                kind.as_str()
            );
            let bindings = http_bindings(&method);
            if bindings.is_empty() {
                out.push('\n');
            }
            for (i, binding) in bindings.iter().enumerate() {
                let lead = if i == 0 { "  " } else { "\n      " };
                let _ = write!(out, "{lead}{} {}", binding.method, binding.path);
                if !binding.body.is_empty() {
                    let _ = write!(out, " body={}", binding.body);
                }
                if i + 1 == bindings.len() {
                    out.push('\n');
                }
            }
        }
    }
    if !any {
        out.push_str("  (no services: types only)\n");
    }
    out
}

/// `  versions:` and one line per version, newest first.
pub fn describe_versions(versions: &[super::Version]) -> String {
    let mut out = String::from("  versions:\n");
    for version in versions.iter().rev() {
        let written = humantime::format_rfc3339_seconds(version.written);
        let current = if version.current { "  (current)" } else { "" };
        out.push_str(&format!("    {:>3}  {}  {written}{current}\n", version.number, version.digest));
    }
    out
}
