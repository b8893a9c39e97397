//! The app's logic compiled to wasm32 and run in headless Chromium (wasm-bindgen-test):
//! IndexedDB persistence, the tag store and its CSV/GeoJSON formats, the worker protocol, and
//! the shipped model bundle predicting through model-core on the CPU backend.
#![cfg(target_arch = "wasm32")]

use app::geojson::{import_geojson, to_geojson};
use app::store::TagStore;
use model_core::burn::tensor::Device;
use model_core::infer::Predictor;
use model_core::infer::bundle::BundleManifest;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn indexeddb_keeps_the_store() {
    let mut s = TagStore::default();
    s.add(60.17, 24.94, "ramp", "user", "é note", &[]).unwrap();
    app::idb::put("test-store", &s.to_json()).await.unwrap();
    let back = app::idb::get("test-store").await.unwrap().expect("a record");
    assert_eq!(TagStore::from_json(&back).unwrap(), s);
    assert_eq!(app::idb::get("never-written").await.unwrap(), None);
}

/// Errors reach people as words: a JavaScript `Error`'s message, not a `JsValue` dump.
#[wasm_bindgen_test]
fn javascript_errors_read_as_words() {
    use wasm_bindgen::JsValue;
    assert_eq!(app::js::message(&js_sys::Error::new("quota exceeded").into()), "quota exceeded");
    let t: JsValue = js_sys::TypeError::new("not a function").into();
    assert_eq!(app::js::message(&t), "TypeError: not a function");
    assert_eq!(app::js::message(&JsValue::from_str("plain")), "plain");
    let o = js_sys::JSON::parse(r#"{"code": 7}"#).unwrap();
    assert_eq!(app::js::message(&o), r#"{"code":7}"#);
    assert!(!app::js::message(&JsValue::UNDEFINED).contains("JsValue"));
}

#[wasm_bindgen_test]
fn formats_round_trip_in_wasm() {
    let mut s = TagStore::default();
    s.add(60.17, 24.94, "elevator", "user", "lift, east side", &[]).unwrap();
    let mut t = TagStore::default();
    let r = t.import_csv(&s.to_csv()).unwrap();
    assert_eq!((r.added, r.rejected.len()), (1, 0));
    assert_eq!(t.tags, s.tags);
    let mut u = TagStore::default();
    import_geojson(&mut u, &to_geojson(&s)).unwrap();
    assert_eq!(u.tags, s.tags);
}

#[wasm_bindgen_test]
async fn shipped_bundle_predicts_on_the_cpu_backend() {
    let manifest =
        BundleManifest::from_json(include_str!("../../assets/model/model.json")).unwrap();
    let weights = include_bytes!("../../assets/model/weights.bpk");
    let p = Predictor::from_bundle(&manifest, weights, &Device::flex()).unwrap();
    let w = p.window(&manifest.tile_source, 60.1699, 24.9384).unwrap();
    assert!(!w.placements().is_empty());
    let url = manifest.tile_source.tile_url("http://x/", w.placements()[0].tile).unwrap();
    assert!(url.starts_with("http://x/tiles/19/"), "{url}");
    let s = manifest.config.image_size;
    let img = image::RgbImage::from_pixel(s, s, image::Rgb(model_core::data::tile::FILL));
    let input = p.input(&img, 60.1699, 24.9384, "user").unwrap();
    let a = p.predict_async(&input).await.unwrap();
    let b = p.predict(&input).unwrap();
    assert_eq!(a, b, "async and sync readback agree");
    let sum: f32 = a.probabilities.0.iter().map(|(_, v)| v).sum();
    assert!((sum - 1.0).abs() < 1e-4);
    assert!(manifest.config.labels.names().contains(&a.label));
}

/// The page's CPU forward (the kernels, in wasm with SIMD128) gives the native probabilities
/// (`model-core/tests/kernels_parity.rs` checks the same fixture natively, and Burn's forward
/// against it) within 1e-4 on the same inputs.
#[wasm_bindgen_test]
fn the_kernels_in_wasm_give_the_native_probabilities() {
    let manifest =
        BundleManifest::from_json(include_str!("../../assets/model/model.json")).unwrap();
    let weights = include_bytes!("../../assets/model/weights.bpk");
    let p = Predictor::from_bundle(&manifest, weights, &Device::flex()).unwrap();
    assert!(p.kernels().is_some(), "the page's CPU predictor runs the kernels");
    let inputs = model_core::infer::parity_inputs(&p);
    let got: Vec<Vec<f32>> = p
        .predict_batch(&inputs)
        .unwrap()
        .into_iter()
        .map(|q| q.probabilities.0.iter().map(|(_, v)| *v).collect())
        .collect();
    let want: Vec<Vec<f32>> = serde_json::from_str(include_str!(
        "../../model-core/tests/fixtures/kernels_probabilities.json"
    ))
    .unwrap();
    assert_eq!(got.len(), want.len());
    for (a, b) in got.iter().flatten().zip(want.iter().flatten()) {
        assert!((a - b).abs() < 1e-4, "wasm {got:?} vs native {want:?}");
    }
}

/// The kernels' explicit SIMD128 paths (the depthwise convolution, the convolutions'
/// epilogue) give their definitions bit for bit, as the portable paths do natively.
#[wasm_bindgen_test]
fn the_kernels_simd128_paths_give_their_definitions() {
    model_core::kernels::check_against_definitions().unwrap();
}

/// The browser's fine-tuning step gives the native losses (`model-core/tests/finetune_parity.rs`
/// checks the same fixture natively): same weights, same batch, CPU backend.
#[wasm_bindgen_test]
fn fine_tune_steps_match_the_native_fixture() {
    let manifest =
        BundleManifest::from_json(include_str!("../../assets/model/model.json")).unwrap();
    let weights = include_bytes!("../../assets/model/weights.bpk");
    let device = Device::flex();
    let model =
        model_core::model::persist::model_from_bytes(&manifest.config, weights, &device).unwrap();
    let losses =
        model_core::train::finetune::reference_steps(model, manifest.config.image_size, 3, &device)
            .unwrap();
    let want: Vec<f32> =
        serde_json::from_str(include_str!("../../model-core/tests/fixtures/finetune_steps.json"))
            .unwrap();
    assert_eq!(losses.len(), want.len());
    for (a, b) in losses.iter().zip(&want) {
        assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "browser {losses:?} vs native {want:?}");
    }
}

/// Weights cross between page and worker as a transferred `ArrayBuffer` (moved, not copied;
/// no base64 in the JSON) and rest in IndexedDB as one.
#[wasm_bindgen_test]
async fn weights_travel_and_rest_as_bytes() {
    use js_sys::{Array, ArrayBuffer, Function, Object, Reflect};
    use wasm_bindgen::{JsCast, JsValue};
    let bytes: Vec<u8> = (0..=255u8).cycle().take(100_003).collect();
    let (value, transfer) = app::transfer::pack("{\"ModelExport\":{}}", Some(&bytes));
    assert!(value.as_string().is_none(), "an object beside the text, not text");
    assert_eq!(transfer.length(), 1);
    let sent: ArrayBuffer = transfer.get(0).dyn_into().expect("an ArrayBuffer is transferred");
    // What postMessage does: a structured clone with the transfer list.
    let options = Object::new();
    Reflect::set(&options, &"transfer".into(), &transfer).unwrap();
    let clone: Function =
        Reflect::get(&js_sys::global(), &"structuredClone".into()).unwrap().dyn_into().unwrap();
    let arrived = clone.call2(&JsValue::NULL, &value, &options).unwrap();
    assert_eq!(sent.byte_length(), 0, "moved to the other side, not copied");
    let (text, got) = app::transfer::unpack(&arrived).unwrap();
    assert_eq!(text, "{\"ModelExport\":{}}");
    assert_eq!(got.unwrap(), bytes);
    // Plain messages stay text.
    let (plain, none) = app::transfer::pack("{}", None);
    assert_eq!((plain.as_string().as_deref(), none.length()), (Some("{}"), 0));
    assert_eq!(app::transfer::unpack(&plain), Some(("{}".to_string(), None)));
    assert_eq!(app::transfer::unpack(&Array::new().into()), None);
    // IndexedDB keeps an ArrayBuffer as it is.
    app::idb::put_value("test-bytes", &app::transfer::to_buffer(&bytes).into()).await.unwrap();
    let back = app::idb::get_value("test-bytes").await.unwrap().expect("a record");
    assert!(back.is_instance_of::<ArrayBuffer>());
    assert_eq!(app::transfer::from_buffer(&back).unwrap(), bytes);
    assert!(app::idb::get_value("never-written-bytes").await.unwrap().is_none());
}

/// The page's scan path (each result judged as it arrives, then the list at the slider's
/// threshold) lists what `accessatlas suggest` lists for the same results: the CLI's list is
/// the fixture `tests/suggest.rs` writes from `select`.
#[wasm_bindgen_test]
fn the_pages_scan_lists_what_the_cli_lists() {
    #[derive(serde::Deserialize)]
    struct RuleCase {
        threshold: f32,
        mapped: Vec<model_core::data::candidates::MappedFeature>,
        results: Vec<(f64, f64, model_core::Prediction)>,
        expected: Vec<(f64, f64, String, f32)>,
    }
    let case: RuleCase =
        serde_json::from_str(include_str!("../../tests/fixtures/suggest_rule.json")).unwrap();
    let page = app::scan::page_list(&case.results, &case.mapped, case.threshold);
    assert!(!case.expected.is_empty());
    assert_eq!(page, case.expected);
}
