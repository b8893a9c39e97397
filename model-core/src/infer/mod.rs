//! Inference on one example: the code `accessatlas predict`, the browser worker and the API
//! share, from a loaded model bundle to a [`Prediction`].
//!
//! The input is cut from the bundle's own tile source at the bundle's zoom
//! ([`Predictor::window`]), whatever layer a user looks at: a model only understands tiles like
//! those it was trained on.

pub mod bundle;
pub mod calibration;
pub mod prediction;
pub mod prior;
pub mod suggest;

use std::collections::BTreeMap;
use std::sync::Arc;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;

use crate::data::metadata::Scaler;
use crate::data::preprocess::ModelInput;
use crate::data::tile::Window;
use crate::infer::bundle::{BundleManifest, TileSourceSpec};
use crate::infer::prior::{AreaRule, CandidatePrior};
use crate::kernels::Engine;
use crate::model::Op;
use crate::model::persist::model_from_bytes;
use crate::{AccessModel, CoreError, ModelConfig, Prediction};

pub use suggest::DEFAULT_SUGGEST_THRESHOLD;

/// A batch's images, coordinates and one-hot sources, each flat.
type BatchValues = (Vec<f32>, Vec<f32>, Vec<f32>);

/// A model in inference mode with what its inputs need. Its encoder is in inference form
/// (batch norms folded into their convolutions): `model` is for prediction, never for
/// training or saving.
#[derive(Debug, Clone)]
pub struct Predictor {
    pub config: ModelConfig,
    pub model: AccessModel,
    pub scaler: Scaler,
    /// Softmax temperature (1 when not calibrated).
    pub temperature: f32,
    /// The suggestion candidates' class prior, overall and per kind (the bundle's
    /// `candidate_prior` and `candidate_prior_by_kind`), if measured.
    pub candidate_prior: Option<CandidatePrior>,
    /// The suggestions' default threshold (the bundle's `suggest_threshold`), if chosen.
    pub suggest_threshold: Option<f32>,
    /// Per trained region, its own prior and threshold (the bundle's `area_rules`): they hold
    /// inside that region's area, the two fields above everywhere else.
    pub area_rules: BTreeMap<String, AreaRule>,
    device: Device,
    /// The model compiled for the CPU kernels ([`crate::kernels`]): what predictions on the
    /// CPU run, natively and in wasm. `None` on a GPU, where Burn's forward runs.
    kernels: Option<Arc<Engine>>,
}

impl Predictor {
    pub fn new(
        config: ModelConfig,
        model: AccessModel,
        scaler: Scaler,
        temperature: f32,
        device: &Device,
    ) -> Self {
        // The inference form, on every platform: batch norms folded into their convolutions.
        let mut model = model.valid();
        model.encoder = model.encoder.fold_batch_norms();
        // On the CPU, the kernels; every encoder compiles (a test holds it to that), and a
        // model that did not would still predict through Burn.
        let kernels = (*device == Device::flex())
            .then(|| Engine::new(&config, &model).ok().map(Arc::new))
            .flatten();
        Self {
            config,
            model,
            scaler,
            temperature,
            candidate_prior: None,
            suggest_threshold: None,
            area_rules: BTreeMap::new(),
            device: device.clone(),
            kernels,
        }
    }

    /// The same predictor running Burn's forward pass instead of the CPU kernels: the
    /// reference the kernels are measured and tested against.
    pub fn without_kernels(mut self) -> Self {
        self.kernels = None;
        self
    }

    /// The CPU kernels this predictor runs, if it runs them.
    pub fn kernels(&self) -> Option<&Engine> {
        self.kernels.as_deref()
    }

    /// Loads a bundle from its `model.json` text and `weights.bpk` bytes.
    pub fn from_bundle(
        manifest: &BundleManifest,
        weights: &[u8],
        device: &Device,
    ) -> Result<Self, CoreError> {
        let model = model_from_bytes(&manifest.config, weights, device)?;
        let mut p = Self::new(
            manifest.config.clone(),
            model,
            manifest.scaler.clone(),
            manifest.temperature,
            device,
        );
        p.candidate_prior = manifest.candidate_prior();
        p.suggest_threshold = manifest.suggest_threshold;
        p.area_rules = manifest.area_rules.clone();
        Ok(p)
    }

