//! `cargo xtask reference regions` (by hand): what a mapper elsewhere can expect. The bundled
//! regions (every `assets/osm/*.osm.pbf`) are collected into one dataset; the pipeline's
//! recipe is trained once on all of them (the in-region figures, each region's own test
//! cells; `cargo run --release`'s own run when it was trained on this very split) and once
//! without each region (`preprocess --hold-out R`: that region's rows are the
//! whole test split, no rule of the method looked at them). Each measurement is written to
//! `tests/fixtures/reference/regions.json` as soon as it is made, and [`table`] renders the
//! rows `docs/regions.md` shows (a test keeps the two equal).
//!
//! Then [`adapt`] (also `cargo xtask reference adapt`, on the runs `regions` left): each
//! model trained without a region is adapted to it (`train --init`) with at most
//! [`ADAPT_ROWS`] of that region's rows, drawn from its training cells of the in-region split,
//! rehearsing rows of the other regions (`train --rehearse`, which the model was trained on),
//! and measured on the region's own test cells (the in-region figure's cells) before and
//! after: how much of the gap between left out and in-region a few hundred labels close.
//!
//! Every evaluation also measures the suggestions on the region's extract (`evaluate --osm`):
//! in-region with the candidates' prior and threshold chosen on that region's training and
//! validation cells; on a left-out region, where no cell of it may shape the rule, with the
//! prior and threshold of the other regions' training and validation cells (`evaluate` named
//! every extract: what the model trained on them does in a city it never saw). Runs measured
//! before that rule had no prior and the default threshold there; `reference left-out`
//! measures the left-out models again with it (`left_out_pooled`). `--reuse-runs` measures the runs an earlier
//! call left in the work folder again, without collecting or training.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// Where the measurements live.
pub const FIXTURE: &str = "tests/fixtures/reference/regions.json";

/// The page that shows them.
pub const DOC: &str = "docs/regions.md";

use crate::encoders::{read_json, test_metrics};

pub mod adapting;
pub mod buffered;
pub mod folds;
pub mod in_page;
pub mod left_out_trials;
pub mod page_views;
pub mod seeds;

pub use adapting::*;
pub use in_page::*;
pub use seeds::*;

/// A fixture's trials grouped by recipe, each recipe with its runs: a run named `NAME-seedS`
/// joins `NAME`'s, in the order the recipes first appear; `runs` starts the list (the recipe's
/// own runs kept elsewhere in the fixture, e.g. the default adapting recipe's `adapted`).
pub(crate) fn by_recipe<'v>(
    mut runs: Vec<(String, Vec<&'v Value>)>,
    trials: &'v Value,
) -> Vec<(String, Vec<&'v Value>)> {
    for (name, t) in trials.as_object().into_iter().flatten() {
        let base = match name.rsplit_once("-seed") {
            Some((b, s)) if s.parse::<u64>().is_ok() => b,
            _ => name.as_str(),
        };
        match runs.iter_mut().find(|(n, _)| n == base) {
            Some((_, r)) => r.push(t),
            None => runs.push((base.to_string(), vec![t])),
        }
    }
    runs
}

/// The bundled extracts, sorted, each with its region (the file name, as `collect` names it).
pub fn extracts(root: &Path) -> Result<Vec<(PathBuf, String)>> {
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
    let row = region
        .and_then(|r| m["by_region"].as_array()?.iter().find(|x| x["region"].as_str() == Some(r)));
    let mut f = match row {
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
    };
    // Where the macro-F1's resamples of the test cells lie (runs measured since `evaluate`
    // reports it).
    let interval = match row {
        Some(r) => &r["feature_macro_f1_interval"],
        None => &m["feature_types_interval"],
    };
    if interval.is_object() {
        f["feature_types_macro_f1_interval"] = interval.clone();
    }
    f
}

