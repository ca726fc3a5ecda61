//! The e2e harness's instruction-count mode (`E2E_CALLGRIND=N`): the gateway runs under
//! `valgrind --tool=callgrind`, and each scenario is N requests after a warm-up, with the
//! gateway's counters zeroed before them and dumped after. Instructions per request hold on a
//! shared machine where CPU time per request swings with the neighbours' load, so an A/B of
//! two builds reads here. Valgrind runs the gateway's threads one at a time and slows them
//! some 50-fold, so rates and latencies in this mode mean nothing and are not printed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Requests counted per scenario, when the mode is on.
pub(crate) fn requests() -> Option<usize> {
    std::env::var("E2E_CALLGRIND").ok().map(|n| n.parse().expect("E2E_CALLGRIND: a number of requests"))
}

/// Where the counters go: `E2E_CALLGRIND_OUT` (kept, for `callgrind_annotate`), else `work`.
fn out_dir(work: &Path) -> PathBuf {
    std::env::var_os("E2E_CALLGRIND_OUT").map_or_else(|| work.to_owned(), PathBuf::from)
}

/// The valgrind command line before the gateway's own.
pub(crate) fn valgrind_args(work: &Path) -> Vec<String> {
    vec!["--tool=callgrind".to_owned(), format!("--callgrind-out-file={}/callgrind.out.%p", out_dir(work).display())]
}

/// `callgrind_control` with `flag` for process `pid`; panics unless it says OK.
fn control(flag: &str, pid: u32) {
    let out =
        Command::new("callgrind_control").arg(flag).arg(pid.to_string()).output().expect("callgrind_control runs");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && said.contains("OK"), "callgrind_control {flag} {pid}: {said}");
}

/// Sets the process's counters to zero.
pub(crate) fn zero(pid: u32) {
    control("-z", pid);
}

/// Dumps the process's counters and reads the instructions since the last zeroing: the
/// `totals:` line of the newest dump (`callgrind.out.PID.N`, N counting up).
pub(crate) fn dump_instructions(pid: u32, work: &Path) -> u64 {
    control("-d", pid);
    let dir = out_dir(work);
    let prefix = format!("callgrind.out.{pid}.");
    let newest = std::fs::read_dir(&dir)
        .expect("the work directory")
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let number: u64 = name.strip_prefix(&prefix)?.parse().ok()?;
            Some((number, entry.path()))
        })
        .max()
        .map(|(_, path)| path)
        .unwrap_or_else(|| panic!("no callgrind dump for {pid} in {}", dir.display()));
    let text = std::fs::read_to_string(&newest).expect("the dump");
    text.lines()
        .find_map(|line| line.strip_prefix("totals:"))
        .and_then(|total| total.split_whitespace().next())
        .and_then(|total| total.parse().ok())
        .unwrap_or_else(|| panic!("no totals line in {}", newest.display()))
}
