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

pub mod buffered;
pub mod left_out_trials;
pub mod page_views;

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
        let _ = std::fs::remove_dir_all(&work);
        collect_all(root, &exe, &data)?;
        let train =
            |name: &str, hold_out: &[&str]| train_on(&exe, &data, hold_out, &[], &run_of(name));
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

/// [`train_on`], unless an earlier call left a trained run in `out`.
fn trained_unless_there(
    exe: &Path,
    data: &Path,
    hold_out: &[&str],
    train_args: &[&str],
    out: &Path,
) -> Result<()> {
    match out.join("checkpoints/best_model.bpk").is_file() {
        true => Ok(()),
        false => train_on(exe, data, hold_out, train_args, out),
    }
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
/// in-region run need not be trained twice.
fn shipped_run_of(root: &Path, data: &Path) -> Result<Option<PathBuf>> {
    let shipped = root.join("models/baseline");
    let key =
        |m: &Value| ["input_hash", "seed", "group_zoom", "counts"].map(|k| m[k].clone()).to_vec();
    let now = read_json(&data.join("preprocessing_metadata.json"))?;
    let done = shipped.join("checkpoints/best_model.bpk").is_file()
        && shipped.join("logs/training_history.json").is_file();
    Ok(match read_json(&shipped.join("preprocessing_metadata.json")) {
        Ok(then) if done && key(&then) == key(&now) => Some(shipped),
        _ => None,
    })
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

/// The most labelled rows (features and background places together) of a region an adapted
/// model may learn from.
pub const ADAPT_ROWS: usize = 200;

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

/// A seeded, stratified sample of at most `n` of `rows`: each label keeps its share (largest
/// remainder), and within a label the rows come in an order fixed by their ids' hash. The same
/// draw as model-core's `stratified_sample` (what `train --rehearse` draws with), written again
/// here because xtask does not build model-core.
fn sample(rows: Vec<Row>, n: usize) -> Vec<Row> {
    if rows.len() <= n {
        return rows;
    }
    let hash = |s: &str| {
        s.bytes().fold(0xcbf2_9ce4_8422_2325_u64 ^ 42, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
    };
    let mut by_label: std::collections::BTreeMap<String, Vec<Row>> = Default::default();
    for r in rows {
        by_label.entry(r.label.clone()).or_default().push(r);
    }
    let total: usize = by_label.values().map(Vec::len).sum();
    let mut quota: Vec<(String, usize, f64)> = by_label
        .iter()
        .map(|(l, v)| {
            let exact = v.len() as f64 * n as f64 / total as f64;
            (l.clone(), exact.floor() as usize, exact - exact.floor())
        })
        .collect();
    let mut left = n - quota.iter().map(|q| q.1).sum::<usize>();
    let mut order: Vec<usize> = (0..quota.len()).collect();
    order.sort_by(|&a, &b| quota[b].2.total_cmp(&quota[a].2));
    for i in order {
        if left == 0 {
            break;
        }
        quota[i].1 += 1;
        left -= 1;
    }
    let mut out = Vec::new();
    for (label, k, _) in quota {
        let mut v = by_label.remove(&label).unwrap_or_default();
        v.sort_by_key(|r| hash(&r.id));
        out.extend(v.into_iter().take(k));
    }
    out
}

/// What adapting to a region learns from and is measured on: its header, at most
/// [`ADAPT_ROWS`] of its rows from the training and validation cells of `data`'s in-region
/// split ([`sample`]d), and its test rows.
struct AdaptRows {
    header: String,
    picked: Vec<Row>,
    test: Vec<Row>,
}

fn adapt_rows(data: &Path, r: &str) -> Result<AdaptRows> {
    let (header, mut learnable) = read_rows(&data.join("tags_train.csv"))?;
    learnable.extend(read_rows(&data.join("tags_val.csv"))?.1);
    learnable.retain(|x| x.region == r);
    let (_, mut test) = read_rows(&data.join("tags_test.csv"))?;
    test.retain(|x| x.region == r);
    Ok(AdaptRows { header, picked: sample(learnable, ADAPT_ROWS), test })
}

/// A data folder `dir` (`data`'s images linked) of the picked rows, split into training and
/// validation, and region `r`'s test rows as its whole test split: they go under a region name
/// of their own, which `preprocess --hold-out` holds out.
fn held_out_data(exe: &Path, data: &Path, dir: &Path, rows: &AdaptRows, r: &str) -> Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    std::os::unix::fs::symlink(data.join("images"), dir.join("images"))?;
    std::fs::copy(data.join("tile_source.json"), dir.join("tile_source.json"))?;
    let test_region = format!("{r}-test-cells");
    let mut csv = rows.header.clone() + "\n";
    let region_col = rows.header.split(',').position(|c| c == "region").context("region")?;
    for x in &rows.picked {
        csv.push_str(&x.line);
        csv.push('\n');
    }
    for x in &rows.test {
        let mut f: Vec<&str> = x.line.split(',').collect();
        f[region_col] = &test_region;
        csv.push_str(&f.join(","));
        csv.push('\n');
    }
    std::fs::write(dir.join("tags.csv"), csv)?;
    crate::run(
        Command::new(exe)
            .arg("preprocess")
            .arg("--data")
            .arg(dir)
            .args(["--hold-out", &test_region]),
    )
}

/// A trial of the adapting recipe (`reference adapt --trial NAME [--region R]… [-- ARGS]`):
/// the regions it runs on (all when none is named), and `train` arguments added to
/// `train --init`. A trial is written into the fixture under `adapt_trials.NAME`, never over
/// `adapted` (the default recipe's figures).
#[derive(Debug, Default, PartialEq)]
pub struct AdaptTrial {
    pub name: Option<String>,
    pub regions: Vec<String>,
    pub train_args: Vec<String>,
    /// Rehearsal (`train --rehearse` of the in-region data, whose other regions the model was
    /// trained on): `None`, train's default number of rows; `Some(0)`, none (the run then
    /// learns at a tenth of the rate); `Some(n)`, `n` rows.
    pub rehearse: Option<usize>,
}

impl AdaptTrial {
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut t = AdaptTrial::default();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--trial" => t.name = Some(it.next().context("--trial needs a name")?.clone()),
                "--region" => t.regions.push(it.next().context("--region needs a name")?.clone()),
                "--rehearse" => {
                    let n = it.next().context("--rehearse needs a number of rows")?;
                    t.rehearse = Some(n.parse().with_context(|| format!("--rehearse `{n}`"))?);
                }
                "--" => t.train_args = it.by_ref().cloned().collect(),
                other => bail!("reference adapt: unknown argument `{other}`"),
            }
        }
        if t.name.is_none()
            && (!t.regions.is_empty() || !t.train_args.is_empty() || t.rehearse.is_some())
        {
            bail!(
                "reference adapt: --region, --rehearse and train arguments need --trial NAME (`adapted` holds the default recipe on every region)"
            );
        }
        Ok(t)
    }
}

