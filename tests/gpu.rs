//! The wgpu backend against the CPU one, on whatever adapter wgpu finds: a GPU, or Mesa's
//! lavapipe (software Vulkan) on a machine without one. Built only with `--features wgpu`;
//! `cargo xtask gpu` installs lavapipe if needed and runs this file.
//!
//! Same weights, same inputs on both backends: the forward pass of the shipped bundle, three
//! training steps (f32, and f16 mixed precision where the adapter computes in f16), and a
//! whole `accessatlas train --device wgpu` run whose checkpoint then predicts on the CPU.

use std::path::Path;

mod common;

use burn::tensor::{DType, Device, DeviceKind, FloatDType};
use common::model::{rendered_inputs, shipped};
use common::{bin, tmp};
use model_core::model::persist::{model_from_bytes, weights_to_bytes};
use model_core::train::precision::Precision;
use model_core::train::{Batch, StepConfig, Trainer};
use model_core::{EncoderKind, ModelConfig};

fn gpu() -> Device {
    Device::wgpu(DeviceKind::DefaultDevice)
}

#[test]
fn the_shipped_bundle_predicts_the_same_on_wgpu_and_the_cpu() {
    let cpu = shipped(&Device::flex());
    let gpu = shipped(&gpu());
    let xs = rendered_inputs(&cpu, 4);
    let a = cpu.predict_batch(&xs).unwrap();
    let b = gpu.predict_batch(&xs).unwrap();
    for (i, (a, b)) in a.iter().zip(&b).enumerate() {
        assert_eq!(a.label, b.label, "example {i}");
        for (pa, pb) in a.probabilities.0.iter().zip(&b.probabilities.0) {
            assert!((pa.1 - pb.1).abs() < 1e-3, "example {i}: {:?} vs {:?}", a, b);
        }
    }
}

/// Losses of `steps` training steps from `weights` on `device`.
fn losses(
    cfg: &ModelConfig,
    weights: &[u8],
    device: &Device,
    precision: Precision,
    steps: usize,
) -> Vec<f32> {
    let device = device.clone().autodiff();
    let model = model_from_bytes(cfg, weights, &device).unwrap();
    let step = StepConfig { learning_rate: 3e-3, precision, ..StepConfig::default() };
    let mut t = Trainer::new(model, step, &device);
    let b = Batch::synthetic(cfg, 8, 32, 3, &device);
    let out: Vec<f32> = (0..steps).map(|_| t.step(&b).loss).collect();
    for p in [t.model.head.weight.val().dtype(), t.model.fusion.weight.val().dtype()] {
        assert_eq!(p, DType::F32, "the master weights stay f32");
    }
    out
}

#[test]
fn training_steps_on_wgpu_match_the_cpu_in_f32_and_learn_in_f16() {
    let mut cfg = ModelConfig::new(EncoderKind::CustomCnn);
    cfg.dropout = 0.0; // dropout masks differ between backends' RNGs
    let cpu = Device::flex();
    cpu.seed(5);
    let weights = weights_to_bytes(&cfg.init(&cpu).unwrap()).unwrap();
    let on_cpu = losses(&cfg, &weights, &cpu, Precision::F32, 3);
    let on_gpu = losses(&cfg, &weights, &gpu(), Precision::F32, 3);
    for (i, (a, b)) in on_cpu.iter().zip(&on_gpu).enumerate() {
        assert!((a - b).abs() <= 2e-3 * a.abs().max(1.0), "step {i}: cpu {a} vs wgpu {b}");
    }
    assert!(on_gpu[2] < on_gpu[0], "wgpu did not learn: {on_gpu:?}");

    if gpu().supports_dtype(FloatDType::F16) {
        let half = losses(&cfg, &weights, &gpu(), Precision::F16, 3);
        // The first loss is the same forward pass in f16; later ones follow AdamW's path.
        assert!((half[0] - on_gpu[0]).abs() < 0.02 * on_gpu[0], "{half:?} vs {on_gpu:?}");
        assert!(half[2] < half[0], "f16 on wgpu did not learn: {half:?}");
    } else {
        eprintln!("this wgpu adapter has no f16: mixed precision checked by the CLI refusal");
    }
}

/// collect + a 120-tag subset + preprocess, so a whole epoch stays short on a software adapter.
fn small_data(dir: &Path) {
    let out = bin().arg("collect").arg("--data").arg(dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tags = std::fs::read_to_string(dir.join("tags.csv")).unwrap();
    let subset: Vec<&str> = tags.lines().take(121).collect();
    std::fs::write(dir.join("tags.csv"), subset.join("\n") + "\n").unwrap();
    let out = bin().arg("preprocess").arg("--data").arg(dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn train_on_wgpu_writes_a_run_that_predicts_on_the_cpu() {
    let temp = tmp("gpu-run");
    let data = temp.path().join("data");
    small_data(&data);
    let run = data.join("models/wgpu");
    let train = |extra: &[&str], out: &Path| {
        bin()
            .args(["train", "--device", "wgpu", "--encoder", "custom_cnn", "--image-size", "32"])
            .args(["--epochs", "1", "--batch-size", "16", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(out)
            .args(extra)
            .output()
            .unwrap()
    };
    let o = train(&[], &run);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let h: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(run.join("logs/training_history.json")).unwrap())
            .unwrap();
    assert_eq!(h.len(), 1);
    assert!(h[0]["train_loss"].as_f64().unwrap().is_finite());
    assert!(run.join("checkpoints/best_model.bpk").is_file());

    // The checkpoint is backend-neutral: the default (CPU) predict loads it.
    let tile = std::fs::read_dir(data.join("images")).unwrap().next().unwrap().unwrap().path();
    let o = bin()
        .args(["predict", "--json", "--lat", "60.17", "--lon", "24.94", "--source", "osm"])
        .arg("--model")
        .arg(&run)
        .arg("--image")
        .arg(&tile)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let p: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(p["confidence"].as_f64().unwrap() > 0.0);

    // bf16: trained if the adapter computes in it, otherwise refused with nothing written.
    let bf = data.join("models/bf16");
    let o = train(&["--precision", "bf16"], &bf);
    if gpu().supports_dtype(FloatDType::BF16) {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    } else {
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("cannot compute in bf16") && !err.contains("panicked"), "{err}");
        assert!(!bf.exists(), "a refused run wrote {}", bf.display());
    }
}

#[test]
fn a_missing_adapter_is_a_clear_error_not_a_panic() {
    let temp = tmp("gpu-none");
    let data = temp.path().join("data");
    let out = data.join("run");
    // Ask wgpu for a discrete GPU this machine does not have.
    let o = bin()
        .args(["train", "--device", "wgpu", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .env("CUBECL_WGPU_DEFAULT_DEVICE", "DiscreteGpu(99)")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("wgpu: no usable device") && !err.contains("panicked at"), "{err}");
    assert!(!out.exists(), "a failed start wrote {}", out.display());
}
