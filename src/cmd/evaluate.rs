//! `accessatlas evaluate`: the best checkpoint on the test split. Writes
//! `models/<run>/errors/`: `metrics.json`, `predictions.csv`, `error_analysis.json`,
//! `confusion_matrix.png`, `calibration.png`, `images_test/` (misclassified tiles), and fits a
//! temperature on the validation split (`models/<run>/calibration.json`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use clap::Args;
use model_core::LabelVocab;
use model_core::data::split::group_of;
use model_core::data::tags::{Tag, parse_tags_csv};
use model_core::data::vocab::NONE_LABEL;
use model_core::infer::Predictor;
use model_core::infer::bundle::TileSourceSpec;
use model_core::infer::calibration::{expected_calibration_error, fit_temperature};
use model_core::infer::prediction::softmax;
use model_core::infer::prior::AreaRule;
use model_core::train::metrics::{ClassMetrics, Metrics};
use model_core::train::resample::{
    Change, Interval, REPORT_SEED, feature_f1_change, feature_f1_interval,
};
use model_core::train::suggestion_metrics::{SuggestionEval, TARGET_LIFT};

use crate::fsutil::write_atomic;
use crate::osm::OsmMap;
use crate::osm::rules::Rules;
use crate::run::{Calibration, DataDir, RunDir};
use crate::score::{Scored, score};
use crate::suggestion_eval::{
    Inputs, Part, candidate_prior_on, evaluate_suggestions, measure_candidate_prior, threshold_on,
};
use crate::tiles::Politeness;

#[derive(Args, Debug)]
pub struct EvaluateArgs {
    /// Data folder with the validation and test splits the run was trained beside.
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// Training run directory (holds model.json and checkpoints/best_model.bpk).
    #[arg(long, default_value = "models/baseline")]
    pub model: PathBuf,
    /// How many of the worst examples error_analysis.json lists.
    #[arg(long, default_value_t = 20)]
    pub worst: usize,
    /// The OSM extract(s) the data was collected from, for the suggestion evaluation (repeat
    /// for several, or name a folder; default: the bundled one). The candidates' prior and
    /// the threshold come from every named region's training and validation cells (and, of
    /// several trained regions, each also gets its own from its own cells, which hold inside
    /// it; outside them the threshold is the strictest of theirs), the suggestions are measured
    /// on every named region's test cells.
    #[arg(long)]
    pub osm: Vec<PathBuf>,
    /// The suggestions' confidence threshold in the suggestion evaluation (default: the ones
    /// chosen on the validation cells, which `export` makes the bundle's defaults; 0.5 when
    /// none is chosen).
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Skip the suggestion evaluation (data not collected from an extract).
    #[arg(long)]
    pub no_suggestions: bool,
    /// Another run (a baseline: the model you started from, or another recipe) measured on the
    /// same test rows: the change in feature-type macro-F1, with how far it could move with
    /// another draw of the test cells.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
}

/// What `evaluate` measured.
pub struct Evaluation {
    /// Every class, `none` included when the model has it.
    pub metrics: Metrics,
    /// The feature types on the test rows that hold a feature; the prediction is the most
    /// probable feature type (`none` set aside).
    pub feature_types: Metrics,
    /// `none` against "any feature" (when the model has `none`).
    pub none: Option<ClassMetrics>,
    /// The same per region of the test rows (empty for data of one region).
    pub by_region: Vec<RegionMetrics>,
    /// The feature-type macro-F1 with its interval over resamples of the test cells.
    pub feature_f1_interval: Option<Interval>,
    /// Against `--baseline`, on the same rows.
    pub against_baseline: Option<Change>,
    pub suggestions: Option<SuggestionEval>,
}

/// One region's test figures (`metrics.json`'s `by_region`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RegionMetrics {
    pub region: String,
    pub rows: usize,
    /// Rows that hold a feature.
    pub feature_rows: usize,
    pub accuracy: f64,
    pub feature_accuracy: f64,
    pub feature_macro_f1: f64,
    /// [`RegionMetrics::feature_macro_f1`] over resamples of the region's test cells.
    pub feature_macro_f1_interval: Option<Interval>,
    pub none_precision: Option<f64>,
    pub none_recall: Option<f64>,
}