/// Each model trained without a region, adapted to it with at most [`ADAPT_ROWS`] of its rows
/// (rehearsing the other regions' rows unless a trial says otherwise) and measured on its
/// in-region test cells before and after; written into the fixture's `adapted` (a trial:
/// under `adapt_trials`, by its name).
pub fn adapt(root: &Path, trial: &AdaptTrial) -> Result<()> {
    let exe = crate::accessatlas_exe(root)?;
    let mut regions = extracts(root)?;
    if !trial.regions.is_empty() {
        regions.retain(|(_, r)| trial.regions.contains(r));
    }
    let work = work_dir();
    let data = work.join("data");
    let fixture = root.join(FIXTURE);
    let mut out = read_json(&fixture)?;
    // Where this call's figures go: `adapted`, or a trial's own entry.
    let key = |out: &mut Value, adapted: &Value| match &trial.name {
        Some(n) => out["adapt_trials"][n] = adapted.clone(),
        None => out["adapted"] = adapted.clone(),
    };
    for (_, r) in &regions {
        if !work.join("runs").join(format!("without-{r}")).join("model.json").is_file() {
            bail!("{}: no run without {r}: run `cargo xtask reference regions`", work.display());
        }
    }
    // The in-region split again (seeded: the cells the in-region figures were measured on).
    crate::run(Command::new(&exe).arg("preprocess").arg("--data").arg(&data))?;
    let mut adapted = json!({ "rows_at_most": ADAPT_ROWS, "run": crate::bench::run_record(root) });
    if !trial.train_args.is_empty() {
        adapted["train_args"] = json!(trial.train_args);
    }
    if let Some(n) = trial.rehearse {
        adapted["rehearse"] = json!(n);
    }
    // A trial run again on some regions keeps its other regions' figures, when it is the same
    // recipe (the same arguments and rehearsal).
    if let (Some(n), false) = (&trial.name, trial.regions.is_empty()) {
        let then = &out["adapt_trials"][n];
        if then["train_args"] == adapted["train_args"] && then["rehearse"] == adapted["rehearse"] {
            // A trial's object entries are its regions' figures.
            for (r, x) in then.as_object().into_iter().flatten() {
                if x.is_object() && !trial.regions.contains(r) {
                    adapted[r] = x.clone();
                }
            }
        }
    }
    for (_, r) in &regions {
        let rows = adapt_rows(&data, r)?;
        let picked = &rows.picked;
        let dir = work.join(format!("adapt-{r}"));
        held_out_data(&exe, &data, &dir, &rows, r)?;
        let without = work.join("runs").join(format!("without-{r}"));
        let evaluate = |model: &Path| -> Result<Value> {
            Ok(figures(&test_metrics(&exe, &dir, model)?, None))
        };
        let before = evaluate(&without)?;
        let bundle = work.join("runs").join(format!("without-{r}-bundle"));
        let _ = std::fs::remove_dir_all(&bundle);
        crate::run(
            Command::new(&exe)
                .arg("export")
                .arg("--model")
                .arg(&without)
                .arg("--data")
                .arg(&data)
                .arg("--out")
                .arg(&bundle),
        )?;
        let run = work.join("runs").join(format!("adapted-{r}"));
        let _ = std::fs::remove_dir_all(&run);
        let mut train = Command::new(&exe);
        train
            .arg("train")
            .arg("--init")
            .arg(&bundle)
            .arg("--data")
            .arg(&dir)
            .arg("--out")
            .arg(&run);
        // Rehearsal draws from the in-region data's training and validation rows; `train`
        // leaves out those of the region adapted to (its own data's region).
        if trial.rehearse != Some(0) {
            train.arg("--rehearse").arg(&data);
        }
        if let Some(n) = trial.rehearse.filter(|&n| n > 0) {
            train.args(["--rehearse-rows", &n.to_string()]);
        }
        crate::run(train.args(&trial.train_args))?;
        let after = evaluate(&run)?;
        let recipe = read_json(&run.join("train_config.json"))?;
        // The share of the gap closed is not stored: [`gap_closed`] reads it from these.
        adapted[r] = json!({
            "rows": picked.len(),
            "feature_rows": picked.iter().filter(|x| x.label != "none").count(),
            "rehearsed_rows": recipe["rehearse_rows"],
            "before": before,
            "after": after,
        });
        key(&mut out, &adapted);
        std::fs::write(&fixture, serde_json::to_string_pretty(&out)? + "\n")?;
    }
    if trial.name.is_some() {
        eprintln!("{} written (a trial); put this table in {DOC}:\n", fixture.display());
        eprintln!("{}\n{}", trials_table(&out), trial_means_table(&out));
        return Ok(());
    }
    eprintln!("{} written; commit it, and put these tables in {DOC}:\n", fixture.display());
    let v = read_json(&fixture)?;
    eprintln!("{}\n{}", table(&v), adapt_table(&v));
    Ok(())
}

/// `reference seeds R… [--seeds 1,2]`: the recipe trained without each region `R` again with
/// other seeds (the split stays the seeded one; the seed of initialisation, order,
/// augmentation and dropout changes), each measured on all of `R` as the left-out row of
/// [`table`] is; written into the fixture's `left_out_seeds`, beside seed 42's row, with the
/// run's record under the region (`run` of the section itself: the regions measured before
/// records were kept per region). Runs
/// already in the work folder are measured again, not retrained.
pub fn seeds(root: &Path, args: &[String]) -> Result<()> {
    let mut regions = Vec::new();
    let mut seeds: Vec<u64> = vec![1, 2];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--seeds" {
            seeds = it
                .next()
                .context("--seeds needs a list, e.g. --seeds 1,2")?
                .split(',')
                .map(|n| n.trim().parse().with_context(|| format!("--seeds: `{n}`")))
                .collect::<Result<_>>()?;
        } else {
            regions.push(a.clone());
        }
    }
    let in_region = regions.iter().any(|r| r == "--in-region");
    regions.retain(|r| r != "--in-region");
    if regions.is_empty() && !in_region {
        bail!("reference seeds: name the regions to leave out, e.g. `reference seeds helsinki`");
    }
    let exe = crate::accessatlas_exe(root)?;
    let work = work_dir();
    let data = work_data(root, &exe)?;
    let fixture = root.join(FIXTURE);
    let mut out = read_json(&fixture)?;
    if in_region {
        // The pipeline's split (seed 42's, as the in-region figures'): the recipe trained on
        // it with each other seed, each region measured on its own test cells.
        crate::run(Command::new(&exe).arg("preprocess").arg("--data").arg(&data))?;
        for &seed in &seeds {
            let run = work.join("runs").join(format!("all-seed{seed}"));
            trained_with_seed(&exe, &data, &run, seed)?;
            let m = test_metrics(&exe, &data, &run)?;
            for (_, r) in extracts(root)? {
                out["in_region_seeds"][&r][seed.to_string()] = figures(&m, Some(&r));
            }
            out["in_region_seeds"]["run"] = json!(crate::bench::run_record(root));
            std::fs::write(&fixture, serde_json::to_string_pretty(&out)? + "\n")?;
        }
    }
    for r in &regions {
        for &seed in std::iter::once(&42).chain(&seeds) {
            let run = match seed {
                42 => work.join("runs").join(format!("without-{r}")),
                s => work.join("runs").join(format!("without-{r}-seed{s}")),
            };
            let hold_out = ["--hold-out", r.as_str()];
            crate::run(
                Command::new(&exe).arg("preprocess").arg("--data").arg(&data).args(hold_out),
            )?;
            trained_with_seed(&exe, &data, &run, seed)?;
            let f = figures(&test_metrics(&exe, &data, &run)?, None);
            // Each region's record: regions are trained in different sessions.
            out["left_out_seeds"][r][seed.to_string()] = f;
            out["left_out_seeds"][r]["run"] = json!(crate::bench::run_record(root));
            std::fs::write(&fixture, serde_json::to_string_pretty(&out)? + "\n")?;
        }
    }
    eprintln!("{} written; put this table in {DOC}:\n\n{}", fixture.display(), seeds_table(&out));
    Ok(())
}

/// The recipe trained into `run` on `data`'s current split with `seed`, unless an earlier
/// call left it there.
fn trained_with_seed(exe: &Path, data: &Path, run: &Path, seed: u64) -> Result<()> {
    if run.join("checkpoints/best_model.bpk").is_file() {
        return Ok(());
    }
    let mut train = Command::new(exe);
    train.arg("train").arg("--data").arg(data).arg("--out").arg(run);
    crate::run(train.args(["--seed", &seed.to_string()]))
}

/// Each region's left-out feature-type macro-F1 by training seed (`left_out_seeds`), their
/// mean and range, against the in-region figure.
pub fn seeds_table(v: &Value) -> String {
    let mut out = String::from(
        "| region | macro-F1 left out, by seed | mean | lowest to highest | in-region |\n\
         |---|---|---|---|---|\n",
    );
    let Some(by) = v["left_out_seeds"].as_object() else { return out };
    for (r, seeds) in by.iter().filter(|(k, _)| *k != "run") {
        if !seeds.is_object() {
            continue;
        }
        let f1 = left_out_seeds_f1(v, r);
        let n = f1.len().max(1) as f64;
        let mean = f1.iter().map(|(_, f)| f).sum::<f64>() / n;
        let lo = f1.iter().map(|(_, f)| *f).fold(f64::INFINITY, f64::min);
        let hi = f1.iter().map(|(_, f)| *f).fold(f64::NEG_INFINITY, f64::max);
        let each: Vec<String> = f1.iter().map(|(s, f)| format!("{f:.3} (seed {s})")).collect();
        out += &format!(
            "| {r} | {} | {mean:.3} | {lo:.3} to {hi:.3} | {} |\n",
            each.join(", "),
            in_region_words(v, r)
        );
    }
    out
}