    /// The rule of the trained region whose area holds `lat`/`lon`, if it has one of its own.
    pub fn area_rule(&self, lat: f64, lon: f64) -> Option<&AreaRule> {
        self.area_rules.get(&self.scaler.area_of(lat, lon)?.region)
    }

    /// A prediction at a suggestion candidate at `lat`/`lon` found for `reasons` (its
    /// `+`-joined kinds): under that kind's prior ([`CandidatePrior::for_reasons`],
    /// [`Prediction::with_prior`]) of the region there ([`Predictor::area_rule`]), else of the
    /// bundle's overall prior; as it is when the bundle has none.
    pub fn at_candidate(&self, p: Prediction, reasons: &str, lat: f64, lon: f64) -> Prediction {
        let prior =
            self.area_rule(lat, lon).map(|r| &r.candidate_prior).or(self.candidate_prior.as_ref());
        match prior {
            Some(prior) => p.with_prior(&prior.for_reasons(reasons)),
            None => p,
        }
    }

    /// The threshold a suggestion's confidence must reach outside every region with a rule of
    /// its own, unless the user sets one: the bundle's chosen one, else
    /// [`DEFAULT_SUGGEST_THRESHOLD`].
    pub fn default_threshold(&self) -> f32 {
        suggest::threshold_or_default(None, self.suggest_threshold)
    }

