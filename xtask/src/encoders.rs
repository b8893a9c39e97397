//! `cargo xtask reference encoders [ENCODER...]` (by hand): the seed's architecture table as
//! measured fact. Each encoder is trained with the pipeline's recipe (`accessatlas train`
//! defaults: pretrained and frozen where the encoder has pretrained weights, 8 epochs, the
//! same optimizer, schedule, class weights and augmentation) on central Helsinki's split
//! (`collect` without `--osm`), then evaluated on its test split; its bundle's forward pass
//! is timed by the `infer` benchmark.
//! Each encoder's row is written to `tests/fixtures/reference/encoders.json` as soon as it is
//! measured (an interrupted run keeps what it finished), and [`table`] renders the rows
//! `docs/training.md` shows (a test keeps the two equal).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::{Value, json};

/// Where the measured rows live.
pub const FIXTURE: &str = "tests/fixtures/reference/encoders.json";

/// The page that shows them.
pub const DOC: &str = "docs/training.md";

/// The encoders, in the seed's table order.
pub const ENCODERS: [&str; 6] =
    ["custom_cnn", "mobilenet_v3_small", "efficientnet_lite0", "resnet18", "resnet34", "resnet50"];

/// `evaluate --no-suggestions` of `model` on the test split of `data`: its
/// `errors/metrics.json`.
pub fn test_metrics(exe: &Path, data: &Path, model: &Path) -> Result<Value> {
    crate::run(
        Command::new(exe)
            .args(["evaluate", "--no-suggestions", "--data"])
            .arg(data)
            .arg("--model")
            .arg(model),
    )?;
    read_json(&model.join("errors/metrics.json"))
}

pub fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    serde_json::from_str(&text).with_context(|| path.display().to_string())
}

/// Trains, evaluates and times each of `only` (all encoders when empty).
pub fn run(root: &Path, only: &[String]) -> Result<()> {
    if let Some(bad) = only.iter().find(|e| !ENCODERS.contains(&e.as_str())) {
        anyhow::bail!("unknown encoder `{bad}` (expected some of: {})", ENCODERS.join(", "));
    }
    let exe = crate::accessatlas_exe(root)?;
    let work = std::env::temp_dir().join("accessatlas-reference-encoders");
    let data = work.join("data");
    let _ = std::fs::remove_dir_all(&data);
    crate::run(Command::new(&exe).arg("collect").arg("--data").arg(&data))?;
    crate::run(Command::new(&exe).arg("preprocess").arg("--data").arg(&data))?;
    let train_examples = std::fs::read_to_string(data.join("tags_train.csv"))?
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .count();
    let fixture = root.join(FIXTURE);
    let mut rows: BTreeMap<String, Value> = match read_json(&fixture) {
        Ok(v) => serde_json::from_value(v)?,
        Err(_) => BTreeMap::new(),
    };
    let record = crate::bench::run_record(root);
    let wanted: Vec<&str> =
        if only.is_empty() { ENCODERS.to_vec() } else { only.iter().map(String::as_str).collect() };
    for enc in wanted {
        let out = work.join("runs").join(enc);
        let _ = std::fs::remove_dir_all(&out);
        let t = Instant::now();
        crate::run(
            Command::new(&exe)
                .args(["train", "--encoder", enc, "--data"])
                .arg(&data)
                .arg("--out")
                .arg(&out),
        )?;
        let train_seconds = t.elapsed().as_secs_f64();
        let epochs =
            read_json(&out.join("logs/training_history.json"))?.as_array().map_or(0, Vec::len);
        let recipe = read_json(&out.join("train_config.json"))?;
        let m = test_metrics(&exe, &data, &out)?;
        let bundle = out.join("bundle");
        crate::run(
            Command::new(&exe).arg("export").arg("--model").arg(&out).arg("--out").arg(&bundle),
        )?;
        let infer = crate::bench::cargo_bench(
            "infer",
            &["--batches", "1", "--repeat", "20", "--bundle", &bundle.to_string_lossy()],
        )?;
        let infer_ms = infer
            .iter()
            .find(|r| r["bench"] == "infer_burn")
            .and_then(|r| r["p50_ms"].as_f64())
            .context("the infer benchmark gave no time")?;
        let summary = crate::output(Command::new(&exe).args([
            "model",
            "summary",
            "--json",
            "--encoder",
            enc,
        ]))?;
        let params = serde_json::from_str::<Value>(&summary)?["parts"]["total"].clone();
        let row = json!({
            "encoder": enc,
            "pretrained": recipe["pretrained"],
            "freeze_stages": recipe["freeze_stages"],
            "parameters": params,
            "epochs": epochs,
            "train_seconds": train_seconds,
            "train_images_per_s": (train_examples * epochs) as f64 / train_seconds,
            "infer_ms_batch1": infer_ms,
            "feature_types_accuracy": m["feature_types"]["accuracy"],
            "feature_types_macro_f1": m["feature_types"]["macro"]["f1"],
            "accuracy": m["accuracy"],
            "macro_f1": m["macro"]["f1"],
            "run": record,
        });
        eprintln!("{enc}: {row}");
        rows.insert(enc.to_string(), row);
        std::fs::create_dir_all(fixture.parent().context("a folder")?)?;
        std::fs::write(&fixture, serde_json::to_string_pretty(&rows)? + "\n")?;
    }
    eprintln!("{} written; commit it, and put this table in {DOC}:\n", fixture.display());
    eprintln!("{}", table(&read_json(&fixture)?));
    Ok(())
}

/// The table of the measured encoders, in the seed's order.
pub fn table(rows: &Value) -> String {
    let mut out = String::from(
        "| encoder | parameters | pretrained, frozen stages | training images/s | \
         inference, batch 1 | feature types: accuracy / macro-F1 | all six classes: accuracy / macro-F1 |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for enc in ENCODERS {
        let Some(r) = rows.get(enc) else { continue };
        let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        let pretrained = if r["pretrained"].as_bool() == Some(true) {
            format!("yes, {}", r["freeze_stages"])
        } else {
            "no, 0".to_string()
        };
        out.push_str(&format!(
            "| {enc} | {:.2}M | {pretrained} | {:.1} | {:.1} ms | {:.3} / {:.3} | {:.3} / {:.3} |\n",
            f("parameters") / 1e6,
            f("train_images_per_s"),
            f("infer_ms_batch1"),
            f("feature_types_accuracy"),
            f("feature_types_macro_f1"),
            f("accuracy"),
            f("macro_f1"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/training.md` shows the table of what `reference encoders` measured, row for row.
    #[test]
    fn the_readme_shows_the_measured_encoders() {
        let root = crate::project_root();
        let Ok(rows) = read_json(&root.join(FIXTURE)) else {
            panic!("{FIXTURE} is missing: run `cargo xtask reference encoders`");
        };
        let doc = std::fs::read_to_string(root.join(DOC)).unwrap();
        let t = table(&rows);
        assert!(t.lines().count() > 2, "no encoder measured");
        assert!(doc.contains(&t), "{DOC} lacks the encoder table:\n{t}");
    }
}
