//! `accessatlas train` on rendered tiles of the bundled extract: a short run lowers the loss
//! and writes every artifact; a run killed mid-training resumes at the right epoch.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{bin, tmp};
use tempfile::TempDir;

/// collect + preprocess once into a fresh directory, `data` in `temp` (which the test keeps
/// for as long as it uses the data).
fn prepared(temp: &TempDir) -> PathBuf {
    let data = temp.path().join("data");
    for cmd in ["collect", "preprocess"] {
        let out = bin().arg(cmd).arg("--data").arg(&data).output().unwrap();
        assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
    }
    data
}

fn train_cmd(data: &Path, out: &Path, epochs: &str) -> Command {
    sized_train_cmd(data, out, epochs, "64")
}

fn sized_train_cmd(data: &Path, out: &Path, epochs: &str, image_size: &str) -> Command {
    let mut c = bin();
    c.args([
        "train",
        "--encoder",
        "custom_cnn",
        "--image-size",
        image_size,
        "--batch-size",
        "32",
        "--lr",
        "0.003",
    ])
    .args(["--scheduler", "constant", "--epochs", epochs, "--data"])
    .arg(data)
    .arg("--out")
    .arg(out);
    c
}

fn history(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read(out.join("logs/training_history.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Vec<serde_json::Value>>(&b).ok())
        .unwrap_or_default()
}

#[test]
fn short_run_learns_writes_artifacts_and_resumes_after_a_kill() {
    let temp = tmp("train-run");
    let data = prepared(&temp);
    let out = data.join("models/run");
    let o = train_cmd(&data, &out, "3").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let h = history(&out);
    assert_eq!(h.len(), 3);
    let first = h[0]["train_loss"].as_f64().unwrap();
    let last = h[2]["train_loss"].as_f64().unwrap();
    assert!(last < first, "train loss did not fall: {first} -> {last}");
    for k in [
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "val_macro_f1",
        "lr",
        "seconds",
    ] {
        assert!(h[0].get(k).is_some(), "history lacks {k}");
    }
    for f in [
        "checkpoints/best_model.bpk",
        "checkpoints/last.bpk",
        "checkpoints/last_optimizer.bpk",
        "model.json",
        "train_config.json",
        "logs/curves.png",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // The CSV log has the JSON's epochs, same values.
    let csv = std::fs::read_to_string(out.join("logs/training_history.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "epoch,train_loss,train_accuracy,val_loss,val_accuracy,val_macro_f1,lr,seconds,\
         loss_scale,skipped_steps"
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 3);
    let loss: f64 = rows[2].split(',').nth(1).unwrap().parse().unwrap();
    // serde_json's default float parsing may differ from the written value in the last bit.
    assert!((loss - last).abs() <= 1e-12 * last.abs().max(1.0), "{loss} vs {last}");
    // Refuses to overwrite a run without --resume.
    let again = train_cmd(&data, &out, "3").output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));

    // Kill a fresh run with SIGKILL after its first epoch, then resume it.
    let out2 = data.join("models/killed");
    let mut child =
        train_cmd(&data, &out2, "3").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let t = Instant::now();
    // The epoch's commit point is checkpoints/state.json (its `history` is the run's record).
    let committed = |out: &Path| -> Vec<serde_json::Value> {
        std::fs::read(out.join("checkpoints/state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["history"].as_array().cloned())
            .unwrap_or_default()
    };
    while committed(&out2).is_empty() {
        assert!(t.elapsed() < Duration::from_secs(600), "first epoch never finished");
        assert!(child.try_wait().unwrap().is_none(), "training exited early");
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = committed(&out2);
    assert!(!before.is_empty() && before.len() < 3, "kill came too late: {} epochs", before.len());
    let o = train_cmd(&data, &out2, "3").arg("--resume").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let after = history(&out2);
    let epochs: Vec<u64> = after.iter().map(|e| e["epoch"].as_u64().unwrap()).collect();
    assert_eq!(epochs, vec![1, 2, 3]);
    assert_eq!(after[0], before[0], "resume rewrote a finished epoch");
    // Same seed, same data: the killed-and-resumed run ends exactly as the uninterrupted one
    // (every figure but the wall time, and the weights to the bit).
    let figures = |h: &[serde_json::Value]| -> Vec<serde_json::Value> {
        h.iter()
            .map(|e| {
                let mut e = e.clone();
                e.as_object_mut().unwrap().remove("seconds");
                e
            })
            .collect()
    };
    assert_eq!(figures(&before), figures(&h[..before.len()]), "two fresh runs of one seed differ");
    assert_eq!(figures(&after), figures(&h), "the resumed run differs from the uninterrupted one");
    // The weights to the bit: a checkpoint (burnpack: `NRUB`, u16 version, u32 header length,
    // the header, then the tensor data) also holds parameter ids in its header, which Burn
    // draws anew when a model is loaded, so only the tensor data can be compared.
    let tensor_data = |path: PathBuf| -> Vec<u8> {
        let b = std::fs::read(&path).unwrap();
        assert_eq!(&b[..4], b"NRUB", "{}", path.display());
        let header = u32::from_le_bytes(b[6..10].try_into().unwrap()) as usize;
        b[10 + header..].to_vec()
    };
    for f in ["checkpoints/last.bpk", "checkpoints/best_model.bpk"] {
        let (a, b) = (tensor_data(out.join(f)), tensor_data(out2.join(f)));
        assert!(
            a.len() > 100_000 && a == b,
            "{f}: the weights differ between the resumed and the uninterrupted run"
        );
    }

    // A truncated checkpoint is a clear error on resume, and nothing is overwritten.
    let last = out2.join("checkpoints/last.bpk");
    let bytes = std::fs::read(&last).unwrap();
    std::fs::write(&last, &bytes[..bytes.len() / 3]).unwrap();
    let o = train_cmd(&data, &out2, "4").arg("--resume").output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("last.bpk") && !err.contains("panicked"), "{err}");
    assert_eq!(history(&out2).len(), 3);

    // A run continues only on the split it started on: the same tags split with another seed
    // is refused, with both hashes' split sizes named, and the run is left as it was.
    let o = bin().args(["preprocess", "--seed", "7", "--data"]).arg(&data).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(&last, &bytes).unwrap();
    let o = train_cmd(&data, &out2, "4").arg("--resume").output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("another split") && !err.contains("panicked"), "{err}");
    assert_eq!(history(&out2).len(), 3);
}

/// With frozen stages, epochs train on cached frozen-stage maps of a fixed set of augmented
/// views. A run resumed in a new process (its cache empty) recomputes the views it needs and
/// ends exactly as the uninterrupted run that reused them from its cache.
#[test]
fn frozen_stages_train_on_cached_views_and_resume_exactly() {
    let temp = tmp("train-frozen");
    let data = prepared(&temp);
    let with_views = |out: &str, epochs: &str, views: &str| {
        let mut c = train_cmd(&data, &data.join(out), epochs);
        c.args(["--freeze-stages", "2", "--views", views]);
        c
    };
    let run = |out: &str, epochs: &str| with_views(out, epochs, "2");
    let o = run("whole", "3").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let config = std::fs::read_to_string(data.join("whole/train_config.json")).unwrap();
    assert!(config.contains("\"views\": 2") && config.contains("\"freeze_stages\": 2"), "{config}");
    let o = run("resumed", "1").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run("resumed", "3").arg("--resume").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let figures = |out: &str| -> Vec<serde_json::Value> {
        history(&data.join(out))
            .into_iter()
            .map(|mut e| {
                e.as_object_mut().unwrap().remove("seconds");
                e
            })
            .collect()
    };
    assert_eq!(figures("whole").len(), 3);
    assert_eq!(figures("resumed"), figures("whole"));
    let a = std::fs::read(data.join("whole/checkpoints/last.bpk")).unwrap();
    let b = std::fs::read(data.join("resumed/checkpoints/last.bpk")).unwrap();
    let body =
        |b: &[u8]| b[10 + u32::from_le_bytes(b[6..10].try_into().unwrap()) as usize..].to_vec();
    assert!(body(&a) == body(&b), "the weights differ between the resumed and the whole run");
    // Zero views is refused with the reason.
    let o = with_views("none", "1", "0").output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("views must be > 0"));
}

/// Mixed precision from the command line, on the CPU backend (which computes in f16): the
/// run learns, logs its loss scale, and a resumed run continues with the saved scaler.
#[test]
fn f16_mixed_precision_run_learns_and_resumes_with_its_loss_scale() {
    // Small tiles: the CPU computes f16 in software (several times slower than f32).
    let temp = tmp("train-f16");
    let data = prepared(&temp);
    let out = data.join("models/f16");
    let run = |epochs: &str| {
        let mut c = sized_train_cmd(&data, &out, epochs, "32");
        c.args(["--precision", "f16"]);
        c
    };
    let o = run("1").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("mixed f16") && err.contains("loss scaling"), "{err}");
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("train_config.json")).unwrap()).unwrap();
    assert_eq!(cfg["precision"], "f16");
    let h = history(&out);
    assert_eq!(h.len(), 1);
    assert!(h[0]["train_loss"].as_f64().unwrap().is_finite());
    let scale = h[0]["loss_scale"].as_f64().expect("mixed precision logs its loss scale");
    assert!(scale >= 1.0, "{scale}");
    let state = |out: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(out.join("checkpoints/state.json")).unwrap()).unwrap()
    };
    let s1 = state(&out)["loss_scaler"].clone();
    assert_eq!(s1["scale"].as_f64(), Some(scale));

    // Resuming asks for the run's own precision (or none).
    let o = sized_train_cmd(&data, &out, "2", "32")
        .args(["--resume", "--precision", "bf16"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("trains in f16"), "{err}");
    let o = run("2").arg("--resume").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let h = history(&out);
    assert_eq!(h.len(), 2);
    assert!(h[1]["val_accuracy"].as_f64().unwrap() > 0.0);
    // The resumed run went on with the saved scaler: its counts add up across the two runs
    // (a fresh scaler would count only the second epoch) ...
    let s2 = state(&out)["loss_scaler"].clone();
    let n = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap();
    assert_eq!(
        n(&s2, "skipped_steps"),
        n(&s1, "skipped_steps") + h[1]["skipped_steps"].as_u64().unwrap()
    );
    // ... and, when the scale did not move, its run of good steps continued.
    if h[1]["skipped_steps"].as_u64() == Some(0) && h[1]["loss_scale"].as_f64() == Some(scale) {
        assert!(n(&s2, "good_steps") > n(&s1, "good_steps"), "the scaler restarted");
    }
}

