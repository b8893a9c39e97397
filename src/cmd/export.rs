//! `accessatlas export`: a trained run (or an existing bundle) as a model bundle
//! (`model.json` + `weights.bpk`: f32, f16 or int8 weights), the form the browser app,
//! `predict` and the API load; or as safetensors with PyTorch names; or as ONNX.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use clap::Args;
use model_core::infer::bundle::{
    BUNDLE_CONFIG_FILE, BUNDLE_FORMAT, BUNDLE_WEIGHTS_FILE, BundleManifest, PRECISION_REPORT_FILE,
    PrecisionReport, Provenance,
};

use crate::fsutil::replace_dir_files;
use crate::run::{
    DataDir, ONNX_FILE, RunDir, SAFETENSORS_FILE, is_bundle, read_bundle, short_hash,
};
use crate::score::{Scored, score};

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Training run directory, or an exported bundle to convert (e.g. `assets/model`).
    #[arg(long, default_value = "models/baseline")]
    pub model: PathBuf,
    /// Data directory the run was trained on (for the tile source it was cut from, and the
    /// test split that `burn-f16` and `burn-int8` are measured on; a bundle is measured there
    /// when the data is the one it records, by hash).
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// Output directory (default: <model>/bundle, <model>/bundle-f16, <model>/bundle-int8,
    /// <model>/export-safetensors or <model>/export-onnx).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// `burn` (alias `bundle`): model.json + weights.bpk, f32 (what the app, predict and the
    /// API load); `burn-f16`: the same with f16 weights (half the size); `burn-int8`: 8-bit
    /// quantized weights (a quarter), with the accuracy change on the test split;
    /// `safetensors`: model.json + model.safetensors with PyTorch-style keys; `onnx`:
    /// model.json + model.onnx.
    #[arg(long, value_enum, default_value_t = Format::Burn)]
    pub format: Format,
    /// `--format onnx`: the batch size the graph takes (fixed at export).
    #[arg(long, default_value_t = 1)]
    pub onnx_batch: usize,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    #[value(alias = "bundle")]
    Burn,
    BurnF16,
    BurnInt8,
    Safetensors,
    Onnx,
}

impl Format {
    fn default_dir(self) -> &'static str {
        match self {
            Format::Burn => "bundle",
            Format::BurnF16 => "bundle-f16",
            Format::BurnInt8 => "bundle-int8",
            Format::Safetensors => "export-safetensors",
            Format::Onnx => "export-onnx",
        }
    }
}

/// The revision this binary was built from (see build.rs).
fn git_revision() -> String {
    env!("ACCESSATLAS_GIT_REV").to_string()
}

pub fn run(args: ExportArgs) -> Result<()> {
    let out = export(&args)?;
    println!("{} written to {}", args.format.default_dir().replace('-', " "), out.display());
    Ok(())
}

/// A model to export: its manifest (all but the weights) and the f32 weights.
struct Source {
    manifest: BundleManifest,
    weights: Vec<u8>,
    /// Whether `--data` holds the split these weights were trained on, so that f16's and
    /// int8's accuracy can be measured on its test split: always for a run, and for a bundle
    /// when the data's tags hash is the one the bundle records.
    measurable: bool,
}

fn from_bundle(dir: &Path, data: &Path) -> Result<Source> {
    let (manifest, weights) = read_bundle(dir)?;
    let data = DataDir::new(data);
    let mut measurable = false;
    if data.preprocessing_metadata().is_file() {
        let hash = data.read_metadata()?.input_hash;
        measurable = hash == manifest.provenance.data_hash;
        if !measurable {
            tracing::warn!(
                "{}: its tags (sha256 {}) are not the ones {} was trained on ({}): its test \
                 split cannot measure the copy",
                data.root().display(),
                short_hash(&hash),
                dir.display(),
                short_hash(&manifest.provenance.data_hash),
            );
        }
    }
    Ok(Source { manifest, weights, measurable })
}

fn from_run(args: &ExportArgs) -> Result<Source> {
    let run = RunDir::new(&args.model);
    let config = run.read_config()?;
    let meta = run.read_metadata()?;
    if meta.labels != config.labels.names() {
        bail!("{}: labels differ from the model's", run.preprocessing_metadata().display());
    }
    let weights_path = run.best_weights();
    let weights = std::fs::read(&weights_path)
        .with_context(|| format!("reading {}", weights_path.display()))?;
    let temperature = run.temperature()?;
    let tile_source = DataDir::new(&args.data).read_tile_source()?;
    let metrics = run.read_metrics();
    let candidate_prior = run.read_suggestion_prior()?;
    let manifest = BundleManifest {
        format: BUNDLE_FORMAT.to_string(),
        class_weights: meta.weights_in_order(),
        scaler: meta.scaler,
        config,
        temperature,
        tile_source,
        candidate_prior_by_kind: candidate_prior
            .as_ref()
            .filter(|p| !p.by_kind.is_empty())
            .map(|p| p.by_kind.clone()),
        candidate_prior: candidate_prior.map(|p| p.overall),
        suggest_threshold: run.read_suggest_threshold()?,
        area_rules: run.read_area_rules()?,
        provenance: Provenance {
            data_hash: meta.input_hash.clone(),
            git_revision: git_revision(),
            test_accuracy: metrics.as_ref().and_then(|m| m["accuracy"].as_f64()),
            test_macro_f1: metrics.as_ref().and_then(|m| m["macro"]["f1"].as_f64()),
            created_by: concat!("accessatlas ", env!("CARGO_PKG_VERSION")).to_string(),
        },
    };
    Ok(Source { manifest, weights, measurable: true })
}

