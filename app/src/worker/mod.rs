//! The model worker: loads the bundle (the kept one from IndexedDB, else the shipped one),
//! warms the model up, answers predictions and scans, and fine-tunes the model on the mapper's
//! tags, off the page's thread so the map never freezes (CPU work blocks the thread it runs on;
//! WebGPU reads back asynchronously either way). Fine-tuning yields to the event loop between
//! batches so a cancel arrives while it runs.
//!
//! Every input is cut with model-core's code from the bundle's own tile source at the
//! bundle's zoom, exactly as `accessatlas collect` cut the training images.

mod fine_tune_run;
mod scan_helper;
mod tiles;

use std::cell::RefCell;
use std::rc::Rc;

use model_core::burn::tensor::Device;
use model_core::data::preprocess::ModelInput;
use model_core::data::tile::FILL;
use model_core::infer::Predictor;
use model_core::infer::bundle::{
    BUNDLE_CONFIG_FILE, BUNDLE_WEIGHTS_FILE, BundleManifest, COMPACT_DIR, PRECISION_REPORT_FILE,
    PrecisionReport,
};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use crate::net::{begin, now_ms};
use base64::Engine;
use tiles::Tiles;

use crate::protocol::{
    BackendChoice, BackendNote, FineTuneSummary, FromWorker, ModelInfo, ModelOrigin, ScanPoint,
    ToWorker,
};

/// How many points ahead of the one being scored a scan requests tiles.
const SCAN_AHEAD: usize = 4;

pub(crate) struct Loaded {
    pub(crate) predictor: Predictor,
    pub(crate) manifest: BundleManifest,
    pub(crate) base: String,
    /// The weights' bytes (fine-tuning rebuilds a CPU copy from them; export sends them).
    pub(crate) weights: Rc<Vec<u8>>,
    pub(crate) origin: ModelOrigin,
    pub(crate) fine_tune: Option<FineTuneSummary>,
    pub(crate) backend: &'static str,
    /// The shipped bundle's compact copy is loaded: what export measured of it.
    pub(crate) compact: Option<String>,
}

/// A fine-tuned model waiting for keep or discard.
struct Candidate {
    manifest: BundleManifest,
    weights: Vec<u8>,
    summary: FineTuneSummary,
}

/// What the kept model's IndexedDB record says about it, as JSON. The record is one object,
/// `{meta: <this as JSON>, weights: ArrayBuffer}`, so it is written whole or not at all.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredModel {
    manifest: String,
    origin: ModelOrigin,
    fine_tune: Option<FineTuneSummary>,
}

/// The record as written before weights were kept as bytes: all JSON, weights in base64.
/// Read (so a kept model survives the update), never written.
#[derive(serde::Deserialize)]
struct StoredModelBase64 {
    manifest: String,
    weights_b64: String,
    origin: ModelOrigin,
    fine_tune: Option<FineTuneSummary>,
}

#[derive(Default)]
struct State {
    loaded: Option<Rc<Loaded>>,
    loading: bool,
    candidate: Option<Candidate>,
    training: bool,
    cancel: bool,
    /// This worker is the scan helper of another (`scan_helper.rs`).
    is_helper: bool,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::default();
}

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

pub(crate) fn post(msg: &FromWorker) {
    post_with_bytes(msg, None);
}

/// Posts a message with bytes beside it, transferred (not copied) to the page.
fn post_with_bytes(msg: &FromWorker, bytes: Option<&[u8]>) {
    let text = serde_json::to_string(msg).expect("messages serialise");
    let (value, transfer) = crate::transfer::pack(&text, bytes);
    if let Err(e) = scope().post_message_with_transfer(&value, &transfer) {
        web_sys::console::error_2(&"worker: postMessage failed".into(), &e);
    }
}