#[test]
fn evaluate_writes_metrics_predictions_errors_and_plots() {
    let temp = tmp("train-eval");
    let data = prepared(&temp);
    let out = data.join("models/eval");
    let o = train_cmd(&data, &out, "1").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o =
        bin().arg("evaluate").arg("--data").arg(&data).arg("--model").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let printed = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(printed.contains("macro"));
    let errors = out.join("errors");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(errors.join("metrics.json")).unwrap()).unwrap();
    for k in ["accuracy", "macro", "weighted", "per_class", "confusion_matrix"] {
        assert!(m.get(k).is_some(), "metrics.json lacks {k}");
    }
    for k in ["precision", "recall", "f1"] {
        assert!(m["macro"].get(k).is_some() && m["weighted"].get(k).is_some());
    }
    let labels: Vec<String> = m["confusion_matrix"]["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let matrix = m["confusion_matrix"]["matrix"].as_array().unwrap();
    let mut total = 0;
    let mut wrong = 0;
    for (i, row) in matrix.iter().enumerate() {
        let row: Vec<u64> = row.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        let sum: u64 = row.iter().sum();
        assert_eq!(
            sum,
            m["per_class"][&labels[i]]["support"].as_u64().unwrap(),
            "row {i} sums to support"
        );
        total += sum;
        wrong += sum - row[i];
    }
    let test_rows =
        std::fs::read_to_string(data.join("tags_test.csv")).unwrap().lines().count() as u64 - 1;
    assert_eq!(total, test_rows);
    let preds = std::fs::read_to_string(errors.join("predictions.csv")).unwrap();
    let mut lines = preds.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("id,lat,lon,source,region,true,pred,confidence,p_ramp"), "{header}");
    for l in lines.clone() {
        let p: f64 = l.split(',').skip(8).map(|v| v.parse::<f64>().unwrap()).sum();
        assert!((p - 1.0).abs() < 1e-3, "{l}");
    }
    assert_eq!(lines.count() as u64, test_rows);
    let misclassified = std::fs::read_dir(errors.join("images_test")).unwrap().count() as u64;
    assert_eq!(misclassified, wrong);
    for f in ["error_analysis.json", "confusion_matrix.png", "calibration.png"] {
        assert!(errors.join(f).is_file(), "{f} missing");
    }
    let cal: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("calibration.json")).unwrap()).unwrap();
    assert!(cal["temperature"].as_f64().unwrap() > 0.0);
    // With background points the model has `none`: the feature types' metrics and `none`
    // against any feature are reported beside the whole matrix.
    assert_eq!(labels.last().map(String::as_str), Some("none"));
    assert!(m["feature_types"]["confusion_matrix"]["labels"].as_array().unwrap().len() == 5);
    assert!(m["none_vs_feature"]["support"].as_u64().unwrap() > 0);
    // The feature types' macro-F1 comes with where its resamples of the test cells lie, and
    // says so.
    let fi = &m["feature_types_interval"];
    let f = |k: &str| fi[k].as_f64().unwrap();
    assert!((f("value") - m["feature_types"]["macro"]["f1"].as_f64().unwrap()).abs() < 1e-9);
    assert!(f("low") <= f("value") && f("value") <= f("high") && f("level") == 0.9, "{fi}");
    assert!(fi["cells"].as_u64().unwrap() > 1, "{fi}");
    assert!(printed.contains("test cells lie in"), "{printed}");
    // The suggestion evaluation on the test cells, and the candidates' prior.
    let se: serde_json::Value =
        serde_json::from_slice(&std::fs::read(errors.join("suggestions_eval.json")).unwrap())
            .unwrap();
    assert_eq!(se["match_radius_m"], 5.0);
    assert!(se["candidates"].as_u64().unwrap() > 100, "{se}");
    let cr = se["candidate_recall"].as_f64().unwrap();
    assert!((0.5..=1.0).contains(&cr), "candidate recall {cr}");
    for k in ["overall", "per_type", "missed_by_candidates", "curve"] {
        assert!(se.get(k).is_some(), "suggestions_eval.json lacks {k}");
    }
    let base = se["overall"]["base_rate"].as_f64().unwrap();
    assert!(base > 0.0 && base < 1.0, "{base}");
    // The lift comes with its bootstrap interval over the test cells, and beside the strict
    // base rate stands a blind picker's that names the same types as the suggestions (at most
    // the strict one, which is told the type for free).
    let same_types = se["base_rate_same_types"].as_f64().unwrap();
    assert!((0.0..=base + 1e-12).contains(&same_types), "{same_types} against {base}");
    if se["overall"]["matched"].as_u64().unwrap() > 0 {
        let li = &se["lift_interval"];
        let (low, lift, high) = (
            li["low"].as_f64().unwrap(),
            li["lift"].as_f64().unwrap(),
            li["high"].as_f64().unwrap(),
        );
        assert!(low <= lift && lift <= high, "{li}");
        let precision = se["overall"]["precision"].as_f64().unwrap();
        assert!((lift - precision / base).abs() < 1e-9, "{li}");
        // Cells without a candidate carry no weight in the lift.
        assert!(li["cells"].as_u64().unwrap() <= se["test_cells"].as_u64().unwrap(), "{li}");
        assert!(printed.contains("resamples of the"), "{printed}");
    }
    if se["overall"]["suggested"].as_u64().unwrap() > 0 && same_types > 0.0 {
        assert!(
            printed.contains("a blind picker making as many suggestions of each type is right")
        );
    }
    let cands = std::fs::read_to_string(errors.join("candidates_test.csv")).unwrap();
    assert_eq!(cands.lines().count() as u64 - 1, se["candidates"].as_u64().unwrap());
    let sugg = std::fs::read_to_string(errors.join("suggestions_test.csv")).unwrap();
    assert!(sugg.starts_with("lat,lon,type,confidence,candidate,matched_id"), "{sugg}");
    assert!(errors.join("suggestions_pr.png").is_file());
    let prior_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("suggestion_prior.json")).unwrap()).unwrap();
    let prior: Vec<f64> =
        prior_json["prior"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(prior.len(), labels.len());
    assert!(prior[labels.len() - 1] > 0.5, "most candidates hold no feature: {prior:?}");
    // Per kind of candidate too: every training candidate counted under its reasons.
    let by_kind = prior_json["by_kind"].as_object().unwrap();
    let counted: u64 = by_kind.values().map(|k| k["candidates"].as_u64().unwrap()).sum();
    assert_eq!(counted, prior_json["candidates"].as_u64().unwrap());
    assert!(by_kind.values().all(|k| k["prior"].as_array().unwrap().len() == labels.len()));
    // The default threshold, chosen on the validation cells, is the one the test cells were
    // evaluated at (0.5 when none reaches twice the base rate there).
    let chosen: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("suggestion_threshold.json")).unwrap())
            .unwrap();
    assert_eq!(chosen["measured_on"], "the validation split's cells, its features removed");
    let threshold = chosen["threshold"].as_f64();
    if let Some(t) = threshold {
        let at = &chosen["at_threshold"];
        assert!(at["matched"].as_u64().unwrap() >= 3, "{chosen}");
        assert!(at["precision"].as_f64().unwrap() >= 2.0 * at["base_rate"].as_f64().unwrap());
        assert!((se["threshold"].as_f64().unwrap() - t).abs() < 1e-6, "{se}");
        let li = &chosen["lift_interval"];
        assert!(li["low"].as_f64().unwrap() <= chosen["lift"].as_f64().unwrap(), "{chosen}");
    } else {
        assert_eq!(se["threshold"], 0.5);
    }

    // Export a bundle and predict from it and from the run: same answer, the seed's schema.
    let o = bin().arg("export").arg("--data").arg(&data).arg("--model").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bundle = out.join("bundle");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("model.json")).unwrap()).unwrap();
    assert_eq!(manifest["tile_source"]["kind"], "render");
    assert_eq!(manifest["tile_source"]["zoom"], 19);
    assert_eq!(manifest["provenance"]["data_hash"].as_str().unwrap().len(), 64);
    assert_eq!(manifest["candidate_prior"].as_array().unwrap().len(), labels.len());
    let in_bundle = manifest["candidate_prior_by_kind"].as_object().unwrap();
    assert_eq!(in_bundle.len(), by_kind.len());
    for (kind, k) in by_kind {
        let b = &in_bundle[kind];
        assert_eq!(b["candidates"], k["candidates"], "{kind}");
        let (x, y) = (b["prior"].as_array().unwrap(), k["prior"].as_array().unwrap());
        assert!(
            x.iter().zip(y).all(|(x, y)| (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() < 1e-6)
        );
    }
    match threshold {
        Some(t) => assert!((manifest["suggest_threshold"].as_f64().unwrap() - t).abs() < 1e-6),
        None => assert!(manifest.get("suggest_threshold").is_none(), "{manifest}"),
    }
    let test_csv = std::fs::read_to_string(data.join("tags_test.csv")).unwrap();
    let row: Vec<&str> = test_csv.lines().nth(1).unwrap().split(',').collect();
    let predict = |model: &Path, lat: &str, source: &str| {
        bin()
            .args([
                "predict", "--json", "--lon", row[2], "--source", source, "--lat", lat, "--image",
            ])
            .arg(data.join(row[5]))
            .arg("--model")
            .arg(model)
            .output()
            .unwrap()
    };
    let a = predict(&bundle, row[1], "user");
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let pa: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    let probs = pa["probabilities"].as_object().unwrap();
    assert_eq!(probs.len(), 6, "five types and `none`");
    let sum: f64 = probs.values().map(|v| v.as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-4);
    assert_eq!(pa["confidence"], probs[pa["type"].as_str().unwrap()]);
    let b = predict(&out, row[1], "user");
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&b.stdout).unwrap(), pa);
    // An unknown source is a warning, not a failure.
    let c = predict(&bundle, row[1], "mapillary");
    assert!(c.status.success());
    assert!(String::from_utf8_lossy(&c.stderr).contains("unknown"));
    // safetensors export: PyTorch-style keys next to the same manifest.
    let export_as = |format: &str| {
        let o = bin()
            .args(["export", "--format", format, "--data"])
            .arg(&data)
            .arg("--model")
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{format}: {}", String::from_utf8_lossy(&o.stderr));
        o
    };
    export_as("safetensors");
    let st = std::fs::read(out.join("export-safetensors/model.safetensors")).unwrap();
    let n = u64::from_le_bytes(st[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&st[8..8 + n]).unwrap();
    assert!(header.get("head.weight").is_some(), "{header}");
    assert!(out.join("export-safetensors/model.json").is_file());
    // f16 from the run: export measures it on the test split and writes the verdict beside
    // it; the figures are the ones `evaluate` and the f32 bundle give.
    let o = export_as("burn-f16");
    let r: model_core::infer::bundle::PrecisionReport =
        serde_json::from_slice(&std::fs::read(out.join("bundle-f16/precision.json")).unwrap())
            .unwrap();
    let n = test_csv.lines().count() - 1;
    assert_eq!(r.test_examples, Some(n), "{r:?}");
    let (a32, a16) = (r.test_accuracy_f32.unwrap(), r.test_accuracy.unwrap());
    assert!((0.0..=1.0).contains(&a32) && r.test_macro_f1.is_some(), "{r:?}");
    // f16 rounding moves few predictions; the verdict follows the numbers.
    assert!(r.changed_predictions.unwrap() <= n / 10 + 1, "{r:?}");
    assert_eq!(
        r.within_budget(),
        a32 - a16 <= 0.01 && r.test_macro_f1_f32.unwrap() - r.test_macro_f1.unwrap() <= 0.01
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("budget"));
    // int8 from the f32 bundle beside the data it was trained on (the tags hash it records):
    // measured on the same test split as from the run.
    let int8_from_bundle = |data: &Path, name: &str| {
        let o = bin()
            .args(["export", "--format", "burn-int8", "--data"])
            .arg(data)
            .arg("--model")
            .arg(&bundle)
            .arg("--out")
            .arg(out.join(name))
            .output()
            .unwrap();
        let report = std::fs::read(out.join(name).join("precision.json")).ok();
        let report: Option<model_core::infer::bundle::PrecisionReport> =
            report.map(|r| serde_json::from_slice(&r).unwrap());
        (o, report)
    };
    let (o, ri) = int8_from_bundle(&data, "from-bundle-int8");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ri = ri.unwrap();
    assert_eq!((ri.test_examples, ri.test_accuracy_f32), (Some(n), Some(a32)), "{ri:?}");
    assert!(ri.test_accuracy.is_some() && ri.changed_predictions.is_some(), "{ri:?}");
    // Beside data of other tags, the copy is written unmeasured, and the warning says why.
    let other = out.join("other-data");
    std::fs::create_dir_all(&other).unwrap();
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("preprocessing_metadata.json")).unwrap())
            .unwrap();
    meta["input_hash"] = "0".repeat(64).into();
    std::fs::write(other.join("preprocessing_metadata.json"), meta.to_string()).unwrap();
    let (o, ro) = int8_from_bundle(&other, "from-bundle-other");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.contains("are not the ones"), "{err}");
    let ro = ro.unwrap();
    assert!(ro.test_accuracy.is_none() && !ro.within_budget(), "{ro:?}");
    // Out-of-range latitude and truncated weights are clear errors.
    let d = predict(&bundle, "123", "user");
    assert!(!d.status.success() && String::from_utf8_lossy(&d.stderr).contains("123"));
    let w = std::fs::read(bundle.join("weights.bpk")).unwrap();
    std::fs::write(bundle.join("weights.bpk"), &w[..w.len() / 2]).unwrap();
    let e = predict(&bundle, row[1], "user");
    assert!(!e.status.success());
    let err = String::from_utf8_lossy(&e.stderr);
    assert!(err.contains("weights.bpk") && !err.contains("panicked"), "{err}");

    let o = bin()
        .arg("evaluate")
        .arg("--data")
        .arg(&data)
        .arg("--model")
        .arg(data.join("nope"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope"));
    // Against a baseline on the same rows: here the run itself, so no change in any resample.
    let against = |baseline: &Path| {
        bin()
            .arg("evaluate")
            .args(["--no-suggestions", "--data"])
            .arg(&data)
            .arg("--model")
            .arg(&out)
            .arg("--baseline")
            .arg(baseline)
            .output()
            .unwrap()
    };
    let o = against(&out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("a change of +0.000"));
    let m2: serde_json::Value =
        serde_json::from_slice(&std::fs::read(errors.join("metrics.json")).unwrap()).unwrap();
    let c = &m2["against_baseline"]["change"];
    assert_eq!(c["before"], c["after"], "{c}");
    assert_eq!((c["change"]["low"].as_f64(), c["change"]["high"].as_f64()), (Some(0.0), Some(0.0)));
    assert_eq!(c["higher"].as_f64(), Some(0.0), "{c}");
    let o = against(&data.join("no-such-run"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("no-such-run"), "{err}");

    // The model reads positions with its own scaler, not the data folder's: on the same rows
    // split with another scaler (as a region it never trained on has, whose data the model an
    // adapted one started from is measured on) it predicts exactly what it did.
    let before = std::fs::read_to_string(errors.join("predictions.csv")).unwrap();
    let shifted = temp.path().join("shifted");
    std::fs::create_dir_all(&shifted).unwrap();
    std::os::unix::fs::symlink(data.join("images"), shifted.join("images")).unwrap();
    for f in ["tags.csv", "tags_train.csv", "tags_val.csv", "tags_test.csv", "tile_source.json"] {
        if data.join(f).is_file() {
            std::fs::copy(data.join(f), shifted.join(f)).unwrap();
        }
    }
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("preprocessing_metadata.json")).unwrap())
            .unwrap();
    // Every mean moved and every spread halved, the areas' own included.
    fn shift(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    match (k.as_str(), x.as_array_mut()) {
                        ("mean", Some(a)) => {
                            a.iter_mut().for_each(|n| *n = (n.as_f64().unwrap() + 0.01).into())
                        }
                        ("std", Some(a)) => {
                            a.iter_mut().for_each(|n| *n = (n.as_f64().unwrap() * 0.5).into())
                        }
                        _ => shift(x),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(shift),
            _ => {}
        }
    }
    let scaler = meta["scaler"].clone();
    shift(&mut meta["scaler"]);
    assert_ne!(meta["scaler"], scaler);
    std::fs::write(shifted.join("preprocessing_metadata.json"), meta.to_string()).unwrap();
    let o = bin()
        .arg("evaluate")
        .args(["--no-suggestions", "--data"])
        .arg(&shifted)
        .arg("--model")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let after = std::fs::read_to_string(errors.join("predictions.csv")).unwrap();
    assert!(before == after, "the data's scaler changed the predictions");
}

