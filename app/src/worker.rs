//! The model worker: loads the bundle, warms the model up, and answers predictions, off the
//! page's thread so the map never freezes (CPU inference blocks the thread it runs on; WebGPU
//! reads back asynchronously either way).
//!
//! Every input is cut with model-core's code from the bundle's own tile source at the
//! bundle's zoom, exactly as `accessatlas collect` cut the training images.

use std::cell::RefCell;
use std::rc::Rc;

use image::RgbaImage;
use model_core::bundle::{BUNDLE_CONFIG_FILE, BUNDLE_WEIGHTS_FILE, BundleManifest};
use model_core::burn::tensor::Device;
use model_core::infer::Predictor;
use model_core::preprocess::ModelInput;
use model_core::tile::{FILL, Placement};
use wasm_bindgen::prelude::*;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use crate::net::{begin, now_ms};
use crate::protocol::{BackendChoice, FromWorker, ModelInfo, ToWorker, model_tile_url};

struct Loaded {
    predictor: Predictor,
    manifest: BundleManifest,
    base: String,
}

#[derive(Default)]
struct State {
    loaded: Option<Rc<Loaded>>,
    loading: bool,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::default();
}

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn post(msg: &FromWorker) {
    let text = serde_json::to_string(msg).expect("messages serialise");
    if let Err(e) = scope().post_message(&JsValue::from_str(&text)) {
        web_sys::console::error_2(&"worker: postMessage failed".into(), &e);
    }
}

/// Entry point of the `worker` binary.
pub fn start() {
    console_error_panic_hook::set_once();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(|e: MessageEvent| {
        let Some(text) = e.data().as_string() else { return };
        match serde_json::from_str::<ToWorker>(&text) {
            Ok(msg) => wasm_bindgen_futures::spawn_local(handle(msg)),
            Err(err) => {
                post(&FromWorker::Failed { id: None, message: format!("bad message: {err}") })
            }
        }
    });
    scope().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    post(&FromWorker::Started);
}

async fn handle(msg: ToWorker) {
    match msg {
        ToWorker::Load { base, backend } => {
            if STATE.with_borrow(|s| s.loading || s.loaded.is_some()) {
                return;
            }
            STATE.with_borrow_mut(|s| s.loading = true);
            let result = load(base, backend).await;
            STATE.with_borrow_mut(|s| s.loading = false);
            match result {
                Ok(ready) => post(&ready),
                Err(message) => post(&FromWorker::Failed { id: None, message }),
            }
        }
        ToWorker::Predict { id, lat, lon, source } => {
            let Some(m) = STATE.with_borrow(|s| s.loaded.clone()) else {
                post(&FromWorker::Failed {
                    id: Some(id),
                    message: "the model is still loading".into(),
                });
                return;
            };
            match predict(&m, id, lat, lon, &source).await {
                Ok(p) => post(&p),
                Err(message) => post(&FromWorker::Failed { id: Some(id), message }),
            }
        }
    }
}

/// The device for the requested backend, and a note when it had to fall back. WebGPU is
/// tried unless the CPU was asked for; a missing adapter or a failed init falls back to flex.
async fn device(choice: BackendChoice) -> (Device, &'static str, Option<String>) {
    if choice == BackendChoice::Cpu {
        return (Device::flex(), "cpu", None);
    }
    webgpu_device().await
}

#[cfg(not(feature = "webgpu"))]
async fn webgpu_device() -> (Device, &'static str, Option<String>) {
    let note = "this build has no WebGPU backend; using the CPU".to_string();
    (Device::flex(), "cpu", Some(note))
}

#[cfg(feature = "webgpu")]
async fn webgpu_device() -> (Device, &'static str, Option<String>) {
    let has_gpu = js_sys::Reflect::get(&scope().navigator(), &"gpu".into())
        .map(|g| !g.is_undefined() && !g.is_null())
        .unwrap_or(false);
    if !has_gpu {
        let note = "this browser offers no WebGPU; using the CPU".to_string();
        return (Device::flex(), "cpu", Some(note));
    }
    match Device::wgpu_options().init_async().await {
        Ok(d) => (d, "webgpu", None),
        Err(e) => (Device::flex(), "cpu", Some(format!("WebGPU failed ({e:?}); using the CPU"))),
    }
}

async fn load(base: String, choice: BackendChoice) -> Result<FromWorker, String> {
    let t0 = now_ms();
    let manifest_req = begin(&format!("{base}model/{BUNDLE_CONFIG_FILE}"));
    let weights_req = begin(&format!("{base}model/{BUNDLE_WEIGHTS_FILE}"));
    let manifest = BundleManifest::from_json(&manifest_req.text().await?)
        .map_err(|e| format!("model/{BUNDLE_CONFIG_FILE}: {e}"))?;
    let weights = weights_req.bytes().await?;
    let (device, backend, note) = device(choice).await;
    let predictor = Predictor::from_bundle(&manifest, &weights, &device)
        .map_err(|e| format!("model/{BUNDLE_WEIGHTS_FILE}: {e}"))?;
    let load_ms = now_ms() - t0;

    // Warm-up: one forward pass on a blank input compiles kernels and allocates buffers.
    let t1 = now_ms();
    let s = manifest.config.image_size;
    let blank = image::RgbImage::from_pixel(s, s, image::Rgb(FILL));
    let input = predictor
        .input(&blank, manifest.scaler.mean[0], manifest.scaler.mean[1], "user")
        .map_err(|e| e.to_string())?;
    predictor.predict_async(&input).await.map_err(|e| format!("warm-up: {e}"))?;
    let warmup_ms = now_ms() - t1;

    let model = ModelInfo {
        encoder: manifest.config.encoder.to_string(),
        labels: manifest.config.labels.names().to_vec(),
        tile_source: manifest.tile_source.clone(),
        git_revision: manifest.provenance.git_revision.clone(),
        test_macro_f1: manifest.provenance.test_macro_f1,
    };
    STATE.with_borrow_mut(|st| st.loaded = Some(Rc::new(Loaded { predictor, manifest, base })));
    Ok(FromWorker::Ready { backend: backend.to_string(), note, load_ms, warmup_ms, model })
}

async fn predict(
    m: &Loaded,
    id: u64,
    lat: f64,
    lon: f64,
    source: &str,
) -> Result<FromWorker, String> {
    let t0 = now_ms();
    let window =
        m.predictor.window(&m.manifest.tile_source, lat, lon).map_err(|e| e.to_string())?;
    let placements = window.placements();
    let mut pending = Vec::with_capacity(placements.len());
    for p in &placements {
        let url = model_tile_url(&m.manifest.tile_source, &m.base, p.tile)?;
        pending.push((*p, begin(&url)));
    }
    let mut tiles: Vec<(Placement, RgbaImage)> = Vec::with_capacity(pending.len());
    for (p, req) in pending {
        let bytes = req.bytes().await.map_err(|e| format!("map tile: {e}"))?;
        let img = image::load_from_memory(&bytes)
            .map_err(|e| format!("map tile {}/{}/{}: {e}", p.tile.z, p.tile.x, p.tile.y))?
            .to_rgba8();
        tiles.push((p, img));
    }
    let crop = window.stitch(&tiles, FILL);
    let tiles_ms = now_ms() - t0;

    let t1 = now_ms();
    let input: ModelInput =
        m.predictor.input(&crop, lat, lon, source).map_err(|e| e.to_string())?;
    let prediction = m.predictor.predict_async(&input).await.map_err(|e| e.to_string())?;
    let model_ms = now_ms() - t1;
    Ok(FromWorker::Prediction { id, lat, lon, prediction, tiles_ms, model_ms })
}