/// Region `r`'s left-out feature-type macro-F1 by training seed (`left_out_seeds`), in seed
/// order (the run records are not seeds).
pub(crate) fn left_out_seeds_f1(v: &Value, r: &str) -> Vec<(u64, f64)> {
    let mut f1: Vec<(u64, f64)> = v["left_out_seeds"][r]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(s, x)| Some((s.parse().ok()?, x["feature_types_macro_f1"].as_f64()?)))
        .collect();
    f1.sort_by_key(|(s, _)| *s);
    f1
}

/// Region `r`'s feature-type macro-F1 left out, the mean over the recipe's trainings without
/// it (`left_out_seeds`, else the first table's one), and each training's figure.
pub(crate) fn left_out_f1_mean(v: &Value, r: &str) -> (f64, Vec<f64>) {
    let mut f1: Vec<f64> = left_out_seeds_f1(v, r).into_iter().map(|(_, f)| f).collect();
    if f1.is_empty() {
        f1.extend(v["left_out"][r]["feature_types_macro_f1"].as_f64());
    }
    (f1.iter().sum::<f64>() / f1.len() as f64, f1)
}

/// Region `r`'s in-region feature-type macro-F1: the first table's (seed 42), and where
/// `reference seeds --in-region` trained the recipe with other seeds (`in_region_seeds`), the
/// mean of all and each seed's.
fn in_region_words(v: &Value, r: &str) -> String {
    let (home, others, mean) = in_region_f1(v, r);
    if others.is_empty() {
        return format!("{home:.3}");
    }
    let each: Vec<String> = others.iter().map(|(s, f)| format!("{f:.3} (seed {s})")).collect();
    format!("{mean:.3}: {home:.3} (seed 42), {}", each.join(", "))
}

/// Region `r`'s in-region feature-type macro-F1: the first table's (seed 42), each other
/// seed's (`in_region_seeds`), and the mean of them all.
pub(crate) fn in_region_f1(v: &Value, r: &str) -> (f64, Vec<(String, f64)>, f64) {
    let f1 = |x: &Value| x["feature_types_macro_f1"].as_f64();
    let home = f1(&v["in_region"][r]).unwrap_or(f64::NAN);
    let others: Vec<(String, f64)> = v["in_region_seeds"][r]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(s, x)| Some((s.clone(), f1(x)?)))
        .collect();
    let mean = (home + others.iter().map(|(_, f)| f).sum::<f64>()) / (others.len() + 1) as f64;
    (home, others, mean)
}

/// The region of the page's bundled view (central Helsinki): the one the page's adaptation
/// figure leaves out.
pub const PAGE_REGION: &str = "helsinki";

/// `reference page-adapt`: the page's "learn this area" on its bundled view, started from the
/// model trained without [`PAGE_REGION`] (trained here when `reference regions` left none),
/// from the shipped model (trained with it, on these very places) and from the model trained
/// on every region but the measured views' places ([`unseen_model`]: the in-region figure on
/// places it never saw), in headless Chromium on the CPU backend; written into the fixture as
/// `page_adapted`. With `--epochs 5,10,…` it also learns the view with each of those epoch
/// counts (the panel's Epochs field) and writes them as `page_adapted.sweep`. With
/// `--keep-left-out` the model trained without the region is not run again: the fixture's
/// figures of it are kept (checked to be of the same view and places; its run record is
/// kept as `left_out_run`).
pub fn page_adapt(root: &Path, args: &[String]) -> Result<()> {
    let sweep: Vec<usize> = match args.iter().position(|a| a == "--epochs") {
        Some(i) => args
            .get(i + 1)
            .context("--epochs needs a list, e.g. --epochs 5,10,20")?
            .split(',')
            .map(|n| n.trim().parse().with_context(|| format!("--epochs: `{n}` is not a count")))
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };
    let region = match args.iter().position(|a| a == "--region") {
        Some(i) => args.get(i + 1).context("--region needs a region's name")?.clone(),
        None => PAGE_REGION.to_string(),
    };
    let keep_left_out = args.iter().any(|a| a == "--keep-left-out");
    if keep_left_out && !sweep.is_empty() {
        bail!("--keep-left-out measures the default epochs only: leave out --epochs");
    }
    let last_stage = args.iter().any(|a| a == "--last-stage");
    let trial = match args.iter().position(|a| a == "--trial") {
        Some(i) => Some(args.get(i + 1).context("--trial needs a name")?.clone()),
        None => None,
    };
    if last_stage && trial.is_none() {
        bail!("--last-stage is a trial of the recipe: name it with --trial NAME");
    }
    if trial.is_some() && (keep_left_out || !sweep.is_empty()) {
        bail!(
            "--trial learns the view once with each model: leave out --keep-left-out and --epochs"
        );
    }
    let osm = extracts(root)?
        .into_iter()
        .find(|(_, r)| *r == region)
        .map(|(p, _)| p)
        .with_context(|| format!("--region {region}: no assets/osm/{region}.osm.pbf"))?;
    let exe = crate::accessatlas_exe(root)?;
    let data = work_data(root, &exe)?;
    let fixture = root.join(FIXTURE);
    let mut out = read_json(&fixture)?;
    let kept = if region == PAGE_REGION {
        out["page_adapted"].clone()
    } else {
        out["page_adapted_regions"][&region].clone()
    };
    let bundle = if keep_left_out {
        if !kept["left_out"].is_object() {
            bail!("--keep-left-out: the fixture has no figures of {region}'s view to keep");
        }
        None
    } else {
        Some(left_out_bundle(&exe, &data, &region)?)
    };
    // Another region than the bundled view's: its extract served, and a view of it the size
    // of the bundled one, where its features are mapped most densely.
    let view = if region == PAGE_REGION {
        None
    } else {
        // A view once chosen stays: the opening view's box moves by a metre between browsers,
        // and that may move the densest view of a region far.
        match out["page_adapted_regions"][&region]["view"].as_str() {
            Some(v) => Some(v.to_string()),
            None => {
                let (_, rows) = read_rows(&data.join("tags.csv"))?;
                Some(densest_view(&rows, &region, &opening_bbox(&out)?)?)
            }
        }
    };
    let unseen = match unseen_model(root, &exe, &data, &mut out) {
        Ok(b) => Some(b),
        Err(e) if region == PAGE_REGION && !out["page_adapted"]["left_out"].is_object() => {
            eprintln!("no in-region model without the view's places yet ({e:#}): run again");
            None
        }
        Err(e) => return Err(e),
    };
    let dist = crate::web::current_app(root)?;
    crate::web::ensure_chromium()?;
    // The page's own default (no epochs set), then each epoch count of the sweep.
    let learn = |epochs: Option<usize>| {
        learn_in_page(
            root,
            &PageRun {
                dist: &dist,
                view: view.as_deref().map(|v| (osm.as_path(), v)),
                left_out: bundle.as_deref(),
                unseen: unseen.as_deref(),
                epochs,
                last_stage,
            },
        )
    };
    let mut page = learn(None)?;
    if keep_left_out {
        for k in ["bbox", "learned_from", "train_places"] {
            if kept["left_out"][k] != page["in_region"][k] {
                bail!(
                    "--keep-left-out: {region}'s view changed ({k}: {} then, {} now): run without it",
                    kept["left_out"][k],
                    page["in_region"][k]
                );
            }
        }
        page["left_out"] = kept["left_out"].clone();
        page["left_out_run"] = kept.get("left_out_run").unwrap_or(&kept["run"]).clone();
    }
    let mut swept = Vec::new();
    for &n in &sweep {
        let v = learn(Some(n))?;
        swept.push(json!({
            "epochs": n,
            "left_out": v["left_out"],
            "in_region": v["in_region"],
            "in_region_unseen": v["in_region_unseen"],
        }));
    }
    page["region"] = json!(region);
    if !swept.is_empty() {
        page["sweep"] = json!(swept);
    } else if trial.is_none() && kept["sweep"].is_array() {
        // An earlier sweep stays, with the record of the run that measured it (its models
        // may be other trainings than this run's).
        page["sweep"] = kept["sweep"].clone();
        page["sweep_run"] = kept.get("sweep_run").unwrap_or(&kept["run"]).clone();
    }
    page["run"] = json!(crate::bench::run_record(root));
    if let Some(v) = &view {
        page["view"] = json!(v);
    }
    match (&trial, &view) {
        (Some(name), _) => {
            page["last_stage"] = json!(last_stage);
            out["page_trials"][name][&region] = page;
        }
        (None, None) => out["page_adapted"] = page,
        (None, Some(_)) => out["page_adapted_regions"][&region] = page,
    }
    std::fs::write(&fixture, serde_json::to_string_pretty(&out)? + "\n")?;
    eprintln!("{} written; commit it, and put these tables in {DOC}:\n", fixture.display());
    eprintln!("{}", page_table(&out));
    eprintln!("{}", page_sweep_table(&out));
    eprintln!("{}", page_regions_table(&out));
    eprintln!("{}", page_trials_table(&out));
    Ok(())
}