pub fn run(args: EvaluateArgs) -> Result<()> {
    let e = evaluate(&args)?;
    let m = &e.metrics;
    println!("{:<14} {:>9} {:>9} {:>9} {:>8}", "type", "precision", "recall", "f1", "support");
    for (l, c) in &m.per_class {
        println!("{l:<14} {:>9.3} {:>9.3} {:>9.3} {:>8}", c.precision, c.recall, c.f1, c.support);
    }
    println!(
        "{:<14} {:>9.3} {:>9.3} {:>9.3}",
        "macro", m.macro_avg.precision, m.macro_avg.recall, m.macro_avg.f1
    );
    println!(
        "{:<14} {:>9.3} {:>9.3} {:>9.3}",
        "weighted", m.weighted.precision, m.weighted.recall, m.weighted.f1
    );
    println!("accuracy {:.3}", m.accuracy);
    if let Some(n) = &e.none {
        println!(
            "feature types (rows with a feature, `{NONE_LABEL}` set aside): accuracy {:.3}, \
             macro-F1 {:.3}",
            e.feature_types.accuracy, e.feature_types.macro_avg.f1
        );
        println!(
            "`{NONE_LABEL}` against any feature: precision {:.3}, recall {:.3}, F1 {:.3}",
            n.precision, n.recall, n.f1
        );
    }
    if let Some(i) = &e.feature_f1_interval {
        println!("feature-type macro-F1 {}", interval_words(i));
    }
    if let (Some(c), Some(b)) = (&e.against_baseline, &args.baseline) {
        println!(
            "against {} on the same rows: feature-type macro-F1 {:.3} -> {:.3}, a change of \
             {:+.3}: {:.0} % of {} resamples of the {} cells lie in {:+.3} to {:+.3}, {:.0} % of \
             them higher",
            b.display(),
            c.before,
            c.after,
            c.change.value,
            c.change.level * 100.0,
            c.change.resamples,
            c.change.cells,
            c.change.low,
            c.change.high,
            c.higher * 100.0
        );
    }
    if !e.by_region.is_empty() {
        println!();
        println!(
            "{:<14} {:>6} {:>9} {:>14} {:>14} {:>15} {:>16}",
            "region",
            "rows",
            "accuracy",
            "types: acc.",
            "types: mF1",
            "none: P / R",
            "mF1: 90 % of"
        );
        for r in &e.by_region {
            let none = match (r.none_precision, r.none_recall) {
                (Some(p), Some(q)) => format!("{p:.3} / {q:.3}"),
                _ => "-".into(),
            };
            let spread = r
                .feature_macro_f1_interval
                .map_or("-".into(), |i| format!("{:.3} to {:.3}", i.low, i.high));
            println!(
                "{:<14} {:>6} {:>9.3} {:>14.3} {:>14.3} {none:>15} {spread:>16}",
                r.region, r.rows, r.accuracy, r.feature_accuracy, r.feature_macro_f1
            );
        }
    }
    if let Some(s) = &e.suggestions {
        println!();
        println!(
            "suggestions on the test cells (threshold {}, match within {} m): {} candidates, \
             candidate recall {:.3}",
            s.threshold, s.match_radius_m, s.candidates, s.candidate_recall
        );
        println!(
            "{:<14} {:>9} {:>9} {:>8} {:>9} {:>7} {:>9} {:>6}",
            "type", "precision", "recall", "support", "suggested", "right", "base rate", "lift"
        );
        for (l, q) in s.per_type.iter().chain([(&"all".to_string(), &s.overall)]) {
            let lift = q.lift().map_or("-".to_string(), |l| format!("{l:.2}"));
            println!(
                "{l:<14} {:>9.3} {:>9.3} {:>8} {:>9} {:>7} {:>9.3} {lift:>6}",
                q.precision, q.recall, q.support, q.suggested, q.matched, q.base_rate
            );
        }
        if let Some(li) = &s.lift_interval {
            println!(
                "lift {:.2}: {:.0} % of {} resamples of the {} cells lie in {:.2} to {:.2}; {:.0} % \
                 reach {TARGET_LIFT}",
                li.lift,
                li.level * 100.0,
                li.resamples,
                li.cells,
                li.low,
                li.high,
                li.at_target * 100.0
            );
        }
        if !s.by_region.is_empty() {
            println!(
                "{:<14} {:>9} {:>10} {:>9} {:>7} {:>9} {:>6}",
                "region", "threshold", "candidates", "suggested", "right", "base rate", "lift"
            );
            for (r, q) in &s.by_region {
                let o = &q.overall;
                let lift = o.lift().map_or("-".to_string(), |l| format!("{l:.2}"));
                println!(
                    "{r:<14} {:>9.2} {:>10} {:>9} {:>7} {:>9.3} {lift:>6}",
                    q.threshold, q.candidates, o.suggested, o.matched, o.base_rate
                );
            }
        }
        if s.base_rate_same_types > 0.0 {
            println!(
                "a blind picker making as many suggestions of each type is right {:.3} of the \
                 time ({:.2}x less often)",
                s.base_rate_same_types,
                s.overall.precision / s.base_rate_same_types
            );
        }
    }
    println!("written to {}", RunDir::new(&args.model).errors().display());
    Ok(())
}

