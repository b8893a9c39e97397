//! The main native job (`accessatlas` with no subcommand, i.e. `cargo run --release`):
//! collect -> preprocess -> train -> evaluate -> export, on every bundled extract (central
//! Helsinki, Andorra, Liechtenstein and Monaco, `crate::osm::BUNDLED_EXTRACTS`), in the seed's
//! layout (`data/`, `models/baseline/`). With `--osm MY.pbf` the same on the mapper's own
//! extract, adapting the shipped model (`train --init assets/model`) instead of training from
//! ImageNet's weights, and rehearsing the bundled extracts it was trained on (`--rehearse`,
//! collected once into `data-known/`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use model_core::data::tags::parse_tags_csv;
use model_core::train::metrics::Metrics;
use model_core::train::resample::Interval;

use super::collect::CollectArgs;
use super::evaluate::EvaluateArgs;
use super::export::ExportArgs;
use super::preprocess::PreprocessArgs;
use super::train::TrainArgs;
use crate::run::{DataDir, RunDir};
use model_core::EncoderKind;

#[derive(Args, Debug)]
pub struct PipelineArgs {
    /// Data folder that collect and preprocess write (tags, images, splits).
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// Run folder that train writes and evaluate and export read.
    #[arg(long, default_value = "models/baseline")]
    pub out: PathBuf,
    /// Image encoder to train (default: train's, the pretrained efficientnet_lite0).
    #[arg(long, value_parser = super::encoder_parser())]
    pub encoder: Option<EncoderKind>,
    /// Training epochs (default: train's).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Also write the exported bundle to assets/model/ (what the app ships), and its compact
    /// copy (int8 when within the page's accuracy budget, else f16) with its measured
    /// accuracy to assets/model/compact/.
    #[arg(long)]
    pub refresh_assets: bool,
    /// Your own OSM extract(s) instead of the bundled ones (as `collect --osm`): the pipeline
    /// then adapts a model to them (`--init`, the shipped one by default).
    #[arg(long)]
    pub osm: Vec<PathBuf>,
    /// The bundle training starts from (`train --init`); default with `--osm`: the shipped
    /// model `assets/model`, without: ImageNet's weights.
    #[arg(long)]
    pub init: Option<PathBuf>,
}

/// A stage's arguments with the defaults its own command declares (one source of truth).
fn parse_args<A: clap::Args>(args: &[std::ffi::OsString]) -> Result<A> {
    #[derive(clap::Parser)]
    struct Wrap<A: clap::Args> {
        #[command(flatten)]
        inner: A,
    }
    let argv = std::iter::once(std::ffi::OsString::from("accessatlas")).chain(args.iter().cloned());
    Ok(<Wrap<A> as clap::Parser>::try_parse_from(argv)?.inner)
}

/// The bundle training starts from: `--init`, else with `--osm` (the mapper's own extract) the
/// shipped model, else none (ImageNet's weights).
fn init_for(args: &PipelineArgs) -> Option<PathBuf> {
    args.init.clone().or_else(|| (!args.osm.is_empty()).then(|| PathBuf::from("assets/model")))
}

/// The data folder an adapting run rehearses from (`train --rehearse`): with `--osm` and no
/// `--init`, the shipped model is adapted, and the bundled extracts it was trained on are
/// collected beside `--data` (`data-known/` for `data/`); none otherwise (another bundle's
/// regions are not known here, and training from ImageNet's weights rehearses nothing).
fn rehearse_for(args: &PipelineArgs) -> Option<PathBuf> {
    if args.osm.is_empty() || args.init.is_some() {
        return None;
    }
    let mut name = args.data.file_name().unwrap_or_else(|| "data".as_ref()).to_owned();
    name.push("-known");
    Some(args.data.with_file_name(name))
}