/// One measurement of "learn this area" in headless Chromium, CPU backend: what
/// [`learn_in_page`] serves and learns.
struct PageRun<'a> {
    /// The built app.
    dist: &'a Path,
    /// The extract served and the view learned (`zoom/lat/lon`); else the bundled central
    /// Helsinki and the page's opening view.
    view: Option<(&'a Path, &'a str)>,
    /// The model trained without the view's region (`left_out`), if any.
    left_out: Option<&'a Path>,
    /// The model trained with the region but not on the view's places (`in_region_unseen`).
    unseen: Option<&'a Path>,
    /// The panel's epochs; else the page's default.
    epochs: Option<usize>,
    /// The panel's "also train the image encoder's last stage".
    last_stage: bool,
}

/// Runs the e2e's `reference_learn_area_on_a_region_the_model_never_saw` on `p`: the view
/// learned with the shipped model (`in_region`) and with each model `p` names, the figures
/// the page showed, as it wrote them.
fn learn_in_page(root: &Path, p: &PageRun) -> Result<Value> {
    let measured = work_dir().join("page-adapt.json");
    let _ = std::fs::remove_file(&measured);
    let mut cmd = crate::cargo();
    cmd.current_dir(root)
        .env("ACCESSATLAS_DIST", p.dist)
        .env("ACCESSATLAS_PAGE_ADAPT_OUT", &measured)
        .args(["test", "--test", "e2e", "--", "--ignored", "--exact"])
        .arg("reference_learn_area_on_a_region_the_model_never_saw");
    for (key, value) in [
        ("ACCESSATLAS_LEFT_OUT_MODEL", p.left_out.map(|b| b.as_os_str().to_owned())),
        ("ACCESSATLAS_UNSEEN_MODEL", p.unseen.map(|b| b.as_os_str().to_owned())),
        ("ACCESSATLAS_PAGE_ADAPT_EPOCHS", p.epochs.map(|n| n.to_string().into())),
        ("ACCESSATLAS_PAGE_ADAPT_LAST_STAGE", p.last_stage.then(|| "1".into())),
        ("ACCESSATLAS_PAGE_ADAPT_OSM", p.view.map(|(osm, _)| osm.as_os_str().to_owned())),
        ("ACCESSATLAS_PAGE_ADAPT_VIEW", p.view.map(|(_, v)| v.into())),
    ] {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    crate::run(&mut cmd)?;
    read_json(&measured)
}

/// The page's trials (`page_trials`: `reference page-adapt --trial NAME`), each beside the
/// default recipe on the same view: feature-type macro-F1 of the model trained without the
/// region, before -> after, and the share of the gap closed to the model trained with the
/// region but not on the view. Empty when none was measured.
pub fn page_trials_table(v: &Value) -> String {
    let Some(trials) = v["page_trials"].as_object() else { return String::new() };
    let mut out = String::from(
        "| view | recipe | trained without the region: macro-F1 before -> after | share of the gap closed (to the model not trained on the view / to the shipped) | seconds |\n\
         |---|---|---|---|---|\n",
    );
    let row = |view: &str, recipe: &str, p: &Value| {
        let lo = &p["left_out"];
        format!(
            "| {view} | {recipe} | {} -> {} | {} / {} | {:.0} |\n",
            f3(&lo["types_f1_before"]),
            f3(&lo["types_f1_after"]),
            share_words(lo, &p["in_region_unseen"]),
            share_words(lo, &p["in_region"]),
            lo["seconds"].as_f64().unwrap_or(f64::NAN),
        )
    };
    for (name, by_region) in trials {
        for (r, p) in by_region.as_object().into_iter().flatten() {
            let default =
                if r == PAGE_REGION { &v["page_adapted"] } else { &v["page_adapted_regions"][r] };
            out += &row(r, "default", default);
            out += &row(r, name, p);
        }
    }
    out
}

/// The bundle of the model trained without `region` (in the work folder; trained and exported
/// unless an earlier call left it there).
fn left_out_bundle(exe: &Path, data: &Path, region: &str) -> Result<PathBuf> {
    let runs = work_dir().join("runs");
    let bundle = runs.join(format!("without-{region}-bundle"));
    let run = runs.join(format!("without-{region}"));
    trained_bundle(exe, data, &["--hold-out", region], &run, &bundle)?;
    Ok(bundle)
}

/// The recipe trained into `run` on `data` split by `preprocess` with `split`, and exported
/// into `bundle`; each step skipped where an earlier call left its output.
fn trained_bundle(
    exe: &Path,
    data: &Path,
    split: &[&str],
    run: &Path,
    bundle: &Path,
) -> Result<()> {
    if !run.join("model.json").is_file() {
        train_on(exe, data, split, &[], run)?;
    }
    if !bundle.join("model.json").is_file() {
        crate::run(Command::new(exe).arg("preprocess").arg("--data").arg(data).args(split))?;
        crate::run(
            Command::new(exe)
                .arg("export")
                .arg("--model")
                .arg(run)
                .arg("--data")
                .arg(data)
                .arg("--out")
                .arg(bundle),
        )?;
    }
    Ok(())
}

/// The view of region `r` that "learn this area" is measured on beside the bundled one:
/// `zoom/lat/lon` at the opening view's zoom, centred on the region's mapped feature with the
/// most of its features in a box the size of the opening view (`bbox`: min lon, min lat, max
/// lon, max lat) around it. Chosen by where features are mapped, never by a figure measured
/// there; ties go to the smaller id.
fn densest_view(rows: &[Row], r: &str, bbox: &[f64]) -> Result<String> {
    let (lat, lon) = densest_centre(rows, r, bbox)?;
    Ok(format!("{}/{lat:.5}/{lon:.5}", crate::regions::OPENING_ZOOM))
}

/// The centre (lat, lon) of [`densest_view`].
fn densest_centre(rows: &[Row], r: &str, bbox: &[f64]) -> Result<(f64, f64)> {
    let (_, lat, lon) =
        densest_avoiding(rows, r, bbox, &[])?.with_context(|| format!("{r}: no mapped feature"))?;
    Ok((lat, lon))
}

/// The mapped feature of region `r` with the most of its features in a box the size of the
/// opening view (`bbox`) around it, among those whose box overlaps none of `avoid`: how many
/// features the box holds, and its centre (lat, lon, rounded as the page's `#map=` reads it,
/// which moves the box by at most half a metre). None where no feature's box is clear of
/// `avoid`. Ties go to the smaller id.
fn densest_avoiding(
    rows: &[Row],
    r: &str,
    bbox: &[f64],
    avoid: &[[f64; 4]],
) -> Result<Option<(usize, f64, f64)>> {
    let features: Vec<&Row> = rows.iter().filter(|x| x.region == r && x.label != "none").collect();
    let overlaps =
        |a: &[f64; 4], b: &[f64; 4]| a[0] <= b[2] && b[0] <= a[2] && a[1] <= b[3] && b[1] <= a[3];
    let mut scored = Vec::new();
    for c in &features {
        let b = view_box(bbox, c.lat, c.lon)?;
        if avoid.iter().any(|a| overlaps(a, &b)) {
            continue;
        }
        let [w, s, e, n] = b;
        let inside = |f: &&&Row| f.lat >= s && f.lat <= n && f.lon >= w && f.lon <= e;
        scored.push((features.iter().filter(inside).count(), std::cmp::Reverse(c.id.clone()), c));
    }
    let round = |x: f64| (x * 1e5).round() / 1e5;
    Ok(scored
        .into_iter()
        .max_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)))
        .map(|(n, _, c)| (n, round(c.lat), round(c.lon))))
}

