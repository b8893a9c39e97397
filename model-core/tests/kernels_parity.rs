//! The shipped bundle through the CPU kernels natively gives the probabilities in
//! `tests/fixtures/kernels_probabilities.json`, and Burn's forward gives the same within 1e-4;
//! the app's wasm test (`app/tests/web.rs`) runs the kernels on the same inputs in headless
//! Chromium against the same file. Together: the page's wasm forward equals the native one.
//! `ACCESSATLAS_UPDATE_FIXTURES=1` rewrites the fixture.

use burn::tensor::Device;
use model_core::infer::Predictor;
use model_core::infer::bundle::BundleManifest;
use model_core::infer::parity_inputs;

const FIXTURE: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kernels_probabilities.json");

fn probabilities(p: &Predictor) -> Vec<Vec<f32>> {
    p.predict_batch(&parity_inputs(p))
        .unwrap()
        .into_iter()
        .map(|q| q.probabilities.0.iter().map(|(_, v)| *v).collect())
        .collect()
}

/// The shipped bundle's manifest and its CPU predictor.
fn shipped() -> (BundleManifest, Predictor) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/model");
    let m =
        BundleManifest::from_json(&std::fs::read_to_string(format!("{root}/model.json")).unwrap())
            .unwrap();
    let w = std::fs::read(format!("{root}/weights.bpk")).unwrap();
    let p = Predictor::from_bundle(&m, &w, &Device::flex()).unwrap();
    (m, p)
}

#[test]
fn the_kernels_give_the_fixture_and_burns_probabilities_on_the_shipped_bundle() {
    let (_, p) = shipped();
    assert!(p.kernels().is_some(), "a CPU predictor runs the kernels");
    let ours = probabilities(&p);
    let burn = probabilities(&p.clone().without_kernels());
    for (a, b) in ours.iter().flatten().zip(burn.iter().flatten()) {
        assert!((a - b).abs() < 1e-4, "kernels {ours:?} vs Burn {burn:?}");
    }
    if std::env::var("ACCESSATLAS_UPDATE_FIXTURES").is_ok() {
        std::fs::write(FIXTURE, serde_json::to_string_pretty(&ours).unwrap()).unwrap();
    }
    let want: Vec<Vec<f32>> =
        serde_json::from_str(&std::fs::read_to_string(FIXTURE).unwrap()).unwrap();
    assert_eq!(want.len(), ours.len());
    for (a, b) in ours.iter().flatten().zip(want.iter().flatten()) {
        assert!((a - b).abs() < 1e-5, "native {ours:?} vs fixture {want:?}");
    }
}

/// What a fine-tune caches: the kernels' pooled features equal Burn's encoder features.
#[test]
fn the_kernels_pooled_features_equal_burns_encoder_features() {
    let (m, p) = shipped();
    let inputs = parity_inputs(&p);
    let ours = p.kernel_features(&inputs).unwrap().expect("a CPU predictor runs the kernels");
    let size = m.config.image_size as usize;
    let burn =
        model_core::train::finetune::encode_features(&p.model, &inputs, size, &Device::flex())
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
    assert_eq!(ours.len(), burn.len());
    assert_eq!(ours.len(), inputs.len() * m.config.encoder.features());
    for (a, b) in ours.iter().zip(&burn) {
        assert!((a - b).abs() < 1e-4, "kernels {a} vs Burn {b}");
    }
    assert!(p.clone().without_kernels().kernel_features(&inputs).unwrap().is_none());
}
