//! Model-level behaviour: parameter counts against the reference implementations, forward
//! shapes, overfitting, gradient flow, persistence.

use burn::tensor::{Device, Tensor, TensorData};
use model_core::model::persist::{
    config_from_json, config_from_toml, config_to_json, model_from_bytes, weights_to_bytes,
};
use model_core::model::{ImageEncoder, count_parameters};
use model_core::train::{Batch, StepConfig, Trainer};
use model_core::{EncoderKind, ModelConfig};

fn cpu() -> Device {
    Device::flex()
}

/// Parameter counts of the reference implementations, each with its 1000-class classifier:
/// torchvision for ResNet and MobileNetV3, PyPI efficientnet-lite-pytorch 0.1.0 for Lite0.
#[test]
fn imagenet_parameter_counts_match_the_references() {
    let expected = [
        (EncoderKind::ResNet18, 11_689_512),
        (EncoderKind::ResNet34, 21_797_672),
        (EncoderKind::ResNet50, 25_557_032),
        (EncoderKind::MobileNetV3Small, 2_542_856),
        (EncoderKind::EfficientNetLite0, 4_652_008),
    ];
    for (kind, n) in expected {
        let enc = ImageEncoder::new(kind, Some(1000), &cpu());
        assert_eq!(count_parameters(&enc), n, "{kind}");
    }
    let custom = count_parameters(&ImageEncoder::new(EncoderKind::CustomCnn, None, &cpu()));
    assert!((400_000..=600_000).contains(&custom), "custom_cnn has {custom} parameters");
}

#[test]
fn summary_parts_add_up() {
    let cfg = ModelConfig::new(EncoderKind::EfficientNetLite0);
    let m = cfg.init(&cpu()).unwrap();
    let s = m.summary();
    assert_eq!(s.encoder + s.metadata + s.fusion + s.head, s.total);
    // metadata: Linear(2->64) + BatchNorm(64) gamma/beta
    assert_eq!(s.metadata, 2 * 64 + 64 + 2 * 64);
    // fusion: (1280 + 64 + 4) -> 256
    assert_eq!(s.fusion, (1280 + 64 + 4) * 256 + 256);
    assert_eq!(s.head, 256 * 5 + 5);
}

fn random_batch(cfg: &ModelConfig, b: usize, size: usize, device: &Device, seed: u64) -> Batch {
    Batch::synthetic(cfg, b, size, seed, device)
}

#[test]
fn every_encoder_gives_logits_of_the_right_shape_at_batch_2() {
    let device = cpu();
    for kind in EncoderKind::ALL {
        let cfg = ModelConfig::new(kind);
        let model = cfg.init(&device).unwrap();
        let batch = random_batch(&cfg, 2, 224, &device, 1);
        let logits = model.forward(batch.images, batch.coords, batch.sources);
        assert_eq!(logits.dims(), [2, 5], "{kind}");
        let v = logits.into_data().try_to_vec::<f32>().unwrap();
        assert!(v.iter().all(|x| x.is_finite()), "{kind}: {v:?}");
    }
}

#[test]
fn custom_cnn_overfits_16_samples() {
    let device = cpu().autodiff();
    let mut cfg = ModelConfig::new(EncoderKind::CustomCnn);
    cfg.dropout = 0.0;
    let model = cfg.init(&device).unwrap();
    let batch = random_batch(&cfg, 16, 32, &device, 7);
    let mut trainer =
        Trainer::new(model, StepConfig { learning_rate: 3e-3, ..StepConfig::default() }, &device);
    let first = trainer.step(&batch);
    for _ in 0..60 {
        trainer.step(&batch);
    }
    // Decay the learning rate so the weights settle and the batch-norm running statistics
    // (what inference uses) catch up with them.
    trainer.config.learning_rate = 1e-4;
    let mut last = first;
    for _ in 0..30 {
        last = trainer.step(&batch);
    }
    assert!(last.loss < first.loss / 5.0, "loss {} -> {}", first.loss, last.loss);
    // Accuracy in inference mode (running statistics, no dropout), not just in training mode.
    let eval = trainer.evaluate(&batch);
    assert_eq!(eval.correct, 16, "train accuracy {}/16 (loss {})", eval.correct, eval.loss);
}

#[test]
fn gradients_reach_the_metadata_branch() {
    let device = cpu().autodiff();
    let cfg = ModelConfig::new(EncoderKind::CustomCnn);
    let model = cfg.init(&device).unwrap();
    let batch = random_batch(&cfg, 4, 32, &device, 3);
    let trainer = Trainer::new(model.clone(), StepConfig::default(), &device);
    let (loss, _) = trainer.loss_and_logits(&model, &batch);
    let grads = loss.backward();
    let g = model.meta_fc.weight.val().grad(&grads).expect("metadata weights get a gradient");
    let norm: f32 = g.into_data().try_to_vec::<f32>().unwrap().iter().map(|x| x * x).sum();
    assert!(norm > 0.0, "metadata gradient is zero");
    let g = model.head.weight.val().grad(&grads).expect("head gets a gradient");
    assert!(g.into_data().try_to_vec::<f32>().unwrap().iter().any(|x| *x != 0.0));
}