/// A view the size of the opening one (`bbox`: min lon, min lat, max lon, max lat) centred on
/// `lat`, `lon`, as the same box: Web Mercator shrinks a view's latitude span with the cosine
/// of its latitude.
fn view_box(bbox: &[f64], lat: f64, lon: f64) -> Result<[f64; 4]> {
    let [min_lon, min_lat, max_lon, max_lat] = bbox else { bail!("a bbox of 4 numbers: {bbox:?}") };
    let lat0 = (min_lat + max_lat) / 2.0;
    let half_lon = (max_lon - min_lon) / 2.0;
    let half_lat = (max_lat - min_lat) / 2.0 * lat.to_radians().cos() / lat0.to_radians().cos();
    Ok([lon - half_lon, lat - half_lat, lon + half_lon, lat + half_lat])
}

/// The page's opening view of [`PAGE_REGION`] as the fixture's `page_adapted` recorded it
/// (min lon, min lat, max lon, max lat).
fn opening_bbox(out: &Value) -> Result<Vec<f64>> {
    let p = &out["page_adapted"];
    p["left_out"]["bbox"]
        .as_str()
        .or(p["in_region"]["bbox"].as_str())
        .context("page_adapted's bbox: run `reference page-adapt` for the bundled view first")?
        .split(',')
        .map(|x| x.parse::<f64>().with_context(|| format!("page_adapted's bbox: `{x}`")))
        .collect()
}

/// Every place within this distance of a measured view is kept out of the model that stands
/// for "in-region, but never saw these places": a training tile (224 pixels at zoom 19, at most
/// about 70 m across) centred farther away than this shows none of a view's places.
pub const VIEW_MARGIN_M: f64 = 100.0;

/// The views "learn this area" is measured on (min lon, min lat, max lon, max lat), by region:
/// the page's opening view of [`PAGE_REGION`] (`opening`, as the page reported it) and each
/// other region's view: its centre in `chosen` (the fixture's), else its [`densest_view`].
/// Fixed by the data alone, before any model is measured.
fn measured_views(
    rows: &[Row],
    regions: &[String],
    opening: &[f64],
    chosen: &std::collections::BTreeMap<String, (f64, f64)>,
) -> Result<Vec<(String, [f64; 4])>> {
    regions
        .iter()
        .map(|r| {
            let b = if r == PAGE_REGION {
                view_box(opening, (opening[1] + opening[3]) / 2.0, (opening[0] + opening[2]) / 2.0)?
            } else {
                let (lat, lon) = match chosen.get(r) {
                    Some(&c) => c,
                    None => densest_centre(rows, r, opening)?,
                };
                view_box(opening, lat, lon)?
            };
            Ok((r.clone(), b))
        })
        .collect()
}

/// Whether a place lies in `view` or within `margin_m` of it.
fn near_view(view: &[f64; 4], lat: f64, lon: f64, margin_m: f64) -> bool {
    let dlat = margin_m / 111_320.0;
    let dlon = margin_m / (111_320.0 * lat.to_radians().cos());
    lat >= view[1] - dlat && lat <= view[3] + dlat && lon >= view[0] - dlon && lon <= view[2] + dlon
}

/// `data` (collect's output) without the rows near any of `views` ([`VIEW_MARGIN_M`]), in
/// `out`: its `tags.csv` filtered, every other file of `collect`'s (the images) linked. Returns
/// how many rows were left out.
fn data_without_views(data: &Path, out: &Path, views: &[(String, [f64; 4])]) -> Result<usize> {
    let (header, rows) = read_rows(&data.join("tags.csv"))?;
    let keep: Vec<&Row> = rows
        .iter()
        .filter(|r| !views.iter().any(|(_, v)| near_view(v, r.lat, r.lon, VIEW_MARGIN_M)))
        .collect();
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out)?;
    let mut text = header + "\n";
    for r in &keep {
        text += &r.line;
        text.push('\n');
    }
    std::fs::write(out.join("tags.csv"), text)?;
    for e in std::fs::read_dir(data)? {
        let name = e?.file_name();
        let n = name.to_string_lossy();
        if n.starts_with("tags") || n == "preprocessing_metadata.json" {
            continue;
        }
        std::os::unix::fs::symlink(data.join(&name), out.join(&name))
            .with_context(|| format!("linking {n} into {}", out.display()))?;
    }
    Ok(rows.len() - keep.len())
}

/// The bundle of the model trained on every region but the measured views' places
/// ([`measured_views`]), trained and exported in the work folder unless an earlier call left
/// it there; what was left out is written into the fixture as `page_unseen_model`.
fn unseen_model(root: &Path, exe: &Path, data: &Path, out: &mut Value) -> Result<PathBuf> {
    let bundle = work_dir().join("runs/without-views-bundle");
    // Trained by an earlier call, which wrote down what it left out.
    if bundle.join("model.json").is_file() && out["page_unseen_model"].is_object() {
        return Ok(bundle);
    }
    let opening = opening_bbox(out)?;
    let regions: Vec<String> = extracts(root)?.into_iter().map(|(_, r)| r).collect();
    let (_, rows) = read_rows(&data.join("tags.csv"))?;
    let views = measured_views(&rows, &regions, &opening, &chosen_views(out))?;
    let (bundle, mut record) = model_without_views(exe, data, &rows, &regions, &views, "views")?;
    record["views"] = views
        .iter()
        .map(|(r, b)| (r.clone(), json!(rounded_box(b))))
        .collect::<serde_json::Map<_, _>>()
        .into();
    out["page_unseen_model"] = record;
    Ok(bundle)
}

/// A view's box to six decimals (about 0.1 m), as the fixture records it.
fn rounded_box(b: &[f64; 4]) -> [f64; 4] {
    b.map(|x| (x * 1e6).round() / 1e6)
}

/// The centre (lat, lon) of each region's view that the fixture's `page_adapted_regions`
/// records: chosen once, kept since.
fn chosen_views(out: &Value) -> std::collections::BTreeMap<String, (f64, f64)> {
    out["page_adapted_regions"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(r, p)| {
            let v = p["view"].as_str()?;
            let mut it = v.split('/').skip(1).map(str::parse::<f64>);
            Some((r.clone(), (it.next()?.ok()?, it.next()?.ok()?)))
        })
        .collect()
}

/// The recipe trained on `data` less every row within [`VIEW_MARGIN_M`] of `views`, and
/// exported (`runs/without-{name}` and its `-bundle` in the work folder, each kept when an
/// earlier call left it), with the record of what it left out: the margin, and the rows of
/// each of `regions`, and how many of them the model never saw.
fn model_without_views(
    exe: &Path,
    data: &Path,
    rows: &[Row],
    regions: &[String],
    views: &[(String, [f64; 4])],
    name: &str,
) -> Result<(PathBuf, Value)> {
    let work = work_dir();
    let run = work.join(format!("runs/without-{name}"));
    let bundle = work.join(format!("runs/without-{name}-bundle"));
    let dv = work.join(format!("data-without-{name}"));
    let removed = data_without_views(data, &dv, views)?;
    trained_bundle(exe, &dv, &[], &run, &bundle)?;
    // Per region, its rows and how many of them the model never saw: a view that covers most
    // of a small region leaves that region little to be "in-region" with.
    let mut per_region = serde_json::Map::new();
    for r in regions {
        let of_r: Vec<&Row> = rows.iter().filter(|x| &x.region == r).collect();
        let near = of_r
            .iter()
            .filter(|x| views.iter().any(|(_, v)| near_view(v, x.lat, x.lon, VIEW_MARGIN_M)));
        per_region.insert(r.clone(), json!({ "rows": of_r.len(), "left_out": near.count() }));
    }
    let record = json!({
        "margin_m": VIEW_MARGIN_M,
        "rows_left_out": removed,
        "rows": rows.len(),
        "regions": per_region,
    });
    Ok((bundle, record))
}

