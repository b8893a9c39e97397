//! Offline: the page's side of the service worker (`assets/pwa/sw.js`). It registers the
//! worker, asks it to keep the app, its model worker and the model once the model is ready (so
//! the first visit is enough), saves the view for offline ("Save this area for offline": the
//! server's own rendered tiles at zooms 15-19 and the view's `/api/features` and
//! `/api/candidates` answers, in the Cache API), and says "Offline" while the server cannot be
//! reached. Tags live in IndexedDB and exports are made in the page, so both work offline as
//! they are.
//!
//! Never kept: another server's tiles (tile.openstreetmap.org's usage policy forbids
//! prefetching them), so a saved area always uses the server's own rendered map.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use model_core::data::tile::{BBox, expand_template};
use model_core::infer::bundle::{
    BUNDLE_CONFIG_FILE, BUNDLE_WEIGHTS_FILE, COMPACT_DIR, PRECISION_REPORT_FILE, TileSourceSpec,
};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::view_api::{candidates_url, features_url, view_bbox};
use super::{Ctx, ModelState, base_url};

/// The Cache API caches saved areas go into: this, `:`, the area's bbox, one cache per area
/// (`sw.js` keeps every cache of this prefix).
pub const AREA_CACHE: &str = "accessatlas-area-v1";
/// The address, in an area's cache, of what the page records of the save ([`SavedArea`]).
const AREA_RECORD: &str = "accessatlas/saved-area.json";
/// The zooms "Save this area for offline" keeps.
pub const SAVE_ZOOMS: (u8, u8) = (15, 19);
/// The most tiles one save keeps: a larger view is refused with its count.
pub const MAX_SAVED_TILES: u64 = 1_500;
/// How often the page asks the server whether it is there.
const HEALTH_EVERY_MS: u32 = 10_000;
/// Tiles fetched at once while saving.
const SAVE_PARALLEL: usize = 4;

/// What the page knows of being offline.
#[derive(Clone, Copy)]
pub struct Offline {
    /// Whether the server answered the last `/api/health`.
    pub reachable: RwSignal<bool>,
    /// What the service worker kept of the app ("kept N files"), once it has.
    pub kept: RwSignal<Option<String>>,
    /// The last save of an area: running or its outcome.
    pub area: RwSignal<AreaSave>,
    /// The areas saved in this browser, newest first (read again after each save or delete).
    pub saved: RwSignal<Vec<SavedArea>>,
}

/// An area saved for offline, as its cache records it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SavedArea {
    /// The view's bbox (`min_lon,min_lat,max_lon,max_lat`).
    pub bbox: String,
    pub tiles: usize,
    pub bytes: f64,
    /// When it was saved (ms since the epoch).
    pub saved_ms: f64,
}

impl SavedArea {
    fn cache_name(bbox: &str) -> String {
        format!("{AREA_CACHE}:{bbox}")
    }

