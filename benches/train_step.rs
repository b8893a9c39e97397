//! Training-throughput benchmark (run by `cargo xtask bench`, never as a test): full train
//! steps (forward, backward, AdamW) of the whole model at batch 16, 224x224, on the CPU
//! backend. Prints one JSON object per encoder.
//!
//! `cargo bench --bench train_step -- [--steps N] [--size S] [--encoders a,b]
//! [--precision f32|f16|bf16]`

mod util;
use util::arg;

use std::time::Instant;

use burn::tensor::Device;
use model_core::data::preprocess::ModelInput;
use model_core::rng::Rng;
use model_core::train::precision::Precision;
use model_core::train::{Batch, StepConfig, Trainer};
use model_core::{EncoderKind, ModelConfig};

fn main() {
    let steps: usize = arg("--steps", 3);
    let size: usize = arg("--size", 224);
    let batch: usize = arg("--batch", 16);
    let encoders: String = arg("--encoders", "custom_cnn,efficientnet_lite0,resnet18".to_string());
    let precision: Precision = arg("--precision", Precision::F32);
    let device = Device::flex().autodiff();
    for name in encoders.split(',') {
        let kind: EncoderKind = name.parse().expect("known encoder");
        let mut cfg = ModelConfig::new(kind);
        cfg.image_size = size as u32;
        let model = cfg.init(&device).expect("model builds");
        let mut rng = Rng::new(1);
        let inputs: Vec<ModelInput> = (0..batch)
            .map(|i| {
                let mut source = vec![0.0; cfg.sources.one_hot_len()];
                let n = source.len();
                source[i % n] = 1.0;
                ModelInput {
                    image: (0..3 * size * size).map(|_| rng.uniform(-2.0, 2.0) as f32).collect(),
                    coords: [rng.uniform(-1.0, 1.0) as f32, rng.uniform(-1.0, 1.0) as f32],
                    source,
                    outside_trained_area: false,
                }
            })
            .collect();
        let targets: Vec<usize> = (0..batch).map(|i| i % cfg.num_classes()).collect();
        let b = Batch::from_inputs(&inputs, &targets, size, &device).expect("batch");
        let mut trainer =
            Trainer::new(model, StepConfig { precision, ..StepConfig::default() }, &device);
        trainer.step(&b); // warm-up
        let t = Instant::now();
        for _ in 0..steps {
            trainer.step(&b);
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "{{\"bench\":\"train_step\",\"encoder\":\"{name}\",\"batch\":{batch},\"size\":{size},\"steps\":{steps},\"seconds\":{s:.4},\"images_per_s\":{:.3},\"precision\":\"{precision}\"}}",
            (steps * batch) as f64 / s
        );
    }
}
