//! Mixed-precision training (f16 / bf16 compute, f32 master weights) on the CPU backend, which
//! computes in both dtypes: the same code runs on wgpu and CUDA.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{DType, Device, FloatDType, Tensor};
use model_core::model::ImageEncoder;
use model_core::train::precision::{self, Precision};
use model_core::train::{Batch, StepConfig, Trainer};
use model_core::{AccessModel, EncoderKind, ModelConfig};

fn batch(cfg: &ModelConfig, b: usize, size: usize, device: &Device, seed: u64) -> Batch {
    Batch::synthetic(cfg, b, size, seed, device)
}

fn model(device: &Device) -> (ModelConfig, AccessModel) {
    let mut cfg = ModelConfig::new(EncoderKind::CustomCnn);
    cfg.dropout = 0.0;
    device.seed(11);
    let m = cfg.init(device).unwrap();
    (cfg, m)
}

/// Every float tensor of a module (weights and running statistics), flattened, with its dtype.
fn tensors(m: &AccessModel) -> Vec<(DType, Vec<f32>)> {
    #[derive(Default)]
    struct All(Vec<(DType, Vec<f32>)>);
    impl ModuleVisitor for All {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let t = p.val();
            let dtype = t.dtype();
            let v = t.cast(FloatDType::F32).into_data().try_to_vec::<f32>().unwrap();
            self.0.push((dtype, v));
        }
    }
    let mut a = All::default();
    m.valid().visit(&mut a);
    a.0
}

fn vec_of<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// The first encoder stage's convolution weight and batch-norm scale.
fn stage0_weights(m: &AccessModel) -> (Vec<f32>, Vec<f32>) {
    let ImageEncoder::CustomCnn(cnn) = &m.encoder else { unreachable!() };
    (vec_of(cnn.stages[0].conv.weight.val()), vec_of(cnn.stages[0].bn.gamma.val()))
}

fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    let num: f32 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>().sqrt();
    let den: f32 = b.iter().map(|y| y * y).sum::<f32>().sqrt();
    num / den.max(1e-12)
}

#[test]
fn the_cpu_backend_computes_in_both_half_dtypes() {
    let d = Device::flex();
    assert!(Precision::F16.supported_on(&d) && Precision::Bf16.supported_on(&d));
}

#[test]
fn half_precision_gradients_match_f32_ones() {
    let device = Device::flex().autodiff();
    let (cfg, m) = model(&device);
    let b = batch(&cfg, 8, 32, &device, 3);
    let trainer = Trainer::new(m.clone(), StepConfig::default(), &device);
    let (loss, _) = trainer.loss_and_logits(&m, &b);
    let full = GradientsParams::from_grads(loss.backward(), &m);

    // The CPU backend accumulates in the half dtype, so error grows with depth: tight at the
    // head, looser at the first convolution (five batch-normed stages down). A missing or
    // wrong unscale, or gradients of the wrong parameters, are off by orders of magnitude.
    for (dtype, head_tol, conv_tol) in
        [(FloatDType::F16, 0.01, 0.15), (FloatDType::BF16, 0.05, 0.4)]
    {
        let half = precision::half_copy(&m, dtype);
        let logits = half
            .forward(
                b.images.clone().cast(dtype),
                b.coords.clone().cast(dtype),
                b.sources.clone().cast(dtype),
            )
            .cast(FloatDType::F32);
        let scale = 1024.0;
        let loss = trainer_loss(&trainer, logits, &b).mul_scalar(scale);
        let hg = GradientsParams::from_grads(loss.backward(), &half);
        let (g, finite) = precision::unscale_gradients(hg, &m, scale);
        assert!(finite, "{dtype:?}");
        assert_eq!(g.len(), full.len(), "{dtype:?}: one gradient per trainable parameter");
        // Compare the head's and the first convolution's gradients with f32's.
        let head = m.head.weight.id;
        let a = g.get::<2>(head).unwrap();
        assert_eq!(a.dtype(), DType::F32, "master gradients are f32");
        let a = a.into_data().try_to_vec::<f32>().unwrap();
        let e = full.get::<2>(head).unwrap().into_data().try_to_vec::<f32>().unwrap();
        let r = rel_diff(&a, &e);
        assert!(r < head_tol, "{dtype:?} head gradient differs by {r} (relative)");
        let ImageEncoder::CustomCnn(cnn) = &m.encoder else { unreachable!() };
        let conv = cnn.stages[0].conv.weight.id;
        let a = g.get::<4>(conv).unwrap().into_data().try_to_vec::<f32>().unwrap();
        let e = full.get::<4>(conv).unwrap().into_data().try_to_vec::<f32>().unwrap();
        let r = rel_diff(&a, &e);
        assert!(r < conv_tol, "{dtype:?} first conv gradient differs by {r} (relative)");
    }
}

