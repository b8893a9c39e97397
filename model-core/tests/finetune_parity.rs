//! The fine-tuning step natively gives the losses in `tests/fixtures/finetune_steps.json`; the
//! app's wasm test (`app/tests/web.rs`) runs the same scenario in headless Chromium against the
//! same file. Together: the browser's train step equals the native one for the same weights and
//! batch. `ACCESSATLAS_UPDATE_FIXTURES=1` rewrites the fixture.

use burn::tensor::Device;
use model_core::infer::bundle::BundleManifest;
use model_core::model::persist::model_from_bytes;
use model_core::train::finetune::reference_steps;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/finetune_steps.json");

#[test]
fn native_fine_tune_steps_match_the_fixture() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/model");
    let m =
        BundleManifest::from_json(&std::fs::read_to_string(format!("{root}/model.json")).unwrap())
            .unwrap();
    let w = std::fs::read(format!("{root}/weights.bpk")).unwrap();
    let device = Device::flex();
    let model = model_from_bytes(&m.config, &w, &device).unwrap();
    let losses = reference_steps(model, m.config.image_size, 3, &device).unwrap();
    assert!(losses[2] < losses[0], "three steps on one batch lower its loss: {losses:?}");
    if std::env::var("ACCESSATLAS_UPDATE_FIXTURES").is_ok() {
        std::fs::write(FIXTURE, serde_json::to_string_pretty(&losses).unwrap()).unwrap();
    }
    let want: Vec<f32> = serde_json::from_str(&std::fs::read_to_string(FIXTURE).unwrap()).unwrap();
    for (a, b) in losses.iter().zip(&want) {
        assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "native {losses:?} vs fixture {want:?}");
    }
}
