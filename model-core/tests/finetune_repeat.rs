//! The page's fine-tune repeats exactly: dropout is on while the head trains, and each epoch
//! seeds the backend's generator, so the same epochs on the same examples give the same losses
//! and the same weights, whatever drew from the generator before.
//!
//! A file of its own: Burn `flex`'s generator is one per process, and tests running beside
//! this one in the same binary would draw from it between its steps.

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use model_core::model::persist::weights_to_bytes;
use model_core::rng::Rng;
use model_core::train::finetune::{FeatureExample, FineTuneConfig, HeadTrainer, Target};
use model_core::{EncoderKind, ModelConfig};

#[test]
fn head_training_repeats_exactly() {
    let device = Device::flex();
    let mut config = ModelConfig::new(EncoderKind::CustomCnn);
    config.image_size = 32;
    let model = config.init(&device).unwrap().valid();
    assert!(model.head_dropout.prob > 0.0, "dropout on: the case this test is for");
    let mut rng = Rng::new(1);
    let examples: Vec<FeatureExample> = (0..32)
        .map(|i| FeatureExample {
            features: (0..EncoderKind::CustomCnn.features())
                .map(|j| if j / 16 == i % 3 { 2.0 } else { 0.0 } + rng.uniform(-0.5, 0.5) as f32)
                .collect(),
            map: None,
            coords: [rng.uniform(-1.0, 1.0) as f32, rng.uniform(-1.0, 1.0) as f32],
            source: vec![1.0, 0.0, 0.0, 0.0],
            target: Target::Is(i % 3),
        })
        .collect();
    let run = |draws: usize| {
        // Other work drew from the generator before (the page predicts between fine-tunes).
        let _ = Tensor::<1>::random([draws], Distribution::Default, &device);
        let weights = [1.0, 1.0, 1.0, 0.0, 0.0];
        let mut t = HeadTrainer::new(model.clone(), &weights, FineTuneConfig::default(), &device);
        let losses: Vec<f32> = (0..3).map(|e| t.epoch(&examples, e).unwrap()).collect();
        (losses, weights_to_bytes(&t.into_model()).unwrap())
    };
    let (a, b) = (run(7), run(13));
    assert_eq!(a.0, b.0, "losses");
    assert!(a.1 == b.1, "the trained weights differ");
}
