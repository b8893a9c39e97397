//! The model's own CPU inference kernels: the folded, frozen model run without Burn, for
//! every CPU predictor (CLI, API, `suggest`, the page's wasm fallback). Training stays on
//! Burn, and so does the GPU path; Burn's forward pass is the reference the tests hold these
//! kernels to.
//!
//! [`Engine::new`] copies a model's weights out once (batch norms folded, layouts chosen for
//! the kernels: channels last, GEMM right-hand sides `K x N`); [`Engine::logits`] runs a
//! batch. Natively the cores share one image's layers at batch 1 and the images of a larger
//! batch; in wasm everything runs on the one thread, with SIMD128. What wasm code may not do
//! (threads, blocking) it does not: the only threads are rayon's, and only natively.

mod build;
pub mod isa;
mod ops;
#[doc(hidden)]
pub use ops::check_against_definitions;

use std::cell::Cell;

pub use build::Node;
pub use isa::Isa;
use ops::{Act, Ctx, Dense, Map, Scratch};

use crate::model::Op;
use crate::{AccessModel, CoreError, ModelConfig};

/// A model compiled for the CPU kernels.
#[derive(Clone)]
pub struct Engine {
    encoder: Vec<Node>,
    features: usize,
    meta: Dense,
    fusion: Dense,
    head: Dense,
    image_size: usize,
    sources: usize,
    isa: Isa,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("layers", &self.encoder.len())
            .field("features", &self.features)
            .field("isa", &self.isa)
            .finish_non_exhaustive()
    }
}

thread_local! {
    /// Each thread's maps, kept between runs (taken out while in use).
    static SCRATCH: Cell<Scratch> = Cell::new(Scratch::default());
}

impl Engine {
    /// Compiles `model` (trained or folded, in inference mode) for the kernels, with the
    /// widest instruction set this machine runs.
    pub fn new(config: &ModelConfig, model: &AccessModel) -> Result<Self, CoreError> {
        let encoder = build::encoder(&model.encoder)?;
        let meta = build::dense(&model.meta_fc, Some(&model.meta_bn))?;
        let fusion = build::dense(&model.fusion, None)?;
        let head = build::dense(&model.head, None)?;
        let features = config.encoder.features();
        let sources = config.sources.one_hot_len();
        if meta.input != 2 || fusion.input != features + meta.output + sources {
            return Err(CoreError::BadBatch("the model's layers do not fit its config".into()));
        }
        Ok(Self {
            encoder,
            features,
            meta,
            fusion,
            head,
            image_size: config.image_size as usize,
            sources,
            isa: Isa::detect(),
        })
    }

