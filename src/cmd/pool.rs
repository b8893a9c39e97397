//! `accessatlas pool`: the held-out predictions of several evaluations (the folds of a
//! cross-validation: `preprocess --folds N --fold K`, `train`, `evaluate`, for each K) read as
//! one test set: the feature-type macro-F1 over all their rows, overall and per region, with
//! where 90 % of the resamples of their map cells put it; with `--baseline`, another model's
//! predictions of the same rows, and the paired change. Each fold's model never saw the cells
//! it predicts, so the pooled figure is an in-region figure on every row, not on one test split.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use model_core::LabelVocab;
use model_core::data::split::group_of;
use model_core::train::metrics::Metrics;
use model_core::train::resample::{
    Change, Interval, REPORT_SEED, feature_f1_change, feature_f1_interval,
};
use serde::Serialize;

use crate::fsutil::write_atomic;

#[derive(Args, Debug)]
pub struct PoolArgs {
    /// A `predictions.csv` that `evaluate` wrote (a run's `errors/predictions.csv`); give one
    /// per fold. No row may appear in two.
    #[arg(long = "predictions", required = true)]
    pub predictions: Vec<PathBuf>,
    /// Another model's `predictions.csv` of the same rows (one or more files; together they
    /// must hold every row): the change from it, paired row by row.
    #[arg(long)]
    pub baseline: Vec<PathBuf>,
    /// Only the rows of this region of `--predictions` (their `region` column); the baseline's
    /// rows are paired with them by id, whatever its region column says.
    #[arg(long)]
    pub region: Option<String>,
    /// The zoom of the map cells the resamples draw (the split's: `preprocess --group-zoom`).
    #[arg(long, default_value_t = 17)]
    pub group_zoom: u8,
    /// Write the pooled figures here as JSON (atomically).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// One row of a `predictions.csv`.
#[derive(Debug, Clone)]
struct Row {
    id: String,
    lat: f64,
    lon: f64,
    region: String,
    truth: String,
    probs: Vec<f32>,
}

/// The pooled figures of some rows (all of them, or one region's).
#[derive(Debug, Serialize)]
pub struct Pooled {
    /// `None` for all the rows.
    pub region: Option<String>,
    pub rows: usize,
    pub feature_rows: usize,
    /// Over the rows with a feature, each predicted as its most likely feature type.
    pub feature_types: Metrics,
    pub feature_macro_f1_interval: Option<Interval>,
    /// Against `--baseline`.
    pub against_baseline: Option<Change>,
}

pub fn run(args: PoolArgs) -> Result<()> {
    let pooled = pool(&args)?;
    println!(
        "{:<14} {:>6} {:>9} {:>10} {:>18} {:>30}",
        "region", "rows", "features", "macro-F1", "90 % of cells", "change from baseline"
    );
    for p in &pooled {
        let interval = p
            .feature_macro_f1_interval
            .map_or("-".into(), |i| format!("{:.3} to {:.3} ({})", i.low, i.high, i.cells));
        let change = p.against_baseline.map_or("-".into(), |c| {
            format!("{:+.3} ({:+.3} to {:+.3})", c.change.value, c.change.low, c.change.high)
        });
        println!(
            "{:<14} {:>6} {:>9} {:>10.3} {:>18} {:>30}",
            p.region.as_deref().unwrap_or("all"),
            p.rows,
            p.feature_rows,
            p.feature_types.macro_avg.f1,
            interval,
            change
        );
    }
    if let Some(out) = &args.out {
        write_atomic(out, serde_json::to_string_pretty(&pooled)?.as_bytes())?;
        println!("written: {}", out.display());
    }
    Ok(())
}

/// The pooled figures: all rows first, then each region's (when the rows hold more than one).
pub fn pool(args: &PoolArgs) -> Result<Vec<Pooled>> {
    let (labels, mut rows) = read_all(&args.predictions)?;
    if let Some(region) = &args.region {
        rows.retain(|(r, _)| r.region == *region);
        if rows.is_empty() {
            bail!("--region {region}: no row of {:?} is of that region", args.predictions);
        }
    }
    let mut seen: BTreeMap<&str, &Path> = BTreeMap::new();
    for (r, file) in &rows {
        if let Some(first) = seen.insert(&r.id, file) {
            bail!(
                "{}: row `{}` is also in {}: the folds' test rows overlap (pool each row once)",
                file.display(),
                r.id,
                first.display()
            );
        }
    }
    let baseline = match args.baseline.is_empty() {
        true => None,
        false => {
            let (base_labels, base) = read_all(&args.baseline)?;
            if base_labels.names() != labels.names() {
                bail!(
                    "--baseline: its classes {:?} are not the predictions' {:?}",
                    base_labels.names(),
                    labels.names()
                );
            }
            let by_id: BTreeMap<&str, &Row> =
                base.iter().map(|(r, _)| (r.id.as_str(), r)).collect();
            let paired = rows
                .iter()
                .map(|(r, file)| {
                    by_id.get(r.id.as_str()).map(|b| b.probs.clone()).with_context(|| {
                        format!(
                            "{}: row `{}` has no baseline prediction in {:?}",
                            file.display(),
                            r.id,
                            args.baseline
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Some(paired)
        }
    };
    let truth: Vec<usize> = rows
        .iter()
        .map(|(r, file)| {
            labels
                .index(&r.truth)
                .with_context(|| format!("{}: row `{}`: true", file.display(), r.id))
        })
        .collect::<Result<_>>()?;
    let cells: Vec<(u32, u32)> = rows
        .iter()
        .map(|(r, file)| {
            group_of(r.lat, r.lon, args.group_zoom)
                .with_context(|| format!("{}: row `{}`: lat/lon", file.display(), r.id))
        })
        .collect::<Result<_>>()?;
    let measure = |region: Option<&str>| {
        let idx: Vec<usize> =
            (0..rows.len()).filter(|&i| region.is_none_or(|g| rows[i].0.region == g)).collect();
        let t: Vec<usize> = idx.iter().map(|&i| truth[i]).collect();
        let s: Vec<&[f32]> = idx.iter().map(|&i| rows[i].0.probs.as_slice()).collect();
        let c: Vec<(u32, u32)> = idx.iter().map(|&i| cells[i]).collect();
        let feature_types = Metrics::feature_types(&t, &s, &labels);
        Pooled {
            region: region.map(str::to_string),
            rows: idx.len(),
            feature_rows: feature_types.confusion_matrix.matrix.iter().flatten().sum(),
            feature_macro_f1_interval: feature_f1_interval(&t, &s, &labels, &c, REPORT_SEED),
            against_baseline: baseline.as_ref().and_then(|b| {
                let before: Vec<&[f32]> = idx.iter().map(|&i| b[i].as_slice()).collect();
                feature_f1_change(&t, &before, &s, &labels, &c, REPORT_SEED)
            }),
            feature_types,
        }
    };
    let mut regions: Vec<&str> = rows.iter().map(|(r, _)| r.region.as_str()).collect();
    regions.sort_unstable();
    regions.dedup();
    let mut out = vec![measure(None)];
    if regions.len() > 1 {
        out.extend(regions.iter().map(|&r| measure(Some(r))));
    }
    Ok(out)
}

/// Every row of `files` with the file it came from, and the classes their `p_*` columns name
/// (the same in every file).
fn read_all(files: &[PathBuf]) -> Result<(LabelVocab, Vec<(Row, &Path)>)> {
    let mut labels: Option<(Vec<String>, &Path)> = None;
    let mut rows = Vec::new();
    for f in files {
        let (names, got) = read_predictions(f)?;
        match &labels {
            Some((l, first)) if *l != names => bail!(
                "{}: its classes {names:?} are not those of {} ({l:?})",
                f.display(),
                first.display()
            ),
            Some(_) => {}
            None => labels = Some((names, f)),
        }
        rows.extend(got.into_iter().map(|r| (r, f.as_path())));
    }
    let (names, _) = labels.context("no predictions given")?;
    Ok((LabelVocab::new(names)?, rows))
}

/// One `predictions.csv`: its classes (the `p_*` columns) and rows. An error names the file,
/// the line and the field.
fn read_predictions(path: &Path) -> Result<(Vec<String>, Vec<Row>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut r = csv::Reader::from_reader(bytes.as_slice());
    let header: Vec<String> = r
        .headers()
        .with_context(|| format!("{}: header", path.display()))?
        .iter()
        .map(str::to_string)
        .collect();
    let col = |name: &str| {
        header.iter().position(|h| h == name).with_context(|| {
            format!(
                "{}: no `{name}` column (a predictions.csv that `accessatlas evaluate` wrote \
                 holds id, lat, lon, region, true and p_* columns)",
                path.display()
            )
        })
    };
    let (id, lat, lon, region, truth) =
        (col("id")?, col("lat")?, col("lon")?, col("region")?, col("true")?);
    let probs: Vec<(usize, String)> = header
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.strip_prefix("p_").map(|l| (i, l.to_string())))
        .collect();
    if probs.is_empty() {
        bail!("{}: no p_* columns (the classes' probabilities)", path.display());
    }
    let mut rows = Vec::new();
    for (n, rec) in r.records().enumerate() {
        let line = n + 2;
        let rec = rec.with_context(|| format!("{}: line {line}", path.display()))?;
        let field = |i: usize| rec.get(i).unwrap_or("");
        let num = |i: usize| -> Result<f64> {
            field(i).trim().parse::<f64>().ok().filter(|v| v.is_finite()).with_context(|| {
                format!("{}: line {line}, field `{}`: not a number", path.display(), header[i])
            })
        };
        rows.push(Row {
            id: field(id).to_string(),
            lat: num(lat)?,
            lon: num(lon)?,
            region: field(region).to_string(),
            truth: field(truth).to_string(),
            probs: probs.iter().map(|(i, _)| num(*i).map(|v| v as f32)).collect::<Result<_>>()?,
        });
    }
    Ok((probs.into_iter().map(|(_, l)| l).collect(), rows))
}