pub fn export(args: &ExportArgs) -> Result<PathBuf> {
    let is_bundle = is_bundle(&args.model);
    let src = if is_bundle { from_bundle(&args.model, &args.data)? } else { from_run(args)? };
    let device = Device::flex();
    let config = &src.manifest.config;
    // Refuse weights that do not load into the config: an export must always work.
    let model = model_core::model::persist::model_from_bytes(config, &src.weights, &device)
        .with_context(|| format!("the weights of {}", args.model.display()))?;
    let out = args.out.clone().unwrap_or_else(|| args.model.join(args.format.default_dir()));
    if is_bundle && out == args.model {
        bail!("--out must differ from the bundle being converted ({})", args.model.display());
    }
    // The bundle's files replace the old ones as one (`replace_dir_files`): a reader never
    // sees one export's manifest beside another's weights.
    let mut files: Vec<(&str, Vec<u8>)> = Vec::new();
    match args.format {
        Format::Burn => files.push((BUNDLE_WEIGHTS_FILE, src.weights.clone())),
        Format::BurnF16 | Format::BurnInt8 => {
            let bytes = if args.format == Format::BurnF16 {
                model_core::model::persist::weights_to_bytes_f16(&model)?
            } else {
                let q = model_core::model::persist::quantize_int8(model.clone())?;
                model_core::model::persist::weights_to_bytes(&q)?
            };
            let report = precision_report(&src, args, &model, &bytes, &device)?;
            let verdict = if report.within_budget() {
                "within the page's budget of 1 point: the page may load it"
            } else {
                "outside the page's budget of 1 point (or unmeasured): the page keeps f32"
            };
            println!("{}; {verdict}", report.summary());
            files.push((BUNDLE_WEIGHTS_FILE, bytes));
            files
                .push((PRECISION_REPORT_FILE, serde_json::to_string_pretty(&report)?.into_bytes()));
        }
        Format::Safetensors => files
            .push((SAFETENSORS_FILE, model_core::model::persist::weights_to_safetensors(&model)?)),
        Format::Onnx => {
            files.push((ONNX_FILE, crate::onnx::to_onnx(&model, config, args.onnx_batch)?))
        }
    }
    files.push((BUNDLE_CONFIG_FILE, src.manifest.to_json().into_bytes()));
    let files: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    // A precision report describes the weights beside it: an older one never stays.
    replace_dir_files(&out, &files, &[PRECISION_REPORT_FILE])?;
    Ok(out)
}

/// Sizes, and the test split's accuracy and macro-F1 with the f32 and the reduced weights
/// (over every class, `none` included) when the run's data split is at hand.
fn precision_report(
    src: &Source,
    args: &ExportArgs,
    model: &model_core::AccessModel,
    bytes: &[u8],
    device: &Device,
) -> Result<PrecisionReport> {
    let config = &src.manifest.config;
    let mut report = PrecisionReport {
        format: match args.format {
            Format::BurnF16 => "burn-f16",
            _ => "burn-int8",
        }
        .to_string(),
        f32_bytes: src.weights.len(),
        bytes: bytes.len(),
        size_ratio: bytes.len() as f64 / src.weights.len() as f64,
        test_examples: None,
        test_accuracy_f32: None,
        test_accuracy: None,
        test_macro_f1_f32: None,
        test_macro_f1: None,
        changed_predictions: None,
    };
    let data = DataDir::new(&args.data);
    if !src.measurable || !data.split("test").is_file() || !data.preprocessing_metadata().is_file()
    {
        return Ok(report);
    }
    // The reduced model as every consumer will load it: from its bytes.
    let q = model_core::model::persist::model_from_bytes(config, bytes, device)?;
    // Positions read with the model's own scaler, as everywhere it runs.
    let scaler = &src.manifest.scaler;
    let a = score(&data, "test", config, scaler, model, device)?;
    let b = score(&data, "test", config, scaler, &q, device)?;
    let argmax = |l: &Vec<f32>| {
        l.iter().enumerate().fold((0, f32::MIN), |m, (i, &v)| if v > m.1 { (i, v) } else { m }).0
    };
    let names = config.labels.names();
    let metrics = |s: &Scored| {
        let pred: Vec<usize> = s.logits.iter().map(argmax).collect();
        model_core::train::metrics::Metrics::compute(&s.truth, &pred, names)
    };
    let (ma, mb) = (metrics(&a), metrics(&b));
    report.test_accuracy_f32 = Some(ma.accuracy);
    report.test_accuracy = Some(mb.accuracy);
    report.test_macro_f1_f32 = Some(ma.macro_avg.f1);
    report.test_macro_f1 = Some(mb.macro_avg.f1);
    report.changed_predictions =
        Some(a.logits.iter().zip(&b.logits).filter(|(x, y)| argmax(x) != argmax(y)).count());
    report.test_examples = Some(a.truth.len());
    Ok(report)
}