/// A small run at a learning rate of 1e-12, whose validation macro-F1 soon stops improving.
fn plateau_cmd(data: &Path, out: &Path, epochs: &str, patience: &str) -> Command {
    let mut c = bin();
    c.args(["train", "--encoder", "custom_cnn", "--image-size", "32", "--batch-size", "32"])
        .args(["--lr", "1e-12", "--scheduler", "constant", "--epochs", epochs])
        .args(["--patience", patience, "--data"])
        .arg(data)
        .arg("--out")
        .arg(out);
    c
}

/// With a learning rate of 1e-12 (weights frozen in f32; only batch-norm statistics settle)
/// the validation macro-F1 soon stops improving: the run must end after exactly `--patience`
/// epochs without a better one, and say so.
#[test]
fn early_stopping_ends_after_exactly_patience_epochs_without_improvement() {
    let temp = tmp("train-patience");
    let data = prepared(&temp);
    let out = data.join("models/patience");
    let o = plateau_cmd(&data, &out, "10", "2").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let f1: Vec<f64> = history(&out).iter().map(|e| e["val_macro_f1"].as_f64().unwrap()).collect();
    // Replay the rule on the logged figures: where must the run have stopped?
    let (mut best, mut without, mut stop_at) = (f64::NEG_INFINITY, 0, None);
    for (i, &f) in f1.iter().enumerate() {
        if f > best {
            (best, without) = (f, 0);
        } else {
            without += 1;
        }
        if without == 2 {
            stop_at = Some(i + 1);
            break;
        }
    }
    let stop_at = stop_at.unwrap_or_else(|| panic!("no plateau in 10 epochs at lr 0: {f1:?}"));
    assert_eq!(
        f1.len(),
        stop_at,
        "ran {} epochs, the rule stops after {stop_at}: {f1:?}",
        f1.len()
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("early stopping after epoch {stop_at}")), "{err}");
}