/// Collects, trains in-region and with each region left out, then [`measure`]s. With
/// `reuse_runs`, keeps the runs an earlier call left in the work folder and measures again.
pub fn run(root: &Path, reuse_runs: bool) -> Result<()> {
    let exe = crate::accessatlas_exe(root)?;
    let regions = extracts(root)?;
    let work = work_dir();
    let data = work.join("data");
    let run_of = |name: &str| work.join("runs").join(name);
    if reuse_runs {
        for name in std::iter::once("all".to_string())
            .chain(regions.iter().map(|(_, r)| format!("without-{r}")))
        {
            if !run_of(&name).join("checkpoints/best_model.bpk").is_file() {
                bail!(
                    "{}: no run `{name}` to reuse: run `cargo xtask reference regions`",
                    work.display()
                );
            }
        }
    } else {
        // A call stopped part way (a session's end) goes on where it stopped: the data and
        // each run it finished are kept while the extracts are the same ones.
        let manifest = extracts_manifest(&regions)?;
        let kept = work.join(MANIFEST);
        if read_json(&kept).ok() != Some(manifest.clone()) {
            let _ = std::fs::remove_dir_all(&work);
            collect_all(root, &exe, &data)?;
            std::fs::write(&kept, serde_json::to_string_pretty(&manifest)?)?;
        } else {
            eprintln!("{}: the same extracts; going on with its runs", work.display());
        }
        let train = |name: &str, hold_out: &[&str]| {
            trained_unless_there(&exe, &data, hold_out, &[], &run_of(name))
        };
        for (_, r) in &regions {
            train(&format!("without-{r}"), &["--hold-out", r])?;
        }
        // Last, so that a `cargo run --release` started alongside has finished by then.
        crate::run(Command::new(&exe).arg("preprocess").arg("--data").arg(&data))?;
        if let Some(shipped) = shipped_run_of(root, &data)? {
            eprintln!("{}: the run of this very split; measured as `all`", shipped.display());
            copy_dir(&shipped, &run_of("all"))?;
        } else {
            train("all", &[])?;
        }
    }
    measure(root, &exe, &regions)
}

/// Where the work folder records the extracts its data was collected from.
pub(super) const MANIFEST: &str = "extracts.json";

/// Each extract's region, size and a hash of its bytes: what the work folder's data was
/// collected from.
pub(super) fn extracts_manifest(regions: &[(PathBuf, String)]) -> Result<Value> {
    let mut out = serde_json::Map::new();
    for (p, r) in regions {
        let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        let fnv = fnv1a(0, &bytes);
        out.insert(r.clone(), json!({ "bytes": bytes.len(), "fnv1a": format!("{fnv:016x}") }));
    }
    Ok(Value::Object(out))
}

/// FNV-1a of `bytes`, its offset basis xor `seed`: the hash both the work folder's manifest
/// (seed 0) and the adapting sample's order (seed 42, as model-core's `stratified_sample`) use.
fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64 ^ seed, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// `collect` of every bundled extract into `data`: the pipeline's dataset.
pub fn collect_all(root: &Path, exe: &Path, data: &Path) -> Result<()> {
    let mut collect = Command::new(exe);
    collect.arg("collect").arg("--data").arg(data);
    for (p, _) in extracts(root)? {
        collect.arg("--osm").arg(p);
    }
    crate::run(&mut collect)
}

/// The work folder's dataset, collected from every bundled extract unless an earlier call
/// left it there.
fn work_data(root: &Path, exe: &Path) -> Result<PathBuf> {
    let data = work_dir().join("data");
    if !data.join("tags.csv").is_file() {
        collect_all(root, exe, &data)?;
    }
    Ok(data)
}

/// A folder `dir` holding `data`'s images (linked) and its `files` (copied), to be split on
/// its own.
fn linked_data(data: &Path, dir: &Path, files: &[&str]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    if !dir.join("images").exists() {
        std::os::unix::fs::symlink(data.join("images"), dir.join("images"))?;
    }
    for f in files {
        std::fs::copy(data.join(f), dir.join(f))
            .with_context(|| format!("copying {}", data.join(f).display()))?;
    }
    Ok(())
}