    /// One line for the list: where, how much, when.
    pub fn describe(&self) -> String {
        let date = js_sys::Date::new(&self.saved_ms.into());
        let when: String = date.to_locale_string("default", &JsValue::UNDEFINED).into();
        let centre = self.bbox.split(',').filter_map(|v| v.parse::<f64>().ok()).collect::<Vec<_>>();
        let at = match centre[..] {
            [w, s, e, n] => format!("{:.4}, {:.4}", (s + n) / 2.0, (w + e) / 2.0),
            _ => self.bbox.clone(),
        };
        format!("Around {at}: {} map tiles, {:.1} MB, saved {when}", self.tiles, self.bytes / 1e6)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum AreaSave {
    Idle,
    Saving { done: usize, total: usize },
    Saved { tiles: usize, failed: usize, bytes: f64, bbox: String },
    Failed(String),
}

/// Registers the service worker, listens to it, and starts watching the server.
pub fn start() -> Offline {
    let off = Offline {
        reachable: RwSignal::new(true),
        kept: RwSignal::new(None),
        area: RwSignal::new(AreaSave::Idle),
        saved: RwSignal::new(Vec::new()),
    };
    provide_context(off);
    spawn_local(async move { off.saved.set(saved_areas().await) });
    if let Some(sw) = service_workers() {
        let on_message =
            Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |e: web_sys::MessageEvent| {
                let data = e.data();
                let get = |k: &str| js_sys::Reflect::get(&data, &k.into()).ok();
                if get("type").and_then(|t| t.as_string()).as_deref() != Some("kept") {
                    return;
                }
                let kept = get("kept").and_then(|k| k.as_f64()).unwrap_or(0.0);
                // Each failure as the service worker wrote it: the address, then why.
                let failed: Vec<String> = get("failed")
                    .map(|f| js_sys::Array::from(&f).iter().filter_map(|v| v.as_string()).collect())
                    .unwrap_or_default();
                off.kept.set(Some(if failed.is_empty() {
                    format!("kept {kept:.0} files for offline use")
                } else {
                    // The first two named (without the page's own address), so the mapper
                    // knows what will be missing and why (a full disk says so here).
                    let base = base_url();
                    let named: Vec<String> = failed
                        .iter()
                        .take(2)
                        .map(|f| f.strip_prefix(&base).unwrap_or(f).to_string())
                        .collect();
                    format!(
                        "kept {kept:.0} files for offline use ({} could not be fetched: {})",
                        failed.len(),
                        named.join("; ")
                    )
                }));
            });
        sw.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        on_message.forget();
        let promise = sw.register("./sw.js");
        spawn_local(async move {
            if let Err(e) = JsFuture::from(promise).await {
                web_sys::console::warn_1(
                    &format!("The app will not work offline: {}", crate::js::message(&e)).into(),
                );
            }
        });
    }
    let ctx = expect_context::<Ctx>();
    spawn_local(async move {
        loop {
            // Up: this server's health answer (not a portal's or a proxy's page).
            let health = crate::net::begin(&format!("{}api/health", base_url())).text().await;
            let up = health.is_ok_and(|t| {
                model_core::wire::read_answer::<model_core::wire::Health>(&t).is_ok()
            });
            if !up && off.reachable.get_untracked() && area_saved().await {
                // Out of reach with an area saved: its map is the server's own, so show that.
                ctx.map.tiles.update(|t| t.model_view = true);
            }
            off.reachable.set(up);
            gloo_timers::future::TimeoutFuture::new(HEALTH_EVERY_MS).await;
        }
    });
    off
}

/// Whether an area was saved for offline in this browser.
async fn area_saved() -> bool {
    !area_caches().await.is_empty()
}

/// The names of the saved areas' caches.
async fn area_caches() -> Vec<String> {
    let Some(caches) = web_sys::window().and_then(|w| w.caches().ok()) else { return vec![] };
    let Ok(keys) = JsFuture::from(caches.keys()).await else { return vec![] };
    js_sys::Array::from(&keys)
        .iter()
        .filter_map(|k| k.as_string())
        .filter(|k| k.starts_with(&format!("{AREA_CACHE}:")))
        .collect()
}

/// The areas saved in this browser, newest first. An area cache without its record (a save
/// cut short) is listed by its bbox alone.
pub async fn saved_areas() -> Vec<SavedArea> {
    let Some(caches) = web_sys::window().and_then(|w| w.caches().ok()) else { return vec![] };
    let mut out = Vec::new();
    for name in area_caches().await {
        let bbox = name[AREA_CACHE.len() + 1..].to_string();
        let record = async {
            let cache: web_sys::Cache =
                JsFuture::from(caches.open(&name)).await.ok()?.unchecked_into();
            let url = format!("{}{AREA_RECORD}", base_url());
            let res = JsFuture::from(cache.match_with_str(&url)).await.ok()?;
            let res: web_sys::Response = res.dyn_into().ok()?;
            let text = JsFuture::from(res.text().ok()?).await.ok()?.as_string()?;
            serde_json::from_str::<SavedArea>(&text).ok()
        };
        out.push(record.await.unwrap_or(SavedArea { bbox, tiles: 0, bytes: 0.0, saved_ms: 0.0 }));
    }
    out.sort_by(|a, b| b.saved_ms.total_cmp(&a.saved_ms));
    out
}

/// Deletes a saved area (its tiles and answers), then lists the rest again.
pub fn delete_area(off: Offline, bbox: String) {
    let Some(caches) = web_sys::window().and_then(|w| w.caches().ok()) else { return };
    spawn_local(async move {
        if let Err(e) = JsFuture::from(caches.delete(&SavedArea::cache_name(&bbox))).await {
            off.area
                .set(AreaSave::Failed(format!("could not delete it: {}", crate::js::message(&e))));
        }
        areas_changed();
        off.saved.set(saved_areas().await);
    });
}

fn service_workers() -> Option<web_sys::ServiceWorkerContainer> {
    let nav = web_sys::window()?.navigator();
    // Absent where the page is not a secure context (plain http off localhost).
    js_sys::Reflect::has(&nav, &"serviceWorker".into()).ok()?.then(|| nav.service_worker())
}

/// Asks the service worker to keep what the app needs offline: this page and what it loaded
/// (scripts, styles, wasm), the model worker (its loader names its script and wasm) and the
/// model's files as the worker loaded them (the compact copy when it did).
pub fn keep_for_offline(ctx: &Ctx) {
    let Some(sw) = service_workers() else { return };
    let compact = ctx.worker.model.with_untracked(|m| match m {
        ModelState::Ready { info, .. } => Some(info.weights.is_some()),
        _ => None,
    });
    let Some(compact) = compact else { return };
    let base = base_url();
    let mut urls = vec![
        base.clone(),
        format!("{base}worker_loader.js"),
        format!("{base}scan_helper.js"),
        format!("{base}manifest.webmanifest"),
        format!("{base}icons/icon-192.png"),
        format!("{base}icons/icon-512.png"),
    ];
    let model = if compact {
        let dir = format!("{base}model/{COMPACT_DIR}/");
        urls.push(format!("{dir}{PRECISION_REPORT_FILE}"));
        dir
    } else {
        format!("{base}model/")
    };
    urls.push(format!("{model}{BUNDLE_CONFIG_FILE}"));
    urls.push(format!("{model}{BUNDLE_WEIGHTS_FILE}"));
    if let Some(perf) = web_sys::window().and_then(|w| w.performance()) {
        for e in perf.get_entries_by_type("resource").iter() {
            let name = js_sys::Reflect::get(&e, &"name".into()).ok().and_then(|n| n.as_string());
            if let Some(n) = name.filter(|n| {
                n.starts_with(&base)
                    && !n[base.len()..].starts_with("api/")
                    && !n[base.len()..].starts_with("tiles/")
            }) {
                urls.push(n);
            }
        }
    }
    let list: js_sys::Array = urls.iter().map(|u| JsValue::from_str(u)).collect();
    let msg = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&msg, &"type".into(), &"keep".into());
    let _ = js_sys::Reflect::set(&msg, &"urls".into(), &list);
    post_to_service_worker(sw, msg);
}

