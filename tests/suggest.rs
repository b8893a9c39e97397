//! `accessatlas suggest` on the bundled extract and the shipped model: every suggestion sits
//! on a candidate from the map's geometry, none within 5 m of a mapped feature of its type,
//! most confident first, none under the threshold; CSV and GeoJSON agree; a bad bbox is a
//! clear error and writes nothing; a run killed midway goes on where it stopped.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use accessatlas::cell_log::partial_path;

use accessatlas::osm::rules::Rules;
use accessatlas::osm::{BUNDLED_OSM, BUNDLED_OSM_NAME, OsmMap, geometry_in, labelled_features};
use model_core::LabelVocab;
use model_core::data::candidates::candidates;
use model_core::data::tile::{BBox, distance_m};

mod common;

use common::{bin, tmp};

const BBOX: &str = "24.9370,60.1685,24.9410,60.1705";

fn suggest(args: &[&str]) -> std::process::Output {
    bin().current_dir(env!("CARGO_MANIFEST_DIR")).arg("suggest").args(args).output().unwrap()
}

#[test]
fn suggestions_sit_on_candidates_and_skip_what_is_mapped() {
    let dir = tmp("suggest-ok");
    let out = dir.path().join("s.csv");
    // Under the candidates' prior the shipped model is rarely sure of a feature: a low bar.
    let threshold = 0.03;
    let o = suggest(&["--bbox", BBOX, "--threshold", "0.03", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "lat,lon,type,confidence,candidate,p_ramp,p_elevator,p_entrance,p_tactile_path,p_obstacle,p_none"
    );
    let rows: Vec<Vec<String>> = lines.map(|l| l.split(',').map(String::from).collect()).collect();
    assert!(
        !rows.is_empty(),
        "no suggestion in the city centre: {}",
        String::from_utf8_lossy(&o.stderr)
    );

    let map = OsmMap::from_bytes(BUNDLED_OSM, BUNDLED_OSM_NAME).unwrap();
    let bbox = BBox::parse(BBOX).unwrap();
    let found = candidates(&geometry_in(&map, &bbox));
    let mapped = labelled_features(&map, &Rules::default_rules(&LabelVocab::default()).unwrap());
    let mut last = f64::INFINITY;
    for r in &rows {
        let (lat, lon): (f64, f64) = (r[0].parse().unwrap(), r[1].parse().unwrap());
        let conf: f64 = r[3].parse().unwrap();
        assert!(conf >= threshold && conf <= last + 1e-9, "order or threshold: {r:?}");
        // The suggestion names the most probable feature type (`p_none` last is set aside).
        let p_types: Vec<f64> = r[5..10].iter().map(|v| v.parse().unwrap()).collect();
        let top = p_types.iter().cloned().fold(0.0, f64::max);
        assert!((top - conf).abs() < 1e-5, "{r:?}");
        last = conf;
        assert!(bbox.contains(lat, lon));
        let c = found.iter().find(|c| (c.lat - lat).abs() < 1e-6 && (c.lon - lon).abs() < 1e-6);
        let c = c.unwrap_or_else(|| panic!("{r:?} is not a candidate"));
        let kinds: Vec<&str> = c.kinds.iter().map(|k| k.name()).collect();
        assert_eq!(r[4], kinds.join("+"));
        let near =
            mapped.iter().find(|m| m.label == r[2] && distance_m(lat, lon, m.lat, m.lon) <= 5.0);
        assert!(near.is_none(), "{r:?} is already mapped: {near:?}");
        let p: f64 = r[5..].iter().map(|v| v.parse::<f64>().unwrap()).sum();
        assert!((p - 1.0).abs() < 1e-3, "probabilities sum to {p}");
    }
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{} suggestion(s) from", rows.len())), "{err}");

    // GeoJSON: the same suggestions.
    let o = suggest(&["--bbox", BBOX, "--threshold", "0.03", "--format", "geojson"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let feats = v["features"].as_array().unwrap();
    assert_eq!(feats.len(), rows.len());
    for (f, r) in feats.iter().zip(&rows) {
        assert_eq!(f["properties"]["type"], r[2].as_str());
    }

    // MapRoulette: one task per suggestion, same places, the type's default OSM tags.
    let o = suggest(&["--bbox", BBOX, "--threshold", "0.03", "--format", "maproulette"]);
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    let tasks: Vec<&str> = text.lines().collect();
    assert_eq!(tasks.len(), rows.len());
    let types = model_core::data::features::FeatureTypes::builtin();
    for (line, r) in tasks.iter().zip(&rows) {
        let json = line.strip_prefix('\u{1e}').expect("RFC 7464: each task starts with RS");
        let task: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(task["type"], "FeatureCollection");
        let f = &task["features"][0];
        let c = f["geometry"]["coordinates"].as_array().unwrap();
        assert!((c[1].as_f64().unwrap() - r[0].parse::<f64>().unwrap()).abs() < 1e-6);
        assert!((c[0].as_f64().unwrap() - r[1].parse::<f64>().unwrap()).abs() < 1e-6);
        assert_eq!(f["properties"]["accessatlas:type"], r[2].as_str());
        for (k, v) in types.get(&r[2]).unwrap().preset(None).unwrap().pairs() {
            assert_eq!(f["properties"][&k], v.as_str(), "{line}");
        }
    }
}

/// Without `--threshold`, `suggest` uses the shipped model's own threshold there: in central
/// Helsinki, the one chosen on central Helsinki's validation cells (its `area_rules`), the same
/// suggestions as passing it.
#[test]
fn the_default_threshold_is_the_models() {
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/model/model.json"))
            .unwrap(),
    )
    .unwrap();
    let t = manifest["area_rules"]["helsinki"]["suggest_threshold"]
        .as_f64()
        .expect("the shipped model has central Helsinki's own threshold");
    assert!(t > 0.0 && t < 0.5, "{t}");
    let plain = suggest(&["--bbox", BBOX]);
    assert!(plain.status.success(), "{}", String::from_utf8_lossy(&plain.stderr));
    let at_t = suggest(&["--bbox", BBOX, "--threshold", &t.to_string()]);
    assert_eq!(String::from_utf8_lossy(&plain.stdout), String::from_utf8_lossy(&at_t.stdout));
    let at_half = suggest(&["--bbox", BBOX, "--threshold", "0.5"]);
    let rows = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).lines().count();
    assert!(rows(&at_half) < rows(&plain), "the model's threshold is lower than 0.5");
}

#[test]
fn bad_areas_are_clear_errors_and_write_nothing() {
    let dir = tmp("suggest-bad");
    let out = dir.path().join("s.csv");
    for (bbox, says) in [
        ("24.95,60.17,24.93,60.16", "inverted"),
        ("24.9,60.1", "2 numbers"),
        ("NaN,60.16,24.95,60.17", "finite"),
        ("24,60,25,61", "over the limit"),
        ("10.0,50.0,10.01,50.01", "nothing in"),
    ] {
        let o = suggest(&["--bbox", bbox, "--out", out.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{bbox}");
        assert!(err.contains("--bbox") && err.contains(says), "{bbox}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(!out.exists(), "{bbox}: nothing is written");
    }
}

/// A run killed with SIGKILL midway goes on where it stopped: the same command says how many
/// cells were done, drops a record line the stop cut off (that cell runs again), and writes
/// byte for byte what an unbroken run writes; a finished run leaves no record behind.
#[test]
fn a_run_killed_midway_goes_on_where_it_stopped() {
    let dir = tmp("suggest-resume");
    let args = |out: &Path| -> Vec<String> {
        ["--bbox", BBOX, "--threshold", "0.03", "--cell-zoom", "18", "--out"]
            .map(String::from)
            .into_iter()
            .chain([out.display().to_string()])
            .collect()
    };
    let run = |out: &Path| {
        bin()
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("suggest")
            .args(args(out))
            .output()
            .unwrap()
    };
    let whole = dir.path().join("whole.csv");
    let o = run(&whole);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let expected = std::fs::read_to_string(&whole).unwrap();
    assert!(expected.lines().count() > 2, "suggestions to compare: {expected}");
    assert!(!partial_path(&whole).exists(), "a finished run leaves no record");

    let stopped = dir.path().join("stopped.csv");
    let record = partial_path(&stopped);
    let mut child = bin()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("suggest")
        .args(args(&stopped))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let newlines = |p: &Path| std::fs::read(p).map(|b| b.iter().filter(|&&c| c == b'\n').count());
    let deadline = Instant::now() + Duration::from_secs(600);
    // The header and two finished cells, then SIGKILL (`Child::kill` on Unix).
    while newlines(&record).unwrap_or(0) < 3 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before two cells were recorded"
        );
        assert!(Instant::now() < deadline, "no cell recorded in 10 minutes");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!stopped.exists(), "a stopped run writes no output");
    let done = newlines(&record).unwrap() - 1;
    // As if the stop had come in the middle of writing the next cell.
    let mut bytes = std::fs::read(&record).unwrap();
    bytes.extend_from_slice(b"{\"cell\":{\"z\":18,\"x\":14");
    std::fs::write(&record, bytes).unwrap();

    let o = run(&stopped);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("cut off"), "{err}");
    assert!(err.contains(&format!("resuming from {}: {done} of ", record.display())), "{err}");
    assert_eq!(std::fs::read_to_string(&stopped).unwrap(), expected);
    assert!(!record.exists(), "the record goes once the output is written");
}

/// The suggestion rule's case for the page: fixed predictions at the first 80 candidates of
/// [`BBOX`], what the extract maps there, and the list `accessatlas suggest` makes of them
/// (`select`). The page's own path over the same results must list the same
/// (`app/tests/web.rs`, in wasm). `ACCESSATLAS_UPDATE_FIXTURES=1` rewrites the fixture.
#[derive(serde::Serialize)]
struct RuleCase {
    threshold: f32,
    mapped: Vec<model_core::data::candidates::MappedFeature>,
    results: Vec<(f64, f64, model_core::Prediction)>,
    expected: Vec<(f64, f64, String, f32)>,
}

#[test]
fn the_cli_list_is_the_case_the_page_checks() {
    use accessatlas::suggestions::{Suggestion, select};
    let map = OsmMap::from_bytes(BUNDLED_OSM, BUNDLED_OSM_NAME).unwrap();
    let bbox = BBox::parse(BBOX).unwrap();
    let labels = LabelVocab::with_none();
    let found: Vec<_> = candidates(&geometry_in(&map, &bbox))
        .into_iter()
        .filter(|c| bbox.contains(c.lat, c.lon))
        .take(80)
        .collect();
    let mapped: Vec<_> = labelled_features(&map, &Rules::default_rules(&labels).unwrap())
        .iter()
        .map(|f| f.mapped())
        .filter(|m| found.iter().any(|c| m.distance_m(c.lat, c.lon) < 30.0))
        .collect();
    // Predictions that spread over every type and confidence, the same every run.
    let scored: Vec<Suggestion> = found
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let logits: Vec<f32> = (0..labels.len())
                .map(|k| 3.0 * ((i as f32) * 1.7 + (k as f32) * 2.3).sin())
                .collect();
            Suggestion {
                candidate: c.clone(),
                prediction: model_core::Prediction::from_logits(&logits, &labels, 1.0),
            }
        })
        .collect();
    let threshold = 0.25;
    let results = scored.iter().map(|g| (g.candidate.lat, g.candidate.lon, g.prediction.clone()));
    let results: Vec<_> = results.collect();
    let (list, skipped) = select(scored, &mapped, threshold);
    assert!(skipped > 0, "the case has a point next to a feature of its type");
    assert!(!list.is_empty() && list.len() + skipped < results.len(), "and points under the bar");
    let expected = list
        .iter()
        .map(|g| {
            (g.candidate.lat, g.candidate.lon, g.prediction.label.clone(), g.prediction.confidence)
        })
        .collect();
    let case = RuleCase { threshold, mapped, results, expected };
    let text = serde_json::to_string_pretty(&case).unwrap() + "\n";
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/suggest_rule.json");
    if std::env::var("ACCESSATLAS_UPDATE_FIXTURES").is_ok() {
        std::fs::write(&path, &text).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "the CLI's list changed: ACCESSATLAS_UPDATE_FIXTURES=1 rewrites {} (and the page must agree)",
        path.display()
    );
}