/// `preprocess` of `data` (with `hold_out`'s arguments), then the recipe trained into `out`
/// (with `train_args` added).
fn train_on(
    exe: &Path,
    data: &Path,
    hold_out: &[&str],
    train_args: &[&str],
    out: &Path,
) -> Result<()> {
    crate::run(Command::new(exe).arg("preprocess").arg("--data").arg(data).args(hold_out))?;
    let mut train = Command::new(exe);
    train.arg("train").arg("--data").arg(data).arg("--out").arg(out);
    crate::run(train.args(train_args))
}

/// [`train_on`], unless an earlier call left a finished run in `out`; a run stopped part way
/// goes on from its last epoch (`train --resume`, which ends as the uninterrupted run would).
fn trained_unless_there(
    exe: &Path,
    data: &Path,
    hold_out: &[&str],
    train_args: &[&str],
    out: &Path,
) -> Result<()> {
    if finished(out) {
        return Ok(());
    }
    if !out.join("checkpoints/state.json").is_file() {
        let _ = std::fs::remove_dir_all(out);
        return train_on(exe, data, hold_out, train_args, out);
    }
    eprintln!("{}: stopped part way; resumed", out.display());
    crate::run(Command::new(exe).arg("preprocess").arg("--data").arg(data).args(hold_out))?;
    crate::run(
        Command::new(exe)
            .arg("train")
            .arg("--resume")
            .arg("--data")
            .arg(data)
            .arg("--out")
            .arg(out),
    )
}

/// Whether the run in `out` has finished training: every epoch of its recipe done, or early
/// stopping ended it (as model-core's `EpochDriver::next_epoch` decides).
fn finished(out: &Path) -> bool {
    let (Ok(state), Ok(recipe)) =
        (read_json(&out.join("checkpoints/state.json")), read_json(&out.join("train_config.json")))
    else {
        return false;
    };
    let n = |v: &Value, k: &str| v[k].as_u64();
    let (Some(done), Some(bad), Some(epochs), Some(patience)) = (
        n(&state, "epochs_done"),
        n(&state, "epochs_without_improvement"),
        n(&recipe, "epochs"),
        n(&recipe, "patience"),
    ) else {
        return false;
    };
    done >= epochs || (bad > 0 && bad >= patience)
}

/// The regions `asked` for (every bundled one when none is), each checked to be bundled.
fn named_regions(regions: &[(PathBuf, String)], asked: &[String]) -> Result<Vec<String>> {
    if let Some(r) = asked.iter().find(|r| !regions.iter().any(|(_, x)| x == *r)) {
        bail!("reference left-out: no bundled region `{r}` (assets/osm/{r}.osm.pbf)");
    }
    Ok(match asked.is_empty() {
        true => regions.iter().map(|(_, r)| r.clone()).collect(),
        false => asked.to_vec(),
    })
}

/// `cargo run --release`'s run (`models/baseline`) when it was trained on the split just made
/// in `data` (same tags, seed, cell zoom and counts: model-core's
/// `PreprocessingMetadata::same_split`, read from the JSON because xtask does not build
/// model-core; the pipeline trains on every bundled extract with the same recipe), so the
/// in-region run need not be trained twice. That run still training (stopped part way, or
/// running alongside) is an error that says so, rather than a copy of an unfinished run or a
/// second training of the same split.
fn shipped_run_of(root: &Path, data: &Path) -> Result<Option<PathBuf>> {
    let shipped = root.join("models/baseline");
    let key =
        |m: &Value| ["input_hash", "seed", "group_zoom", "counts"].map(|k| m[k].clone()).to_vec();
    let now = read_json(&data.join("preprocessing_metadata.json"))?;
    match read_json(&shipped.join("preprocessing_metadata.json")) {
        Ok(then) if key(&then) == key(&now) => {}
        _ => return Ok(None),
    }
    if !shipped.join("checkpoints/state.json").is_file() {
        return Ok(None);
    }
    if !finished(&shipped) || !shipped.join("checkpoints/best_model.bpk").is_file() {
        bail!(
            "{} is a run of this very split, not finished: let `cargo run --release` finish it \
             (it goes on where it stopped), then call this again",
            shipped.display()
        );
    }
    Ok(Some(shipped))
}