fn trainer_loss(t: &Trainer, logits: Tensor<2>, b: &Batch) -> Tensor<1> {
    // The trainer's loss (class-weighted cross-entropy) on given logits.
    use burn::nn::loss::CrossEntropyLossConfig;
    let _ = t;
    CrossEntropyLossConfig::new().init(&logits.device()).forward(logits, b.targets.clone())
}

#[test]
fn f16_and_bf16_training_learn_and_keep_an_f32_master() {
    for precision in [Precision::F16, Precision::Bf16] {
        let device = Device::flex().autodiff();
        let (cfg, m) = model(&device);
        let m = m.freeze_encoder_stages(1);
        let before = tensors(&m);
        let frozen_before = stage0_weights(&m);
        let head_before = vec_of(m.head.weight.val());
        let b = batch(&cfg, 16, 32, &device, 7);
        let step = StepConfig { learning_rate: 3e-3, precision, ..StepConfig::default() };
        let mut t = Trainer::new(m, step, &device);
        let first = t.step(&b);
        for _ in 0..40 {
            t.step(&b);
        }
        t.config.learning_rate = 1e-4;
        let mut last = first;
        for _ in 0..20 {
            last = t.step(&b);
        }
        assert!(last.loss < first.loss / 5.0, "{precision}: loss {} -> {}", first.loss, last.loss);
        let eval = t.evaluate(&b);
        assert!(eval.correct >= 15, "{precision}: {}/16 right in f32 inference", eval.correct);
        let scaler = t.scaler.expect("mixed precision has a scaler");
        assert!(scaler.skipped_steps <= 3, "{precision}: {} steps skipped", scaler.skipped_steps);

        let after = tensors(&t.model);
        assert_eq!(before.len(), after.len());
        assert!(after.iter().all(|(d, _)| *d == DType::F32), "{precision}: the master stays f32");
        // The frozen first stage is bit for bit what it was (no round trip through the half
        // dtype); trained weights moved.
        assert_eq!(stage0_weights(&t.model), frozen_before, "{precision}: frozen weights changed");
        assert_ne!(vec_of(t.model.head.weight.val()), head_before);
        // The running statistics came back from the half copies into the master.
        let ImageEncoder::CustomCnn(cnn) = &t.model.encoder else { unreachable!() };
        let rm = cnn.stages[2].bn.running_mean.value().into_data().try_to_vec::<f32>().unwrap();
        assert!(rm.iter().any(|x| *x != 0.0), "{precision}: running mean never updated");
    }
}

#[test]
fn an_overflowing_f16_step_is_skipped_and_the_scale_halves() {
    let device = Device::flex().autodiff();
    let (cfg, m) = model(&device);
    let b = batch(&cfg, 4, 32, &device, 9);
    let step = StepConfig { precision: Precision::F16, ..StepConfig::default() };
    let mut t = Trainer::new(m, step, &device);
    let head = vec_of(t.model.head.weight.val());
    let conv = stage0_weights(&t.model);
    // Scaled by 1e30, the f16 gradients overflow.
    t.scaler.as_mut().unwrap().scale = 1e30;
    let out = t.step(&b);
    assert!(out.skipped);
    let s = t.scaler.unwrap();
    assert_eq!(s.scale, 5e29);
    assert_eq!(s.skipped_steps, 1);
    assert_eq!(vec_of(t.model.head.weight.val()), head, "a skipped step changed the head");
    assert_eq!(stage0_weights(&t.model), conv, "a skipped step changed the encoder");
    // At the default scale the next step goes through.
    t.scaler.as_mut().unwrap().scale = precision::LossScaler::INITIAL_SCALE;
    assert!(!t.step(&b).skipped);
}
