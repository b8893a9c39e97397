//! `accessatlas suggest` on the bundled extract and the shipped model: every suggestion sits
//! on a candidate from the map's geometry, none within 5 m of a mapped feature of its type,
//! most confident first, none under the threshold; CSV and GeoJSON agree; a bad bbox is a
//! clear error and writes nothing.

use std::path::PathBuf;

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

/// Without `--threshold`, `suggest` uses the shipped model's own threshold (chosen on its
/// validation cells): the same suggestions as passing it.
#[test]
fn the_default_threshold_is_the_models() {
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/model/model.json"))
            .unwrap(),
    )
    .unwrap();
    let t = manifest["suggest_threshold"].as_f64().expect("the shipped model has a threshold");
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