/// `cp -r from to` (files and folders; the run folders hold nothing else).
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dest = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &dest)?;
        } else {
            std::fs::copy(e.path(), &dest)
                .with_context(|| format!("copying {}", e.path().display()))?;
        }
    }
    Ok(())
}

/// One evaluation of `model` on `data`'s test split with the suggestions measured on the
/// extracts `osm` (their regions' test rows; the candidates' prior and threshold from their
/// training and validation rows): the figures of `region`'s rows (all of them when `None`)
/// and the suggestions' lift over blind picking.
fn evaluate(
    exe: &Path,
    data: &Path,
    model: &Path,
    osm: &[&Path],
    region: Option<&str>,
) -> Result<Value> {
    let mut cmd = Command::new(exe);
    cmd.arg("evaluate").arg("--data").arg(data).arg("--model").arg(model);
    for p in osm {
        cmd.arg("--osm").arg(p);
    }
    crate::run(&mut cmd)?;
    let mut f = figures(&read_json(&model.join("errors/metrics.json"))?, region);
    let s = read_json(&model.join("errors/suggestions_eval.json"))?;
    let o = &s["overall"];
    let (p, base) = (o["precision"].as_f64(), o["base_rate"].as_f64());
    let same_types = s["base_rate_same_types"].as_f64();
    let over = |b: Option<f64>| p.zip(b).filter(|(_, b)| *b > 0.0).map(|(p, b)| p / b);
    f["suggestions"] = json!({
        "threshold": s["threshold"],
        "candidates": s["candidates"],
        "suggested": o["suggested"],
        "matched": o["matched"],
        "precision": p,
        "base_rate": base,
        "lift": over(base),
        "base_rate_same_types": same_types,
        "lift_same_types": over(same_types),
    });
    Ok(f)
}

/// Measures the runs in the work folder: the model trained on all regions on each region's own
/// test cells, each model trained without a region on all of that region, then [`adapt`].
fn measure(root: &Path, exe: &Path, regions: &[(PathBuf, String)]) -> Result<()> {
    let work = work_dir();
    let data = work.join("data");
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
    crate::run(Command::new(exe).arg("preprocess").arg("--data").arg(&data))?;
    for (osm, r) in regions {
        out["in_region"][r] = evaluate(exe, &data, &work.join("runs/all"), &[osm], Some(r))?;
        save(&out)?;
    }
    for (_, r) in regions {
        let model = work.join("runs").join(format!("without-{r}"));
        out["left_out"][r] = left_out(exe, regions, r, &model)?;
        save(&out)?;
    }
    adapt(root, &AdaptTrial::default())
}

/// `model`, trained without `r`, measured on all of `r`, its suggestions
/// with the candidates' prior and threshold of the other regions' training and validation
/// cells (every extract is named; the hold-out split has test rows of `r` alone): what the
/// model trained on them would do in a city it never saw.
fn left_out(exe: &Path, regions: &[(PathBuf, String)], r: &str, model: &Path) -> Result<Value> {
    let data = work_dir().join("data");
    crate::run(
        Command::new(exe).arg("preprocess").arg("--data").arg(&data).args(["--hold-out", r]),
    )?;
    let osm: Vec<&Path> = regions.iter().map(|(p, _)| p.as_path()).collect();
    evaluate(exe, &data, model, &osm, None)
}