/// Entry point of the `worker` binary.
pub fn start() {
    console_error_panic_hook::set_once();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(|e: MessageEvent| {
        let Some((text, bytes)) = crate::transfer::unpack(&e.data()) else { return };
        match serde_json::from_str::<ToWorker>(&text) {
            Ok(msg) => wasm_bindgen_futures::spawn_local(handle(msg, bytes)),
            Err(err) => {
                post(&FromWorker::Failed { id: None, message: format!("bad message: {err}") })
            }
        }
    });
    scope().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    post(&FromWorker::Started);
}

/// One message from the page; `bytes` are the weights an `ImportModel` carries.
async fn handle(msg: ToWorker, bytes: Option<Vec<u8>>) {
    match msg {
        ToWorker::Load { base, backend, scan_helper } => {
            if STATE.with_borrow(|s| s.loading || s.loaded.is_some()) {
                return;
            }
            STATE.with_borrow_mut(|s| {
                s.loading = true;
                s.is_helper = scan_helper;
            });
            let result = load(base.clone(), backend).await;
            STATE.with_borrow_mut(|s| s.loading = false);
            match result {
                Ok(ready) => {
                    post(&ready);
                    // The helper started during the load; it may be ready already.
                    scan_helper::announce();
                }
                Err(message) => post(&FromWorker::Failed { id: None, message }),
            }
        }
        ToWorker::Profile { runs } => {
            let Some(m) = STATE.with_borrow(|s| s.loaded.clone()) else {
                post(&FromWorker::Failed {
                    id: None,
                    message: "the model is still loading".into(),
                });
                return;
            };
            match profile(&m, runs) {
                Ok(p) => post(&p),
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
            match predict(&m, &mut Tiles::new(), id, lat, lon, &source).await {
                Ok(p) => post(&p),
                Err(message) => post(&FromWorker::Failed { id: Some(id), message }),
            }
        }
        ToWorker::FineTune { examples, epochs, seed, last_stage, area } => {
            let Some(m) = STATE.with_borrow(|s| s.loaded.clone()) else {
                post(&FromWorker::FineTuneFailed { message: "the model is still loading".into() });
                return;
            };
            if STATE.with_borrow(|s| s.training) {
                return;
            }
            STATE.with_borrow_mut(|s| {
                s.training = true;
                s.cancel = false;
                s.candidate = None;
            });
            let result = fine_tune_run::run(&m, examples, epochs, seed, last_stage, area).await;
            STATE.with_borrow_mut(|s| s.training = false);
            match result {
                Ok(Some((manifest, weights, summary))) => {
                    STATE.with_borrow_mut(|s| {
                        s.candidate =
                            Some(Candidate { manifest, weights, summary: summary.clone() })
                    });
                    post(&FromWorker::FineTuneDone { summary });
                }
                Ok(None) => post(&FromWorker::FineTuneCancelled),
                Err(message) => post(&FromWorker::FineTuneFailed { message }),
            }
        }
        ToWorker::CancelFineTune => STATE.with_borrow_mut(|s| s.cancel = true),
        ToWorker::DiscardModel => STATE.with_borrow_mut(|s| s.candidate = None),
        ToWorker::KeepModel => {
            let Some(c) = STATE.with_borrow_mut(|s| s.candidate.take()) else {
                post(&FromWorker::ModelError { message: "no fine-tuned model to keep".into() });
                return;
            };
            let result = adopt(
                c.manifest.clone(),
                c.weights.clone(),
                ModelOrigin::FineTuned,
                Some(c.summary.clone()),
            )
            .await;
            if result.is_err() {
                // Nothing changed: the candidate stays for another try (or an export).
                STATE.with_borrow_mut(|s| s.candidate = Some(c));
            }
            report(result);
        }
        ToWorker::ImportModel { manifest } => {
            report(match bytes {
                Some(weights) => import(&manifest, weights).await,
                None => Err("the bundle's weights did not arrive".into()),
            });
        }
        ToWorker::RevertModel => {
            let base = STATE.with_borrow(|s| s.loaded.as_ref().map(|m| m.base.clone()));
            let Some(base) = base else { return };
            report(revert(&base).await);
        }
        ToWorker::UndoModel => {
            let base = STATE.with_borrow(|s| s.loaded.as_ref().map(|m| m.base.clone()));
            let Some(base) = base else { return };
            report(undo(&base).await);
        }
        ToWorker::ExportModel => {
            let Some(m) = STATE.with_borrow(|s| s.loaded.clone()) else { return };
            post_with_bytes(
                &FromWorker::ModelExport { manifest: m.manifest.to_json() },
                Some(m.weights.as_slice()),
            );
        }
        ToWorker::Scan { id, points, source, first, budget_ms } => {
            let Some(m) = STATE.with_borrow(|s| s.loaded.clone()) else { return };
            // The points go into a queue that the helper, once ready, takes half of (the
            // helper's own scan has no helper to share with: it scores what it is sent).
            scan_helper::start_scan(info(&m), id, points, &source, first, budget_ms);
            let (mut failed, mut unscanned, started) = (0, 0, crate::net::now_ms());
            let mut tiles = Tiles::new();
            loop {
                let taken = scan_helper::next(id, SCAN_AHEAD);
                let Some(((i, ScanPoint { lat, lon, reasons }), ahead)) = taken else { break };
                if i >= first && crate::net::now_ms() - started >= budget_ms {
                    unscanned = 1;
                    break;
                }
                // This point's tiles first (the browser fetches a few at a time from one
                // server), then the next points', which load while this one is computed.
                let _ = tiles.want(&m, lat, lon);
                for q in &ahead {
                    let _ = tiles.want(&m, q.lat, q.lon);
                }
                match predict(&m, &mut tiles, id, lat, lon, &source).await {
                    Ok(FromWorker::Prediction { prediction, tiles_ms, model_ms, .. }) => {
                        // Candidates, not a point a mapper chose: under the prior of their kind.
                        let prediction = m.predictor.at_candidate(prediction, &reasons, lat, lon);
                        post(&FromWorker::ScanResult {
                            id,
                            lat,
                            lon,
                            prediction,
                            tiles_ms,
                            model_ms,
                        })
                    }
                    _ => failed += 1,
                }
                // The helper's results wait in this worker's queue to be passed on: let them
                // go now, not at the next tile this worker has to wait for.
                yield_now().await;
            }
            // What the queue still holds when time ran out (nothing when it ran empty).
            unscanned += scan_helper::finish(id);
            let workers = if scan_helper::shared(id) { 2 } else { 1 };
            if !scan_helper::half_done(id, scan_helper::Half::Mine, failed, unscanned) {
                post(&FromWorker::ScanDone { id, failed, unscanned, workers });
            }
        }
    }
}

/// Lets the messages queued for this worker run (a cancel, the scan helper's results), then
/// goes on at once: a message to itself through a new channel, not a timer, which the
/// browser holds back to 4 ms once timers nest.
pub(crate) async fn yield_now() {
    let Ok(channel) = web_sys::MessageChannel::new() else { return };
    let port = channel.port1();
    let done = js_sys::Promise::new(&mut |resolve, _| port.set_onmessage(Some(&resolve)));
    if channel.port2().post_message(&JsValue::NULL).is_ok() {
        let _ = JsFuture::from(done).await;
    }
    port.set_onmessage(None);
}

/// Whether the page asked to stop the running fine-tune.
pub(crate) fn cancelled() -> bool {
    STATE.with_borrow(|s| s.cancel)
}

fn report(result: Result<FromWorker, String>) {
    match result {
        Ok(msg) => post(&msg),
        Err(message) => post(&FromWorker::ModelError { message }),
    }
}

fn info(m: &Loaded) -> ModelInfo {
    ModelInfo {
        encoder: m.manifest.config.encoder.to_string(),
        labels: m.manifest.config.labels.names().to_vec(),
        tile_source: m.manifest.tile_source.clone(),
        git_revision: m.manifest.provenance.git_revision.clone(),
        test_macro_f1: m.manifest.provenance.test_macro_f1,
        origin: m.origin.clone(),
        fine_tune: m.fine_tune.clone(),
        weights: m.compact.clone(),
        suggest_threshold: m.manifest.suggest_threshold,
        area_thresholds: m
            .manifest
            .area_rules
            .iter()
            .map(|(r, rule)| (r.clone(), rule.suggest_threshold))
            .collect(),
        candidate_prior: m.manifest.candidate_prior(),
        trained_areas: m.manifest.scaler.areas.clone(),
        unlearned: m.manifest.unlearned_types(),
    }
}

/// Swaps in a model for predictions, on the current backend (nothing stored).
async fn adopt_unstored(
    manifest: BundleManifest,
    weights: Vec<u8>,
    origin: ModelOrigin,
    compact: Option<String>,
) -> Result<FromWorker, String> {
    let (cur, predictor) = build(&manifest, &weights)?;
    Ok(swap_in(&cur, predictor, manifest, weights, origin, None, compact))
}

/// The loaded model and a predictor for `manifest`/`weights` on its backend (an error if
/// they do not load).
fn build(manifest: &BundleManifest, weights: &[u8]) -> Result<(Rc<Loaded>, Predictor), String> {
    let cur = STATE.with_borrow(|s| s.loaded.clone()).ok_or("no model is loaded")?;
    let predictor = Predictor::from_bundle(manifest, weights, cur.predictor.device())
        .map_err(|e| e.to_string())?;
    Ok((cur, predictor))
}

fn swap_in(
    cur: &Loaded,
    predictor: Predictor,
    manifest: BundleManifest,
    weights: Vec<u8>,
    origin: ModelOrigin,
    fine_tune: Option<FineTuneSummary>,
    compact: Option<String>,
) -> FromWorker {
    let loaded = Loaded {
        predictor,
        manifest,
        base: cur.base.clone(),
        weights: Rc::new(weights),
        origin,
        fine_tune,
        backend: cur.backend,
        compact,
    };
    let model = info(&loaded);
    STATE.with_borrow_mut(|s| s.loaded = Some(Rc::new(loaded)));
    // The helper holds the model before: a new one reads the model now kept.
    start_scan_helper(&cur.base, cur.backend);
    FromWorker::ModelChanged { model }
}

/// Starts (or restarts) the scan helper: only in the page's model worker, on the CPU backend
/// (a GPU's scan is not the CPU's to share).
fn start_scan_helper(base: &str, backend: &str) {
    if backend == "cpu" && !STATE.with_borrow(|s| s.is_helper) {
        scan_helper::restart(base);
    }
}

/// Stores a model in IndexedDB (one record: all or nothing), then swaps it in.
async fn adopt(
    manifest: BundleManifest,
    weights: Vec<u8>,
    origin: ModelOrigin,
    fine_tune: Option<FineTuneSummary>,
) -> Result<FromWorker, String> {
    // It must load before anything is written.
    let (cur, predictor) = build(&manifest, &weights)?;
    let meta = StoredModel {
        manifest: manifest.to_json(),
        origin: origin.clone(),
        fine_tune: fine_tune.clone(),
    };
    let meta = serde_json::to_string(&meta).map_err(|e| e.to_string())?;
    let record = js_sys::Object::new();
    let set = |k: &str, v: &JsValue| js_sys::Reflect::set(&record, &k.into(), v);
    set("meta", &JsValue::from_str(&meta))
        .and_then(|_| set("weights", &crate::transfer::to_buffer(&weights)))
        .map_err(|e| crate::js::message(&e))?;
    // The model kept until now is the one "Undo" brings back (none: the shipped one). Both
    // records are written in one transaction: the tab closed or the storage full mid-way
    // leaves both as they were.
    let previous = crate::idb::get_value(crate::idb::MODEL_KEY)
        .await
        .map_err(|e| format!("the model could not be stored (nothing was changed): {e}"))?;
    crate::idb::write(&[
        (crate::idb::PREVIOUS_MODEL_KEY, previous.as_ref()),
        (crate::idb::MODEL_KEY, Some(&record)),
    ])
    .await
    .map_err(|e| {
        if e.contains("Quota") || e.contains("quota") {
            format!("the browser's storage is full, so the model was not kept (nothing was written): {e}")
        } else {
            format!("the model could not be stored (nothing was written): {e}")
        }
    })?;
    Ok(swap_in(&cur, predictor, manifest, weights, origin, fine_tune, None))
}

/// Back to the shipped model: the kept one and the one before it are deleted.
async fn revert(base: &str) -> Result<FromWorker, String> {
    crate::idb::write(&[(crate::idb::MODEL_KEY, None), (crate::idb::PREVIOUS_MODEL_KEY, None)])
        .await?;
    let (manifest, weights, compact) = fetch_shipped(base).await?;
    adopt_unstored(manifest, weights, ModelOrigin::Shipped, compact).await
}

/// Undoes the last keep or import: the model kept before it comes back (and is the kept one
/// again), or, when there was none, the shipped model.
async fn undo(base: &str) -> Result<FromWorker, String> {
    let record = crate::idb::get_value(crate::idb::PREVIOUS_MODEL_KEY).await.ok().flatten();
    let Some((record, (manifest, weights, origin, fine_tune))) =
        record.and_then(|r| read_record(&r).map(|m| (r, m)))
    else {
        return revert(base).await;
    };
    // It must load before anything is written.
    let (cur, predictor) = build(&manifest, &weights)?;
    crate::idb::write(&[
        (crate::idb::MODEL_KEY, Some(&record)),
        (crate::idb::PREVIOUS_MODEL_KEY, None),
    ])
    .await?;
    Ok(swap_in(&cur, predictor, manifest, weights, origin, fine_tune, None))
}

/// A bundle the user picked: refused unless it fits the loaded model's config.
async fn import(manifest: &str, weights: Vec<u8>) -> Result<FromWorker, String> {
    let cur = STATE.with_borrow(|s| s.loaded.clone()).ok_or("no model is loaded")?;
    let m = BundleManifest::from_json(manifest).map_err(|e| format!("model.json: {e}"))?;
    let want = &cur.manifest.config;
    let got = &m.config;
    if got.labels != want.labels || got.sources != want.sources {
        return Err(format!(
            "this bundle has types {:?} and sources {:?}; the app needs types {:?} and sources {:?}",
            got.labels.names(),
            got.sources.names(),
            want.labels.names(),
            want.sources.names()
        ));
    }
    if got.image_size != want.image_size || m.tile_source.zoom() != cur.manifest.tile_source.zoom()
    {
        return Err(format!(
            "this bundle takes {}px inputs at zoom {}; the app's model takes {}px at zoom {}",
            got.image_size,
            m.tile_source.zoom(),
            want.image_size,
            cur.manifest.tile_source.zoom()
        ));
    }
    adopt(m, weights, ModelOrigin::Imported, None).await
}

/// The shipped bundle's manifest and weights: its compact copy (`model/compact/`, f16 or int8)
/// when `export` measured it within the page's budget (1 point of test accuracy and of
/// macro-F1), with what it measured; else the f32 weights.
async fn fetch_shipped(base: &str) -> Result<(BundleManifest, Vec<u8>, Option<String>), String> {
    let compact = format!("{base}model/{COMPACT_DIR}/");
    let report = begin(&format!("{compact}{PRECISION_REPORT_FILE}")).text().await;
    if let Some(r) = report.ok().and_then(|t| serde_json::from_str::<PrecisionReport>(&t).ok())
        && r.within_budget()
        && let Ok((manifest, weights)) = fetch_bundle(&compact).await
    {
        return Ok((manifest, weights, Some(r.summary())));
    }
    let (manifest, weights) = fetch_bundle(&format!("{base}model/")).await?;
    Ok((manifest, weights, None))
}

/// A bundle's manifest and weights from the folder at `url`.
async fn fetch_bundle(url: &str) -> Result<(BundleManifest, Vec<u8>), String> {
    let manifest_req = begin(&format!("{url}{BUNDLE_CONFIG_FILE}"));
    let weights_req = begin(&format!("{url}{BUNDLE_WEIGHTS_FILE}"));
    let manifest = BundleManifest::from_json(&manifest_req.text().await?)
        .map_err(|e| format!("{url}{BUNDLE_CONFIG_FILE}: {e}"))?;
    Ok((manifest, weights_req.bytes().await?))
}

/// The kept model (or, at [`crate::idb::PREVIOUS_MODEL_KEY`], the one kept before it) from
/// IndexedDB, if there is a readable one.
async fn stored_model(
    key: &str,
) -> Option<(BundleManifest, Vec<u8>, ModelOrigin, Option<FineTuneSummary>)> {
    read_record(&crate::idb::get_value(key).await.ok()??)
}

/// A kept model's IndexedDB record as its bundle, origin and fine-tune, if it is readable.
fn read_record(
    value: &JsValue,
) -> Option<(BundleManifest, Vec<u8>, ModelOrigin, Option<FineTuneSummary>)> {
    let (r, weights) = match value.as_string() {
        // A record from before weights were kept as bytes.
        Some(text) => {
            let old: StoredModelBase64 = serde_json::from_str(&text).ok()?;
            let weights = base64::engine::general_purpose::STANDARD.decode(old.weights_b64).ok()?;
            let r = StoredModel {
                manifest: old.manifest,
                origin: old.origin,
                fine_tune: old.fine_tune,
            };
            (r, weights)
        }
        None => {
            let get = |k: &str| js_sys::Reflect::get(value, &k.into()).ok();
            let r: StoredModel = serde_json::from_str(&get("meta")?.as_string()?).ok()?;
            (r, crate::transfer::from_buffer(&get("weights")?)?)
        }
    };
    let manifest = BundleManifest::from_json(&r.manifest).ok()?;
    Some((manifest, weights, r.origin, r.fine_tune))
}

/// The device for the requested backend, and a note when it had to fall back. WebGPU is
/// tried unless the CPU was asked for; a missing adapter or a failed init falls back to flex.
async fn device(choice: BackendChoice) -> (Device, &'static str, Option<BackendNote>) {
    if choice == BackendChoice::Cpu {
        return (Device::flex(), "cpu", None);
    }
    webgpu_device().await
}

#[cfg(not(feature = "webgpu"))]
async fn webgpu_device() -> (Device, &'static str, Option<BackendNote>) {
    let note = BackendNote::no_webgpu(Some("this build has no WebGPU backend".into()));
    (Device::flex(), "cpu", Some(note))
}

#[cfg(feature = "webgpu")]
async fn webgpu_device() -> (Device, &'static str, Option<BackendNote>) {
    let has_gpu = js_sys::Reflect::get(&scope().navigator(), &"gpu".into())
        .map(|g| !g.is_undefined() && !g.is_null())
        .unwrap_or(false);
    if !has_gpu {
        let note = BackendNote::no_webgpu(Some("navigator.gpu is missing".into()));
        return (Device::flex(), "cpu", Some(note));
    }
    match Device::wgpu_options().init_async().await {
        Ok(d) => (d, "webgpu", None),
        // Burn's error is a Debug dump of its device: behind the disclosure, not in the text.
        Err(e) => (Device::flex(), "cpu", Some(BackendNote::no_webgpu(Some(format!("{e:?}"))))),
    }
}

async fn load(base: String, choice: BackendChoice) -> Result<FromWorker, String> {
    let t0 = now_ms();
    let (device, backend, note) = device(choice).await;
    // On the CPU the scan helper starts now, to load its copy of the model while this worker
    // reads and warms up its own: a scan clicked the moment the model is ready then finds it
    // ready or nearly.
    start_scan_helper(&base, backend);
    // A kept model (fine-tuned or imported) wins over the shipped one; an unreadable record is
    // ignored (and replaced at the next keep).
    let (manifest, weights, origin, fine_tune, compact) =
        match stored_model(crate::idb::MODEL_KEY).await {
            Some((m, w, origin, fine_tune)) => (m, w, origin, fine_tune, None),
            None => {
                let (m, w, compact) = fetch_shipped(&base).await?;
                (m, w, ModelOrigin::Shipped, None, compact)
            }
        };
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

    let loaded = Loaded {
        predictor,
        manifest,
        base,
        weights: Rc::new(weights),
        origin,
        fine_tune,
        backend,
        compact,
    };
    let model = info(&loaded);
    STATE.with_borrow_mut(|st| st.loaded = Some(Rc::new(loaded)));
    Ok(FromWorker::Ready {
        backend: backend.to_string(),
        note,
        load_ms,
        warmup_ms,
        model,
        memory_bytes: wasm_memory_bytes(),
    })
}

/// The size of this worker's wasm linear memory, in bytes.
fn wasm_memory_bytes() -> f64 {
    wasm_bindgen::memory()
        .dyn_into::<js_sys::WebAssembly::Memory>()
        .map(|m| f64::from(js_sys::ArrayBuffer::from(m.buffer()).byte_length()))
        .unwrap_or(0.0)
}

/// `runs` forward passes of a blank tile, timed by kind of operation
/// (`Predictor::profile`): the median of each kind and of the whole pass.
fn profile(m: &Loaded, runs: usize) -> Result<FromWorker, String> {
    let s = m.manifest.config.image_size;
    let blank = image::RgbImage::from_pixel(s, s, image::Rgb(FILL));
    let (lat, lon) = (m.manifest.scaler.mean[0], m.manifest.scaler.mean[1]);
    let input = m.predictor.input(&blank, lat, lon, "user").map_err(|e| e.to_string())?;
    let mut passes = Vec::new();
    for _ in 0..runs.clamp(1, 1000) {
        passes.push(m.predictor.profile(&input, &now_ms).map_err(|e| e.to_string())?);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let kinds: Vec<_> = passes[0].0.iter().map(|(op, _)| *op).collect();
    let ops = kinds
        .into_iter()
        .map(|op| {
            let times = passes
                .iter()
                .map(|(parts, _)| parts.iter().find(|(o, _)| *o == op).map_or(0.0, |p| p.1))
                .collect();
            (op, median(times))
        })
        .collect();
    let total_ms = median(passes.iter().map(|p| p.1).collect());
    Ok(FromWorker::Profile { runs: passes.len(), backend: m.backend.to_string(), ops, total_ms })
}

async fn predict(
    m: &Loaded,
    tiles: &mut Tiles,
    id: u64,
    lat: f64,
    lon: f64,
    source: &str,
) -> Result<FromWorker, String> {
    let t0 = now_ms();
    let crop = tiles.crop(m, lat, lon).await?;
    let tiles_ms = now_ms() - t0;

    let t1 = now_ms();
    let input: ModelInput =
        m.predictor.input(&crop, lat, lon, source).map_err(|e| e.to_string())?;
    let prediction = m.predictor.predict_async(&input).await.map_err(|e| e.to_string())?;
    let model_ms = now_ms() - t1;
    Ok(FromWorker::Prediction { id, lat, lon, prediction, tiles_ms, model_ms })
}
