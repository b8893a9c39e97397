//! `accessatlas preprocess` on the bundled data: split, scaler, class weights, metadata.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use model_core::LabelVocab;
use model_core::data::split::group_of;
use model_core::data::tags::{Tag, parse_tags_csv};
use model_core::data::tile::distance_m;

mod common;

use common::{bin, tmp};

fn read(data: &Path, split: &str) -> Vec<Tag> {
    let bytes = std::fs::read(data.join(format!("tags_{split}.csv"))).unwrap();
    parse_tags_csv(&bytes, &LabelVocab::with_none()).unwrap().table.tags
}

#[test]
fn bundled_data_is_split_without_leakage_and_metadata_matches_the_formulas() {
    let temp = tmp("prep");
    let data = temp.path().join("data");
    let out = bin().arg("collect").arg("--data").arg(&data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = bin().arg("preprocess").arg("--data").arg(&data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("tactile_path") && stdout.contains("warning"), "{stdout}");

    let splits: BTreeMap<&str, Vec<Tag>> =
        ["train", "val", "test"].into_iter().map(|s| (s, read(&data, s))).collect();
    let total: usize = splits.values().map(Vec::len).sum();
    let all =
        parse_tags_csv(&std::fs::read(data.join("tags.csv")).unwrap(), &LabelVocab::with_none())
            .unwrap()
            .table
            .tags;
    assert_eq!(total, all.len(), "every tag lands in exactly one split");

    // No zoom-17 cell spans two splits.
    let mut owner: BTreeMap<(u32, u32), &str> = BTreeMap::new();
    for (s, tags) in &splits {
        for t in tags {
            let g = group_of(t.lat, t.lon, 17).unwrap();
            let o = *owner.entry(g).or_insert(s);
            assert_eq!(o, *s, "cell {g:?} is in {o} and {s}");
        }
    }
    // Overall proportions within 5 points of 70/15/15.
    for (s, want) in [("train", 0.70), ("val", 0.15), ("test", 0.15)] {
        let f = splits[s].len() as f64 / total as f64;
        assert!((f - want).abs() <= 0.05, "{s}: {f:.3}");
    }

    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("preprocessing_metadata.json")).unwrap())
            .unwrap();
    for key in ["labels", "sources", "scaler", "class_weights", "counts", "seed", "input_hash"] {
        assert!(meta.get(key).is_some(), "metadata lacks `{key}`");
    }
    // The five types and `none` (collect's background points) last.
    assert_eq!(meta["labels"].as_array().unwrap().len(), 6);
    assert_eq!(meta["labels"][5], "none");
    // Scaler: mean and population std of the training split.
    let train = &splits["train"];
    let n = train.len() as f64;
    let mean_lat = train.iter().map(|t| t.lat).sum::<f64>() / n;
    let std_lat = (train.iter().map(|t| (t.lat - mean_lat).powi(2)).sum::<f64>() / n).sqrt();
    let m = meta["scaler"]["mean"][0].as_f64().unwrap();
    let s = meta["scaler"]["std"][0].as_f64().unwrap();
    assert!(
        (m - mean_lat).abs() < 1e-9 && (s - std_lat).abs() < 1e-9,
        "{m} {s} vs {mean_lat} {std_lat}"
    );
    // Class weights: n_samples / (n_classes_present * n_class) on train.
    let classes: BTreeSet<&str> = train.iter().map(|t| t.label.as_str()).collect();
    for c in &classes {
        let k = train.iter().filter(|t| t.label == *c).count() as f64;
        let want = n / (classes.len() as f64 * k);
        let got = meta["class_weights"][*c].as_f64().unwrap();
        assert!((got - want).abs() < 1e-4, "{c}: {got} vs {want}");
        assert_eq!(meta["counts"]["train"][*c].as_u64().unwrap() as f64, k);
    }
    assert_eq!(meta["class_weights"]["tactile_path"].as_f64().unwrap(), 0.0);

    // Deterministic: a second run writes the same files.
    let before = std::fs::read(data.join("tags_test.csv")).unwrap();
    let out = bin().arg("preprocess").arg("--data").arg(&data).output().unwrap();
    assert!(out.status.success());
    assert_eq!(before, std::fs::read(data.join("tags_test.csv")).unwrap());

    // A buffer: the test split stays the same, no training or validation row lies within
    // 100 m of a test row, and the rows left out are counted.
    let out = bin().arg("preprocess").arg("--data").arg(&data).args(["--buffer-m", "100"]).output();
    let out = out.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(before, std::fs::read(data.join("tags_test.csv")).unwrap());
    let test = read(&data, "test");
    let kept: Vec<Tag> = ["train", "val"].iter().flat_map(|s| read(&data, s)).collect();
    for t in &kept {
        for x in &test {
            let d = distance_m(t.lat, t.lon, x.lat, x.lon);
            assert!(d > 100.0, "{} is {d:.0} m from test row {}", t.id, x.id);
        }
    }
    let left = all.len() - test.len() - kept.len();
    assert!(left > 0 && kept.len() > test.len(), "{left} left out, {} kept", kept.len());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let said =
        format!("{left} rows within 100 m of a test row left out of training and validation");
    assert!(stdout.contains(&said), "{stdout}");
    let bad = bin().arg("preprocess").arg("--data").arg(&data).args(["--buffer-m=-5"]).output();
    let bad = bad.unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--buffer-m -5"), "{bad:?}");

    // A missing image is rejected with its reason; the rest is kept.
    let first = &all[0];
    std::fs::remove_file(data.join(first.image.as_ref().unwrap())).unwrap();
    let out = bin().arg("preprocess").arg("--data").arg(&data).output().unwrap();
    assert!(out.status.success());
    let rej = std::fs::read_to_string(data.join("preprocess_rejected_rows.csv")).unwrap();
    assert!(rej.contains(&first.id), "{rej}");
    let total2: usize = ["train", "val", "test"].iter().map(|s| read(&data, s).len()).sum();
    assert_eq!(total2, all.len() - 1);
}

#[test]
fn missing_tags_file_names_the_next_step() {
    let temp = tmp("prep-none");
    let data = temp.path().join("data");
    let out = bin().arg("preprocess").arg("--data").arg(&data).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tags.csv") && err.contains("collect"), "{err}");
}