    /// The threshold a suggestion at `lat`/`lon` must reach: `user`'s when set, else the
    /// region's own there ([`Predictor::area_rule`]), else [`Predictor::default_threshold`].
    pub fn threshold_at(&self, lat: f64, lon: f64, user: Option<f32>) -> f32 {
        let own = self.area_rule(lat, lon).map(|r| r.suggest_threshold);
        suggest::threshold_at_place(user, own, self.suggest_threshold)
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The window of map pixels the model sees around a point of `source`'s tiles.
    pub fn window(&self, source: &TileSourceSpec, lat: f64, lon: f64) -> Result<Window, CoreError> {
        Window::centered(lat, lon, source.zoom(), self.config.image_size)
    }

    /// The model input for an image (any size; resized to the model's side) and its metadata.
    pub fn input(
        &self,
        img: &RgbImage,
        lat: f64,
        lon: f64,
        source: &str,
    ) -> Result<ModelInput, CoreError> {
        ModelInput::from_rgb_sized(
            img,
            self.config.image_size,
            lat,
            lon,
            source,
            &self.scaler,
            &self.config.sources,
        )
    }

    /// Logits `[n, classes]` for `n` inputs run as one batch, through Burn.
    fn batch_logits(&self, inputs: &[ModelInput]) -> Result<Tensor<2>, CoreError> {
        let (images, coords, sources) = self.batch_tensors(inputs)?;
        Ok(self.model.forward(images, coords, sources))
    }

    /// Logits `[n * classes]` for `n` inputs, read back: the CPU kernels where they run,
    /// else Burn with a synchronous readback (CPU backends).
    fn logit_values(&self, inputs: &[ModelInput]) -> Result<Vec<f32>, CoreError> {
        if let Some(engine) = &self.kernels {
            let (images, coords, sources) = self.batch_values(inputs)?;
            return engine.logits(&images, &coords, &sources, inputs.len());
        }
        self.batch_logits(inputs)?
            .try_into_data()
            .map_err(|e| CoreError::Backend(format!("{e:?}")))?
            .try_to_vec::<f32>()
            .map_err(|e| CoreError::Backend(format!("{e:?}")))
    }

    /// The pooled image features `[n * F]` of `inputs` from the CPU kernels, where this
    /// predictor runs them (`None` elsewhere: Burn's forward, read back asynchronously on a
    /// GPU, is the caller's). Equal to the encoder's Burn features within float rounding.
    pub fn kernel_features(&self, inputs: &[ModelInput]) -> Result<Option<Vec<f32>>, CoreError> {
        let Some(engine) = &self.kernels else { return Ok(None) };
        let (images, _, _) = self.batch_values(inputs)?;
        engine.pooled(&images, inputs.len()).map(Some)
    }

    /// One forward pass of `input`, timed by kind of operation with `clock` (milliseconds: the
    /// worker's `performance.now()`, natively an `Instant`): where the model's time goes, in
    /// the order the kinds first ran, and the whole pass. On the CPU it profiles the kernels
    /// the predictions run on ([`Engine::profile`], one thread); otherwise Burn's forward,
    /// meaningful on a backend that computes eagerly (a GPU's queued work would land on the
    /// last mark).
    pub fn profile(
        &self,
        input: &ModelInput,
        clock: &dyn Fn() -> f64,
    ) -> Result<(Vec<(Op, f64)>, f64), CoreError> {
        if let Some(engine) = &self.kernels {
            let (images, coords, sources) = self.batch_values(std::slice::from_ref(input))?;
            return engine.profile(&images, &coords, &sources, clock);
        }
        let (images, coords, sources) = self.batch_tensors(std::slice::from_ref(input))?;
        let mut t = crate::model::OpTimes::start(clock);
        let encoder = &self.model.encoder;
        let maps = encoder.stages_marked(images, 0..usize::MAX, &mut |op| t.mark(op));
        let features = crate::model::layers::global_avg_pool(maps);
        t.mark(Op::Pool);
        let logits = self.model.forward_features(features, coords, sources);
        logits.try_into_data().map_err(|e| CoreError::Backend(format!("{e:?}")))?;
        t.mark(Op::Head);
        Ok(t.finish())
    }

    /// The batch's tensors: images `[n, 3, s, s]`, coordinates `[n, 2]`, sources `[n, k]`.
    fn batch_tensors(
        &self,
        inputs: &[ModelInput],
    ) -> Result<(Tensor<4>, Tensor<2>, Tensor<2>), CoreError> {
        let (s, k, n) =
            (self.config.image_size as usize, self.config.sources.one_hot_len(), inputs.len());
        let (img, coords, src) = self.batch_values(inputs)?;
        let d = &self.device;
        Ok((
            Tensor::<4>::from_data(TensorData::new(img, [n, 3, s, s]), d),
            Tensor::<2>::from_data(TensorData::new(coords, [n, 2]), d),
            Tensor::<2>::from_data(TensorData::new(src, [n, k]), d),
        ))
    }

    /// The batch's values, flat: images `[n, 3, s, s]`, coordinates `[n, 2]`, sources
    /// `[n, k]`.
    fn batch_values(&self, inputs: &[ModelInput]) -> Result<BatchValues, CoreError> {
        let s = self.config.image_size as usize;
        let k = self.config.sources.one_hot_len();
        let n = inputs.len();
        if n == 0 {
            return Err(CoreError::BadBatch("no inputs".into()));
        }
        let (mut img, mut coords, mut src) =
            (Vec::with_capacity(n * 3 * s * s), Vec::with_capacity(2 * n), Vec::new());
        for input in inputs {
            if input.image.len() != 3 * s * s || input.source.len() != k {
                return Err(CoreError::BadBatch("input does not fit the model".into()));
            }
            img.extend_from_slice(&input.image);
            coords.extend_from_slice(&input.coords);
            src.extend_from_slice(&input.source);
        }
        Ok((img, coords, src))
    }

    /// Runs several inputs as one batch (better throughput on a server); one prediction each,
    /// in order. Synchronous readback (CPU backends).
    pub fn predict_batch(&self, inputs: &[ModelInput]) -> Result<Vec<Prediction>, CoreError> {
        let logits = self.logit_values(inputs)?;
        let mut out = Prediction::batch_from_logits(&logits, &self.config.labels, self.temperature);
        for (p, input) in out.iter_mut().zip(inputs) {
            p.outside_trained_area = input.outside_trained_area;
        }
        Ok(out)
    }

    fn finish(&self, logits: Vec<f32>, input: &ModelInput) -> Result<Prediction, CoreError> {
        let mut p = Prediction::from_logits(&logits, &self.config.labels, self.temperature);
        p.outside_trained_area = input.outside_trained_area;
        Ok(p)
    }

    /// Whether the model reads position at `lat`/`lon` (its trained area, with the margin):
    /// outside it, predictions carry `outside_trained_area`.
    pub fn covers(&self, lat: f64, lon: f64) -> bool {
        self.scaler.covers(lat, lon)
    }

    /// Runs the model and reads the result back synchronously (CPU backends).
    pub fn predict(&self, input: &ModelInput) -> Result<Prediction, CoreError> {
        let logits = self.logit_values(std::slice::from_ref(input))?;
        self.finish(logits, input)
    }

    /// Runs the model and reads the result back asynchronously (required by WebGPU in the
    /// browser, fine everywhere).
    pub async fn predict_async(&self, input: &ModelInput) -> Result<Prediction, CoreError> {
        if self.kernels.is_some() {
            return self.predict(input);
        }
        let logits = self
            .batch_logits(std::slice::from_ref(input))?
            .into_data_async()
            .await
            .map_err(|e| CoreError::Backend(format!("{e:?}")))?
            .try_to_vec::<f32>()
            .map_err(|e| CoreError::Backend(format!("{e:?}")))?;
        self.finish(logits, input)
    }
}

/// Three inputs made the same way on every platform (synthetic map-like images, places in
/// and around central Helsinki, each source): what the parity tests run natively
/// (`model-core/tests/kernels_parity.rs`) and in the browser (`app/tests/web.rs`) against one
/// fixture of probabilities.
pub fn parity_inputs(p: &Predictor) -> Vec<ModelInput> {
    let s = p.config.image_size;
    let sources = ["osm", "user", "unknown"];
    (0..3u32)
        .map(|i| {
            let img = image::RgbImage::from_fn(s, s, |x, y| {
                let road = ((x + 2 * y + 17 * i) % 61) < 9;
                let v = if road { 250 } else { (180 + (x * 7 + y * 3 + 40 * i) % 60) as u8 };
                image::Rgb([v, v.saturating_sub((i * 20) as u8), 200 - (y % 50) as u8])
            });
            let (lat, lon) = (60.165 + f64::from(i) * 0.004, 24.93 + f64::from(i) * 0.01);
            p.input(&img, lat, lon, sources[i as usize]).expect("a valid input")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EncoderKind;

    /// Largest probability difference between two predictors over a few inputs.
    fn worst_gap(a: &Predictor, b: &Predictor, size: u32) -> f32 {
        let mut worst = 0f32;
        for i in 0..3u8 {
            let img = RgbImage::from_fn(size, size, |x, y| {
                image::Rgb([(x * 7 + u32::from(i) * 40) as u8, (y * 3) as u8, 60 + i * 50])
            });
            let input = a.input(&img, 60.16 + f64::from(i) * 0.01, 24.94, "osm").unwrap();
            let (pa, pb) = (a.predict(&input).unwrap(), b.predict(&input).unwrap());
            for ((_, x), (_, y)) in pa.probabilities.0.iter().zip(&pb.probabilities.0) {
                worst = worst.max((x - y).abs());
            }
        }
        worst
    }

    /// A profile times every kind of operation once or more, and its parts add up to the whole
    /// pass: on the CPU the kernels' (the activations and residual adds fused into the
    /// convolutions), and Burn's forward without them (EfficientNet-Lite0 broken down, other
    /// encoders one `Encoder` part).
    #[test]
    fn a_profile_names_every_kind_of_operation_and_adds_up() {
        let start = std::time::Instant::now();
        let clock = move || start.elapsed().as_secs_f64() * 1e3;
        use Op::*;
        for (kind, kernels, burn) in [
            (
                EncoderKind::EfficientNetLite0,
                vec![StemConv, DepthwiseConv, PointwiseConv, Pool, Head],
                vec![StemConv, Activation, DepthwiseConv, PointwiseConv, Residual, Pool, Head],
            ),
            (
                EncoderKind::CustomCnn,
                vec![StemConv, Encoder, PointwiseConv, Pool, Head],
                vec![Encoder, Pool, Head],
            ),
        ] {
            let mut config = ModelConfig::new(kind);
            config.image_size = 32;
            let device = Device::flex();
            let predictor = || {
                let model = config.init(&device).unwrap();
                Predictor::new(config.clone(), model, Scaler::default(), 1.0, &device)
            };
            for (p, want) in [(predictor(), kernels), (predictor().without_kernels(), burn)] {
                let img =
                    RgbImage::from_fn(32, 32, |x, y| image::Rgb([x as u8 * 8, y as u8 * 8, 90]));
                let input = p.input(&img, 60.16, 24.94, "osm").unwrap();
                let (parts, total) = p.profile(&input, &clock).unwrap();
                let mut kinds: Vec<Op> = parts.iter().map(|(o, _)| *o).collect();
                kinds.sort();
                let mut want = want;
                want.sort();
                assert_eq!(kinds, want, "{kind}");
                let sum: f64 = parts.iter().map(|(_, t)| t).sum();
                assert!(parts.iter().all(|(_, t)| *t >= 0.0), "{parts:?}");
                assert!((sum - total).abs() < 1e-6 * total.max(1.0), "{sum} vs {total}");
            }
        }
    }

    /// At a candidate a prediction is reweighed with its kind's prior (blended with the
    /// overall one), with the overall prior for a kind never measured, and left as it is
    /// without a prior; the default threshold is the bundle's, else 0.5.
    #[test]
    fn a_candidate_is_weighed_with_its_kinds_prior_and_the_threshold_defaults() {
        use crate::infer::prior::KindPrior;
        let mut config = ModelConfig::new(EncoderKind::CustomCnn);
        config.labels = crate::LabelVocab::with_none();
        config.image_size = 32;
        let device = Device::flex();
        let model = config.init(&device).unwrap();
        let mut p = Predictor::new(config.clone(), model, Scaler::default(), 1.0, &device);
        let raw = Prediction::from_logits(&[0.5, 0.1, 1.0, 0.0, 0.3, 0.8], &config.labels, 1.0);
        assert_eq!(p.at_candidate(raw.clone(), "entrance", 0.0, 0.0), raw);
        assert_eq!(p.default_threshold(), DEFAULT_SUGGEST_THRESHOLD);
        let overall = vec![0.02, 0.01, 0.05, 0.0, 0.02, 0.9];
        let kind = KindPrior { candidates: 180, prior: vec![0.0, 0.0, 0.6, 0.0, 0.0, 0.4] };
        p.candidate_prior = Some(CandidatePrior {
            overall: overall.clone(),
            by_kind: [("entrance".to_string(), kind)].into(),
        });
        p.suggest_threshold = Some(0.15);
        assert_eq!(p.default_threshold(), 0.15);
        let at_entrance = p.at_candidate(raw.clone(), "entrance", 0.0, 0.0);
        let at_facade = p.at_candidate(raw.clone(), "facade", 0.0, 0.0);
        assert_eq!(at_facade, raw.with_prior(&overall));
        let blended: Vec<f32> = [0.002, 0.001, 0.545, 0.0, 0.002, 0.45].to_vec();
        let want = raw.with_prior(&blended);
        for ((_, a), (_, b)) in at_entrance.probabilities.0.iter().zip(&want.probabilities.0) {
            assert!((a - b).abs() < 1e-5, "{at_entrance:?} vs {want:?}");
        }
        // The entrance kind makes an entrance far likelier than a bare facade point does.
        let entrance = |q: &Prediction| q.probabilities.0[2].1;
        assert!(entrance(&at_entrance) > 5.0 * entrance(&at_facade));
    }

    /// Inside a trained region with a rule of its own, a candidate takes that region's prior
    /// and threshold; in another trained region without one, and far from every region, the
    /// overall rule; a threshold the user sets holds everywhere.
    #[test]
    fn a_region_with_its_own_rule_keeps_it_and_elsewhere_the_overall_rule_holds() {
        let mut config = ModelConfig::new(EncoderKind::CustomCnn);
        config.labels = crate::LabelVocab::with_none();
        config.image_size = 32;
        let device = Device::flex();
        let model = config.init(&device).unwrap();
        let (helsinki, andorra) = ([60.17, 24.94], [42.51, 1.52]);
        let near = |c: [f64; 2], d: f64| [c[0] + d, c[1] - d];
        let points: Vec<(&str, [f64; 2])> = [0.0, 0.001, 0.002]
            .iter()
            .flat_map(|&d| [("helsinki", near(helsinki, d)), ("andorra", near(andorra, d))])
            .collect();
        let scaler = Scaler::fit_regions(&points).unwrap();
        let mut p = Predictor::new(config.clone(), model, scaler, 1.0, &device);
        let overall = vec![0.02, 0.01, 0.05, 0.0, 0.02, 0.9];
        let own = vec![0.0, 0.0, 0.0, 0.3, 0.0, 0.7];
        p.candidate_prior = Some(CandidatePrior { overall: overall.clone(), ..Default::default() });
        p.suggest_threshold = Some(0.05);
        p.area_rules.insert(
            "helsinki".into(),
            AreaRule {
                candidate_prior: CandidatePrior { overall: own.clone(), ..Default::default() },
                suggest_threshold: 0.3,
            },
        );
        let raw = Prediction::from_logits(&[0.5, 0.1, 1.0, 0.0, 0.3, 0.8], &config.labels, 1.0);
        let at = |[lat, lon]: [f64; 2]| p.at_candidate(raw.clone(), "kerb", lat, lon);
        assert_eq!(at(near(helsinki, 0.001)), raw.with_prior(&own));
        assert_eq!(at(near(andorra, 0.001)), raw.with_prior(&overall));
        assert_eq!(at([-33.9, 18.4]), raw.with_prior(&overall));
        let [lat, lon] = near(helsinki, 0.001);
        assert_eq!(p.threshold_at(lat, lon, None), 0.3);
        assert_eq!(p.threshold_at(lat, lon, Some(0.6)), 0.6);
        assert_eq!(p.threshold_at(andorra[0], andorra[1], None), 0.05);
        assert_eq!(p.threshold_at(-33.9, 18.4, None), 0.05);
    }

    /// A predictor is the inference form (norms folded into convolutions), and predicts what
    /// the model as trained does, for every encoder: each encoder's norms first get real
    /// statistics from training-mode passes.
    #[test]
    fn the_folded_inference_form_predicts_what_the_trained_model_does() {
        for kind in EncoderKind::ALL {
            let train = Device::flex().autodiff();
            let mut config = ModelConfig::new(kind);
            config.image_size = 64;
            let model = config.init(&train).unwrap();
            for seed in 0..2 {
                let x = Tensor::<4>::random(
                    [2, 3, 64, 64],
                    burn::tensor::Distribution::Normal(0.3 + seed as f64, 1.5),
                    &train,
                );
                let _ = model.encoder.features(x);
            }
            let device = Device::flex();
            let trained = model.valid();
            let folded =
                Predictor::new(config.clone(), trained.clone(), Scaler::default(), 1.0, &device);
            let mut unfolded = folded.clone().without_kernels();
            unfolded.model = trained;
            let gap = worst_gap(&folded, &unfolded, 64);
            assert!(gap < 1e-4, "{}: folded and trained models differ by {gap}", kind.name());
            // Folding did happen: every folded convolution gained a bias.
            assert!(
                folded.model.num_params() > unfolded.model.num_params(),
                "{}: nothing was folded",
                kind.name()
            );
        }
    }

    /// The shipped bundle, folded, predicts what it does as trained.
    #[test]
    fn the_shipped_bundle_folded_predicts_what_it_does_as_trained() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/model");
        let manifest: BundleManifest =
            serde_json::from_str(&std::fs::read_to_string(dir.join("model.json")).unwrap())
                .unwrap();
        let weights = std::fs::read(dir.join("weights.bpk")).unwrap();
        let device = Device::flex();
        let folded = Predictor::from_bundle(&manifest, &weights, &device).unwrap();
        let mut unfolded = folded.clone().without_kernels();
        unfolded.model = model_from_bytes(&manifest.config, &weights, &device).unwrap().valid();
        let gap = worst_gap(&folded, &unfolded, manifest.config.image_size);
        assert!(gap < 1e-4, "folded and trained shipped model differ by {gap}");
    }

    #[test]
    fn a_batch_predicts_what_single_inputs_do() {
        let device = Device::flex();
        let mut config = ModelConfig::new(EncoderKind::CustomCnn);
        config.image_size = 32;
        let model = config.init(&device).unwrap();
        let p = Predictor::new(config, model, Scaler::default(), 1.0, &device);
        let inputs: Vec<ModelInput> = (0..3u8)
            .map(|i| {
                let img = RgbImage::from_fn(40, 40, |x, y| {
                    image::Rgb([(x * 6) as u8, (y * 6) as u8, i * 80])
                });
                p.input(&img, 60.0 + f64::from(i), 24.9, ["osm", "user", "?"][i as usize]).unwrap()
            })
            .collect();
        let batch = p.predict_batch(&inputs).unwrap();
        assert_eq!(batch.len(), 3);
        for (input, b) in inputs.iter().zip(&batch) {
            let one = p.predict(input).unwrap();
            assert_eq!(one.label, b.label);
            for ((_, x), (_, y)) in one.probabilities.0.iter().zip(&b.probabilities.0) {
                assert!((x - y).abs() < 1e-5, "{x} vs {y}");
            }
        }
        assert!(p.predict_batch(&[]).is_err());
    }
}
