//! The main native job (`accessatlas` with no subcommand, i.e. `cargo run --release`):
//! collect -> preprocess -> train -> evaluate -> export, on the bundled Helsinki extract, in
//! the seed's layout (`data/`, `models/baseline/`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use model_core::LabelVocab;
use model_core::metrics::Metrics;
use model_core::tags::parse_tags_csv;

use super::collect::{CollectArgs, TilesKind};
use super::evaluate::EvaluateArgs;
use super::export::ExportArgs;
use super::preprocess::PreprocessArgs;
use super::train::TrainArgs;
use model_core::EncoderKind;

#[derive(Args, Debug)]
pub struct PipelineArgs {
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    #[arg(long, default_value = "models/baseline")]
    pub out: PathBuf,
    #[arg(long)]
    pub encoder: Option<EncoderKind>,
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Also write the exported bundle to assets/model/ (what the app ships).
    #[arg(long)]
    pub refresh_assets: bool,
}

pub fn run(args: PipelineArgs) -> Result<()> {
    let (data, out) = (args.data.clone(), args.out.clone());
    let mut times = Vec::new();
    let t = Instant::now();
    super::collect::run(CollectArgs {
        data: data.clone(),
        osm: None,
        tags: None,
        rules: None,
        tiles: TilesKind::Render,
        url: None,
        token_env: "ACCESSATLAS_TILE_TOKEN".into(),
        retries: 4,
        backoff_ms: 500,
        timeout_secs: 30.0,
        path: None,
        zoom: 19,
        strict: false,
    })
    .context("collect")?;
    times.push(("collect", t.elapsed().as_secs_f64()));

    let t = Instant::now();
    super::preprocess::run(PreprocessArgs { data: data.clone(), seed: 42, group_zoom: 17 })
        .context("preprocess")?;
    times.push(("preprocess", t.elapsed().as_secs_f64()));

    let t = Instant::now();
    let resume = out.join("checkpoints/state.json").exists();
    if resume {
        println!("{} holds a run: resuming it (delete it to train from scratch)", out.display());
    }
    super::train::run(TrainArgs {
        data: data.clone(),
        out: out.clone(),
        config: None,
        encoder: args.encoder,
        epochs: args.epochs,
        batch_size: None,
        lr: None,
        scheduler: None,
        freeze_stages: None,
        accumulate: None,
        patience: None,
        image_size: None,
        seed: None,
        no_pretrained: false,
        weights: None,
        resume,
    })
    .context("train")?;
    times.push(("train", t.elapsed().as_secs_f64()));

    let t = Instant::now();
    let metrics = super::evaluate::evaluate(&EvaluateArgs {
        data: data.clone(),
        model: out.clone(),
        worst: 20,
    })
    .context("evaluate")?;
    times.push(("evaluate", t.elapsed().as_secs_f64()));

    let t = Instant::now();
    let bundle = super::export::export(&ExportArgs {
        model: out.clone(),
        data: data.clone(),
        out: None,
        format: Default::default(),
    })
    .context("export")?;
    if args.refresh_assets {
        super::export::export(&ExportArgs {
            model: out.clone(),
            data: data.clone(),
            out: Some(PathBuf::from("assets/model")),
            format: Default::default(),
        })?;
    }
    times.push(("export", t.elapsed().as_secs_f64()));

    // Majority-class baseline on the same test split.
    let labels = LabelVocab::default();
    let read = |s: &str| -> Result<Vec<usize>> {
        let p = data.join(format!("tags_{s}.csv"));
        let r =
            parse_tags_csv(&std::fs::read(&p).with_context(|| p.display().to_string())?, &labels)?;
        r.table.tags.iter().map(|t| Ok(labels.index(&t.label)?)).collect()
    };
    let (train, test) = (read("train")?, read("test")?);
    let mut counts = vec![0usize; labels.len()];
    for &c in &train {
        counts[c] += 1;
    }
    let majority = (0..labels.len()).max_by_key(|&c| counts[c]).unwrap_or(0);
    let base = Metrics::compute(&test, &vec![majority; test.len()], labels.names());

    println!();
    println!("{:<12} {:>9}", "stage", "seconds");
    for (s, secs) in &times {
        println!("{s:<12} {secs:>9.1}");
    }
    println!();
    println!("{:<28} {:>9} {:>9}", "test split", "accuracy", "macro-F1");
    println!("{:<28} {:>9.3} {:>9.3}", "model", metrics.accuracy, metrics.macro_avg.f1);
    println!(
        "{:<28} {:>9.3} {:>9.3}",
        format!("majority class ({})", labels.names()[majority]),
        base.accuracy,
        base.macro_avg.f1
    );
    println!();
    println!("artifacts:");
    for p in [
        data.join("tags.csv"),
        data.join("preprocessing_metadata.json"),
        out.join("checkpoints/best_model.bpk"),
        out.join("logs/training_history.json"),
        out.join("logs/curves.png"),
        out.join("errors/metrics.json"),
        bundle.clone(),
    ] {
        println!("  {}", p.display());
    }
    Ok(())
}