    /// The same engine with its inner loops on `isa` (the machine must run it).
    pub fn with_isa(mut self, isa: Isa) -> Result<Self, CoreError> {
        if !isa.available() {
            return Err(CoreError::Backend(format!("this machine does not run {}", isa.name())));
        }
        self.isa = isa;
        Ok(self)
    }

    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Logits `[n, classes]` for `n` images (`[3, s, s]` each, channels first, as
    /// `ModelInput` holds them), standardised coordinates `[n, 2]` and one-hot sources
    /// `[n, k]`.
    pub fn logits(
        &self,
        images: &[f32],
        coords: &[f32],
        sources: &[f32],
        n: usize,
    ) -> Result<Vec<f32>, CoreError> {
        let s = self.image_size;
        if n == 0
            || images.len() != n * 3 * s * s
            || coords.len() != n * 2
            || sources.len() != n * self.sources
        {
            return Err(CoreError::BadBatch("input does not fit the model".into()));
        }
        Ok(self.per_image(n, self.head.output, |i, ctx, logits| {
            let image = &images[i * 3 * s * s..(i + 1) * 3 * s * s];
            let features = self.features(image, ctx);
            self.tail(
                &features,
                &coords[i * 2..i * 2 + 2],
                &sources[i * self.sources..(i + 1) * self.sources],
                logits,
            );
        }))
    }

    /// `[n, width]` from `one(i, ctx, row)` per image: natively the images spread over the
    /// threads (each on one), else one after another, each on all threads.
    fn per_image(
        &self,
        n: usize,
        width: usize,
        one: impl Fn(usize, Ctx, &mut [f32]) + Sync,
    ) -> Vec<f32> {
        let mut out = vec![0.0; n * width];
        #[cfg(not(target_arch = "wasm32"))]
        if n > 1 && rayon::current_num_threads() > 1 {
            use rayon::prelude::*;
            let ctx = Ctx { isa: self.isa, parallel: false };
            out.par_chunks_mut(width).enumerate().for_each(|(i, row)| one(i, ctx, row));
            return out;
        }
        let ctx = Ctx { isa: self.isa, parallel: true };
        let each = |out: &mut [f32]| {
            for (i, row) in out.chunks_mut(width).enumerate() {
                one(i, ctx, row);
            }
        };
        // Natively, from outside the thread pool, the whole pass runs inside it: each layer's
        // blocks are then shared between its threads directly, where from outside every layer
        // would be a round trip to the pool and back (waking the caller between layers).
        #[cfg(not(target_arch = "wasm32"))]
        if rayon::current_num_threads() > 1 && rayon::current_thread_index().is_none() {
            rayon::scope(|_| each(&mut out));
            return out;
        }
        each(&mut out);
        out
    }

    /// Pooled image features `[n, F]` (what the fusion reads) of `n` images (`[3, s, s]`
    /// each, channels first): what a fine-tune caches, without the metadata branch and head.
    pub fn pooled(&self, images: &[f32], n: usize) -> Result<Vec<f32>, CoreError> {
        let s = self.image_size;
        if n == 0 || images.len() != n * 3 * s * s {
            return Err(CoreError::BadBatch("input does not fit the model".into()));
        }
        Ok(self.per_image(n, self.features, |i, ctx, row| {
            row.copy_from_slice(&self.features(&images[i * 3 * s * s..(i + 1) * 3 * s * s], ctx))
        }))
    }

    /// One forward pass of one example (`image` `[3, s, s]`, `coords` `[2]`, `sources` `[k]`)
    /// on one thread, timed by kind of operation with `clock` (milliseconds): the time of each
    /// kind, in the order the kinds first ran, and of the whole pass. A convolution's bias,
    /// activation and residual add run in its epilogue, so they count as the convolution's.
    pub fn profile(
        &self,
        image: &[f32],
        coords: &[f32],
        sources: &[f32],
        clock: &dyn Fn() -> f64,
    ) -> Result<(Vec<(Op, f64)>, f64), CoreError> {
        let s = self.image_size;
        if image.len() != 3 * s * s || coords.len() != 2 || sources.len() != self.sources {
            return Err(CoreError::BadBatch("input does not fit the model".into()));
        }
        let mut t = crate::model::OpTimes::start(clock);
        let ctx = Ctx { isa: self.isa, parallel: false };
        let features = self.features_marked(image, ctx, &mut |op| t.mark(op));
        let mut logits = vec![0.0; self.head.output];
        self.tail(&features, coords, sources, &mut logits);
        t.mark(Op::Head);
        Ok(t.finish())
    }

    /// Pooled image features of one image.
    fn features(&self, image: &[f32], ctx: Ctx) -> Vec<f32> {
        self.features_marked(image, ctx, &mut |_| {})
    }

    /// [`Self::features`], calling `mark` after each operation with its kind.
    fn features_marked(&self, image: &[f32], ctx: Ctx, mark: &mut dyn FnMut(Op)) -> Vec<f32> {
        let mut scratch = SCRATCH.with(Cell::take);
        let s = self.image_size;
        // Channels first to channels last.
        let mut x = scratch.map(s, s, 3);
        for (p, px) in x.data_mut().chunks_exact_mut(3).enumerate() {
            for (c, v) in px.iter_mut().enumerate() {
                *v = image[c * s * s + p];
            }
        }
        let x = run_all(&self.encoder, x, ctx, &mut scratch, mark);
        let mut features = vec![0.0; x.c];
        ops::global_avg_pool(&x, &mut features);
        mark(Op::Pool);
        scratch.give(x);
        SCRATCH.with(|c| c.set(scratch));
        features
    }

    /// The metadata branch, the fusion and the head for one example.
    fn tail(&self, features: &[f32], coords: &[f32], sources: &[f32], logits: &mut [f32]) {
        let mut fused = Vec::with_capacity(self.fusion.input);
        fused.extend_from_slice(features);
        let mut meta = vec![0.0; self.meta.output];
        self.meta.forward(coords, Act::Relu, &mut meta);
        fused.extend_from_slice(&meta);
        fused.extend_from_slice(sources);
        let mut hidden = vec![0.0; self.fusion.output];
        self.fusion.forward(&fused, Act::Relu, &mut hidden);
        self.head.forward(&hidden, Act::None, logits);
    }
}

/// Runs `nodes` in order from `x` (which is given back to `scratch`), calling `mark` after
/// each operation.
fn run_all(
    nodes: &[Node],
    x: Map,
    ctx: Ctx,
    scratch: &mut Scratch,
    mark: &mut dyn FnMut(Op),
) -> Map {
    let mut cur = x;
    for n in nodes {
        let next = run(n, &cur, None, ctx, scratch, mark);
        scratch.give(std::mem::replace(&mut cur, next));
    }
    cur
}

/// The kind of operation a convolution is, as a profile sums them: depthwise, 1x1, or a
/// larger dense one (the stem's).
fn conv_op(conv: &ops::Conv) -> Op {
    if conv.depthwise {
        Op::DepthwiseConv
    } else if conv.k == 1 {
        Op::PointwiseConv
    } else {
        Op::StemConv
    }
}

/// One node on `x`; `residual` is added (and `act` replaces the node's own activation) in a
/// convolution's epilogue.
fn run(
    node: &Node,
    x: &Map,
    residual: Option<(&Map, Act)>,
    ctx: Ctx,
    scratch: &mut Scratch,
    mark: &mut dyn FnMut(Op),
) -> Map {
    match node {
        Node::Conv(conv, act) => {
            let (res, act) = match residual {
                Some((r, a)) => (Some(r), a),
                None => (None, *act),
            };
            let out = if conv.depthwise {
                debug_assert!(res.is_none());
                ops::conv_depthwise(x, conv, act, ctx, scratch)
            } else {
                ops::conv_dense(x, conv, act, res, ctx, scratch)
            };
            mark(conv_op(conv));
            out
        }
        Node::MaxPool { k, stride, pad } => {
            let out = ops::max_pool(x, *k, *stride, *pad, scratch);
            mark(Op::Encoder);
            out
        }
        Node::SqueezeExcite { fc1, fc2 } => {
            let out = ops::squeeze_excite(x, fc1, fc2, scratch);
            mark(Op::Encoder);
            out
        }
        Node::Residual { body, shortcut, act } => {
            let short = shortcut.as_ref().map(|c| {
                let out = ops::conv_dense(x, c, Act::None, None, ctx, scratch);
                mark(conv_op(c));
                out
            });
            let (last, init) = body.split_last().expect("a residual block has layers");
            let mut cur: Option<Map> = None;
            for n in init {
                let next = run(n, cur.as_ref().unwrap_or(x), None, ctx, scratch, mark);
                if let Some(done) = cur.replace(next) {
                    scratch.give(done);
                }
            }
            let out = run(
                last,
                cur.as_ref().unwrap_or(x),
                Some((short.as_ref().unwrap_or(x), *act)),
                ctx,
                scratch,
                mark,
            );
            for m in [cur, short].into_iter().flatten() {
                scratch.give(m);
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Module;
    use burn::tensor::{Device, Distribution, Tensor};

    use super::*;
    use crate::EncoderKind;

    fn softmax(logits: &[f32]) -> Vec<f32> {
        let max = logits.iter().cloned().fold(f32::MIN, f32::max);
        let e: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
        let sum: f32 = e.iter().sum();
        e.iter().map(|v| v / sum).collect()
    }

    /// A model of `kind` whose batch norms have real statistics (training-mode passes), in
    /// inference form, and a batch of `n` inputs for it.
    fn model_and_batch(
        kind: EncoderKind,
        size: u32,
        n: usize,
    ) -> (ModelConfig, AccessModel, [Vec<f32>; 3]) {
        let train = Device::flex().autodiff();
        let mut config = ModelConfig::new(kind);
        config.image_size = size;
        let model = config.init(&train).unwrap();
        let s = size as usize;
        let x = Tensor::<4>::random([2, 3, s, s], Distribution::Normal(0.3, 1.5), &train);
        let _ = model.encoder.features(x);
        let device = Device::flex();
        let images = Tensor::<4>::random([n, 3, s, s], Distribution::Normal(0.0, 1.0), &device);
        let coords = Tensor::<2>::random([n, 2], Distribution::Normal(0.0, 1.0), &device);
        let k = config.sources.one_hot_len();
        let sources: Vec<f32> = (0..n * k).map(|i| ((i / k) % k == i % k) as u8 as f32).collect();
        let batch = [build::values(images).unwrap(), build::values(coords).unwrap(), sources];
        (config, model.valid(), batch)
    }

    /// Burn's probabilities for the batch, from the model as trained (norms not folded).
    fn burn_probabilities(
        config: &ModelConfig,
        model: &AccessModel,
        b: &[Vec<f32>; 3],
    ) -> Vec<Vec<f32>> {
        let d = Device::flex();
        let (s, k) = (config.image_size as usize, config.sources.one_hot_len());
        let n = b[1].len() / 2;
        let logits = model.forward(
            Tensor::<4>::from_data(burn::tensor::TensorData::new(b[0].clone(), [n, 3, s, s]), &d),
            Tensor::<2>::from_data(burn::tensor::TensorData::new(b[1].clone(), [n, 2]), &d),
            Tensor::<2>::from_data(burn::tensor::TensorData::new(b[2].clone(), [n, k]), &d),
        );
        let logits = build::values(logits).unwrap();
        logits.chunks(config.num_classes()).map(softmax).collect()
    }

    fn worst(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
        a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    /// For every encoder and batches of 1, 3 and 16, the kernels' probabilities are Burn's
    /// within 1e-4 (the folding, the layouts, the padding, the residuals, the epilogues).
    #[test]
    fn the_kernels_predict_what_burn_does_for_every_encoder_and_batch() {
        for kind in EncoderKind::ALL {
            for n in [1, 3, 16] {
                let (config, model, batch) = model_and_batch(kind, 64, n);
                let engine = Engine::new(&config, &model).unwrap();
                let logits = engine.logits(&batch[0], &batch[1], &batch[2], n).unwrap();
                let ours: Vec<Vec<f32>> =
                    logits.chunks(config.num_classes()).map(softmax).collect();
                let gap = worst(&ours, &burn_probabilities(&config, &model, &batch));
                assert!(gap < 1e-4, "{kind} batch {n}: probabilities differ by {gap}");
            }
        }
    }

    /// Every instruction set this machine has gives the portable path's logits.
    #[test]
    fn each_simd_path_computes_what_the_portable_one_does() {
        for kind in [EncoderKind::EfficientNetLite0, EncoderKind::MobileNetV3Small] {
            let (config, model, batch) = model_and_batch(kind, 64, 2);
            let engine = Engine::new(&config, &model).unwrap();
            let run = |isa: Isa| {
                let e = engine.clone().with_isa(isa).unwrap();
                e.logits(&batch[0], &batch[1], &batch[2], 2).unwrap()
            };
            let portable = run(Isa::Portable);
            for isa in Isa::supported() {
                let gap = worst(&[run(isa)], std::slice::from_ref(&portable));
                assert!(gap <= 1e-6, "{kind}: {} differs from portable by {gap}", isa.name());
            }
        }
        assert_eq!(Isa::supported()[0], Isa::Portable);
        assert!(Isa::detect().available());
    }

    /// The profile marks each operation by its kind: EfficientNet-Lite0's stem, depthwise and
    /// 1x1 convolutions, the pool and the head (activations and residual adds run in the
    /// convolutions' epilogues, so they have no time of their own), and the kinds' times add
    /// up to the pass's.
    #[test]
    fn the_profile_times_each_kind_of_operation_and_adds_up() {
        let (config, model, batch) = model_and_batch(EncoderKind::EfficientNetLite0, 64, 1);
        let engine = Engine::new(&config, &model).unwrap();
        // A clock that ticks once per reading: each kind's time is how often it was marked.
        let ticks = Cell::new(0.0);
        let clock = || {
            ticks.set(ticks.get() + 1.0);
            ticks.get()
        };
        let (times, total) = engine.profile(&batch[0], &batch[1], &batch[2], &clock).unwrap();
        let kinds: Vec<Op> = times.iter().map(|(op, _)| *op).collect();
        assert_eq!(
            kinds,
            [Op::StemConv, Op::DepthwiseConv, Op::PointwiseConv, Op::Pool, Op::Head],
            "{times:?}"
        );
        let sum: f64 = times.iter().map(|(_, t)| t).sum();
        assert_eq!(sum, total);
        // 16 MBConv blocks: a depthwise convolution each; a projection each, an expansion in
        // all but the first, and the head's 1x1 convolution.
        let count = |op: Op| times.iter().find(|(o, _)| *o == op).unwrap().1;
        assert_eq!((count(Op::DepthwiseConv), count(Op::PointwiseConv)), (16.0, 32.0));
        assert!(engine.profile(&batch[0][1..], &batch[1], &batch[2], &clock).is_err());
    }

    /// A batch that does not fit the model is refused, not read past its end.
    #[test]
    fn a_batch_that_does_not_fit_is_refused() {
        let (config, model, batch) = model_and_batch(EncoderKind::CustomCnn, 32, 1);
        let engine = Engine::new(&config, &model).unwrap();
        assert!(engine.logits(&batch[0], &batch[1], &batch[2], 2).is_err());
        assert!(engine.logits(&batch[0][1..], &batch[1], &batch[2], 1).is_err());
        assert!(engine.logits(&[], &[], &[], 0).is_err());
    }
}
