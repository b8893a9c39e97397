//! `accessatlas collect` end to end on the bundled OSM extract.

use std::path::{Path, PathBuf};
use std::process::Output;

use model_core::LabelVocab;
use model_core::data::split::group_of;
use model_core::data::tags::parse_tags_csv;
use model_core::data::tile::distance_m;
use model_core::data::vocab::NONE_LABEL;

mod common;

use common::{bin, tmp};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str], data: &Path) -> Output {
    bin().arg("collect").arg("--data").arg(data).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn bundled_extract_gives_hundreds_of_labelled_tiles() {
    let temp = tmp("collect-bundled");
    let data = temp.path().to_path_buf();
    let out = run(&[], &data);
    assert!(out.status.success(), "{}", text(&out));
    let report =
        parse_tags_csv(&std::fs::read(data.join("tags.csv")).unwrap(), &LabelVocab::with_none())
            .unwrap();
    assert!(report.rejected.is_empty());
    let (background, tags): (Vec<_>, Vec<_>) =
        report.table.tags.into_iter().partition(|t| t.label == NONE_LABEL);
    let tags = &tags;
    assert!(tags.len() >= 500, "only {} tags", tags.len());
    let count = |t: &str| tags.iter().filter(|x| x.label == t).count();
    // The extract's documented content: ~325 entrances, 95 lowered kerbs, 11+ lifts, ~190+
    // barriers, no tactile paving.
    assert!(count("entrance") >= 300, "{}", count("entrance"));
    assert!(count("ramp") >= 90);
    assert!(count("elevator") >= 11);
    assert!(count("obstacle") >= 150);
    assert_eq!(count("tactile_path"), 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("tactile_path") && stdout.contains("no examples"), "{stdout}");
    assert!(
        tags.iter()
            .all(|t| t.source == "osm" && (t.id.starts_with("node/") || t.id.starts_with("way/")))
    );
    for t in tags.iter().step_by(50) {
        let img = image::open(data.join(t.image.as_ref().unwrap())).unwrap();
        assert_eq!((img.width(), img.height()), (224, 224));
    }
    // The `none` class: as many background points as labels (--negatives-per-label 1.0), on
    // the labels' source, 10 m or more from every mapped feature, in the labels' map cells.
    assert_eq!(background.len(), tags.len(), "one background point per label");
    let cells: std::collections::HashSet<_> =
        tags.iter().map(|t| group_of(t.lat, t.lon, 17).unwrap()).collect();
    for b in &background {
        assert!(b.id.starts_with("none/") && b.source == "osm", "{b:?}");
        assert!(cells.contains(&group_of(b.lat, b.lon, 17).unwrap()), "{b:?}");
        let near = tags.iter().map(|t| distance_m(b.lat, b.lon, t.lat, t.lon)).fold(1e9, f64::min);
        assert!(near >= 10.0, "{} is {near:.1} m from a mapped feature", b.id);
        assert!(data.join(b.image.as_ref().unwrap()).is_file());
    }
    assert!(String::from_utf8_lossy(&out.stdout).contains("none"));
    // Every row names its region: the bundled extract's.
    assert_eq!(report.table.extra_columns, ["region"]);
    assert!(tags.iter().chain(&background).all(|t| t.extra == ["helsinki"]));
}

/// Two extracts make one dataset: rows of both, each with its region; background ids stay
/// unique; `preprocess` splits each region on its own, no map cell across two splits, and
/// `--hold-out` makes one region the whole test split.
#[test]
fn two_extracts_make_one_dataset_split_per_region() {
    use model_core::data::split::Split;
    let temp = tmp("collect-regions");
    let data = temp.path().to_path_buf();
    let (h, a) =
        (root().join("assets/osm/helsinki.osm.pbf"), root().join("assets/osm/andorra.osm.pbf"));
    let out = run(&["--osm", h.to_str().unwrap(), "--osm", a.to_str().unwrap()], &data);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("rows per region: andorra "), "{}", text(&out));
    let read = |name: &str| {
        parse_tags_csv(&std::fs::read(data.join(name)).unwrap(), &LabelVocab::with_none()).unwrap()
    };
    let report = read("tags.csv");
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    let table = report.table;
    let regions = table.regions();
    let of = |r: &'static str| {
        table.tags.iter().zip(&regions).filter(move |(_, x)| **x == r).map(|(t, _)| t)
    };
    // Andorra: its features and background points, inside its bbox; Helsinki: in its own.
    let andorra: Vec<_> = of("andorra").collect();
    let features = andorra.iter().filter(|t| t.label != NONE_LABEL).count();
    assert!(features >= 60, "{features} Andorran features");
    assert!(andorra.iter().any(|t| t.id.starts_with("none/andorra/")));
    assert!(andorra.iter().all(|t| (42.4..42.7).contains(&t.lat) && (1.4..1.8).contains(&t.lon)));
    assert!(of("helsinki").count() >= 1000);
    assert!(of("helsinki").all(|t| (60.1..60.2).contains(&t.lat)));
    let ids: std::collections::HashSet<_> = table.tags.iter().map(|t| &t.id).collect();
    assert_eq!(ids.len(), table.tags.len(), "ids are unique");

    let splits_of = |hold_out: &[&str]| {
        let o = bin().arg("preprocess").arg("--data").arg(&data).args(hold_out).output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
        let mut rows = Vec::new();
        for s in Split::ALL {
            let t = read(&format!("tags_{}.csv", s.name())).table;
            let r: Vec<String> = t.regions().into_iter().map(str::to_string).collect();
            rows.extend(t.tags.into_iter().zip(r).map(|(tag, r)| (tag, r, s)));
        }
        assert_eq!(rows.len(), table.tags.len());
        let mut cell_split = std::collections::HashMap::new();
        for (t, _, s) in &rows {
            let c = group_of(t.lat, t.lon, 17).unwrap();
            assert_eq!(*cell_split.entry(c).or_insert(*s), *s, "cell {c:?} spans two splits");
        }
        rows
    };
    let rows = splits_of(&[]);
    for region in ["helsinki", "andorra"] {
        for s in Split::ALL {
            assert!(
                rows.iter().any(|(_, r, x)| r == region && *x == s),
                "{region} has no {s:?} rows"
            );
        }
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("preprocessing_metadata.json")).unwrap())
            .unwrap();
    let areas = meta["scaler"]["areas"].as_array().unwrap();
    let names: Vec<&str> = areas.iter().map(|a| a["region"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"andorra") && names.contains(&"helsinki"));
    // `evaluate` reports each region of the test split (a small model, one epoch).
    let run_dir = data.join("run");
    let o = bin()
        .args(["train", "--encoder", "custom_cnn", "--image-size", "64", "--epochs", "1"])
        .args(["--batch-size", "64", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&run_dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let o = bin()
        .args(["evaluate", "--no-suggestions", "--data"])
        .arg(&data)
        .arg("--model")
        .arg(&run_dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("errors/metrics.json")).unwrap())
            .unwrap();
    let by_region = m["by_region"].as_array().expect("a figure per region");
    for region in ["andorra", "helsinki"] {
        let r = by_region.iter().find(|r| r["region"] == region).expect(region);
        let test_rows = rows.iter().filter(|(_, x, s)| x == region && *s == Split::Test).count();
        assert_eq!(r["rows"].as_u64(), Some(test_rows as u64), "{region}: {r}");
        assert!(r["feature_macro_f1"].is_number(), "{r}");
        // Each region's figure with where its resamples of that region's test cells lie.
        let i = &r["feature_macro_f1_interval"];
        assert_eq!(i["value"], r["feature_macro_f1"], "{region}: {r}");
        assert!(i["low"].as_f64() <= i["high"].as_f64() && i["cells"].as_u64() > Some(0), "{i}");
    }
    assert!(text(&o).contains("andorra"), "the region table: {}", text(&o));
    // Both regions trained: besides the pooled rule, each region its own prior, from its own
    // training cells (together: the pooled prior's), and its own threshold, which its test
    // suggestions are held to; the bundle carries them.
    let json = |f: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(run_dir.join(f)).unwrap()).unwrap()
    };
    let evaluate_both = || {
        bin()
            .args(["evaluate", "--data"])
            .arg(&data)
            .arg("--model")
            .arg(&run_dir)
            .args(["--osm", h.to_str().unwrap(), "--osm", a.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let o = evaluate_both();
    assert!(o.status.success(), "{}", text(&o));
    let (pooled, own) = (json("suggestion_prior.json"), json("suggestion_area_rules.json"));
    assert_eq!(pooled["regions"], 2, "{pooled}");
    let own_regions: Vec<&String> = own.as_object().unwrap().keys().collect();
    assert_eq!(own_regions, ["andorra", "helsinki"], "{own}");
    let n = |r: &str| own[r]["prior_measured"]["candidates"].as_u64().unwrap();
    assert!(n("andorra") > 0 && n("helsinki") > 0, "{own}");
    assert_eq!(n("andorra") + n("helsinki"), pooled["candidates"].as_u64().unwrap());
    let eval = json("errors/suggestions_eval.json");
    for r in ["andorra", "helsinki"] {
        let share = &eval["by_region"][r];
        assert_eq!(share["threshold"], own[r]["suggest_threshold"], "{r}: {eval}");
        assert!(share["candidates"].as_u64().unwrap() > 0, "{r}: {eval}");
    }
    let shares: u64 = ["andorra", "helsinki"]
        .iter()
        .map(|r| eval["by_region"][r]["candidates"].as_u64().unwrap())
        .sum();
    assert_eq!(shares, eval["candidates"].as_u64().unwrap(), "{eval}");
    let bundle = data.join("bundle");
    let o = bin()
        .args(["export", "--model"])
        .arg(&run_dir)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let manifest = model_core::infer::bundle::BundleManifest::from_json(
        &std::fs::read_to_string(bundle.join("model.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest.area_rules.keys().collect::<Vec<_>>(), own_regions);
    let held = splits_of(&["--hold-out", "andorra"]);
    for (_, r, s) in &held {
        assert_eq!(*s == Split::Test, r == "andorra", "{r} in {s:?}");
    }
    // Suggestions on a left-out region: nothing of it shapes the rule (no prior from its
    // cells, the default threshold), and they are measured on all of it.
    let o = bin()
        .args(["evaluate", "--data"])
        .arg(&data)
        .arg("--model")
        .arg(&run_dir)
        .arg("--osm")
        .arg(&a)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("`andorra` is not in the training split"), "{}", text(&o));
    let s: serde_json::Value = serde_json::from_slice(
        &std::fs::read(run_dir.join("errors/suggestions_eval.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(s["threshold"].as_f64(), Some(0.5), "{s}");
    assert!(s["candidates"].as_u64().unwrap() > 0, "{s}");
    assert!(!run_dir.join("suggestion_prior.json").exists(), "no prior of a left-out region");
    assert!(!run_dir.join("suggestion_area_rules.json").exists(), "no rule of an earlier run");
    // Named beside a region the model was trained on, the left-out region's suggestions take
    // that region's candidate prior and threshold (its training and validation cells) and are
    // still measured on the left-out region's cells alone.
    let o = evaluate_both();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(
            "`andorra` is not in the training split: its suggestions take the candidates' prior \
             and the threshold of [\"helsinki\"]"
        ),
        "{}",
        text(&o)
    );
    let prior = json("suggestion_prior.json");
    assert_eq!(prior["regions"], 1, "{prior}");
    assert!(prior["candidates"].as_u64().unwrap() > 100, "{prior}");
    let chosen = json("suggestion_threshold.json");
    assert_eq!(chosen["regions"], 1, "{chosen}");
    assert!(!run_dir.join("suggestion_area_rules.json").exists(), "one trained region: one rule");
    let pooled = json("errors/suggestions_eval.json");
    assert_eq!(pooled["candidates"], s["candidates"], "the same cells, Andorra's");
    let expected = chosen["threshold"].as_f64().unwrap_or(0.5);
    assert!((pooled["threshold"].as_f64().unwrap() - expected).abs() < 1e-6, "{pooled}");
    let cands = std::fs::read_to_string(run_dir.join("errors/candidates_test.csv")).unwrap();
    for l in cands.lines().skip(1) {
        let lat: f64 = l.split(',').next().unwrap().parse().unwrap();
        assert!((42.4..42.7).contains(&lat), "a candidate outside Andorra: {l}");
    }
    let o = bin()
        .arg("preprocess")
        .arg("--data")
        .arg(&data)
        .args(["--hold-out", "quito"])
        .output()
        .unwrap();
    assert!(!o.status.success() && text(&o).contains("quito"), "{}", text(&o));

    // `pool` of one evaluation's predictions gives that evaluation's figure and interval (the
    // same cells, the same resamples); against itself the change is nothing; a file pooled
    // twice is refused (its rows would be tested twice).
    let preds = run_dir.join("errors/predictions.csv");
    let out_json = temp.path().join("pooled.json");
    let pool = |files: &[&Path], baseline: &[&Path]| {
        let mut c = bin();
        c.arg("pool").arg("--out").arg(&out_json);
        for f in files {
            c.arg("--predictions").arg(f);
        }
        for f in baseline {
            c.arg("--baseline").arg(f);
        }
        c.output().unwrap()
    };
    let o = pool(&[&preds], &[&preds]);
    assert!(o.status.success(), "{}", text(&o));
    let p: serde_json::Value = serde_json::from_slice(&std::fs::read(&out_json).unwrap()).unwrap();
    let m = json("errors/metrics.json");
    let close = |a: &serde_json::Value, b: &serde_json::Value| {
        (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-6
    };
    assert!(close(&p[0]["feature_types"]["macro"]["f1"], &m["feature_types"]["macro"]["f1"]));
    let (pi, mi) = (&p[0]["feature_macro_f1_interval"], &m["feature_types_interval"]);
    assert!(close(&pi["low"], &mi["low"]) && close(&pi["high"], &mi["high"]), "{pi} {mi}");
    assert_eq!(pi["cells"], mi["cells"]);
    assert_eq!(p[0]["against_baseline"]["change"]["value"].as_f64(), Some(0.0), "{p}");
    let o = pool(&[&preds, &preds], &[]);
    assert!(!o.status.success() && text(&o).contains("overlap"), "{}", text(&o));

    // Cross-validation: over three folds every row is tested exactly once, each fold holds
    // test rows of both regions, and no cell spans two splits (`splits_of`).
    let mut tested = std::collections::HashMap::new();
    for k in ["1", "2", "3"] {
        let rows = splits_of(&["--folds", "3", "--fold", k]);
        for region in ["helsinki", "andorra"] {
            assert!(rows.iter().any(|(_, r, s)| r == region && *s == Split::Test), "{region} {k}");
        }
        for (t, _, s) in rows {
            *tested.entry(t.id).or_insert(0) += usize::from(s == Split::Test);
        }
    }
    assert_eq!(tested.len(), table.tags.len());
    assert!(tested.values().all(|&n| n == 1), "a row tested twice or never");
    for bad in [
        &["--folds", "3", "--fold", "4"][..],
        &["--fold", "1"],
        &["--folds", "3", "--fold", "1", "--hold-out", "andorra"],
    ] {
        let o = bin().arg("preprocess").arg("--data").arg(&data).args(bad).output().unwrap();
        assert!(!o.status.success() && text(&o).contains("fold"), "{bad:?}: {}", text(&o));
    }
}

#[test]
fn negatives_per_label_sets_the_background_share_and_refuses_nonsense() {
    let temp = tmp("collect-negatives");
    let data = temp.path().to_path_buf();
    let csv = root().join("tests/fixtures/render/golden_tags.csv");
    let csv = csv.to_str().unwrap();
    let out = run(&["--tags", csv, "--negatives-per-label", "0"], &data);
    assert!(out.status.success(), "{}", text(&out));
    let tags = std::fs::read_to_string(data.join("tags.csv")).unwrap();
    assert!(!tags.contains(",none,"), "{tags}");
    let out = run(&["--tags", csv, "--negatives-per-label", "3"], &data);
    assert!(out.status.success(), "{}", text(&out));
    let tags = std::fs::read_to_string(data.join("tags.csv")).unwrap();
    let labelled = tags.lines().skip(1).filter(|l| !l.contains(",none,")).count();
    let none = tags.lines().filter(|l| l.contains(",none,")).count();
    assert_eq!(none, 3 * labelled, "{tags}");
    let before = std::fs::read(data.join("tags.csv")).unwrap();
    let out = run(&["--tags", csv, "--negatives-per-label=-1"], &data);
    assert!(!out.status.success());
    assert!(text(&out).contains("--negatives-per-label"), "{}", text(&out));
    assert_eq!(std::fs::read(data.join("tags.csv")).unwrap(), before, "nothing written");
}

#[test]
fn rendering_is_deterministic_and_matches_the_golden_images() {
    let csv = root().join("tests/fixtures/render/golden_tags.csv");
    let (temp_a, temp_b) = (tmp("collect-golden-a"), tmp("collect-golden-b"));
    let (a, b) = (temp_a.path().to_path_buf(), temp_b.path().to_path_buf());
    for d in [&a, &b] {
        let out = run(&["--tags", csv.to_str().unwrap()], d);
        assert!(out.status.success(), "{}", text(&out));
    }
    for name in ["senate_square", "esplanadi"] {
        let file = format!("images/{name}.png");
        let x = std::fs::read(a.join(&file)).unwrap();
        assert_eq!(x, std::fs::read(b.join(&file)).unwrap(), "{name}: two runs differ");
        let golden = root().join(format!("tests/fixtures/render/{name}.png"));
        if std::env::var_os("ACCESSATLAS_BLESS").is_some() {
            std::fs::write(&golden, &x).unwrap();
        }
        let want =
            image::open(&golden).expect("golden image (ACCESSATLAS_BLESS=1 writes it)").to_rgb8();
        let got = image::load_from_memory(&x).unwrap().to_rgb8();
        let diff: u64 =
            want.as_raw().iter().zip(got.as_raw()).map(|(p, q)| u64::from(p.abs_diff(*q))).sum();
        let mean = diff as f64 / want.as_raw().len() as f64;
        assert!(mean < 0.5, "{name}: mean abs difference to golden {mean}");
        // not blank: a map has several colours
        let mut colours: Vec<[u8; 3]> = got.pixels().map(|p| p.0).collect();
        colours.sort();
        colours.dedup();
        assert!(colours.len() > 20, "{name}: only {} colours", colours.len());
    }
}

#[test]
fn bad_csv_rows_are_reported_and_valid_rows_kept() {
    let temp = tmp("collect-badcsv");
    let data = temp.path().to_path_buf();
    let csv = data.join("mine.csv");
    std::fs::write(
        &csv,
        "id,lat,lon,type,source,note\n\
         good,60.1700,24.9450,ramp,user,\"by the door, left\"\n\
         bad_lat,abc,24.9450,ramp,user,\n\
         bad_type,60.17,24.945,stairs,user,\n\
         short,60.17\n",
    )
    .unwrap();
    let out = run(&["--tags", csv.to_str().unwrap()], &data);
    assert!(out.status.success(), "{}", text(&out));
    let tags = std::fs::read_to_string(data.join("tags.csv")).unwrap();
    assert!(
        tags.contains("good,60.17,24.945,ramp,user,images/good.png,\"by the door, left\""),
        "{tags}"
    );
    let rejected = std::fs::read_to_string(data.join("rejected_rows.csv")).unwrap();
    assert!(rejected.contains("3,lat,"), "{rejected}");
    assert!(rejected.contains("4,type,") && rejected.contains("stairs"), "{rejected}");
    assert!(rejected.contains("5,,"), "{rejected}");
    assert!(text(&out).contains("3 rows rejected"), "{}", text(&out));

    let strict = run(&["--tags", csv.to_str().unwrap(), "--strict"], &data);
    assert!(!strict.status.success());

    std::fs::write(&csv, "id,lat,lon,type,source\nx,100,0,ramp,user\n").unwrap();
    let none = run(&["--tags", csv.to_str().unwrap()], &data);
    assert!(!none.status.success());
    assert!(text(&none).contains("no valid"), "{}", text(&none));
}

#[test]
fn unreadable_inputs_name_the_file() {
    let temp = tmp("collect-unreadable");
    let data = temp.path().to_path_buf();
    let pbf = data.join("broken.osm.pbf");
    std::fs::write(&pbf, b"definitely not protobuf").unwrap();
    let out = run(&["--osm", pbf.to_str().unwrap()], &data);
    assert!(!out.status.success());
    assert!(text(&out).contains("broken.osm.pbf"), "{}", text(&out));
    assert!(!text(&out).contains("panicked"), "{}", text(&out));

    let empty = data.join("empty.csv");
    std::fs::write(&empty, b"").unwrap();
    let out = run(&["--tags", empty.to_str().unwrap()], &data);
    assert!(!out.status.success());
    assert!(text(&out).contains("empty.csv") && text(&out).contains("empty"), "{}", text(&out));
}

/// A download cut short or a file damaged in the middle: an error naming the file and the byte
/// offset of the bad blob, and nothing written (no `tags.csv`, no images).
#[test]
fn truncated_or_corrupt_extracts_name_the_offset_and_write_nothing() {
    let good = std::fs::read(root().join("assets/osm/helsinki.osm.pbf")).unwrap();
    let mut corrupt = good.clone();
    // Inside the data of a blob in the middle of the file.
    for b in &mut corrupt[200_000..200_400] {
        *b ^= 0x5a;
    }
    for (name, bytes, offset_word) in [
        ("truncated", good[..300_000].to_vec(), "truncated at byte offset"),
        ("cut-in-a-length", good[..good.len() - 2].to_vec(), "byte offset"),
        ("corrupt", corrupt, "corrupt blob at byte offset"),
    ] {
        let temp = tmp(&format!("collect-{name}"));
        let dir = temp.path();
        let pbf = dir.join(format!("{name}.osm.pbf"));
        std::fs::write(&pbf, &bytes).unwrap();
        let data = dir.join("data");
        let out = run(&["--osm", pbf.to_str().unwrap()], &data);
        let t = text(&out);
        assert!(!out.status.success(), "{name}: {t}");
        assert!(t.contains(&format!("{name}.osm.pbf")) && t.contains(offset_word), "{name}: {t}");
        assert!(!t.contains("panicked"), "{t}");
        assert!(!data.join("tags.csv").exists() && !data.join("images").exists(), "{name}");
    }
}