/// Tells the service worker that the saved areas changed: it reads their tiles again (a tile
/// no saved area holds does not pass through it).
fn areas_changed() {
    let Some(sw) = service_workers() else { return };
    let msg = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&msg, &"type".into(), &"areas".into());
    post_to_service_worker(sw, msg);
}

/// Posts `msg` to the active service worker, once there is one.
fn post_to_service_worker(sw: web_sys::ServiceWorkerContainer, msg: js_sys::Object) {
    spawn_local(async move {
        let Ok(reg) = sw.ready().map(JsFuture::from) else { return };
        let Ok(reg) = reg.await else { return };
        let reg: web_sys::ServiceWorkerRegistration = reg.unchecked_into();
        if let Some(active) = reg.active() {
            let _ = active.post_message(&msg);
        }
    });
}

/// Saves the view for offline: its rendered tiles at [`SAVE_ZOOMS`] (at most
/// [`MAX_SAVED_TILES`], else refused with the count) and its mapped features and candidates.
pub fn save_area(ctx: &Ctx, off: Offline) {
    let Some((bbox, [s, w, n, e])) = view_bbox(ctx) else { return };
    let view = BBox { min_lon: w, min_lat: s, max_lon: e, max_lat: n };
    let (lo, hi) = SAVE_ZOOMS;
    let count = match view.tile_count(lo, hi) {
        Ok(c) => c,
        Err(e) => return off.area.set(AreaSave::Failed(e.to_string())),
    };
    if count > MAX_SAVED_TILES {
        return off.area.set(AreaSave::Failed(format!(
            "this view needs {count} map tiles at zooms {lo}-{hi}; at most {MAX_SAVED_TILES} \
             are saved at once: zoom in and save it in parts"
        )));
    }
    let template = TileSourceSpec::rendered_template(&base_url());
    let mut urls: Vec<String> = match view.tiles(lo, hi) {
        Ok(t) => t.into_iter().map(|t| expand_template(&template, t)).collect(),
        Err(e) => return off.area.set(AreaSave::Failed(e.to_string())),
    };
    let tiles = urls.len();
    urls.push(features_url(&bbox));
    urls.push(candidates_url(&bbox));
    let total = urls.len();
    off.area.set(AreaSave::Saving { done: 0, total });
    let Some(caches) = web_sys::window().and_then(|w| w.caches().ok()) else {
        return off.area.set(AreaSave::Failed("this browser has no Cache API".into()));
    };
    spawn_local(async move {
        let cache = match JsFuture::from(caches.open(&SavedArea::cache_name(&bbox))).await {
            Ok(c) => c.unchecked_into::<web_sys::Cache>(),
            Err(e) => return off.area.set(AreaSave::Failed(crate::js::message(&e))),
        };
        let queue = Rc::new(RefCell::new(urls));
        let (done, failed, bytes, running) = (
            Rc::new(Cell::new(0)),
            Rc::new(Cell::new(0)),
            Rc::new(Cell::new(0.0)),
            Rc::new(Cell::new(SAVE_PARALLEL)),
        );
        let api_failed = Rc::new(RefCell::new(None::<String>));
        for _ in 0..SAVE_PARALLEL {
            let (queue, cache, done, failed, bytes, running, api_failed, bbox) = (
                queue.clone(),
                cache.clone(),
                done.clone(),
                failed.clone(),
                bytes.clone(),
                running.clone(),
                api_failed.clone(),
                bbox.clone(),
            );
            spawn_local(async move {
                loop {
                    let next = queue.borrow_mut().pop();
                    let Some(url) = next else { break };
                    match keep_one(&cache, &url).await {
                        Ok(n) => bytes.set(bytes.get() + n),
                        Err(e) if url.contains("/api/") => *api_failed.borrow_mut() = Some(e),
                        Err(_) => failed.set(failed.get() + 1),
                    }
                    done.set(done.get() + 1);
                    off.area.set(AreaSave::Saving { done: done.get(), total });
                }
                running.set(running.get() - 1);
                if running.get() > 0 {
                    return;
                }
                let outcome = match api_failed.borrow_mut().take() {
                    Some(e) => AreaSave::Failed(format!(
                        "the view's mapped features and candidates could not be saved: {e}"
                    )),
                    None => {
                        AreaSave::Saved { tiles, failed: failed.get(), bytes: bytes.get(), bbox }
                    }
                };
                spawn_local(async move {
                    if let AreaSave::Saved { tiles, failed, bytes, bbox } = &outcome {
                        let record = SavedArea {
                            bbox: bbox.clone(),
                            tiles: tiles - failed,
                            bytes: *bytes,
                            saved_ms: js_sys::Date::now(),
                        };
                        if let Err(e) = put_record(&cache, &record).await {
                            web_sys::console::warn_1(&format!("saved area record: {e}").into());
                        }
                    }
                    areas_changed();
                    off.area.set(outcome);
                    off.saved.set(saved_areas().await);
                });
            });
        }
    });
}