/// `--keep last` on the same plateau: no early stop, every epoch runs, and the run's model is
/// the last epoch's weights, recorded in its recipe.
#[test]
fn keeping_the_last_epoch_runs_every_epoch_and_keeps_the_last_weights() {
    let temp = tmp("train-keep-last");
    let data = prepared(&temp);
    let out = data.join("models/keep-last");
    let o = plateau_cmd(&data, &out, "5", "1").args(["--keep", "last"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(history(&out).len(), 5, "{err}");
    assert!(!err.contains("early stopping"), "{err}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("kept the last epoch, 5"));
    let best = std::fs::read(out.join("checkpoints/best_model.bpk")).unwrap();
    assert!(best == std::fs::read(out.join("checkpoints/last.bpk")).unwrap());
    let recipe: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("train_config.json")).unwrap()).unwrap();
    assert_eq!(recipe["keep"], "last", "{recipe}");
    let o = train_cmd(&data, &data.join("models/bad-keep"), "1")
        .args(["--keep", "first"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("first") && err.contains("last"), "{err}");
}

/// `train --init BUNDLE` adapts an exported model: the run starts from the bundle's weights
/// and config (the first forward equals the bundle's), and a bundle of another encoder, input
/// size or label set is refused with words naming what differs.
#[test]
fn train_init_starts_from_a_bundle_and_refuses_one_that_does_not_fit() {
    use burn::tensor::Device;
    use model_core::infer::Predictor;
    use model_core::infer::bundle::BundleManifest;
    // The shipped bundle as `--init` reads it: its own config and weights.
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/model");
    let (manifest, _) = accessatlas::run::read_bundle(&shipped).unwrap();
    let (cfg, weights, scaler) =
        accessatlas::cmd::train::init_bundle(&shipped, &manifest.config).unwrap();
    assert_eq!(cfg, manifest.config);
    assert_eq!(scaler, manifest.scaler);
    let device = Device::flex();
    let model = model_core::model::persist::model_from_bytes(&cfg, &weights, &device).unwrap();
    let from_init =
        Predictor::new(cfg.clone(), model, manifest.scaler.clone(), manifest.temperature, &device);
    let bundle = accessatlas::run::load_predictor(&shipped, &device).unwrap();
    let img = image::RgbImage::from_fn(224, 224, |x, y| image::Rgb([x as u8, y as u8, 120]));
    let input = bundle.input(&img, 60.17, 24.94, "osm").unwrap();
    let (a, b) = (from_init.predict(&input).unwrap(), bundle.predict(&input).unwrap());
    for ((_, x), (_, y)) in a.probabilities.0.iter().zip(&b.probabilities.0) {
        assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
    }
    // Another label set, encoder or input size: refused, naming it.
    let mut other = manifest.config.clone();
    other.labels = model_core::LabelVocab::default();
    let e = accessatlas::cmd::train::init_bundle(&shipped, &other).unwrap_err().to_string();
    assert!(e.contains("label") && e.contains("none"), "{e}");
    let mut other = manifest.config.clone();
    other.encoder = model_core::EncoderKind::CustomCnn;
    let e = accessatlas::cmd::train::init_bundle(&shipped, &other).unwrap_err().to_string();
    assert!(e.contains("encoder") && e.contains("custom_cnn"), "{e}");
    let mut other = manifest.config.clone();
    other.image_size = 64;
    let e = accessatlas::cmd::train::init_bundle(&shipped, &other).unwrap_err().to_string();
    assert!(e.contains("64x64"), "{e}");
    let e = accessatlas::cmd::train::init_bundle(Path::new("/nonexistent"), &manifest.config)
        .unwrap_err();
    assert!(format!("{e:#}").contains("--init /nonexistent"), "{e:#}");
    let _ = BundleManifest::from_json(&manifest.to_json()).unwrap();

    // The CLI: a small model trained and exported, then adapted from its bundle (one epoch);
    // the adapted run's model is the bundle's architecture. Asking for another encoder fails
    // before anything is written.
    let temp = tmp("train-init");
    let data = prepared(&temp);
    let first = data.join("models/first");
    let o = train_cmd(&data, &first, "1").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let exported = data.join("bundle");
    let o = bin()
        .args(["export", "--data"])
        .arg(&data)
        .arg("--model")
        .arg(&first)
        .arg("--out")
        .arg(&exported)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // As if the bundle had also been trained in Andorra: the adapted run, on Helsinki's data,
    // keeps reading position there (its own Helsinki area first, the bundle's Helsinki one
    // overlapping it left out).
    let manifest_path = exported.join("model.json");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let helsinki = m["scaler"]["areas"][0].clone();
    assert!(helsinki.is_object(), "the bundle records its area: {}", m["scaler"]);
    let andorra = serde_json::json!({"region": "andorra", "min_lat": 42.43, "min_lon": 1.41,
        "max_lat": 42.65, "max_lon": 1.78, "mean": [42.54, 1.57], "std": [0.05, 0.08]});
    m["scaler"]["areas"] = serde_json::json!([helsinki, andorra]);
    std::fs::write(&manifest_path, serde_json::to_vec(&m).unwrap()).unwrap();
    let adapted = data.join("models/adapted");
    // Without --lr: an adapting run's own rate.
    let o = bin()
        .args(["train", "--encoder", "custom_cnn", "--image-size", "64", "--batch-size", "32"])
        .args(["--scheduler", "constant", "--epochs", "1", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&adapted)
        .arg("--init")
        .arg(&exported)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(history(&adapted).len(), 1);
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(adapted.join("preprocessing_metadata.json")).unwrap(),
    )
    .unwrap();
    let regions: Vec<&str> = meta["scaler"]["areas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["region"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(regions, ["helsinki", "andorra"], "{}", meta["scaler"]);
    // The start is scored and is the run's best until an epoch beats it: with one epoch, the
    // best weights are either the bundle's own (and the run says so) or that epoch's.
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(adapted.join("checkpoints/state.json")).unwrap())
            .unwrap();
    let start = state["start_macro_f1"].as_f64().expect("the start's score is kept");
    let epoch1 = history(&adapted)[0]["val_macro_f1"].as_f64().unwrap();
    let best = std::fs::read(adapted.join("checkpoints/best_model.bpk")).unwrap();
    let said = String::from_utf8_lossy(&o.stdout).contains("no epoch beat the starting model");
    if epoch1 > start {
        assert!(!said && best == std::fs::read(adapted.join("checkpoints/last.bpk")).unwrap());
    } else {
        assert!(said && best == std::fs::read(exported.join("weights.bpk")).unwrap());
    }
    // It learns at a tenth of the recipe's rate (1e-3) when no rate is given.
    let recipe: serde_json::Value =
        serde_json::from_slice(&std::fs::read(adapted.join("train_config.json")).unwrap()).unwrap();
    assert!((recipe["lr"].as_f64().unwrap() - 1e-4).abs() < 1e-12, "{recipe}");
    assert_eq!(recipe["keep"], "best", "without rehearsal the start may be kept: {recipe}");

    // Rehearsal: rows of another region's data folder join the training split (10 asked), at
    // the recipe's full rate; rows of the data's own region are never rehearsed.
    let known = temp.path().join("known");
    std::fs::create_dir_all(&known).unwrap();
    std::os::unix::fs::symlink(data.join("images"), known.join("images")).unwrap();
    for name in ["tags_train.csv", "tags_val.csv"] {
        let text = std::fs::read_to_string(data.join(name)).unwrap();
        assert!(text.contains(",helsinki"), "{name}: {}", &text[..200]);
        std::fs::write(known.join(name), text.replace(",helsinki", ",elsewhere")).unwrap();
    }
    let adapt = |out: &str, rehearse: &Path| {
        let mut c = bin();
        c.args(["train", "--encoder", "custom_cnn", "--image-size", "64", "--batch-size", "32"])
            .args(["--scheduler", "constant", "--epochs", "1", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(data.join(out))
            .arg("--init")
            .arg(&exported)
            .arg("--rehearse")
            .arg(rehearse)
            .args(["--rehearse-rows", "10"]);
        c
    };
    let o = adapt("models/rehearsed", &known).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("rehearsal: 10 rows of") && err.contains("other than helsinki"), "{err}");
    let own_train: u64 =
        meta["counts"]["train"].as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum();
    assert!(err.contains(&format!("{} train / ", own_train + 10)), "{own_train}: {err}");
    let recipe: serde_json::Value = serde_json::from_slice(
        &std::fs::read(data.join("models/rehearsed/train_config.json")).unwrap(),
    )
    .unwrap();
    assert!((recipe["lr"].as_f64().unwrap() - 1e-3).abs() < 1e-12, "{recipe}");
    assert_eq!(recipe["rehearse_rows"], 10, "the run records its rehearsal: {recipe}");
    assert_eq!(recipe["keep"], "last", "a rehearsing run keeps its last epoch: {recipe}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("kept the last epoch, 1"));
    // A config file that names the epoch to keep is obeyed with rehearsal too.
    let toml = temp.path().join("keep-best.toml");
    std::fs::write(&toml, "keep = \"best\"\n").unwrap();
    let o = adapt("models/rehearsed-best", &known).arg("--config").arg(&toml).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let recipe: serde_json::Value = serde_json::from_slice(
        &std::fs::read(data.join("models/rehearsed-best/train_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(recipe["keep"], "best", "{recipe}");
    let o = adapt("models/self-rehearsed", &data).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("no row of a region other than"), "{err}");
    let o = train_cmd(&data, &data.join("models/no-init"), "1")
        .arg("--rehearse")
        .arg(&known)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--init"), "{err}");
    let refused = data.join("models/refused");
    let o =
        sized_train_cmd(&data, &refused, "1", "96").arg("--init").arg(&exported).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("64x64") && err.contains("96x96"), "{err}");
}