/// `known` collected from every bundled extract and split, unless an earlier run left it there
/// (the bundled extracts do not change between runs of one checkout).
fn collect_known(known: &Path) -> Result<()> {
    let dir = DataDir::new(known);
    if dir.split("train").is_file() && dir.split("val").is_file() {
        return Ok(());
    }
    let mut args = parse_args::<CollectArgs>(&["--data".into(), known.into()])?;
    args.osm = crate::osm::BUNDLED_EXTRACTS.iter().map(PathBuf::from).collect();
    super::collect::run(args).context("collect (the bundled extracts, to rehearse)")?;
    super::preprocess::run(parse_args::<PreprocessArgs>(&["--data".into(), known.into()])?)
        .context("preprocess (the bundled extracts, to rehearse)")
}

/// The extracts the pipeline collects: `--osm`, else every bundled one (read from the
/// repository's `assets/osm/`).
fn extracts_for(args: &PipelineArgs) -> Result<Vec<PathBuf>> {
    if !args.osm.is_empty() {
        return Ok(args.osm.clone());
    }
    let bundled: Vec<PathBuf> = crate::osm::BUNDLED_EXTRACTS.iter().map(PathBuf::from).collect();
    if let Some(missing) = bundled.iter().find(|p| !p.is_file()) {
        anyhow::bail!(
            "the bundled extract {} is not here: run from the repository root, or name your \
             own extract(s) with --osm",
            missing.display()
        );
    }
    Ok(bundled)
}

/// `evaluate`'s arguments for the run in `out` on `data`: the suggestions are measured on
/// every extract's test cells, with the candidates' prior and threshold of all of their
/// training and validation cells, so that the bundle's prior and default threshold for a
/// place it never saw are no one region's.
fn evaluate_args(data: &Path, out: &Path, osm: &[PathBuf]) -> Result<EvaluateArgs> {
    let mut args =
        parse_args::<EvaluateArgs>(&["--data".into(), data.into(), "--model".into(), out.into()])?;
    args.osm = osm.to_vec();
    Ok(args)
}

/// Whether the run already in `--out` is continued: yes when it trained on the split just
/// made (an interrupted `cargo run --release` goes on where it stopped); a run of other data
/// (another extract, a changed bundled region) is moved to `<out>.previous`, replacing an older
/// one, and training starts over.
/// A run that rehearses (`may_resume` false: `train --resume` does not take rehearsal up again)
/// is always set aside.
fn resume_or_set_aside(run: &RunDir, data: &DataDir, may_resume: bool) -> Result<bool> {
    if !run.state().exists() {
        return Ok(false);
    }
    let out = run.root();
    let now = data.read_metadata()?;
    if may_resume && run.read_metadata().is_ok_and(|then| then.same_split(&now)) {
        println!(
            "{} holds a run on this data: resuming it (delete it to start over)",
            out.display()
        );
        return Ok(true);
    }
    let mut aside = out.as_os_str().to_owned();
    aside.push(".previous");
    let aside = PathBuf::from(aside);
    if aside.exists() {
        std::fs::remove_dir_all(&aside)
            .with_context(|| format!("removing the older {}", aside.display()))?;
    }
    std::fs::rename(out, &aside)
        .with_context(|| format!("moving {} to {}", out.display(), aside.display()))?;
    println!(
        "{} held a run on other data: moved to {}; training from the start",
        out.display(),
        aside.display()
    );
    Ok(false)
}