/// Records `area` in its cache, for the list.
async fn put_record(cache: &web_sys::Cache, area: &SavedArea) -> Result<(), String> {
    let json = serde_json::to_string(area).map_err(|e| e.to_string())?;
    let headers = js_sys::Object::from_entries(&js_sys::Array::of1(&js_sys::Array::of2(
        &"content-type".into(),
        &"application/json".into(),
    )))
    .map_err(|e| crate::js::message(&e))?;
    let init = web_sys::ResponseInit::new();
    init.set_headers(&headers);
    let res = web_sys::Response::new_with_opt_str_and_init(Some(&json), &init)
        .map_err(|e| crate::js::message(&e))?;
    let url = format!("{}{AREA_RECORD}", base_url());
    JsFuture::from(cache.put_with_str(&url, &res)).await.map_err(|e| crate::js::message(&e))?;
    Ok(())
}

/// Fetches `url` and puts the answer into `cache`; its size in bytes.
async fn keep_one(cache: &web_sys::Cache, url: &str) -> Result<f64, String> {
    let window = web_sys::window().ok_or("no window")?;
    let res: web_sys::Response = JsFuture::from(window.fetch_with_str(url))
        .await
        .map_err(|e| crate::js::message(&e))?
        .unchecked_into();
    if !res.ok() {
        return Err(format!("{url}: HTTP {}", res.status()));
    }
    let copy = res.clone().map_err(|e| crate::js::message(&e))?;
    let body = JsFuture::from(copy.array_buffer().map_err(|e| crate::js::message(&e))?)
        .await
        .map_err(|e| crate::js::message(&e))?;
    let n = js_sys::ArrayBuffer::from(body).byte_length();
    JsFuture::from(cache.put_with_str(url, &res)).await.map_err(|e| {
        let m = crate::js::message(&e);
        if m.contains("Quota") { format!("the browser's storage is full ({m})") } else { m }
    })?;
    Ok(f64::from(n))
}