/// The zoom of the page's opening view (`app/src/page/mod.rs`, `START`).
pub const OPENING_ZOOM: u32 = 16;

/// "Learn this area" on a view of each region but the bundled one (`page_adapted_regions`):
/// the model trained without the region before and after, the model that never saw the view's
/// places and the shipped model before, and the share of the gap closed against each of the
/// two. Empty when none was measured.
pub fn page_regions_table(v: &Value) -> String {
    let Some(regions) = v["page_adapted_regions"].as_object() else { return String::new() };
    let mut out = String::from(
        "| region (view) | places learned from / held out (with a feature) | trained without it: macro-F1 before -> after | trained with it, not on the view: before | shipped: before | share of the gap closed: to the model not trained on the view / to the shipped | seconds |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for (r, p) in regions {
        let lo = &p["left_out"];
        out += &format!(
            "| {r} (`#map={}`) | {} | {:.0} |\n",
            p["view"].as_str().unwrap_or("?"),
            view_figures(p),
            lo["seconds"].as_f64().unwrap_or(f64::NAN),
        );
    }
    out
}

/// One view's cells of the page's tables (`page-adapt`'s measurement of it): the places
/// learned from and held out, the model trained without the region before -> after, the
/// model not trained on the view and the shipped one before, and the share of the gap closed
/// to each of the two.
fn view_figures(p: &Value) -> String {
    let lo = &p["left_out"];
    format!(
        "{} | {} -> {} | {} | {} | {} / {}",
        places(lo),
        f3(&lo["types_f1_before"]),
        f3(&lo["types_f1_after"]),
        f3(&p["in_region_unseen"]["types_f1_before"]),
        f3(&p["in_region"]["types_f1_before"]),
        share_words(lo, &p["in_region_unseen"]),
        share_words(lo, &p["in_region"]),
    )
}

/// [`page_share`] to two decimals; "no gap" where the reference is not [`MIN_GAP`] above the
/// start, "-" where there is no reference.
fn share_words(left_out: &Value, in_region: &Value) -> String {
    match (page_share(left_out, in_region), in_region["types_f1_before"].as_f64()) {
        (Some(x), _) => format!("{x:.2}"),
        (None, Some(_)) if left_out["types_f1_before"].is_number() => "no gap".to_string(),
        _ => "-".to_string(),
    }
}

/// The share of the gap closed, `(after - before) / (in-region before - before)`, where the gap
/// is at least [`MIN_GAP`].
fn page_share(left_out: &Value, in_region: &Value) -> Option<f64> {
    let (b, a, h) = (
        left_out["types_f1_before"].as_f64()?,
        left_out["types_f1_after"].as_f64()?,
        in_region["types_f1_before"].as_f64()?,
    );
    (h - b >= MIN_GAP).then(|| (a - b) / (h - b))
}

/// The page's epochs sweep (`page_adapted.sweep`): feature-type macro-F1 after learning the
/// view, per epoch count, left out and in-region, and the share of the gap closed.
pub fn page_sweep_table(v: &Value) -> String {
    let mut out = String::from(
        "| epochs | trained without the region: macro-F1 after | shipped: macro-F1 after | share of the gap closed |\n\
         |---|---|---|---|\n",
    );
    for s in v["page_adapted"]["sweep"].as_array().into_iter().flatten() {
        let share = page_share(&s["left_out"], &s["in_region"])
            .map_or("-".to_string(), |x| format!("{x:.2}"));
        out += &format!(
            "| {} | {} | {} | {share} |\n",
            s["epochs"],
            f3(&s["left_out"]["types_f1_after"]),
            f3(&s["in_region"]["types_f1_after"]),
        );
    }
    out
}

/// The page's adaptation table (`page_adapted` of the fixture): the bundled view's held-out
/// places, with the model trained without its region before and after "learn this area",
/// with the model trained with it but not on the view's places, and with the shipped model
/// (trained on them too).
pub fn page_table(v: &Value) -> String {
    let p = &v["page_adapted"];
    let lo = &p["left_out"];
    let r = p["region"].as_str().unwrap_or("?");
    let row = |model: String, x: &Value| {
        if !x.is_object() {
            return String::new();
        }
        format!(
            "| {model} | {} | {} -> {} | {} -> {} | {:.0} |\n",
            places(x),
            f3(&x["types_f1_before"]),
            f3(&x["types_f1_after"]),
            f3(&x["accuracy_before"]),
            f3(&x["accuracy_after"]),
            x["seconds"].as_f64().unwrap_or(f64::NAN),
        )
    };
    format!(
        "| model | places learned from / held out (with a feature) | feature types macro-F1: before -> after | accuracy, `none` included: before -> after | seconds |\n\
         |---|---|---|---|---|\n{}{}{}\nShare of the gap closed: {} to the model trained with {r} but not on this view, {} to the shipped model.\n",
        row(format!("trained without {r}"), lo),
        row(format!("trained with {r}, not on this view"), &p["in_region_unseen"]),
        row(format!("shipped, trained with {r} and on this view"), &p["in_region"]),
        share_words(lo, &p["in_region_unseen"]),
        share_words(lo, &p["in_region"]),
    )
}

/// The places a view was learned from and held out, and of those the ones with a feature
/// (`-` where a measurement from before the page said so has none).
fn places(page: &Value) -> String {
    let n = |k: &str| page[k].as_u64().map_or("-".to_string(), |n| n.to_string());
    format!("{} / {} ({})", n("train_places"), n("val_places"), n("val_features"))
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

/// The smallest gap in feature-type macro-F1 between left out and in-region whose closed share
/// the adaptation table states.
pub const MIN_GAP: f64 = 0.05;

/// What adapting a region's left-out model did to the gap between it and the in-region model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Gap {
    /// The share of the gap the adapted model closed (negative when it did worse).
    Closed(f64),
    /// In-region was better by less than [`MIN_GAP`]: within what one training differs from
    /// the next on a few test features, so a share of it would only magnify noise.
    Small(f64),
    /// Left out, the model did at least as well as in-region.
    None,
}

/// [`Gap`] for region `r` of the regions fixture `v` (its `adapted` and `in_region` figures):
/// the one place the share is computed, for the table and for anything that quotes it.
pub fn gap_closed(v: &Value, r: &str) -> Gap {
    let f1 = |x: &Value| x["feature_types_macro_f1"].as_f64().unwrap_or(f64::NAN);
    let (home, a) = (f1(&v["in_region"][r]), &v["adapted"][r]);
    let (before, after) = (f1(&a["before"]), f1(&a["after"]));
    let gap = home - before;
    if gap.is_nan() || gap <= 0.0 {
        Gap::None
    } else if gap < MIN_GAP {
        Gap::Small(gap)
    } else {
        Gap::Closed((after - before) / gap)
    }
}

