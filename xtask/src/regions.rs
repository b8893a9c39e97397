//! `cargo xtask reference regions` (by hand): what a mapper elsewhere can expect. The bundled
//! regions (every `assets/osm/*.osm.pbf`) are collected into one dataset; the pipeline's
//! recipe is trained once on all of them (the in-region figures, each region's own test
//! cells) and once without each region (`preprocess --hold-out R`: that region's rows are the
//! whole test split, no rule of the method looked at them). Each measurement is written to
//! `tests/fixtures/reference/regions.json` as soon as it is made, and [`table`] renders the
//! rows the README shows (a test keeps the two equal).
//!
//! The suggestion lift on a left-out region is not measured yet: the candidates' prior and
//! the default threshold are chosen on the training cells of the extract being measured,
//! and a left-out region has none.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// Where the measurements live.
pub const FIXTURE: &str = "tests/fixtures/reference/regions.json";

use crate::encoders::read_json;

/// The bundled extracts, sorted, each with its region (the file name, as `collect` names it).
fn extracts(root: &Path) -> Result<Vec<(PathBuf, String)>> {
    let mut out: Vec<(PathBuf, String)> = std::fs::read_dir(root.join("assets/osm"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.strip_suffix(".osm.pbf")?.to_string();
            Some((p, name))
        })
        .collect();
    out.sort();
    if out.len() < 2 {
        bail!("assets/osm holds {} extract(s): leaving one out needs two", out.len());
    }
    Ok(out)
}

/// How many rows a confusion matrix (`{"matrix": [[n, ...], ...]}`) counts.
fn count(confusion: &Value) -> u64 {
    confusion["matrix"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r.as_array().into_iter().flatten())
        .filter_map(Value::as_u64)
        .sum()
}

/// One evaluation's figures from its `metrics.json`: over the whole test split, or one
/// region's rows of it (`by_region`).
fn figures(m: &Value, region: Option<&str>) -> Value {
    match region.and_then(|r| {
        m["by_region"].as_array()?.iter().find(|x| x["region"].as_str() == Some(r)).cloned()
    }) {
        Some(r) => json!({
            "rows": r["rows"],
            "feature_rows": r["feature_rows"],
            "feature_types_accuracy": r["feature_accuracy"],
            "feature_types_macro_f1": r["feature_macro_f1"],
            "none_precision": r["none_precision"],
            "none_recall": r["none_recall"],
        }),
        None => json!({
            "rows": count(&m["confusion_matrix"]),
            "feature_rows": count(&m["feature_types"]["confusion_matrix"]),
            "feature_types_accuracy": m["feature_types"]["accuracy"],
            "feature_types_macro_f1": m["feature_types"]["macro"]["f1"],
            "none_precision": m["none_vs_feature"]["precision"],
            "none_recall": m["none_vs_feature"]["recall"],
        }),
    }
}

/// Collects, trains and evaluates in-region and with each region left out.
pub fn run(root: &Path) -> Result<()> {
    let exe = crate::accessatlas_exe(root)?;
    let regions = extracts(root)?;
    let work = std::env::temp_dir().join("accessatlas-reference-regions");
    let data = work.join("data");
    let _ = std::fs::remove_dir_all(&work);
    let mut collect = Command::new(&exe);
    collect.arg("collect").arg("--data").arg(&data);
    for (p, _) in &regions {
        collect.arg("--osm").arg(p);
    }
    crate::run(&mut collect)?;
    let fixture = root.join(FIXTURE);
    let mut out = json!({
        "regions": regions.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(),
        "in_region": {},
        "left_out": {},
        "run": crate::bench::run_record(root),
    });
    let save = |v: &Value| -> Result<()> {
        std::fs::create_dir_all(fixture.parent().context("a folder")?)?;
        std::fs::write(&fixture, serde_json::to_string_pretty(v)? + "\n")?;
        Ok(())
    };
    // Trains on the current split into runs/NAME and evaluates it (its test split).
    let train_eval = |name: &str| -> Result<Value> {
        let run = work.join("runs").join(name);
        crate::run(
            Command::new(&exe).arg("train").arg("--data").arg(&data).arg("--out").arg(&run),
        )?;
        crate::run(
            Command::new(&exe)
                .args(["evaluate", "--no-suggestions", "--data"])
                .arg(&data)
                .arg("--model")
                .arg(&run),
        )?;
        read_json(&run.join("errors/metrics.json"))
    };
    crate::run(Command::new(&exe).arg("preprocess").arg("--data").arg(&data))?;
    let all = train_eval("all")?;
    for (_, r) in &regions {
        out["in_region"][r] = figures(&all, Some(r));
    }
    save(&out)?;
    for (_, r) in &regions {
        crate::run(
            Command::new(&exe).arg("preprocess").arg("--data").arg(&data).args(["--hold-out", r]),
        )?;
        let m = train_eval(&format!("without-{r}"))?;
        out["left_out"][r] = figures(&m, None);
        save(&out)?;
    }
    eprintln!("{} written; commit it, and put this table in the README:\n", fixture.display());
    eprintln!("{}", table(&read_json(&fixture)?));
    Ok(())
}

/// The README's table: per region, in-region and left out, side by side.
pub fn table(v: &Value) -> String {
    let mut out = String::from(
        "| region | tested on | feature rows | feature types: accuracy / macro-F1 | `none` against any feature: precision / recall |\n\
         |---|---|---|---|---|\n",
    );
    let f = |x: &Value, k: &str| x[k].as_f64().unwrap_or(f64::NAN);
    for r in v["regions"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        for (key, what) in [
            ("in_region", "its own test cells, trained on all regions"),
            ("left_out", "all of it, trained without it"),
        ] {
            let x = &v[key][r];
            if x.is_null() {
                continue;
            }
            out.push_str(&format!(
                "| {r} | {what} | {} | {:.3} / {:.3} | {:.3} / {:.3} |\n",
                x["feature_rows"],
                f(x, "feature_types_accuracy"),
                f(x, "feature_types_macro_f1"),
                f(x, "none_precision"),
                f(x, "none_recall"),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README shows the table of what `reference regions` measured, row for row, and
    /// every region is measured both ways.
    #[test]
    fn the_readme_shows_the_measured_regions() {
        let root = crate::project_root();
        let Ok(v) = read_json(&root.join(FIXTURE)) else {
            panic!("{FIXTURE} is missing: run `cargo xtask reference regions`");
        };
        let regions: Vec<&str> =
            v["regions"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        let bundled: Vec<String> = extracts(&root).unwrap().into_iter().map(|(_, r)| r).collect();
        assert_eq!(regions, bundled, "measured on the bundled regions");
        for r in &regions {
            for key in ["in_region", "left_out"] {
                assert!(v[key][r]["feature_types_macro_f1"].is_number(), "{key} {r}: {v}");
            }
        }
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        let t = table(&v);
        assert!(readme.contains(&t), "README lacks the regions table:\n{t}");
    }
}