/// "Offline" while the server cannot be reached: what still works.
#[component]
pub fn OfflineBanner() -> impl IntoView {
    let off = expect_context::<Offline>();
    view! {
        <Show when=move || !off.reachable.get()>
            <p class="offline-banner" role="status" data-testid="offline">
                "Offline: the server cannot be reached. The app, its model, your tags and the \
                 exports keep working; the map (the server's own, as saved) and what \
                 OpenStreetMap maps there only where an area was saved for offline."
            </p>
        </Show>
    }
}

/// The "Offline" panel: save the view, and what is kept.
#[component]
pub fn OfflinePanel() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let off = expect_context::<Offline>();
    let state = move || match off.area.get() {
        AreaSave::Idle => "idle",
        AreaSave::Saving { .. } => "saving",
        AreaSave::Saved { .. } => "saved",
        AreaSave::Failed(_) => "failed",
    };
    let line = move || match off.area.get() {
        AreaSave::Idle => String::new(),
        AreaSave::Saving { done, total } => format!("Saving for offline: {done} of {total}…"),
        AreaSave::Saved { tiles, failed, bytes, .. } => format!(
            "Saved for offline: {} map tiles at zooms {}-{} ({:.1} MB) and what OpenStreetMap \
             maps in this view{}.",
            tiles - failed,
            SAVE_ZOOMS.0,
            SAVE_ZOOMS.1,
            bytes / 1e6,
            if failed > 0 {
                format!("; {failed} tiles could not be fetched")
            } else {
                String::new()
            }
        ),
        AreaSave::Failed(e) => format!("Not saved: {e}."),
    };
    view! {
        <section class="panel" data-testid="offline-panel" aria-labelledby="offline-title"
            data-kept=move || off.kept.get().is_some().to_string() data-area=state>
            <h2 id="offline-title">"Offline"</h2>
            <p>{move || off.kept.get().map(|k| format!("The app and its model: {k}.")).unwrap_or_else(|| "The app and its model are kept for offline use once the model is ready.".into())}</p>
            <button type="button" data-testid="save-area"
                disabled=move || matches!(off.area.get(), AreaSave::Saving { .. })
                on:click=move |_| save_area(&ctx, off)>
                "Save this area for offline"
            </button>
            <p class="hint">
                "The server's own map of the view at zooms 15-19 (at most 1,500 tiles; the count \
                 shows as it starts, the size when done) and what OpenStreetMap maps there."
            </p>
            <p data-testid="save-area-status" role="status">{line}</p>
            <Show when=move || !off.saved.get().is_empty()>
                <h3>"Saved areas"</h3>
                <ul data-testid="saved-areas">
                    <For each=move || off.saved.get() key=|a| a.bbox.clone() let:area>
                        <li data-bbox=area.bbox.clone() data-tiles=area.tiles.to_string()>
                            <span>{area.describe()}</span>
                            <button type="button" class="delete-area"
                                aria-label=format!("Delete the saved area {}", area.bbox)
                                on:click={
                                    let bbox = area.bbox.clone();
                                    move |_| delete_area(off, bbox.clone())
                                }>
                                "Delete"
                            </button>
                        </li>
                    </For>
                </ul>
            </Show>
        </section>
    }
}