#[test]
fn frozen_stages_get_no_gradient_and_the_rest_do() {
    let device = cpu().autodiff();
    let cfg = ModelConfig::new(EncoderKind::CustomCnn);
    let model = cfg.init(&device).unwrap().freeze_encoder_stages(2);
    let batch = random_batch(&cfg, 4, 32, &device, 5);
    let trainer = Trainer::new(model.clone(), StepConfig::default(), &device);
    let (loss, _) = trainer.loss_and_logits(&model, &batch);
    let grads = loss.backward();
    let model_core::model::ImageEncoder::CustomCnn(cnn) = &model.encoder else { unreachable!() };
    assert!(cnn.stages[0].conv.weight.val().grad(&grads).is_none());
    assert!(cnn.stages[1].conv.weight.val().grad(&grads).is_none());
    assert!(cnn.stages[2].conv.weight.val().grad(&grads).is_some());
}

#[test]
fn save_and_load_give_identical_outputs() {
    let device = cpu();
    let cfg = ModelConfig::new(EncoderKind::MobileNetV3Small);
    let model = cfg.init(&device).unwrap();
    let batch = random_batch(&cfg, 2, 96, &device, 11);
    let before = model
        .forward(batch.images.clone(), batch.coords.clone(), batch.sources.clone())
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let bytes = weights_to_bytes(&model).unwrap();
    let cfg2 = config_from_json(&config_to_json(&cfg)).unwrap();
    assert_eq!(cfg2, cfg);
    let loaded = model_from_bytes(&cfg2, &bytes, &device).unwrap();
    let after = loaded
        .forward(batch.images, batch.coords, batch.sources)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert_eq!(before, after);
}

#[test]
fn safetensors_export_has_pytorch_keys_and_round_trips() {
    let device = cpu();
    let cfg = ModelConfig::new(EncoderKind::EfficientNetLite0);
    let model = cfg.init(&device).unwrap();
    let bytes = model_core::model::persist::weights_to_safetensors(&model).unwrap();
    // Header: 8-byte little-endian length, then JSON with one entry per tensor.
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    assert_eq!(header["head.weight"]["shape"], serde_json::json!([5, 256]), "PyTorch [out, in]");
    assert!(header.get("encoder.conv_stem.weight").is_some(), "no enum variant in keys");
    assert!(header.get("meta_bn.weight").is_some() && header.get("meta_bn.running_var").is_some());
    assert!(header.get("meta_bn.gamma").is_none());
    let batch = random_batch(&cfg, 2, 64, &device, 4);
    let out = |m: &model_core::AccessModel| {
        m.forward(batch.images.clone(), batch.coords.clone(), batch.sources.clone())
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    };
    let back = model_core::model::persist::model_from_safetensors(&cfg, &bytes, &device).unwrap();
    assert_eq!(out(&model), out(&back));
    assert!(
        model_core::model::persist::model_from_safetensors(&cfg, &bytes[..100], &device).is_err()
    );
}

#[test]
fn corrupt_or_mismatched_weights_are_errors_not_panics() {
    let device = cpu();
    let cfg = ModelConfig::new(EncoderKind::CustomCnn);
    let bytes = weights_to_bytes(&cfg.init(&device).unwrap()).unwrap();
    assert!(model_from_bytes(&cfg, &bytes[..bytes.len() / 2], &device).is_err());
    assert!(model_from_bytes(&cfg, b"garbage", &device).is_err());
    let other = ModelConfig::new(EncoderKind::ResNet18);
    assert!(model_from_bytes(&other, &bytes, &device).is_err());
    assert!(config_from_json(r#"{"encoder":"vgg16"}"#).is_err());
    assert!(config_from_json(r#"{"encoder":"resnet18","dropout":2.0}"#).is_err());
}

#[test]
fn toml_and_json_configs_describe_the_same_model() {
    let json = r#"{"encoder":"custom_cnn","labels":["a","b"],"sources":["osm"]}"#;
    let c = config_from_json(json).unwrap();
    let toml = "encoder = \"custom_cnn\"\nlabels = [\"a\", \"b\"]\nsources = [\"osm\"]\n";
    assert_eq!(config_from_toml(toml).unwrap(), c);
    assert!(config_from_toml("encoder = \"custom_cnn\"\nfusion_dim = 0\n").is_err());
    assert_eq!(c.num_classes(), 2);
    assert_eq!(c.sources.one_hot_len(), 2);
    let m = c.init(&cpu()).unwrap();
    let x =
        Tensor::<4>::from_data(TensorData::new(vec![0.0f32; 3 * 32 * 32], [1, 3, 32, 32]), &cpu());
    let coords = Tensor::<2>::from_data(TensorData::new(vec![0.0f32; 2], [1, 2]), &cpu());
    let src = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 0.0], [1, 2]), &cpu());
    assert_eq!(m.forward(x, coords, src).dims(), [1, 2]);
}
