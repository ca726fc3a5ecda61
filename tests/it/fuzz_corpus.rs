//! The fuzz targets (`tests/fuzz/`) replayed on stable over their committed seed corpora, and
//! over a bounded number of deterministic mutations of each seed (bytes flipped, cut, doubled),
//! so CI runs every target's properties without a fuzzer. `cargo fuzz run --fuzz-dir tests/fuzz
//! TARGET` explores further; anything it finds goes into the corpus as a new seed.

#[path = "../fuzz/targets/mod.rs"]
mod targets;

use std::path::Path;

/// Mutations per seed: a cheap, repeatable spread around each seed.
const MUTATIONS: u64 = 24;

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus").join(target);
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("entry").path())
        .map(|path| {
            (path.file_name().expect("name").to_string_lossy().into_owned(), std::fs::read(&path).expect("read"))
        })
        .collect();
    seeds.sort();
    seeds
}

/// A splitmix64 step: the mutations are the same on every run.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn mutate(seed: &[u8], round: u64) -> Vec<u8> {
    let mut state = round.wrapping_mul(31).wrapping_add(seed.len() as u64);
    let mut out = seed.to_vec();
    for _ in 0..=(next(&mut state) % 4) {
        let at = |state: &mut u64, len: usize| if len == 0 { 0 } else { (next(state) % len as u64) as usize };
        match next(&mut state) % 5 {
            0 if !out.is_empty() => {
                let i = at(&mut state, out.len());
                out[i] ^= 1 << (next(&mut state) % 8);
            }
            1 if !out.is_empty() => {
                let i = at(&mut state, out.len());
                out.truncate(i.max(1));
            }
            2 => {
                let i = at(&mut state, out.len() + 1);
                let byte = [0u8, b'{', b'}', b'"', b'\\', 0xff, b'9', b'['][(next(&mut state) % 8) as usize];
                out.insert(i.min(out.len()), byte);
            }
            3 if !out.is_empty() => {
                let (a, b) = (at(&mut state, out.len()), at(&mut state, out.len()));
                let (from, to) = (a.min(b), a.max(b));
                let piece = out[from..to].to_vec();
                out.splice(to..to, piece);
            }
            _ if !out.is_empty() => {
                let i = at(&mut state, out.len());
                out.remove(i);
            }
            _ => {}
        }
    }
    out
}

#[test]
fn every_fuzz_target_holds_on_its_seeds_and_their_mutations() {
    targets::watch_panics();
    for (name, run) in targets::TARGETS {
        let seeds = seeds(name);
        assert!(seeds.len() >= 4, "{name}: the corpus needs seeds");
        for (file, seed) in &seeds {
            let outcome = std::panic::catch_unwind(|| run(seed));
            assert!(outcome.is_ok(), "{name}: seed {file} fails");
            for round in 0..MUTATIONS {
                let input = mutate(seed, round);
                let outcome = std::panic::catch_unwind(|| run(&input));
                assert!(
                    outcome.is_ok(),
                    "{name}: seed {file}, mutation {round} fails on {:?}",
                    String::from_utf8_lossy(&input)
                );
            }
        }
        targets::assert_no_panic(name);
    }
}