pub fn run(args: PipelineArgs) -> Result<()> {
    let (data, out) = (args.data.clone(), args.out.clone());
    let osm = extracts_for(&args)?;
    let (data_dir, run_dir) = (DataDir::new(&data), RunDir::new(&out));
    let mut times = Vec::new();
    let t = Instant::now();
    let mut collect_args = parse_args::<CollectArgs>(&["--data".into(), data.clone().into()])?;
    collect_args.osm = osm.clone();
    super::collect::run(collect_args).context("collect")?;
    times.push(("collect", t.elapsed().as_secs_f64()));

    let t = Instant::now();
    super::preprocess::run(parse_args::<PreprocessArgs>(&["--data".into(), data.clone().into()])?)
        .context("preprocess")?;
    times.push(("preprocess", t.elapsed().as_secs_f64()));

    let t = Instant::now();
    let rehearse = rehearse_for(&args);
    if let Some(known) = &rehearse {
        collect_known(known)?;
    }
    let resume = resume_or_set_aside(&run_dir, &data_dir, rehearse.is_none())?;
    let mut train_args = parse_args::<TrainArgs>(&[
        "--data".into(),
        data.clone().into(),
        "--out".into(),
        out.clone().into(),
    ])?;
    train_args.encoder = args.encoder;
    train_args.epochs = args.epochs;
    train_args.resume = resume;
    train_args.init = init_for(&args);
    train_args.rehearse = rehearse;
    super::train::run(train_args).context("train")?;
    times.push(("train", t.elapsed().as_secs_f64()));

    let t = Instant::now();
    let eval_args = evaluate_args(&data, &out, &osm)?;
    let evaluation = super::evaluate::evaluate(&eval_args).context("evaluate")?;
    times.push(("evaluate", t.elapsed().as_secs_f64()));

    let t = Instant::now();
    let export_to = |dest: Option<PathBuf>, format| {
        super::export::export(&ExportArgs {
            model: out.clone(),
            data: data.clone(),
            out: dest,
            format,
            onnx_batch: 1,
        })
        .context("export")
    };
    let bundle = export_to(None, Default::default())?;
    if args.refresh_assets {
        // The shipped bundle and its compact copy with what export measured of it: int8 when
        // that is within the page's budget, else f16 (the page loads the copy only when it is
        // within the budget).
        let shipped = PathBuf::from("assets/model");
        export_to(Some(shipped.clone()), Default::default())?;
        let compact = shipped.join(model_core::infer::bundle::COMPACT_DIR);
        export_to(Some(compact.clone()), super::export::Format::BurnInt8)?;
        let report = compact.join(model_core::infer::bundle::PRECISION_REPORT_FILE);
        let report: model_core::infer::bundle::PrecisionReport =
            serde_json::from_slice(&std::fs::read(&report)?).context("export's precision.json")?;
        if !report.within_budget() {
            export_to(Some(compact), super::export::Format::BurnF16)?;
        }
    }
    times.push(("export", t.elapsed().as_secs_f64()));

    // Majority-class baseline on the same test split: the feature types, on the rows that
    // hold a feature (what "which type is it?" is measured on).
    let labels = data_dir.read_metadata()?.label_vocab()?;
    let none = labels.none_index();
    let read = |s: &str| -> Result<Vec<usize>> {
        let p = data_dir.split(s);
        let r =
            parse_tags_csv(&std::fs::read(&p).with_context(|| p.display().to_string())?, &labels)?;
        let idx: Result<Vec<usize>, _> =
            r.table.tags.iter().map(|t| labels.index(&t.label)).collect();
        Ok(idx?.into_iter().filter(|&c| Some(c) != none).collect())
    };
    let (train, test) = (read("train")?, read("test")?);
    let types: Vec<String> = labels.feature_names().map(str::to_string).collect();
    let mut counts = vec![0usize; types.len()];
    for &c in &train {
        counts[c] += 1;
    }
    let majority = (0..types.len()).max_by_key(|&c| counts[c]).unwrap_or(0);
    let base = Metrics::compute(&test, &vec![majority; test.len()], &types);

    println!();
    println!("{:<12} {:>9}", "stage", "seconds");
    for (s, secs) in &times {
        println!("{s:<12} {secs:>9.1}");
    }
    println!();
    // Where 90 % of the macro-F1's resamples of the test cells lie: what another draw of the
    // cells could make of it.
    let spread =
        |i: Option<Interval>| i.map_or(String::new(), |i| format!("{:.3}-{:.3}", i.low, i.high));
    println!(
        "{:<40} {:>9} {:>9} {:>13}",
        format!("test split ({} feature tags)", test.len()),
        "accuracy",
        "macro-F1",
        "90 % of cells"
    );
    let ft = &evaluation.feature_types;
    println!(
        "{:<40} {:>9.3} {:>9.3} {:>13}",
        "model: feature type",
        ft.accuracy,
        ft.macro_avg.f1,
        spread(evaluation.feature_f1_interval)
    );
    println!(
        "{:<40} {:>9.3} {:>9.3}",
        format!("majority class ({})", types[majority]),
        base.accuracy,
        base.macro_avg.f1
    );
    for r in &evaluation.by_region {
        println!(
            "{:<40} {:>9.3} {:>9.3} {:>13}",
            format!("model, {} ({} feature tags)", r.region, r.feature_rows),
            r.feature_accuracy,
            r.feature_macro_f1,
            spread(r.feature_macro_f1_interval)
        );
    }
    if let Some(n) = &evaluation.none {
        println!(
            "model: `none` against any feature: precision {:.3}, recall {:.3}, F1 {:.3} ({} background points)",
            n.precision, n.recall, n.f1, n.support
        );
    }
    if let Some(s) = &evaluation.suggestions {
        let interval = s
            .lift_interval
            .map(|li| format!(", {:.0} % interval {:.2}-{:.2}x", li.level * 100.0, li.low, li.high))
            .unwrap_or_default();
        println!(
            "suggestions on the test cells at {}: precision {:.3} (base rate {:.3}: {}x{interval}), recall {:.3}, candidate recall {:.3}",
            s.threshold,
            s.overall.precision,
            s.overall.base_rate,
            s.overall.lift().map_or("-".to_string(), |l| format!("{l:.2}")),
            s.overall.recall,
            s.candidate_recall
        );
    }
    println!();
    println!("artifacts:");
    for p in [
        data_dir.tags(),
        data_dir.preprocessing_metadata(),
        run_dir.best_weights(),
        run_dir.history_json(),
        run_dir.curves(),
        run_dir.metrics(),
        bundle.clone(),
    ] {
        println!("  {}", p.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_arguments_take_each_command_s_own_defaults() {
        let c = parse_args::<CollectArgs>(&["--data".into(), "d".into()]).unwrap();
        assert_eq!(c.data, PathBuf::from("d"));
        assert_eq!((c.zoom, c.retries), (19, 4));
        let t = parse_args::<TrainArgs>(&["--data".into(), "d".into(), "--out".into(), "o".into()])
            .unwrap();
        assert_eq!(t.out, PathBuf::from("o"));
        assert!(!t.resume && t.epochs.is_none());
        assert!(parse_args::<PreprocessArgs>(&["--bogus".into()]).is_err());
    }

    /// `--osm MY.pbf` adapts the shipped model; `--init` names another; without either the
    /// pipeline trains from ImageNet's weights as before.
    /// The pipeline's arguments as the command line gives them.
    fn p(a: &[&str]) -> PipelineArgs {
        let v: Vec<std::ffi::OsString> = a.iter().map(Into::into).collect();
        parse_args::<PipelineArgs>(&v).unwrap()
    }

    #[test]
    fn an_own_extract_adapts_the_shipped_model() {
        assert_eq!(init_for(&p(&[])), None);
        assert_eq!(init_for(&p(&["--osm", "my.osm.pbf"])), Some(PathBuf::from("assets/model")));
        assert_eq!(init_for(&p(&["--osm", "a.pbf", "--init", "b"])), Some(PathBuf::from("b")));
        assert_eq!(p(&["--osm", "a.pbf", "--osm", "b.pbf"]).osm.len(), 2);
        // Adapting the shipped model rehearses the bundled extracts, collected beside --data.
        assert_eq!(rehearse_for(&p(&[])), None);
        assert_eq!(rehearse_for(&p(&["--osm", "my.osm.pbf"])), Some(PathBuf::from("data-known")));
        let mine = p(&["--osm", "my.osm.pbf", "--data", "work/mine"]);
        assert_eq!(rehearse_for(&mine), Some(PathBuf::from("work/mine-known")));
        assert_eq!(rehearse_for(&p(&["--osm", "a.pbf", "--init", "b"])), None);
    }

    /// A preprocessing record of tags with hash `hash`, split with `seed`.
    fn meta(hash: &str, seed: u64) -> String {
        serde_json::json!({
            "labels": ["ramp", "elevator", "entrance", "tactile_path", "obstacle", "none"],
            "sources": ["osm", "user", "model"],
            "scaler": { "mean": [60.0, 24.9], "std": [0.01, 0.01] },
            "class_weights": {},
            "counts": { "train": { "ramp": 3 } },
            "seed": seed,
            "group_zoom": 17,
            "input_hash": hash,
        })
        .to_string()
    }

    /// An interrupted run on the same split is continued; a run of other data, or one that
    /// rehearses, is moved to `<out>.previous` (replacing an older one) and training starts
    /// over; no run, nothing.
    #[test]
    fn a_run_of_other_data_is_set_aside_not_resumed() {
        let t = tempfile::tempdir().unwrap();
        let (data, run) = (DataDir::new(t.path().join("data")), RunDir::new(t.path().join("run")));
        std::fs::create_dir_all(data.root()).unwrap();
        std::fs::write(data.preprocessing_metadata(), meta("abc", 42)).unwrap();
        assert!(!resume_or_set_aside(&run, &data, true).unwrap());
        std::fs::create_dir_all(run.checkpoints()).unwrap();
        std::fs::write(run.state(), "{}").unwrap();
        std::fs::write(run.preprocessing_metadata(), meta("abc", 42)).unwrap();
        assert!(resume_or_set_aside(&run, &data, true).unwrap());
        let aside = t.path().join("run.previous");
        for other in [meta("abd", 42), meta("abc", 7)] {
            std::fs::create_dir_all(run.checkpoints()).unwrap();
            std::fs::write(run.state(), "{}").unwrap();
            std::fs::write(run.preprocessing_metadata(), &other).unwrap();
            assert!(!resume_or_set_aside(&run, &data, true).unwrap());
            assert!(!run.root().exists());
            let kept = std::fs::read_to_string(aside.join("preprocessing_metadata.json"));
            assert_eq!(kept.unwrap(), other);
        }
        // A run that rehearses is set aside even on the same split.
        std::fs::create_dir_all(run.checkpoints()).unwrap();
        std::fs::write(run.state(), "{}").unwrap();
        std::fs::write(run.preprocessing_metadata(), meta("abc", 42)).unwrap();
        assert!(!resume_or_set_aside(&run, &data, false).unwrap());
        assert!(!run.root().exists() && aside.join("checkpoints").exists());
    }

    /// Without `--osm` the pipeline (what made the shipped model) trains on every extract in
    /// `assets/osm/`, in the order `cargo xtask reference` lists them; with it, on those named.
    #[test]
    fn the_shipped_model_learns_every_bundled_region() {
        let mut bundled: Vec<PathBuf> = std::fs::read_dir("assets/osm")
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|f| f.to_string_lossy().ends_with(".osm.pbf"))
            .collect();
        bundled.sort();
        assert!(bundled.len() >= 2, "{bundled:?}");
        assert_eq!(extracts_for(&p(&[])).unwrap(), bundled);
        // The suggestions are evaluated on every one of them, not the first alone.
        let e = evaluate_args(Path::new("d"), Path::new("o"), &bundled).unwrap();
        assert_eq!(e.osm, bundled);
        assert_eq!(extracts_for(&p(&["--osm", "my.pbf"])).unwrap(), [PathBuf::from("my.pbf")]);
    }
}