/// `reference left-out [R…]`: each region (all of them when none is named) left out again:
/// the recipe trained without it (unless the work folder holds that run) and measured on all
/// of it as [`left_out`] does, written into the fixture's `left_out_pooled` without touching
/// the first table's rows, which an earlier `reference regions` measured (with no prior and
/// the default threshold on the left-out region).
pub fn left_out_pooled(root: &Path, args: &[String]) -> Result<()> {
    if let Some(trial) = left_out_trials::Trial::parse(args)? {
        return left_out_trials::run(root, &trial);
    }
    let exe = crate::accessatlas_exe(root)?;
    let regions = extracts(root)?;
    let named = named_regions(&regions, args)?;
    let work = work_dir();
    let data = work_data(root, &exe)?;
    let fixture = root.join(FIXTURE);
    let mut out = read_json(&fixture)?;
    for r in &named {
        let run = work.join("runs").join(format!("without-{r}"));
        trained_unless_there(&exe, &data, &["--hold-out", r], &[], &run)?;
        out["left_out_pooled"][r] = left_out(&exe, &regions, r, &run)?;
        out["left_out_pooled"]["run"] = json!(crate::bench::run_record(root));
        std::fs::write(&fixture, serde_json::to_string_pretty(&out)? + "\n")?;
    }
    eprintln!(
        "{} written; put this table in {DOC}:\n\n{}",
        fixture.display(),
        left_out_pooled_table(&out)
    );
    Ok(())
}

/// The suggestions of each left-out model with the other regions' prior and threshold
/// (`left_out_pooled`), beside the first table's (no prior, the default threshold).
pub fn left_out_pooled_table(v: &Value) -> String {
    let mut out = String::from(
        "| region | feature types macro-F1 (this training) | suggestions, the other regions' prior and threshold: right / made, lift (threshold) | before: no prior, 0.5 |\n\
         |---|---|---|---|\n",
    );
    let lift = |s: &Value| match s["lift"].as_f64() {
        _ if s["suggested"].as_u64() == Some(0) => {
            format!("none made ({})", f2(&s["threshold"]))
        }
        Some(l) => {
            format!("{} / {}, {l:.2} ({})", s["matched"], s["suggested"], f2(&s["threshold"]))
        }
        None => "-".to_string(),
    };
    let Some(by) = v["left_out_pooled"].as_object() else { return out };
    for (r, x) in by.iter().filter(|(k, _)| *k != "run") {
        let before = &v["left_out"][r]["suggestions"];
        out += &format!(
            "| {r} | {} | {} | {} |\n",
            f3(&x["feature_types_macro_f1"]),
            lift(&x["suggestions"]),
            if before.is_null() { "-".to_string() } else { lift(before) },
        );
    }
    out
}

fn f2(x: &Value) -> String {
    x.as_f64().map_or("-".to_string(), |f| format!("{f:.2}"))
}

/// The work folder `run` trains in (kept, so `adapt` can start from its runs).
fn work_dir() -> PathBuf {
    std::env::temp_dir().join("accessatlas-reference-regions")
}

/// A row of a split file: its text and the two columns the sampling reads.
struct Row {
    line: String,
    id: String,
    label: String,
    region: String,
    lat: f64,
    lon: f64,
}

/// The rows of one of `preprocess`'s split files (plain CSV without quoted fields, as
/// `collect` writes it) and its header line.
fn read_rows(path: &Path) -> Result<(String, Vec<Row>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let header = lines.next().with_context(|| format!("{}: empty", path.display()))?.to_string();
    if header.contains('"') {
        bail!("{}: quoted fields are not read here", path.display());
    }
    let cols: Vec<&str> = header.split(',').collect();
    let at = |name: &str| {
        cols.iter()
            .position(|c| *c == name)
            .with_context(|| format!("{}: no `{name}` column", path.display()))
    };
    let (id, label, region) = (at("id")?, at("type")?, at("region")?);
    let (lat, lon) = (at("lat")?, at("lon")?);
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != cols.len() || line.contains('"') {
            bail!("{}:{}: not a plain row of {} fields", path.display(), n + 2, cols.len());
        }
        let number = |i: usize, what: &str| {
            f[i].parse::<f64>()
                .with_context(|| format!("{}:{}: {what} `{}`", path.display(), n + 2, f[i]))
        };
        rows.push(Row {
            line: line.to_string(),
            id: f[id].to_string(),
            label: f[label].to_string(),
            region: f[region].to_string(),
            lat: number(lat, "lat")?,
            lon: number(lon, "lon")?,
        });
    }
    Ok((header, rows))
}

/// A figure to three decimals, or `-` where there is none.
fn f3(x: &Value) -> String {
    x.as_f64().map_or("-".to_string(), |f| format!("{f:.3}"))
}

