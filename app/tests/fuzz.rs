//! Property-based fuzzing of the page's imports (proptest, fixed seed, bounded cases; more
//! with `PROPTEST_CASES=N`), natively: the same code runs in the page. GeoJSON and CSV files
//! nobody picked, mutations of real ones (the rows `collect` wrote from the bundled extracts,
//! model-core's fuzz corpus, and their GeoJSON export) and generated FeatureCollections with
//! odd geometry, numbers, nesting and a new property name in every feature. Every import
//! answers with a report or an error, never a panic; every feature or row is accounted for;
//! what is kept is a valid tag; the store's columns stay bounded.
#![cfg(not(target_arch = "wasm32"))]

use std::path::PathBuf;

use app::geojson::{import_geojson, to_geojson};
use app::store::{ImportReport, MAX_EXTRA_COLUMNS, TagStore, labels};
use proptest::prelude::*;
use serde_json::{Value, json};

#[path = "../../model-core/tests/mutate/mod.rs"]
mod mutate;
use mutate::{apply, edit, runner};

fn corpus(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../model-core/tests/fixtures/fuzz")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The real rows of the corpus imported as the page imports a CSV, and their GeoJSON export.
fn seeds() -> (Vec<Vec<u8>>, Vec<String>) {
    let csvs = vec![corpus("tags.csv"), corpus("tags_crlf_quoted.csv")];
    let geojson = csvs
        .iter()
        .map(|c| {
            let mut s = TagStore::default();
            let r = s.import_csv(c).unwrap();
            assert!(r.added >= 2 && r.rejected.is_empty(), "the corpus holds real rows: {r:?}");
            to_geojson(&s)
        })
        .collect();
    (csvs, geojson)
}

/// What every import must keep: valid tags only, columns within the cap, every tag as wide
/// as the columns.
fn check_store(s: &TagStore) -> Result<(), TestCaseError> {
    prop_assert!(s.extra_columns.len() <= MAX_EXTRA_COLUMNS, "{} columns", s.extra_columns.len());
    for t in &s.tags {
        prop_assert!(
            t.lat.is_finite() && t.lat.abs() <= 90.0 && t.lon.is_finite() && t.lon.abs() <= 180.0
        );
        prop_assert!(labels().index(&t.label).is_ok(), "{}", t.label);
        prop_assert!(!t.id.is_empty() && !t.source.is_empty());
        prop_assert_eq!(t.extra.len(), s.extra_columns.len());
    }
    Ok(())
}

/// Every feature of a FeatureCollection is added, replaces a tag, or is rejected naming its
/// number and field.
fn check_report(r: &ImportReport, features: usize) -> Result<(), TestCaseError> {
    prop_assert_eq!(r.added + r.replaced + r.rejected.len(), features, "{:?}", r);
    for x in &r.rejected {
        prop_assert!(x.line >= 1 && x.line as usize <= features, "{x:?}");
        prop_assert!(x.field.is_some() && !x.reason.is_empty(), "{x:?}");
    }
    Ok(())
}

fn features_in(text: &str) -> Option<usize> {
    let v: Value = serde_json::from_str(text).ok()?;
    (v.get("type") == Some(&json!("FeatureCollection")))
        .then(|| v.get("features")?.as_array().map(Vec::len))?
}

/// Mutated exports and CSV files (read as the page reads a file: bytes, or text with the
/// invalid UTF-8 replaced), imported into a store that already holds tags.
#[test]
fn mutated_imports_are_read_or_refused() {
    let (csvs, geojson) = seeds();
    let strategy = (0..2usize, any::<bool>(), prop::collection::vec(edit(), 1..8));
    runner(1500)
        .run(&strategy, |(seed, as_geojson, edits)| {
            let mut store = TagStore::default();
            store.import_csv(&csvs[0]).unwrap();
            if as_geojson {
                let bytes = apply(geojson[seed].clone().into_bytes(), &edits);
                let text = String::from_utf8_lossy(&bytes);
                match import_geojson(&mut store, &text) {
                    Ok(r) => check_report(&r, features_in(&text).expect("an accepted collection"))?,
                    Err(e) => prop_assert!(!e.is_empty()),
                }
            } else {
                let bytes = apply(csvs[seed].clone(), &edits);
                if let Ok(r) = store.import_csv(&bytes) {
                    for x in &r.rejected {
                        prop_assert!(x.line >= 2 && !x.reason.is_empty(), "{x:?}");
                    }
                }
            }
            check_store(&store)
        })
        .unwrap();
}

/// Any JSON value, nested up to a few levels: what a property or a coordinate may be.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        (-200.0..200.0f64).prop_map(Value::from),
        "[a-z_ ]{0,12}".prop_map(Value::from),
        prop_oneof![Just("ramp"), Just("entrance"), Just("bench"), Just("")].prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// One generated feature: a Point or not, coordinates in range or not (or not numbers), id,
/// type and source present or odd, and (when `fresh`) a property name no other feature has.
fn feature(n: usize) -> impl Strategy<Value = Value> {
    let geometry_type = prop_oneof![Just("Point"), Just("LineString"), Just("point")];
    let coords = prop_oneof![
        (-190.0..190.0f64, -95.0..95.0f64).prop_map(|(x, y)| json!([x, y])),
        (24.9..25.0f64, 60.1..60.2f64).prop_map(|(x, y)| json!([x, y])),
        value(),
    ];
    let id = prop_oneof![Just(json!(format!("f{n}"))), Just(json!("dup")), value()];
    let label = prop_oneof![Just(json!("ramp")), Just(json!("obstacle")), value()];
    let source = prop_oneof![Just(json!("user")), value()];
    (geometry_type, coords, id, label, source, value(), any::<bool>()).prop_map(
        move |(g, c, id, label, source, extra, fresh)| {
            let mut props = json!({ "id": id, "type": label, "source": source, "note": extra });
            if fresh {
                props[format!("field_{n}")] = json!("x");
            }
            json!({
                "type": "Feature",
                "geometry": { "type": g, "coordinates": c },
                "properties": props,
            })
        },
    )
}

/// Generated FeatureCollections: every feature accounted for, the store valid, and its
/// columns bounded even when every feature brings a property name of its own.
#[test]
fn generated_feature_collections_are_accounted_for() {
    let strategy = (1usize..120).prop_flat_map(|n| (0..n).map(feature).collect::<Vec<_>>());
    runner(300)
        .run(&strategy, |features| {
            let n = features.len();
            let text = json!({ "type": "FeatureCollection", "features": features }).to_string();
            let mut store = TagStore::default();
            let r = import_geojson(&mut store, &text).expect("a FeatureCollection");
            check_report(&r, n)?;
            check_store(&store)
        })
        .unwrap();
}

/// A file that names a new property in each of its 1,000 features: the store stops at
/// [`MAX_EXTRA_COLUMNS`] and the features past it are rejected, naming the field.
#[test]
fn a_new_property_in_every_feature_is_bounded() {
    let features: Vec<Value> = (0..1000)
        .map(|i| {
            json!({
                "type": "Feature",
                "geometry": { "type": "Point", "coordinates": [24.94, 60.17] },
                "properties": { "id": format!("t{i}"), "type": "ramp", "source": "user", format!("p{i}"): "x" },
            })
        })
        .collect();
    let text = json!({ "type": "FeatureCollection", "features": features }).to_string();
    let mut store = TagStore::default();
    let r = import_geojson(&mut store, &text).unwrap();
    assert_eq!(store.extra_columns.len(), MAX_EXTRA_COLUMNS);
    assert_eq!(r.added, MAX_EXTRA_COLUMNS - 2, "note and osm_tags come first");
    assert_eq!(r.rejected.len(), 1000 - r.added);
    assert_eq!(r.rejected[0].field.as_deref(), Some("properties"));
    assert!(r.rejected[0].reason.contains("at most 64"), "{}", r.rejected[0].reason);
}
