//! `accessatlas preprocess`: validate `tags.csv` and its images, split 70/15/15 stratified by
//! class within each region (the `region` column; one region without it) and grouped by map
//! cell, fit the lat/lon scaler (one area per region) and class weights on the training split,
//! write `tags_{train,val,test}.csv` and `preprocessing_metadata.json`. `--buffer-m` leaves out
//! of training and validation the rows near a test row; `--folds N --fold K` makes one fold of
//! a cross-validation instead (`--hold-out R` one region left out).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use model_core::LabelVocab;
use model_core::data::dataset::PreprocessingMetadata;
use model_core::data::metadata::Scaler;
use model_core::data::split::{
    Split, SplitConfig, class_weights, fold_split_by_region, group_of, small_class_warnings,
    stratified_group_split_by_region,
};
use model_core::data::tags::{Rejected, TagTable, parse_tags_csv, write_tags_csv};
use model_core::data::tile::distance_m;
use model_core::data::vocab::{DEFAULT_SOURCES, NONE_LABEL};
use sha2::{Digest, Sha256};

use crate::fsutil::write_atomic;
use crate::run::DataDir;

#[derive(Args, Debug)]
pub struct PreprocessArgs {
    /// Data folder holding `collect`'s tags.csv and images; the splits are written there.
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// Seed of the split.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Tags are grouped by the tile cell at this zoom before splitting (17: ~300 m at 60°N).
    #[arg(long, default_value_t = 17)]
    pub group_zoom: u8,
    /// Leave this region out of training: all its rows become the test split, the other
    /// regions are split 85/15 into train and validation (a model's figure on a region it
    /// never saw; `cargo xtask reference regions`).
    #[arg(long)]
    pub hold_out: Option<String>,
    /// Leave out of training and validation every row within this many metres of a test
    /// row, so the test figures are of places the model saw nothing near (a training tile
    /// shows about 35 m around its place). Grouping by map cell alone keeps test cells next
    /// to training cells. [default: 0, none left out]
    #[arg(long, default_value_t = 0.0)]
    pub buffer_m: f64,
    /// Cross-validation: deal each region's map cells to this many parts (stratified by
    /// class) and make part `--fold` the test split, the rest split 70:15 into train and
    /// validation. Run once per fold, training each time: every row is tested exactly once,
    /// by a model that saw nothing of its cell (`accessatlas pool` sums the folds up).
    #[arg(long, requires = "fold", conflicts_with = "hold_out")]
    pub folds: Option<usize>,
    /// Which of the `--folds` parts is the test split, counting from 1.
    #[arg(long, requires = "folds")]
    pub fold: Option<usize>,
}

pub fn run(args: PreprocessArgs) -> Result<()> {
    let meta = preprocess(&args)?;
    println!("{:<14} {:>6} {:>6} {:>6} {:>8}", "type", "train", "val", "test", "weight");
    for l in &meta.labels {
        let n = |s: &str| meta.counts.get(s).and_then(|m| m.get(l)).copied().unwrap_or(0);
        println!(
            "{l:<14} {:>6} {:>6} {:>6} {:>8.3}",
            n("train"),
            n("val"),
            n("test"),
            meta.class_weights[l]
        );
    }
    for w in &meta.warnings {
        println!("warning: {w}");
    }
    Ok(())
}

