//! Property-based fuzzing of the PBF reader and of `/api/predict`'s multipart parsing
//! (proptest, fixed seed, bounded cases; more with `PROPTEST_CASES=N`). The PBF reader: a small real extract of central Helsinki (`tests/fixtures/fuzz/`, cut
//! from the bundled one with `osmium extract`; its relations point at members outside it)
//! truncated, bit-flipped, with bytes inserted or repeated, and with its blob framing declaring
//! sizes nobody wrote. The reader answers with a map or with an error that names the byte
//! offset: no panic, no allocation that follows a declared size without a bound. The
//! multipart parser: a real request (a tile the renderer drew, lat, lon, source) mutated,
//! with its boundary changed or cut, answers with a request or a 4xx naming what is wrong.

use accessatlas::osm::rules::Rules;
use accessatlas::osm::{OsmMap, labelled_features};
use model_core::LabelVocab;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

#[path = "../model-core/tests/mutate/mod.rs"]
mod mutate;

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

/// A real `/api/predict` multipart body: a tile the renderer drew, lat, lon and source.
fn multipart_body(boundary: &str) -> Vec<u8> {
    let png = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/img/render_esplanadi.png"),
    )
    .unwrap();
    let mut b = Vec::new();
    let text = |b: &mut Vec<u8>, name: &str, value: &str| {
        b.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    };
    text(&mut b, "lat", "60.1675");
    text(&mut b, "lon", "24.9450");
    text(&mut b, "source", "user");
    b.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"t.png\"\r\nContent-Type: image/png\r\n\r\n"
        )
        .as_bytes(),
    );
    b.extend_from_slice(&png);
    b.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    b
}

/// Parses `body` as the server does (`api::request::parse`, the body limit 64 KiB).
fn parse_multipart(
    rt: &tokio::runtime::Runtime,
    content_type: &str,
    body: Vec<u8>,
) -> Result<accessatlas::api::request::PredictRequest, accessatlas::api::error::ApiError> {
    let req = axum::http::Request::builder()
        .method("POST")
        .uri("/api/predict")
        .header("content-type", content_type)
        .body(axum::body::Body::from(body))
        .unwrap();
    rt.block_on(accessatlas::api::request::parse(req, 64 * 1024))
}

#[test]
fn the_multipart_seed_is_a_request() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let r =
        parse_multipart(&rt, "multipart/form-data; boundary=XyZ", multipart_body("XyZ")).unwrap();
    assert_eq!((r.lat, r.lon, r.source.as_str()), (60.1675, 24.945, "user"));
    assert_eq!(&r.image[..4], b"\x89PNG");
}

/// Mutated multipart bodies, and the right body under a changed, cut or missing boundary:
/// a request whose fields are numbers and text, or a 4xx (never a 5xx, never a panic) whose
/// message says what is wrong.
#[test]
fn mutated_multipart_is_parsed_or_refused_with_a_4xx() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let seed = multipart_body("XyZ");
    let content_type = prop_oneof![
        4 => Just("multipart/form-data; boundary=XyZ".to_string()),
        1 => Just("multipart/form-data; boundary=Xy".to_string()),
        1 => Just("multipart/form-data".to_string()),
        1 => Just("multipart/form-data; boundary=\"XyZ\"; charset=utf-8".to_string()),
        1 => "multipart/form-data; boundary=[ -~]{0,80}",
    ];
    let strategy = (content_type, prop::collection::vec(mutate::edit(), 0..8));
    mutate::runner(1500)
        .run(&strategy, |(ctype, edits)| {
            let body = mutate::apply(seed.clone(), &edits);
            match parse_multipart(&rt, &ctype, body) {
                Ok(r) => prop_assert!(r.lat.is_finite() && r.lon.is_finite(), "{r:?}"),
                Err(e) => {
                    prop_assert!(e.status.is_client_error(), "{} {:?}", e.status, e);
                    prop_assert!(!e.error.is_empty(), "{e:?}");
                }
            }
            Ok(())
        })
        .unwrap();
}
