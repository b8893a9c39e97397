//! Property-based fuzzing of the API from its own OpenAPI description, by a tool nobody here
//! wrote: Schemathesis (PyPI, pinned, in a venv under the cache) reads the served
//! `/api/openapi.json` and sends generated valid and invalid requests to every operation
//! (query strings, JSON and multipart bodies), with a fixed seed and a bounded number of cases,
//! checking each answer against the description: no 5xx, the status codes, content types,
//! headers and schemas it documents, invalid input refused and valid input accepted (but for
//! the refusals the description states in words and no schema can express, listed in
//! `tests/fixtures/schemathesis.toml`). After it, the server still answers `/api/health`.
//! `ACCESSATLAS_FUZZ_EXAMPLES` runs it longer by hand.

use std::process::Command;

use accessatlas::api::ApiConfig;
use accessatlas::serve::TileLimits;

mod common;

use common::{pypi_tool, tmp};

const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// The server on the bundled extract and the shipped model. A `bbox` may cover at most
/// 0.02 km² here (about 150 m square), so one generated suggestion request scores at most a
/// few hundred candidates; the rules it checks are the same.
fn start() -> String {
    let api = ApiConfig { max_area_km2: 0.02, ..ApiConfig::default() };
    common::browser::start_server(None, api, TileLimits::default())
}

#[test]
fn every_operation_answers_as_its_description_says() {
    let st = pypi_tool(SCHEMATHESIS, "st");
    let base = start();
    let examples = std::env::var("ACCESSATLAS_FUZZ_EXAMPLES").unwrap_or_else(|_| "25".into());
    let dir = tmp("api-fuzz");
    let report = dir.path().join("junit.xml");
    let out = Command::new(&st)
        .current_dir(dir.path())
        .arg("--config-file")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/schemathesis.toml"))
        .args(["run", &format!("{base}/api/openapi.json"), "--checks", "all"])
        .args(["--seed", "20261203", "--max-examples", &examples, "--workers", "1"])
        .args(["--request-timeout", "120", "--no-color", "--generation-database", "none"])
        .args(["--report", "junit", "--report-junit-path"])
        .arg(&report)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "Schemathesis found failures:\n{text}");
    // It tested every operation the description names (but the description's own address,
    // which it reads rather than tests).
    let junit = std::fs::read_to_string(&report).unwrap();
    for op in [
        "POST /api/predict",
        "GET /api/health",
        "GET /api/model",
        "GET /api/features",
        "GET /api/suggest",
        "GET /api/candidates",
    ] {
        assert!(junit.contains(op), "{op} not tested:\n{text}");
    }
    let health = ureq::get(&format!("{base}/api/health")).call().unwrap();
    assert_eq!(health.status(), 200, "the server answers after the fuzzing");
}