pub fn preprocess(args: &PreprocessArgs) -> Result<PreprocessingMetadata> {
    if !(args.buffer_m >= 0.0 && args.buffer_m.is_finite()) {
        bail!("--buffer-m {}: a distance in metres, 0 or more", args.buffer_m);
    }
    let data = DataDir::new(&args.data);
    let path = data.tags();
    let bytes = std::fs::read(&path)
        .with_context(|| format!("reading {} (run `accessatlas collect` first)", path.display()))?;
    let report = parse_tags_csv(&bytes, &LabelVocab::with_none())
        .with_context(|| path.display().to_string())?;
    // The model learns "no feature here" when the data has background points (`collect`
    // makes them); without them it has the five feature types, as before.
    let labels = if report.table.tags.iter().any(|t| t.label == NONE_LABEL) {
        LabelVocab::with_none()
    } else {
        LabelVocab::default()
    };
    let mut rejected: Vec<Rejected> = report.rejected;
    for r in &rejected {
        tracing::warn!("{}: {r}", path.display());
    }
    let mut table = TagTable { extra_columns: report.table.extra_columns, tags: Vec::new() };
    for t in report.table.tags {
        match t
            .image
            .as_deref()
            .context("no image (run `accessatlas collect` to make it)")
            .and_then(|rel| data.check_image(rel))
        {
            Ok(()) => table.tags.push(t),
            Err(e) => {
                tracing::warn!("{}: {}: {e:#}", path.display(), t.id);
                rejected.push(Rejected::for_tag(&t, "image", &format!("{e:#}")));
            }
        }
    }
    if table.tags.is_empty() {
        bail!("{}: no valid rows with readable images", path.display());
    }
    let items: Vec<(usize, (u32, u32))> = table
        .tags
        .iter()
        .map(|t| Ok((labels.index(&t.label)?, group_of(t.lat, t.lon, args.group_zoom)?)))
        .collect::<Result<_, model_core::CoreError>>()?;
    let cfg =
        SplitConfig { seed: args.seed, group_zoom: args.group_zoom, ..SplitConfig::default() };
    let regions = table.regions();
    let splits = match (&args.hold_out, args.folds.zip(args.fold)) {
        (_, Some((folds, fold))) => {
            if fold == 0 || fold > folds {
                bail!("--fold {fold}: one of the {folds} folds, counting from 1");
            }
            fold_split_by_region(&items, &regions, labels.len(), &cfg, folds, fold - 1)
                .with_context(|| format!("--folds {folds} --fold {fold}"))?
        }
        (None, None) => stratified_group_split_by_region(&items, &regions, labels.len(), &cfg)?,
        (Some(out), None) => {
            if !regions.contains(&out.as_str()) {
                let mut names = regions.clone();
                names.sort_unstable();
                names.dedup();
                bail!(
                    "--hold-out {out}: {} has no rows of that region (its regions: {names:?})",
                    path.display()
                );
            }
            let rest: Vec<usize> = (0..items.len()).filter(|&i| regions[i] != out).collect();
            if rest.is_empty() {
                bail!("--hold-out {out}: no other region is left to train on");
            }
            let part: Vec<(usize, (u32, u32))> = rest.iter().map(|&i| items[i]).collect();
            let part_regions: Vec<&str> = rest.iter().map(|&i| regions[i]).collect();
            let train_val = SplitConfig { fractions: [0.85, 0.15, 0.0], ..cfg.clone() };
            let mut splits = vec![Split::Test; items.len()];
            let got =
                stratified_group_split_by_region(&part, &part_regions, labels.len(), &train_val)?;
            for (&i, s) in rest.iter().zip(got) {
                splits[i] = s;
            }
            splits
        }
    };
    let mut warnings = small_class_warnings(labels.names(), &items);
    let splits = buffered(&table, splits, args.buffer_m);
    let buffered_out = splits.iter().filter(|s| s.is_none()).count();
    if buffered_out > 0 {
        warnings.push(format!(
            "{buffered_out} rows within {} m of a test row left out of training and validation (--buffer-m)",
            args.buffer_m
        ));
    }

    let train: Vec<usize> = (0..items.len()).filter(|&i| splits[i] == Some(Split::Train)).collect();
    let points: Vec<(&str, [f64; 2])> =
        train.iter().map(|&i| (regions[i], [table.tags[i].lat, table.tags[i].lon])).collect();
    let scaler = Scaler::fit_regions(&points)?;
    let train_labels: Vec<usize> = train.iter().map(|&i| items[i].0).collect();
    let weights = class_weights(&train_labels, labels.len());

    let mut sources: Vec<String> = DEFAULT_SOURCES.iter().map(|s| s.to_string()).collect();
    let mut extra: Vec<String> = train
        .iter()
        .map(|&i| table.tags[i].source.trim().to_ascii_lowercase())
        .filter(|s| !sources.contains(s) && s != "unknown")
        .collect();
    extra.sort();
    extra.dedup();
    sources.extend(extra);

    let mut counts: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for s in Split::ALL {
        let per: BTreeMap<String, usize> = labels
            .names()
            .iter()
            .enumerate()
            .map(|(c, l)| {
                let n = (0..items.len()).filter(|&i| splits[i] == Some(s) && items[i].0 == c);
                (l.clone(), n.count())
            })
            .collect();
        for (l, n) in &per {
            let total: usize = items.iter().filter(|x| labels.names()[x.0] == *l).count();
            if s == Split::Train && *n == 0 && total > 0 {
                warnings.push(format!(
                    "class `{l}` has {total} examples but none in the training split"
                ));
            }
        }
        counts.insert(s.name().to_string(), per);
        let part = TagTable {
            extra_columns: table.extra_columns.clone(),
            tags: (0..items.len())
                .filter(|&i| splits[i] == Some(s))
                .map(|i| table.tags[i].clone())
                .collect(),
        };
        write_atomic(&data.split(s.name()), &write_tags_csv(&part))?;
    }
    let meta = PreprocessingMetadata {
        labels: labels.names().to_vec(),
        sources,
        scaler,
        class_weights: labels.names().iter().cloned().zip(weights).collect(),
        counts,
        seed: args.seed,
        group_zoom: args.group_zoom,
        input_hash: Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect(),
        warnings,
    };
    write_atomic(&data.preprocessing_metadata(), serde_json::to_string_pretty(&meta)?.as_bytes())?;
    let rej = data.preprocess_rejected_rows();
    crate::fsutil::write_rejected(&rej, &rejected)?;
    if !rejected.is_empty() {
        println!("{} rows rejected, listed in {}", rejected.len(), rej.display());
    }
    Ok(meta)
}

/// `splits` with every training and validation row within `metres` of a test row taken out
/// (`None`); test rows stay as they are. Nothing is taken out at 0.
fn buffered(table: &TagTable, splits: Vec<Split>, metres: f64) -> Vec<Option<Split>> {
    if metres <= 0.0 {
        return splits.into_iter().map(Some).collect();
    }
    let test: Vec<(f64, f64)> = (0..splits.len())
        .filter(|&i| splits[i] == Split::Test)
        .map(|i| (table.tags[i].lat, table.tags[i].lon))
        .collect();
    splits
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let t = &table.tags[i];
            let near = |&(lat, lon): &(f64, f64)| distance_m(t.lat, t.lon, lat, lon) <= metres;
            (s == Split::Test || !test.iter().any(near)).then_some(s)
        })
        .collect()
}