/// The regions table: per region, in-region and left out, side by side.
pub fn table(v: &Value) -> String {
    let mut out = String::from(
        "| region | tested on | feature rows | feature types: accuracy / macro-F1 | `none` against any feature: precision / recall | suggestions: right / made, lift over blind picking (threshold) |\n\
         |---|---|---|---|---|---|\n",
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
            let s = &x["suggestions"];
            let threshold = s["threshold"].as_f64().unwrap_or(f64::NAN);
            let lift = match s["lift"].as_f64() {
                _ if s["suggested"].as_u64() == Some(0) => {
                    format!("none made ({threshold:.2})")
                }
                Some(l) => {
                    format!("{} / {}, {l:.2} ({:.2})", s["matched"], s["suggested"], threshold)
                }
                None => "-".to_string(),
            };
            out.push_str(&format!(
                "| {r} | {what} | {} | {:.3} / {:.3} | {:.3} / {:.3} | {lift} |\n",
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

/// The fixture's regions, and the head of a table with a recipe (`what` it is given) on each
/// row and a column for each region.
pub(crate) fn recipes_head<'v>(v: &'v Value, what: &str) -> (Vec<&'v str>, String) {
    let regions: Vec<&str> =
        v["regions"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let head = format!(
        "| recipe ({what}) | {} |\n|---|{}\n",
        regions.join(" | "),
        "---|".repeat(regions.len())
    );
    (regions, head)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run is finished when its recipe's epochs are done or early stopping ended it; one
    /// stopped part way, or with no state, is not (and `reference regions` goes on with it).
    #[test]
    fn a_run_is_finished_by_its_epochs_or_by_early_stopping() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path();
        assert!(!finished(run));
        std::fs::create_dir_all(run.join("checkpoints")).unwrap();
        std::fs::write(run.join("train_config.json"), r#"{"epochs": 8, "patience": 4}"#).unwrap();
        let state = |done: u64, bad: u64| {
            let s =
                json!({ "epochs_done": done, "epochs_without_improvement": bad, "history": [] });
            std::fs::write(run.join("checkpoints/state.json"), s.to_string()).unwrap();
        };
        state(3, 1);
        assert!(!finished(run), "stopped after 3 of 8 epochs");
        state(8, 0);
        assert!(finished(run), "every epoch done");
        state(6, 4);
        assert!(finished(run), "early stopping after 4 epochs without a better one");
        std::fs::write(run.join("train_config.json"), "{}").unwrap();
        assert!(!finished(run), "a recipe without its epochs");
    }

    /// The shipped run is measured as `all` only when it trained on the same split and
    /// finished; unfinished, it is an error, not a copy or a second training.
    #[test]
    fn the_shipped_run_counts_as_all_only_when_finished_on_the_same_split() {
        let dir = tempfile::tempdir().unwrap();
        let (root, data) = (dir.path().join("root"), dir.path().join("data"));
        let run = root.join("models/baseline");
        std::fs::create_dir_all(run.join("checkpoints")).unwrap();
        std::fs::create_dir_all(&data).unwrap();
        let split = |seed: u64| {
            json!({ "input_hash": "h", "seed": seed, "group_zoom": 17, "counts": [1, 2, 3] })
                .to_string()
        };
        std::fs::write(data.join("preprocessing_metadata.json"), split(42)).unwrap();
        assert_eq!(shipped_run_of(&root, &data).unwrap(), None, "no shipped run");
        std::fs::write(run.join("preprocessing_metadata.json"), split(42)).unwrap();
        std::fs::write(run.join("train_config.json"), r#"{"epochs": 8, "patience": 4}"#).unwrap();
        std::fs::write(run.join("checkpoints/best_model.bpk"), b"w").unwrap();
        let state = |done: u64| {
            let s = json!({ "epochs_done": done, "epochs_without_improvement": 0 });
            std::fs::write(run.join("checkpoints/state.json"), s.to_string()).unwrap();
        };
        state(2);
        let e = shipped_run_of(&root, &data).unwrap_err().to_string();
        assert!(e.contains("not finished") && e.contains("models/baseline"), "{e}");
        state(8);
        assert_eq!(shipped_run_of(&root, &data).unwrap(), Some(run.clone()));
        std::fs::write(run.join("preprocessing_metadata.json"), split(7)).unwrap();
        assert_eq!(shipped_run_of(&root, &data).unwrap(), None, "another split");
    }

    /// The work folder's data is kept only while the extracts are the same bytes.
    #[test]
    fn the_extracts_manifest_changes_with_any_extract() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.osm.pbf"), dir.path().join("b.osm.pbf"));
        std::fs::write(&a, b"one").unwrap();
        std::fs::write(&b, b"two").unwrap();
        let regions = vec![(a.clone(), "a".to_string()), (b.clone(), "b".to_string())];
        let then = extracts_manifest(&regions).unwrap();
        assert_eq!(extracts_manifest(&regions).unwrap(), then);
        std::fs::write(&b, b"twO").unwrap();
        assert_ne!(extracts_manifest(&regions).unwrap(), then, "same size, other bytes");
        std::fs::write(&b, b"two").unwrap();
        assert_ne!(extracts_manifest(&regions[..1]).unwrap(), then, "one region fewer");
    }

    /// `docs/regions.md` shows the table of what `reference regions` measured, row for row, and
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
        let doc = std::fs::read_to_string(root.join(DOC)).unwrap();
        let t = table(&v);
        assert!(doc.contains(&t), "{DOC} lacks the regions table:\n{t}");
        // The README quotes no share of the gap from one test split (`reference adapt`): those
        // measured the model adapting started from with the new region's scaler (`evaluate`
        // read the data's, not the model's, until 2026-12-08), so their change and gap are
        // not what a mapper starts from. Its figures on every row (below) are measured again.
        let one_line = readme_one_line(&root);
        // The README quotes each region's macro-F1 left out against in-region, each the mean
        // over the recipe's trainings.
        for r in &regions {
            let quoted =
                format!("{:.3} against {:.3}", left_out_f1_mean(&v, r).0, in_region_f1(&v, r).2);
            assert!(one_line.contains(&quoted), "README.md does not quote {r}'s {quoted}");
        }
        for r in &regions {
            let a = &v["adapted"][r];
            assert!(a["rows"].as_u64().is_some_and(|n| n as usize <= ADAPT_ROWS), "{r}: {a}");
            assert!(a["after"]["feature_types_macro_f1"].is_number(), "{r}: {a}");
        }
        let t = adapt_table(&v);
        assert!(doc.contains(&t), "{DOC} lacks the adaptation table:\n{t}");
        let t = page_table(&v);
        assert!(doc.contains(&t), "{DOC} lacks the page's adaptation table:\n{t}");
        assert_eq!(v["page_adapted"]["region"], PAGE_REGION, "{}", v["page_adapted"]);
        // The README quotes the page's figure with the model that never saw the region.
        let lo = &v["page_adapted"]["left_out"];
        let f = |k: &str| lo[k].as_f64().unwrap();
        let quoted = format!(
            "from {:.3} -> {:.3} in {:.0} s",
            f("types_f1_before"),
            f("types_f1_after"),
            f("seconds")
        );
        assert!(one_line.contains(&quoted), "README.md does not quote the page's {quoted}");
        for t in [folds::table(&v), folds::adapted_table(&v)] {
            assert!(doc.contains(&t), "{DOC} lacks the cross-validated table:\n{t}");
        }
        let quotes =
            [folds::readme_quote(&v), folds::adapted_quote(&v), folds::trial_quote(&v, "per-type")];
        for quoted in quotes.into_iter().flatten() {
            assert!(one_line.contains(&quoted), "README.md does not quote `{quoted}`");
        }
        if v["left_out_pooled"].is_object() {
            let t = left_out_pooled_table(&v);
            assert!(doc.contains(&t), "{DOC} lacks the left-out suggestions' table:\n{t}");
            // The README quotes each region's lift under the other regions' rule.
            for (r, x) in
                v["left_out_pooled"].as_object().unwrap().iter().filter(|(k, _)| *k != "run")
            {
                let quoted = format!("{} ({r})", f2(&x["suggestions"]["lift"]));
                assert!(one_line.contains(&quoted), "README.md does not quote {r}'s {quoted}");
            }
        }
        if v["left_out_seeds"].is_object() {
            let t = seeds_table(&v);
            assert!(doc.contains(&t), "{DOC} lacks the left-out figures by seed:\n{t}");
        }
        if v["left_out_trials"].is_object() {
            let t = left_out_trials::table(&v);
            assert!(doc.contains(&t), "{DOC} lacks the left-out recipe trials:\n{t}");
            let t = left_out_trials::means_table(&v);
            assert!(doc.contains(&t), "{DOC} lacks the left-out trials' means over seeds:\n{t}");
        }
        if v["adapt_trials"].is_object() {
            let t = trials_table(&v);
            assert!(doc.contains(&t), "{DOC} lacks the adapting trials:\n{t}");
            let t = trial_means_table(&v);
            assert!(doc.contains(&t), "{DOC} lacks the adapting recipes' means over seeds:\n{t}");
        }
        if v["page_adapted"]["sweep"].is_array() {
            let t = page_sweep_table(&v);
            assert!(doc.contains(&t), "{DOC} lacks the page's epochs sweep:\n{t}");
        }
        let t = page_regions_table(&v);
        assert!(doc.contains(&t), "{DOC} lacks the page's figures on other regions:\n{t}");
        let t = page_trials_table(&v);
        assert!(doc.contains(&t), "{DOC} lacks the page's trials:\n{t}");
        // ... and the mean over every view measured.
        if let Some([b, a, u, _]) = page_views::every_view_means(&v) {
            let quoted = format!("from {b:.3} to {a:.3} on the mean, past the {u:.3}");
            assert!(one_line.contains(&quoted), "README.md does not quote the page's `{quoted}`");
        }
        let t = buffered::table(&v);
        assert!(doc.contains(&t), "{DOC} lacks the buffered in-region figures:\n{t}");
        let t = page_views::views_table(&v);
        assert!(doc.contains(&t), "{DOC} lacks the page's further views:\n{t}");
        let t = page_views::means_table(&v);
        assert!(doc.contains(&t), "{DOC} lacks the page's means over views:\n{t}");
        for (r, p) in v["page_adapted_regions"].as_object().into_iter().flatten() {
            let lo = &p["left_out"];
            let quoted = format!("{} -> {}", f3(&lo["types_f1_before"]), f3(&lo["types_f1_after"]));
            assert!(
                one_line.contains(&quoted),
                "README.md does not quote {r}'s page figure {quoted}"
            );
        }
    }

    /// README.md with every run of white space one space (a quote may be broken over lines).
    fn readme_one_line(root: &Path) -> String {
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        readme.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// The left-out suggestions' table: each region with this training's macro-F1, the
    /// suggestions under the other regions' rule, and the first table's beside them.
    #[test]
    fn the_left_out_table_puts_the_pooled_rule_beside_the_old_one() {
        let s = |m: u64, n: u64, p: f64, t: f64| json!({ "matched": m, "suggested": n, "lift": p, "threshold": t });
        let v = json!({
            "left_out": { "r": { "suggestions": s(2, 40, 0.5, 0.5) } },
            "left_out_pooled": {
                "run": "_Run_",
                "r": { "feature_types_macro_f1": 0.4, "suggestions": s(5, 20, 2.25, 0.3) },
                "q": { "feature_types_macro_f1": 0.3, "suggestions": s(0, 0, 0.0, 0.95) },
            },
        });
        let t = left_out_pooled_table(&v);
        assert!(t.contains("| r | 0.400 | 5 / 20, 2.25 (0.30) | 2 / 40, 0.50 (0.50) |"), "{t}");
        assert!(t.contains("| q | 0.300 | none made (0.95) | - |"), "{t}");
        assert_eq!(t.lines().count(), 4, "{t}");
    }
}
