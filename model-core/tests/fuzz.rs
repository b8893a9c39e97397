//! Property-based fuzzing of model-core's parsers (proptest, fixed seed, bounded cases, so CI
//! runs the same cases every time; `PROPTEST_CASES=100000 cargo test -p model-core --test
//! fuzz` runs longer by hand). Inputs nobody picked: mutations of real files from the corpus
//! in `tests/fixtures/fuzz/` (rows `collect` wrote from the bundled extracts, a CRLF file with
//! quoted fields) and of the shipped bundle's `model.json` and weights, and generated files
//! whose right answers are known. Every parser answers with a value or an error that says
//! where: no panic, and no allocation that follows a size a file declares without a bound.

use std::path::PathBuf;

use burn::tensor::Device;
use model_core::LabelVocab;
use model_core::data::tags::parse_tags_csv;
use model_core::infer::Predictor;
use model_core::infer::bundle::BundleManifest;
use model_core::model::{MAX_IMAGE_SIZE, MAX_LAYER_WIDTH, MAX_VOCAB};
use proptest::prelude::*;

mod mutate;
use mutate::{Edit, apply, edit, runner};

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn shipped(file: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets/model").join(file);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The number of physical lines of `bytes` (a line end is `\n`, `\r\n` or a lone `\r`).
fn line_count(bytes: &[u8]) -> u64 {
    let ends = bytes
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')))
        .count();
    ends as u64 + 1
}

/// Mutated tags files: a report or a header error, never a panic; every row it names lies on
/// a line of the file, and the kept rows' lines go down the file in order.
#[test]
fn mutated_tags_csv_is_read_or_refused_with_lines_in_the_file() {
    let labels = LabelVocab::default();
    let seeds = [fixture("tags.csv"), fixture("tags_crlf_quoted.csv")];
    let strategy = (0..seeds.len(), prop::collection::vec(edit(), 1..8));
    runner(2000)
        .run(&strategy, |(seed, edits)| {
            let bytes = apply(seeds[seed].clone(), &edits);
            let lines = line_count(&bytes);
            if let Ok(report) = parse_tags_csv(&bytes, &labels) {
                for r in &report.rejected {
                    prop_assert!(
                        r.line >= 2 && r.line <= lines,
                        "line {} of {lines}: {r:?}",
                        r.line
                    );
                    prop_assert!(!r.reason.is_empty());
                }
                prop_assert!(report.lines.windows(2).all(|w| w[0] < w[1]), "{:?}", report.lines);
                prop_assert!(report.lines.iter().all(|&l| l >= 2 && l <= lines));
                prop_assert_eq!(report.lines.len(), report.table.tags.len());
            }
            Ok(())
        })
        .unwrap();
}

/// One generated row: valid or with a latitude out of range, a note that is plain or quoted
/// with a comma and a line break inside, and the line end after it.
#[derive(Debug, Clone)]
struct Row {
    valid: bool,
    quoted_note: bool,
    end: &'static str,
}

fn row() -> impl Strategy<Value = Row> {
    (any::<bool>(), any::<bool>(), prop_oneof![Just("\n"), Just("\r\n"), Just("\r")])
        .prop_map(|(valid, quoted_note, end)| Row { valid, quoted_note, end })
}

/// Files whose answers are known: every rejected row is reported on the line where it starts,
/// and every kept row too, for LF, CRLF and CR line ends, mixed, with quoted fields that hold
/// commas and line breaks, and blank lines between rows.
#[test]
fn generated_tags_csv_names_the_right_line_of_every_row() {
    let labels = LabelVocab::default();
    let strategy = (prop::collection::vec((row(), any::<bool>()), 1..40), any::<bool>());
    runner(1000)
        .run(&strategy, |(rows, bom)| {
            let mut text = String::from(if bom { "\u{feff}" } else { "" });
            text.push_str("id,lat,lon,type,source,note\n");
            let mut line = 2u64;
            let (mut want_kept, mut want_rejected) = (Vec::new(), Vec::new());
            for (i, (r, blank_after)) in rows.iter().enumerate() {
                let lat = if r.valid { "60.1701" } else { "95" };
                let note = if r.quoted_note { "\"by the door, left\nside\"" } else { "plain" };
                text.push_str(&format!("r{i},{lat},24.9402,ramp,user,{note}{}", r.end));
                if r.valid { &mut want_kept } else { &mut want_rejected }.push(line);
                line += 1 + u64::from(r.quoted_note);
                if *blank_after {
                    text.push_str(r.end);
                    line += 1;
                }
            }
            let report = parse_tags_csv(text.as_bytes(), &labels).unwrap();
            let rejected: Vec<u64> = report.rejected.iter().map(|r| r.line).collect();
            prop_assert_eq!(&report.lines, &want_kept);
            prop_assert_eq!(&rejected, &want_rejected);
            for r in &report.rejected {
                prop_assert_eq!(r.field.as_deref(), Some("lat"), "{:?}", r);
            }
            Ok(())
        })
        .unwrap();
}

/// A numeric field of `model.json` set to a value nobody picked (zero, huge, negative,
/// fractional, a string), or the file's bytes mutated: refused with a message, or read with
/// every declared size within what a model may take.
#[test]
fn mutated_manifest_is_refused_or_bounded() {
    let text = String::from_utf8(shipped("model.json")).unwrap();
    let original: serde_json::Value = serde_json::from_str(&text).unwrap();
    let fields = ["metadata_dim", "fusion_dim", "image_size", "dropout"];
    let value = prop_oneof![
        Just(serde_json::json!(0)),
        Just(serde_json::json!(u64::MAX)),
        Just(serde_json::json!(-1)),
        Just(serde_json::json!(1e300)),
        Just(serde_json::json!("224")),
        (0u64..1 << 40).prop_map(|n| serde_json::json!(n)),
    ];
    let strategy = prop_oneof![
        (0..fields.len(), value).prop_map(move |(f, v)| {
            let mut m = original.clone();
            m["config"][fields[f]] = v;
            m.to_string().into_bytes()
        }),
        prop::collection::vec(edit(), 1..6)
            .prop_map(move |edits| apply(text.clone().into_bytes(), &edits)),
    ];
    runner(1500)
        .run(&strategy, |bytes| {
            let Ok(text) = std::str::from_utf8(&bytes) else { return Ok(()) };
            match BundleManifest::from_json(text) {
                Ok(m) => {
                    let c = &m.config;
                    prop_assert!(
                        c.metadata_dim <= MAX_LAYER_WIDTH && c.fusion_dim <= MAX_LAYER_WIDTH
                    );
                    prop_assert!(c.image_size <= MAX_IMAGE_SIZE);
                    prop_assert!(c.labels.len() <= MAX_VOCAB);
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
            Ok(())
        })
        .unwrap();
}

/// The bound that the property above relies on, said plainly: a manifest declaring a fusion
/// layer of a billion units is refused by name before any weight is allocated.
#[test]
fn a_huge_declared_layer_is_refused_by_name() {
    let mut m: serde_json::Value = serde_json::from_slice(&shipped("model.json")).unwrap();
    m["config"]["fusion_dim"] = serde_json::json!(1_000_000_000u64);
    let err = BundleManifest::from_json(&m.to_string()).unwrap_err().to_string();
    assert!(err.contains("fusion_dim") && err.contains("1000000000"), "{err}");
}

/// The shipped weights truncated or with bytes overwritten, and the shipped weights under a
/// manifest of another shape: an error, never a panic or an abort.
#[test]
fn damaged_weights_are_an_error() {
    let manifest =
        BundleManifest::from_json(&String::from_utf8(shipped("model.json")).unwrap()).unwrap();
    let weights = shipped("weights.bpk");
    let device = Device::flex();
    let mut narrower = manifest.clone();
    narrower.config.fusion_dim = 128;
    let err = Predictor::from_bundle(&narrower, &weights, &device).err();
    assert!(err.is_some(), "weights of a 256-wide fusion layer loaded into a 128-wide one");
    let len = weights.len();
    let strategy = prop_oneof![
        (0..len).prop_map(|at| vec![Edit::Truncate(at)]),
        prop::collection::vec(
            (0usize..4096, any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
            1..8
        ),
    ];
    runner(12)
        .run(&strategy, |edits| {
            let damaged = apply(weights.clone(), &edits);
            // Either refused, or (a flipped byte inside a float) a model that still predicts.
            if let Err(e) = Predictor::from_bundle(&manifest, &damaged, &device) {
                prop_assert!(!e.to_string().is_empty());
            }
            Ok(())
        })
        .unwrap();
}
