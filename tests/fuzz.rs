//! Property-based fuzzing of the PBF reader (proptest, fixed seed, bounded cases; more with
//! `PROPTEST_CASES=N`): a small real extract of central Helsinki (`tests/fixtures/fuzz/`, cut
//! from the bundled one with `osmium extract`; its relations point at members outside it)
//! truncated, bit-flipped, with bytes inserted or repeated, and with its blob framing declaring
//! sizes nobody wrote. The reader answers with a map or with an error that names the byte
//! offset: no panic, no allocation that follows a declared size without a bound.

use accessatlas::osm::rules::Rules;
use accessatlas::osm::{OsmMap, labelled_features};
use model_core::LabelVocab;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

const SEED: &str = "tests/fixtures/fuzz/helsinki_small.osm.pbf";

fn seed() -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(SEED)).unwrap()
}

fn runner(cases: u32) -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &[11; 32]))
}

/// Reads `bytes` as the CLI does, and labels what it read: an error must name where.
fn read(bytes: &[u8]) -> Result<(), TestCaseError> {
    match OsmMap::from_bytes(bytes, "fuzzed.osm.pbf") {
        Ok(map) => {
            let rules = Rules::default_rules(&LabelVocab::default()).unwrap();
            let _ = labelled_features(&map, &rules);
        }
        Err(e) => {
            let msg = format!("{e:#}");
            prop_assert!(msg.contains("byte offset") || msg.contains("fuzzed.osm.pbf"), "{msg}");
        }
    }
    Ok(())
}

#[test]
fn the_seed_is_a_real_extract() {
    let map = OsmMap::from_bytes(&seed(), SEED).unwrap();
    let rules = Rules::default_rules(&LabelVocab::default()).unwrap();
    assert!(!labelled_features(&map, &rules).is_empty(), "the seed holds labelled features");
}

#[test]
fn damaged_extracts_are_read_or_refused_with_the_offset() {
    let bytes = seed();
    let len = bytes.len();
    let strategy = prop_oneof![
        // Truncated anywhere.
        (0..len).prop_map(|n| (vec![], Some(n), None)),
        // Bytes overwritten, anywhere or in the first blob's header.
        prop::collection::vec((0..len, any::<u8>()), 1..16).prop_map(|f| (f, None, None)),
        prop::collection::vec((0usize..64, any::<u8>()), 1..4).prop_map(|f| (f, None, None)),
        // A blob's declared header length replaced by any 32-bit size.
        any::<u32>().prop_map(|n| (vec![], None, Some(n))),
    ];
    runner(400)
        .run(&strategy, |(flips, truncate, header_len)| {
            let mut b = bytes.clone();
            for (i, v) in flips {
                b[i] = v;
            }
            if let Some(n) = header_len {
                b[..4].copy_from_slice(&n.to_be_bytes());
            }
            if let Some(n) = truncate {
                b.truncate(n);
            }
            read(&b)
        })
        .unwrap();
}

/// Files with no element at all, a header only, or nothing: a map with nothing in it or an
/// error, never a panic.
#[test]
fn empty_and_header_only_files_do_not_panic() {
    let bytes = seed();
    let frames = accessatlas::osm::frames(&bytes).unwrap();
    let header_only = &bytes[..frames[0].end];
    for b in [&[][..], header_only, &bytes[..4]] {
        read(b).unwrap();
    }
}