/// "0.372: 90 % of 2000 resamples of the 8 test cells lie in 0.294 to 0.521".
fn interval_words(i: &Interval) -> String {
    format!(
        "{:.3}: {:.0} % of {} resamples of the {} test cells lie in {:.3} to {:.3}",
        i.value,
        i.level * 100.0,
        i.resamples,
        i.cells,
        i.low,
        i.high
    )
}

pub fn evaluate(args: &EvaluateArgs) -> Result<Evaluation> {
    if let Some(t) = args.threshold {
        model_core::infer::suggest::check_threshold(t)
            .map_err(|e| anyhow::anyhow!("--threshold: {e}"))?;
    }
    let device = Device::flex();
    let (run, data) = (RunDir::new(&args.model), DataDir::new(&args.data));
    let (cfg, model) = run.load_best(&device)?;
    let meta = data.read_metadata()?;
    if meta.labels != cfg.labels.names() {
        bail!(
            "{} has labels {:?} but the model was trained on {:?}",
            data.preprocessing_metadata().display(),
            meta.labels,
            cfg.labels.names()
        );
    }
    let labels = cfg.labels.names().to_vec();
    // The model reads positions as it was trained to, with its own scaler and the areas it was
    // trained on, as predict, serve and export do. That is the data's scaler for a run trained
    // on this data, and not for one evaluated on rows it never trained with (the model an
    // adapted one started from, on the new region's data: fitted on that region alone, the
    // data's scaler would hand it positions it never learned to read).
    let scaler = run.read_metadata()?.scaler;

    // Temperature scaling on the validation split.
    let val = score(&data, "val", &cfg, &scaler, &model, &device)?;
    let temperature = fit_temperature(&val.logits, &val.truth);
    let ece_of = |s: &Scored, t: f32| {
        let (conf, ok): (Vec<f32>, Vec<bool>) = s
            .logits
            .iter()
            .zip(&s.truth)
            .map(|(l, &y)| {
                let p = softmax(l, t);
                let (arg, c) = p
                    .iter()
                    .enumerate()
                    .fold((0, f32::MIN), |a, (i, &v)| if v > a.1 { (i, v) } else { a });
                (c, arg == y)
            })
            .unzip();
        expected_calibration_error(&conf, &ok, 10)
    };
    let cal = Calibration {
        temperature,
        val_ece_before: ece_of(&val, 1.0).0,
        val_ece_after: ece_of(&val, temperature).0,
    };
    write_atomic(&run.calibration(), serde_json::to_string_pretty(&cal)?.as_bytes())?;

    let test = score(&data, "test", &cfg, &scaler, &model, &device)?;
    if test.tags.is_empty() {
        bail!("the test split is empty");
    }
    let probs: Vec<Vec<f32>> = test.logits.iter().map(|l| softmax(l, temperature)).collect();
    let pred: Vec<usize> = probs
        .iter()
        .map(|p| {
            p.iter()
                .enumerate()
                .fold((0, f32::MIN), |a, (i, &v)| if v > a.1 { (i, v) } else { a })
                .0
        })
        .collect();
    // All classes, the feature types (rows with a feature, `none` set aside) and `none`
    // against any feature, over the test rows `rows`.
    let measure = |rows: &[usize]| -> (Metrics, Metrics, Option<ClassMetrics>) {
        let truth: Vec<usize> = rows.iter().map(|&i| test.truth[i]).collect();
        let all_pred: Vec<usize> = rows.iter().map(|&i| pred[i]).collect();
        let metrics = Metrics::compute(&truth, &all_pred, &labels);
        match cfg.labels.none_index() {
            None => (metrics.clone(), metrics, None),
            Some(_) => {
                let scores: Vec<&[f32]> = rows.iter().map(|&i| probs[i].as_slice()).collect();
                let none = metrics.per_class.get(NONE_LABEL).copied();
                (metrics, Metrics::feature_types(&truth, &scores, &cfg.labels), none)
            }
        }
    };
    let (metrics, feature_types, none) = measure(&(0..test.truth.len()).collect::<Vec<_>>());
    // Each test row's map cell (the split's unit), for the intervals over cell resamples.
    let cells: Vec<(u32, u32)> = test
        .tags
        .iter()
        .map(|t| group_of(t.lat, t.lon, meta.group_zoom))
        .collect::<Result<_, _>>()?;
    let interval_of = |rows: &[usize]| {
        let pick = |v: &[usize]| rows.iter().map(|&i| v[i]).collect::<Vec<_>>();
        let scores: Vec<&[f32]> = rows.iter().map(|&i| probs[i].as_slice()).collect();
        let cells: Vec<(u32, u32)> = rows.iter().map(|&i| cells[i]).collect();
        feature_f1_interval(&pick(&test.truth), &scores, &cfg.labels, &cells, REPORT_SEED)
    };
    let all_rows: Vec<usize> = (0..test.truth.len()).collect();
    let feature_f1_interval = interval_of(&all_rows);
    // The same per region, when the test rows come from more than one.
    let mut region_names: Vec<&str> = test.regions.iter().map(String::as_str).collect();
    region_names.sort_unstable();
    region_names.dedup();
    let by_region: Vec<RegionMetrics> = if region_names.len() > 1 {
        region_names
            .iter()
            .map(|r| {
                let rows: Vec<usize> =
                    (0..test.truth.len()).filter(|&i| test.regions[i] == *r).collect();
                let (m, f, n) = measure(&rows);
                RegionMetrics {
                    region: r.to_string(),
                    rows: rows.len(),
                    feature_rows: f.confusion_matrix.matrix.iter().flatten().sum(),
                    accuracy: m.accuracy,
                    feature_accuracy: f.accuracy,
                    feature_macro_f1: f.macro_avg.f1,
                    feature_macro_f1_interval: interval_of(&rows),
                    none_precision: n.map(|n| n.precision),
                    none_recall: n.map(|n| n.recall),
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    std::fs::create_dir_all(run.errors())?;
    let (ece, bins) = ece_of(&test, temperature);
    let mut metrics_json = serde_json::to_value(&metrics)?;
    metrics_json["feature_types"] = serde_json::to_value(&feature_types)?;
    if let Some(n) = &none {
        metrics_json["none_vs_feature"] = serde_json::to_value(n)?;
    }
    if !by_region.is_empty() {
        metrics_json["by_region"] = serde_json::to_value(&by_region)?;
    }
    if let Some(i) = &feature_f1_interval {
        metrics_json["feature_types_interval"] = serde_json::to_value(i)?;
    }
    let against_baseline = match &args.baseline {
        None => None,
        Some(b) => {
            let base_run = RunDir::new(b);
            let (bcfg, bmodel) = base_run.load_best(&device)?;
            if bcfg.labels.names() != cfg.labels.names() {
                bail!(
                    "--baseline {}: its labels {:?} are not the model's {:?}",
                    b.display(),
                    bcfg.labels.names(),
                    cfg.labels.names()
                );
            }
            // The baseline with its own scaler too.
            let base =
                score(&data, "test", &bcfg, &base_run.read_metadata()?.scaler, &bmodel, &device)?;
            let change = feature_f1_change(
                &test.truth,
                &base.logits,
                &test.logits,
                &cfg.labels,
                &cells,
                REPORT_SEED,
            );
            if let Some(c) = &change {
                metrics_json["against_baseline"] = serde_json::json!({
                    "baseline": b.display().to_string(),
                    "change": c,
                });
            }
            change
        }
    };
    metrics_json["expected_calibration_error"] = serde_json::json!(ece);
    metrics_json["temperature"] = serde_json::json!(temperature);
    write_atomic(&run.metrics(), serde_json::to_string_pretty(&metrics_json)?.as_bytes())?;

    // predictions.csv
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["id", "lat", "lon", "source", "region", "true", "pred", "confidence"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    header.extend(labels.iter().map(|l| format!("p_{l}")));
    w.write_record(&header)?;
    for (i, t) in test.tags.iter().enumerate() {
        let mut row = vec![
            t.id.clone(),
            t.lat.to_string(),
            t.lon.to_string(),
            t.source.clone(),
            test.regions[i].clone(),
            labels[test.truth[i]].clone(),
            labels[pred[i]].clone(),
            format!("{:.6}", probs[i][pred[i]]),
        ];
        row.extend(probs[i].iter().map(|p| format!("{p:.6}")));
        w.write_record(&row)?;
    }
    write_atomic(&run.predictions(), &w.into_inner()?)?;

    // error_analysis.json
    let mut pairs: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut by_source: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut worst = Vec::new();
    let images = run.images_test();
    let _ = std::fs::remove_dir_all(&images);
    std::fs::create_dir_all(&images)?;
    for (i, t) in test.tags.iter().enumerate() {
        let e = by_source.entry(t.source.clone()).or_default();
        e.1 += 1;
        if pred[i] != test.truth[i] {
            e.0 += 1;
            *pairs.entry((labels[test.truth[i]].clone(), labels[pred[i]].clone())).or_default() +=
                1;
            worst.push((probs[i][pred[i]], i));
            if let Some(rel) = &t.image {
                let name = format!(
                    "{}__true-{}__pred-{}.png",
                    t.id.replace(['/', '\\'], "_"),
                    labels[test.truth[i]],
                    labels[pred[i]]
                );
                std::fs::copy(data.resolve(rel), images.join(name))
                    .with_context(|| format!("copying {rel}"))?;
            }
        }
    }
    let mut pairs: Vec<_> = pairs.into_iter().collect();
    pairs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    worst.sort_by(|a, b| b.0.total_cmp(&a.0));
    let analysis = serde_json::json!({
        "most_confused": pairs.iter().map(|((t, p), n)| serde_json::json!({"true": t, "pred": p, "count": n})).collect::<Vec<_>>(),
        "errors_by_source": by_source.iter().map(|(s, (e, n))| (s.clone(), serde_json::json!({"errors": e, "total": n, "error_rate": *e as f64 / *n as f64}))).collect::<serde_json::Map<_, _>>(),
        "accuracy_by_confidence": bins.iter().filter(|b| b.count > 0).collect::<Vec<_>>(),
        "worst": worst.iter().take(args.worst).map(|&(c, i)| serde_json::json!({"id": test.tags[i].id, "true": labels[test.truth[i]], "pred": labels[pred[i]], "confidence": c})).collect::<Vec<_>>(),
    });
    write_atomic(&run.error_analysis(), serde_json::to_string_pretty(&analysis)?.as_bytes())?;
    crate::plot::confusion_matrix(&metrics.confusion_matrix, &run.confusion_matrix())?;
    crate::plot::reliability(&bins, ece, &run.reliability_plot())?;

    let suggestions = if args.no_suggestions {
        None
    } else {
        let predictor = Predictor::new(cfg.clone(), model, scaler, temperature, &device);
        Some(suggestions(args, &run, &data, predictor, meta.group_zoom)?)
    };
    Ok(Evaluation {
        metrics,
        feature_types,
        none,
        by_region,
        feature_f1_interval,
        against_baseline,
        suggestions,
    })
}

/// One named extract and its region's rows of the training, validation and test splits.
struct RegionRows {
    region: String,
    origin: String,
    map: OsmMap,
    rows: [Vec<Tag>; 3],
}

/// One trained region's own rule as measured: its prior, and its threshold when one reaches
/// the goal on its validation cells, with what each was measured on.
struct RegionRule {
    region: String,
    prior: model_core::infer::prior::CandidatePrior,
    own: Option<f32>,
    prior_record: serde_json::Value,
    threshold_record: serde_json::Value,
}

/// `p`'s own rule: the candidates' prior on its training cells, the threshold on its
/// validation cells under that prior.
fn region_rule(
    p: &RegionRows,
    predictor: &Predictor,
    (spec, rules, data, zoom): (&TileSourceSpec, &Rules, &DataDir, u8),
    labels: &LabelVocab,
) -> Result<RegionRule> {
    let part = |split: usize| [Part { map: &p.map, tags: &p.rows[split] }];
    let (prior, prior_record) = candidate_prior_on(&part(TRAIN), rules, zoom, labels)
        .with_context(|| format!("the candidates' prior on {}", p.origin))?;
    let mut own = predictor.clone();
    own.candidate_prior = Some(prior.clone());
    let inputs = Inputs {
        predictor: &own,
        spec,
        politeness: Politeness::for_data(data),
        rules,
        group_zoom: zoom,
    };
    let (point, threshold_record) = threshold_on(&inputs, &part(VAL))
        .with_context(|| format!("choosing the suggestions' threshold on {}", p.origin))?;
    if point.is_none() {
        println!(
            "`{}`: no threshold makes its validation suggestions right {TARGET_LIFT}x a blind \
             pick: there suggestions take its own prior at the threshold outside the trained \
             regions",
            p.region
        );
    }
    Ok(RegionRule {
        region: p.region.clone(),
        prior,
        own: point.map(|q| q.threshold),
        prior_record,
        threshold_record,
    })
}

/// [`RegionRows::rows`]'s order.
const TRAIN: usize = 0;
const VAL: usize = 1;
const TEST: usize = 2;

/// The suggestion evaluation on the extracts of `--osm` (the bundled one when none is named):
/// the candidates' prior and the default threshold from every named region's training and
/// validation cells (pooled), the suggestions measured on every named region's test cells
/// (pooled). A region the training split holds none of (`preprocess --hold-out`) shapes
/// neither: its suggestions come from the prior and threshold of the named regions the model
/// was trained on, as the shipped model's would in a city it never saw; with none of those,
/// no prior and the default threshold.
fn suggestions(
    args: &EvaluateArgs,
    run: &RunDir,
    data: &DataDir,
    mut predictor: Predictor,
    zoom: u8,
) -> Result<SuggestionEval> {
    let labels = &predictor.config.labels;
    let rules = Rules::default_rules(&LabelVocab::default())?;
    let read_split = |name: &str| -> Result<(Vec<Tag>, Vec<String>)> {
        let path = data.split(name);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let table =
            parse_tags_csv(&bytes, labels).with_context(|| path.display().to_string())?.table;
        let regions = table.regions().into_iter().map(str::to_string).collect();
        Ok((table.tags, regions))
    };
    let splits = [read_split("train")?, read_split("val")?, read_split("test")?];
    let mut names: Vec<&String> = splits.iter().flat_map(|(_, r)| r).collect();
    names.sort_unstable();
    names.dedup();
    // Each named extract with its rows of each split (data of one region and one extract: all
    // of them, whatever the file is called; else the rows of the extract's region).
    let extracts = crate::osm::extracts(&args.osm)?;
    let whole = names.len() <= 1 && extracts.len() == 1;
    let mut parts = Vec::new();
    for (path, region) in &extracts {
        let (map, origin) = OsmMap::open(path.as_deref())?;
        let rows = splits.each_ref().map(|(tags, regions)| -> Vec<Tag> {
            tags.iter()
                .zip(regions)
                .filter(|(_, r)| whole || *r == region)
                .map(|(t, _)| t.clone())
                .collect()
        });
        parts.push(RegionRows { region: region.clone(), origin, map, rows });
    }
    let named: Vec<&str> = parts.iter().map(|p| p.region.as_str()).collect();
    if parts.iter().all(|p| p.rows[TEST].is_empty()) {
        bail!(
            "the test rows are of regions {names:?}, none of them {named:?}: name the extract of \
             the region to measure suggestions on with --osm"
        );
    }
    let of = |split: usize| -> Vec<Part> {
        parts.iter().map(|p| Part { map: &p.map, tags: &p.rows[split] }).collect()
    };
    let (train, val, test) = (of(TRAIN), of(VAL), of(TEST));
    // A region the model was trained without: nothing of it may shape the rule.
    let from: Vec<&str> =
        parts.iter().filter(|q| !q.rows[TRAIN].is_empty()).map(|q| q.region.as_str()).collect();
    for p in parts.iter().filter(|p| p.rows[TRAIN].is_empty()) {
        match from.is_empty() {
            true => println!(
                "`{}` is not in the training split: suggestions without a candidate prior, at \
                 --threshold or {}",
                p.region,
                model_core::infer::DEFAULT_SUGGEST_THRESHOLD
            ),
            false => println!(
                "`{}` is not in the training split: its suggestions take the candidates' prior \
                 and the threshold of {from:?}",
                p.region
            ),
        }
    }
    let origins: Vec<&str> = parts.iter().map(|p| p.origin.as_str()).collect();
    let origin = origins.join(", ");
    let trained = train.iter().any(|p| !p.tags.is_empty());
    if !trained {
        // No rule of an earlier evaluation stays for `export` to ship.
        for f in [run.suggestion_prior(), run.suggestion_threshold(), run.suggestion_area_rules()] {
            if f.exists() {
                std::fs::remove_file(&f).with_context(|| format!("removing {}", f.display()))?;
            }
        }
    }
    predictor.candidate_prior = match trained {
        false => None,
        true => Some(
            measure_candidate_prior(run, &train, &rules, zoom, labels)
                .with_context(|| format!("the candidates' prior on {origin}"))?,
        ),
    };
    let spec = data.read_tile_source()?;
    // What the measurements need, for a predictor with one rule or another.
    fn with<'a>(
        p: &'a Predictor,
        spec: &'a TileSourceSpec,
        rules: &'a Rules,
        d: &DataDir,
        zoom: u8,
    ) -> Inputs<'a> {
        Inputs { predictor: p, spec, politeness: Politeness::for_data(d), rules, group_zoom: zoom }
    }
    // The default threshold, chosen on the validation cells, never on the test.
    let (chosen, mut threshold_record) = match trained {
        false => (None, None),
        true => {
            let (point, record) = threshold_on(&with(&predictor, &spec, &rules, data, zoom), &val)
                .with_context(|| format!("choosing the suggestions' threshold on {origin}"))?;
            (point, Some(record))
        }
    };
    predictor.suggest_threshold = chosen.map(|p| p.threshold);
    // Of several trained regions, each its own rule, measured on its own cells: inside it,
    // suggestions follow that.
    let trained_parts: Vec<&RegionRows> = parts
        .iter()
        .filter(|p| !p.rows[TRAIN].is_empty())
        .filter(|p| predictor.scaler.areas.iter().any(|a| a.region == p.region))
        .collect();
    let regions = match trained_parts.len() > 1 {
        true => trained_parts
            .into_iter()
            .map(|p| region_rule(p, &predictor, (&spec, &rules, data, zoom), labels))
            .collect::<Result<Vec<_>>>()?,
        false => Vec::new(),
    };
    // Outside every trained region (a city the model never saw, which may be like any of
    // them): the strictest of the regions' own thresholds, at which each of them reached the
    // goal on its validation cells; the pooled choice leans on the region with the most
    // candidates.
    let own: BTreeMap<&str, f32> =
        regions.iter().filter_map(|r| Some((r.region.as_str(), r.own?))).collect();
    if let Some(strictest) = own.values().copied().reduce(f32::max).filter(|_| own.len() > 1) {
        if let Some(v) = threshold_record.as_mut() {
            v["pooled_threshold"] = v["threshold"].take();
            v["threshold"] = serde_json::json!(strictest);
            v["outside_rule"] = serde_json::json!(format!(
                "outside the trained regions: the strictest of their own thresholds {own:?} \
                 (suggestion_area_rules.json); `pooled_threshold` was chosen on their \
                 validation cells pooled"
            ));
        }
        println!(
            "outside the trained regions: threshold {strictest}, the strictest of their own {own:?}"
        );
        predictor.suggest_threshold = Some(strictest);
    }
    if let Some(v) = &threshold_record {
        write_atomic(&run.suggestion_threshold(), serde_json::to_string_pretty(v)?.as_bytes())?;
    }
    // A region where no threshold got there takes the one outside.
    let outside = predictor.default_threshold();
    let mut area_rules = BTreeMap::new();
    let mut records = serde_json::Map::new();
    for r in regions {
        let rule =
            AreaRule { candidate_prior: r.prior, suggest_threshold: r.own.unwrap_or(outside) };
        let mut record = serde_json::to_value(&rule)?;
        record["prior_measured"] = r.prior_record;
        record["threshold_measured"] = r.threshold_record;
        records.insert(r.region.clone(), record);
        area_rules.insert(r.region, rule);
    }
    let rules_file = run.suggestion_area_rules();
    if records.is_empty() {
        if rules_file.exists() {
            std::fs::remove_file(&rules_file)
                .with_context(|| format!("removing {}", rules_file.display()))?;
        }
    } else {
        write_atomic(&rules_file, serde_json::to_string_pretty(&records)?.as_bytes())?;
    }
    predictor.area_rules = area_rules;
    evaluate_suggestions(run, &with(&predictor, &spec, &rules, data, zoom), &test, args.threshold)
        .with_context(|| format!("the suggestion evaluation on {origin}"))
}