/// The adaptation table: per region, its in-region test cells measured with the
/// model trained without it, before and after adapting it with a few of the region's rows.
pub fn adapt_table(v: &Value) -> String {
    let mut out = String::from(
        "| region | adapted with (rows / of them features) | feature types macro-F1: left out -> adapted (in-region) | share of the gap closed |\n\
         |---|---|---|---|\n",
    );
    let f1 = |x: &Value| x["feature_types_macro_f1"].as_f64().unwrap_or(f64::NAN);
    for r in v["regions"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        let a = &v["adapted"][r];
        if a.is_null() {
            continue;
        }
        let closed = match gap_closed(v, r) {
            Gap::Closed(g) => format!("{g:.2}"),
            Gap::Small(gap) => format!("no gap to close (in-region only {gap:.3} higher)"),
            Gap::None => "no gap: left out it did as well".to_string(),
        };
        out.push_str(&format!(
            "| {r} | {} / {} | {:.3} -> {:.3} ({:.3}) | {} |\n",
            a["rows"],
            a["feature_rows"],
            f1(&a["before"]),
            f1(&a["after"]),
            f1(&v["in_region"][r]),
            closed,
        ));
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

/// The adapting recipes tried (`adapt_trials` of the fixture, `reference adapt --trial`), each
/// region's feature-type macro-F1 left out -> adapted, beside the default recipe's (`adapted`).
pub fn trials_table(v: &Value) -> String {
    let (regions, mut out) = recipes_head(v, "`train --init` arguments");
    let f1 = |x: &Value| x["feature_types_macro_f1"].as_f64().unwrap_or(f64::NAN);
    let mut rows = vec![(format!("the default{}", rehearsal_words(&v["adapted"])), &v["adapted"])];
    if let Some(t) = v["adapt_trials"].as_object() {
        for (name, a) in t {
            let args: Vec<&str> = a["train_args"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let mut label = match args.as_slice() {
                [] => format!("{name}: no arguments"),
                _ => format!("{name}: `{}`", args.join(" ")),
            };
            label += &rehearsal_words(a);
            rows.push((label, a));
        }
    }
    for (name, a) in rows {
        let cells: Vec<String> = regions
            .iter()
            .map(|r| match &a[*r] {
                Value::Null => "-".to_string(),
                x => format!("{:.3} -> {:.3}", f1(&x["before"]), f1(&x["after"])),
            })
            .collect();
        out += &format!("| {name} | {} |\n", cells.join(" | "));
    }
    out
}

/// What an adapting run (`adapted` or a trial) rehearsed, for the trials table: an entry's
/// `rehearse` is the rows asked for (0: none; absent: `train`'s default, recorded per region as
/// `rehearsed_rows`).
fn rehearsal_words(a: &Value) -> String {
    let done = a.as_object().into_iter().flatten().find_map(|(_, x)| x["rehearsed_rows"].as_u64());
    match (a["rehearse"].as_u64(), done) {
        (Some(0), _) => ", no rehearsal".to_string(),
        (_, Some(n)) | (Some(n), None) => format!(", rehearsing {n} rows of the regions it knows"),
        (None, None) => String::new(),
    }
}

/// The adapting recipes trained with several seeds (trials named `NAME-seedS` beside `NAME`;
/// the default's are `default-seedS` beside `adapted`): per region the mean feature-type
/// macro-F1 after adapting over the recipe's runs, and the share of the gap that mean closes
/// (as [`gap_closed`] computes it). Recipes with one run are left out.
pub fn trial_means_table(v: &Value) -> String {
    let regions: Vec<&str> =
        v["regions"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let mut out = format!(
        "| recipe | runs | {} |\n|---|---|{}\n",
        regions.join(" | "),
        "---|".repeat(regions.len())
    );
    for (name, runs, cells) in recipe_means(v) {
        let cells: Vec<String> = cells
            .iter()
            .map(|c| match c {
                None => "-".to_string(),
                Some((_, mean, None)) => format!("{mean:.3} (no gap)"),
                Some((_, mean, Some(share))) => format!("{mean:.3} ({share:.2})"),
            })
            .collect();
        out += &format!("| {name} | {runs} | {} |\n", cells.join(" | "));
    }
    out
}

/// Per adapting recipe with more than one run (its name, the number of runs), per region: the
/// mean feature-type macro-F1 after adapting, and the share of the gap that mean closes where
/// the gap is at least [`MIN_GAP`]; `None` for a region some run lacks.
#[allow(clippy::type_complexity)]
pub fn recipe_means(v: &Value) -> Vec<(String, usize, Vec<Option<(String, f64, Option<f64>)>>)> {
    let regions: Vec<&str> =
        v["regions"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let f1 = |x: &Value| x["feature_types_macro_f1"].as_f64().unwrap_or(f64::NAN);
    // Each recipe's runs, by its name without the seed.
    let mut recipes: Vec<(String, Vec<&Value>)> = vec![("default".into(), vec![&v["adapted"]])];
    for (name, a) in v["adapt_trials"].as_object().into_iter().flatten() {
        let base = match name.rsplit_once("-seed") {
            Some((b, s)) if s.parse::<u64>().is_ok() => b,
            _ => name.as_str(),
        };
        match recipes.iter_mut().find(|(n, _)| n == base) {
            Some((_, runs)) => runs.push(a),
            None => recipes.push((base.to_string(), vec![a])),
        }
    }
    let mut out = Vec::new();
    for (name, runs) in recipes.into_iter().filter(|(_, runs)| runs.len() > 1) {
        let cells = regions
            .iter()
            .map(|r| {
                let after: Vec<f64> =
                    runs.iter().filter(|a| !a[*r].is_null()).map(|a| f1(&a[*r]["after"])).collect();
                if after.len() < runs.len() {
                    return None;
                }
                let mean = after.iter().sum::<f64>() / after.len() as f64;
                let before = f1(&runs[0][*r]["before"]);
                let gap = f1(&v["in_region"][*r]) - before;
                Some((r.to_string(), mean, (gap >= MIN_GAP).then(|| (mean - before) / gap)))
            })
            .collect();
        out.push((name, runs.len(), cells));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // The README quotes the share of the gap the default adapting recipe closes, on the
        // mean of its runs, in each region with a gap.
        let one_line = readme_one_line(&root);
        if let Some((_, _, cells)) = recipe_means(&v).into_iter().find(|(n, _, _)| n == "default") {
            for (r, _, share) in cells.into_iter().flatten() {
                if let Some(share) = share {
                    let quoted = format!("{r} {share:.2}");
                    assert!(one_line.contains(&quoted), "README.md does not quote `{quoted}`");
                }
            }
        }
        // The README quotes each region's macro-F1 left out against in-region, each the mean
        // over the recipe's trainings.
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
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
        assert!(readme.contains(&quoted), "README.md does not quote the page's {quoted}");
        if v["left_out_pooled"].is_object() {
            let t = left_out_pooled_table(&v);
            assert!(doc.contains(&t), "{DOC} lacks the left-out suggestions' table:\n{t}");
            // The README quotes each region's lift under the other regions' rule.
            let one_line = readme_one_line(&root);
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
            assert!(readme.contains(&quoted), "README.md does not quote the page's `{quoted}`");
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
                readme.contains(&quoted),
                "README.md does not quote {r}'s page figure {quoted}"
            );
        }
    }

    /// README.md with every run of white space one space (a quote may be broken over lines).
    fn readme_one_line(root: &Path) -> String {
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        readme.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    fn rows(labels: &[(&str, usize)]) -> Vec<Row> {
        labels
            .iter()
            .flat_map(|&(l, n)| (0..n).map(move |i| (l, i)))
            .map(|(l, i)| Row {
                line: format!("{l}{i}"),
                id: format!("node/{l}{i}"),
                label: l.to_string(),
                region: "r".into(),
                lat: 43.7 + i as f64 * 1e-4,
                lon: 7.42,
            })
            .collect()
    }

    /// The other region's view is centred where its features are densest, at the opening zoom,
    /// its latitude span scaled by the cosine of the latitude; `none` rows and other regions'
    /// rows do not count.
    #[test]
    fn the_other_region_s_view_is_where_its_features_are_densest() {
        let row = |id: &str, label: &str, region: &str, lat: f64, lon: f64| Row {
            line: String::new(),
            id: id.into(),
            label: label.into(),
            region: region.into(),
            lat,
            lon,
        };
        let mut rows = vec![row("node/1", "ramp", "m", 43.70, 7.40)];
        for i in 0..3 {
            rows.push(row(&format!("node/2{i}"), "entrance", "m", 43.74 + i as f64 * 1e-3, 7.42));
        }
        for i in 0..5 {
            rows.push(row(&format!("node/3{i}"), "none", "m", 43.70 + i as f64 * 1e-4, 7.40));
            rows.push(row(&format!("node/4{i}"), "ramp", "x", 43.70 + i as f64 * 1e-4, 7.40));
        }
        // The opening view at 60 degrees north: 0.02 of longitude by 0.008 of latitude.
        let bbox = [24.93, 60.166, 24.95, 60.174];
        assert_eq!(densest_view(&rows, "m", &bbox).unwrap(), "16/43.74000/7.42000");
        // At 43.74 degrees the view spans 0.008 * cos(43.74) / cos(60.17) = 0.0116 of latitude,
        // 0.0058 either side of its centre: centred on node/21, four features (node/20 is 0.006
        // from node/5); node/6 is too far from all.
        rows.push(row("node/5", "ramp", "m", 43.746, 7.42));
        rows.push(row("node/6", "ramp", "m", 43.77, 7.42));
        assert_eq!(densest_view(&rows, "m", &bbox).unwrap(), "16/43.74100/7.42000");
        assert!(densest_view(&rows, "nowhere", &bbox).is_err());
    }

    /// The model for "in-region, never saw the view" is trained on `collect`'s rows less every
    /// row in a measured view or within [`VIEW_MARGIN_M`] of it, whatever its label; the rows
    /// farther away are kept as they were and the images are linked, not copied.
    #[test]
    fn the_unseen_model_s_data_leaves_out_each_view_and_its_margin() {
        let dir = tempfile::tempdir().unwrap();
        let (data, out) = (dir.path().join("data"), dir.path().join("without"));
        std::fs::create_dir_all(data.join("images")).unwrap();
        std::fs::write(data.join("images/a.png"), b"png").unwrap();
        std::fs::write(data.join("tags_train.csv"), "a split").unwrap();
        // A view of 0.01 by 0.01 degrees at 60 N: 100 m is 0.0009 of latitude and 0.0018 of
        // longitude there.
        let view = [24.93, 60.16, 24.94, 60.17];
        let rows = [
            ("node/in", 60.165, 24.935, "ramp"),
            ("node/bg", 60.165, 24.939, "none"),
            ("node/north-80m", 60.17072, 24.935, "entrance"),
            ("node/east-80m", 60.165, 24.94144, "obstacle"),
            ("node/north-120m", 60.17108, 24.935, "ramp"),
            ("node/west-150m", 60.165, 24.92730, "none"),
            ("node/far", 60.2, 24.9, "elevator"),
        ];
        let mut csv = String::from("id,lat,lon,type,source,image,region\n");
        for (id, lat, lon, label) in rows {
            csv += &format!("{id},{lat},{lon},{label},osm,images/a.png,helsinki\n");
        }
        std::fs::write(data.join("tags.csv"), &csv).unwrap();
        let views = vec![("helsinki".to_string(), view)];
        assert_eq!(data_without_views(&data, &out, &views).unwrap(), 4);
        let (_, kept) = read_rows(&out.join("tags.csv")).unwrap();
        let ids: Vec<&str> = kept.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["node/north-120m", "node/west-150m", "node/far"]);
        assert_eq!(kept[0].line, "node/north-120m,60.17108,24.935,ramp,osm,images/a.png,helsinki");
        assert!(std::fs::symlink_metadata(out.join("images")).unwrap().is_symlink());
        assert_eq!(std::fs::read(out.join("images/a.png")).unwrap(), b"png");
        assert!(!out.join("tags_train.csv").exists(), "the splits are made again there");
    }

    /// The measured views: the opening view as the page reported it, and each other region's
    /// densest view, of the opening view's size (its latitude span scaled by the cosine).
    #[test]
    fn the_measured_views_are_the_opening_one_and_each_region_s_densest() {
        let opening = [24.93, 60.166, 24.95, 60.174];
        let row = |id: &str, region: &str, lat: f64, lon: f64| Row {
            line: String::new(),
            id: id.into(),
            label: "ramp".into(),
            region: region.into(),
            lat,
            lon,
        };
        let rows = vec![row("node/1", "helsinki", 60.17, 24.94), row("node/2", "m", 43.74, 7.42)];
        let regions = vec!["helsinki".to_string(), "m".to_string()];
        let v = measured_views(&rows, &regions, &opening, &Default::default()).unwrap();
        assert_eq!(v[0].0, "helsinki");
        for (a, b) in v[0].1.iter().zip(opening) {
            assert!((a - b).abs() < 1e-9, "{:?}", v[0]);
        }
        let [w, s, e, n] = v[1].1;
        assert!(((w + e) / 2.0 - 7.42).abs() < 1e-9 && ((s + n) / 2.0 - 43.74).abs() < 1e-9);
        assert!((e - w - 0.02).abs() < 1e-9, "{:?}", v[1]);
        let span = 0.008 * 43.74_f64.to_radians().cos() / 60.17_f64.to_radians().cos();
        assert!((n - s - span).abs() < 1e-9, "{:?}", v[1]);
        // A view chosen before (the fixture's) stays where it was.
        let chosen = [("m".to_string(), (43.7, 7.4))].into_iter().collect();
        let v = measured_views(&rows, &regions, &opening, &chosen).unwrap();
        let [w, s, e, n] = v[1].1;
        assert!(((w + e) / 2.0 - 7.4).abs() < 1e-9 && ((s + n) / 2.0 - 43.7).abs() < 1e-9);
    }

    /// A trial names itself, its regions and the train arguments; without a name it may not
    /// narrow the regions or change the recipe (`adapted` holds the default on every region).
    #[test]
    fn an_adapt_trial_is_named_and_kept_apart_from_the_default() {
        let a =
            |v: &[&str]| AdaptTrial::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(a(&[]).unwrap(), AdaptTrial::default());
        let t = a(&["--trial", "long", "--region", "helsinki", "--", "--epochs", "20"]).unwrap();
        assert_eq!(t.name.as_deref(), Some("long"));
        assert_eq!(t.regions, ["helsinki"]);
        assert_eq!(t.train_args, ["--epochs", "20"]);
        assert!(a(&["--region", "helsinki"]).unwrap_err().to_string().contains("--trial"));
        assert!(a(&["--", "--lr", "1e-3"]).is_err());
        assert!(a(&["--bogus"]).unwrap_err().to_string().contains("--bogus"));
        assert_eq!(a(&["--trial", "r", "--rehearse", "600"]).unwrap().rehearse, Some(600));
        assert_eq!(a(&["--trial", "r", "--rehearse", "0"]).unwrap().rehearse, Some(0));
        assert_eq!(a(&[]).unwrap().rehearse, None);
        assert!(a(&["--rehearse", "600"]).unwrap_err().to_string().contains("--trial"));
        assert!(
            a(&["--trial", "r", "--rehearse", "many"]).unwrap_err().to_string().contains("many")
        );
    }

    /// The seeds table: each seed's figure in seed order, their mean and range, the
    /// in-region figure beside them; the run records (the section's, a region's) are not a
    /// region nor a seed.
    #[test]
    fn the_seeds_table_gives_each_seed_the_mean_and_the_range() {
        let f = |x: f64| json!({ "feature_types_macro_f1": x });
        let v = json!({
            "in_region": { "r": f(0.5) },
            "left_out_seeds": {
                "run": "_Run_",
                "r": { "42": f(0.3), "1": f(0.4), "2": f(0.2), "run": "_Run_" },
            },
        });
        let t = seeds_table(&v);
        assert!(
            t.contains("| r | 0.400 (seed 1), 0.200 (seed 2), 0.300 (seed 42) | 0.300 | 0.200 to 0.400 | 0.500 |"),
            "{t}"
        );
        assert_eq!(t.lines().count(), 3, "{t}");
        // With the recipe trained in-region with other seeds, the in-region cell is their mean.
        let mut v = v;
        v["in_region_seeds"] = json!({ "run": "_Run_", "r": { "1": f(0.7), "2": f(0.6) } });
        let t = seeds_table(&v);
        assert!(t.ends_with("| 0.600: 0.500 (seed 42), 0.700 (seed 1), 0.600 (seed 2) |\n"), "{t}");
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

    /// The sample keeps each label's share, is at most `n`, and is the same every time.
    #[test]
    fn the_sample_is_stratified_bounded_and_seeded() {
        let all = [("none", 500), ("entrance", 300), ("ramp", 150), ("elevator", 50)];
        let picked = sample(rows(&all), 200);
        assert_eq!(picked.len(), 200);
        let n = |l: &str| picked.iter().filter(|r| r.label == l).count();
        assert_eq!((n("none"), n("entrance"), n("ramp"), n("elevator")), (100, 60, 30, 10));
        let again: Vec<String> = sample(rows(&all), 200).into_iter().map(|r| r.id).collect();
        assert_eq!(again, picked.iter().map(|r| r.id.clone()).collect::<Vec<_>>());
        // Not simply the first rows of each label.
        let first: Vec<String> = (0..100).map(|i| format!("node/none{i}")).collect();
        assert!(picked.iter().filter(|r| r.label == "none").any(|r| !first.contains(&r.id)));
        assert_eq!(sample(rows(&[("ramp", 7)]), 200).len(), 7);
    }
}
