//! The page: map, tag form, prediction panel, tag list, import/export, settings.
//!
//! State lives in a few signals owned by [`App`]; the model runs in a Web Worker
//! ([`crate::worker`]) that this module starts and talks to with [`crate::protocol`] messages.

mod files;
mod fine_tune_panel;
mod learn_area;
mod locate;
mod map;
mod offline;
mod panels;
mod suggestions_panel;
mod view_api;
mod worker_link;

use worker_link::start_worker;
pub(crate) use worker_link::{send, send_with_bytes};

use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::prelude::*;
use web_sys::Worker;

use crate::idb;
use crate::protocol::{BackendNote, FineTuneSummary, ModelInfo, ToWorker};
use crate::store::{DEFAULT_SOURCE, TagStore};
use model_core::Prediction;
use model_core::data::features::{FeatureTypes, OsmTagChoice};
use model_core::data::vocab::NONE_LABEL;
use model_core::infer::bundle::{RENDERED_TILES_ATTRIBUTION, TileSourceSpec};

/// The OSM standard layer: the default view (not what the model sees; see the base-layer
/// switch).
pub const OSM_TILES: &str = "https://tile.openstreetmap.org/{z}/{x}/{y}.png";
pub const OSM_ATTRIBUTION: &str =
    "&copy; <a href=\"https://www.openstreetmap.org/copyright\">OpenStreetMap</a> contributors";
/// Where the map opens: the bundled extract (central Helsinki).
pub const START: (f64, f64, f64) = (60.1699, 24.9384, 16.0);

/// The model worker's state as the page sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelState {
    Loading,
    Ready {
        backend: String,
        note: Option<BackendNote>,
        load_ms: f64,
        warmup_ms: f64,
        /// The worker's wasm memory once ready, in bytes.
        memory_bytes: f64,
        info: Box<ModelInfo>,
        /// Milliseconds from navigation start to model-ready (for the benchmark).
        ready_at_ms: f64,
    },
    Failed(String),
}

/// The prediction panel's state.
#[derive(Debug, Clone, PartialEq)]
pub enum PredictionState {
    Idle,
    Waiting {
        lat: f64,
        lon: f64,
    },
    Done {
        lat: f64,
        lon: f64,
        prediction: Prediction,
        tiles_ms: f64,
        model_ms: f64,
        /// From the request to the answer on the page, worker messaging included.
        latency_ms: f64,
    },
    Failed(String),
}

/// The tag form: a new tag at a point, or an existing one being edited.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub id: Option<String>,
    pub lat: f64,
    pub lon: f64,
    pub label: String,
    pub source: String,
    pub note: String,
    /// The mapper picked the type (until then a new tag's type follows the prediction).
    pub label_chosen: bool,
    /// The OSM tags chosen in the form: one of the type's presets and optional keys.
    pub osm: OsmTagChoice,
}

impl Draft {
    /// Another type: its default preset, keeping the optional keys it also has.
    pub fn set_label(&mut self, label: &str) {
        if self.label != label
            && let Ok(ty) = FeatureTypes::builtin().get(label)
        {
            self.osm = self.osm.for_type(ty);
            self.label = label.to_string();
        }
    }

    /// The OSM tags the tag is saved with.
    pub fn osm_tags(&self) -> Vec<(String, String)> {
        FeatureTypes::builtin().get(&self.label).map(|ty| ty.compose(&self.osm)).unwrap_or_default()
    }

    /// A new tag's type follows the prediction at its point until the mapper picks one: the
    /// most probable feature type ("no feature here" is not a type one tags).
    pub fn prefill(&mut self, lat: f64, lon: f64, p: &Prediction) {
        // The point went to the worker and back as JSON, which may change the last bit.
        let here = (self.lat - lat).abs() < 1e-9 && (self.lon - lon).abs() < 1e-9;
        if self.id.is_none()
            && !self.label_chosen
            && here
            && let Some((label, _)) = p.top_feature()
        {
            self.set_label(label);
        }
    }
}

/// Map base layer settings (from the settings panel or `?tiles=`/`?attribution=`).
#[derive(Debug, Clone, PartialEq)]
pub struct TileSettings {
    pub url: String,
    pub attribution: String,
    /// Show the model's own tiles instead.
    pub model_view: bool,
}

/// The fine-tune panel's state.
#[derive(Debug, Clone, PartialEq)]
pub enum FineTuneState {
    Idle,
    Running {
        phase: String,
        percent: f64,
        epoch: usize,
        epochs: usize,
        losses: Vec<f32>,
        val_accuracy: Option<f32>,
        cancelling: bool,
    },
    /// Finished: the candidate waits for keep or discard.
    Done(FineTuneSummary),
    Kept(FineTuneSummary),
    Cancelled,
    Failed(String),
}

/// A point the scan found: a suggested feature to accept or reject.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    pub key: u64,
    pub lat: f64,
    pub lon: f64,
    pub label: String,
    pub confidence: f32,
}

/// A rejected suggestion, kept as a negative example for the next fine-tune.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rejection {
    pub lat: f64,
    pub lon: f64,
    pub label: String,
}

/// The "Already in OpenStreetMap" layer: the features the server's extract maps in view.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OsmLayer {
    /// Shown (the mapper can switch it off).
    pub on: bool,
    /// The bbox (`min_lon,min_lat,max_lon,max_lat`) the features were asked for.
    pub bbox: String,
    pub features: Vec<model_core::data::candidates::MappedFeature>,
    /// Why there are none to show (no server API, too large an area), if so.
    pub error: Option<String>,
}

/// What OpenStreetMap already has around the mapper's own tags, for the exports to leave out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OwnAreaOsm {
    /// The area asked about ([`crate::store::TagStore::own_bbox`]).
    pub bbox: Option<(f64, f64, f64, f64)>,
    /// The answer is on its way.
    pub pending: bool,
    pub features: Vec<model_core::data::candidates::MappedFeature>,
    /// Why the server could not say (no API, an area over its cap).
    pub error: Option<String>,
}

impl OwnAreaOsm {
    /// Why an export now cannot leave out what OpenStreetMap has, if it cannot.
    pub fn unchecked(&self) -> Option<String> {
        match (self.pending, &self.error) {
            (true, _) => Some("the server has not answered yet".into()),
            (false, e) => e.clone(),
        }
    }
}

/// The scan of the visible map.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanState {
    pub running: bool,
    pub id: u64,
    pub scanned: usize,
    pub total: usize,
    pub failed: usize,
    /// The least promising points, left unscanned for lack of time.
    pub unscanned: usize,
    /// Suggestions need at least this confidence (0-1): the model's own for the scanned view
    /// (its region's, else its overall one) until the mapper moves the slider.
    pub threshold: f32,
    /// Whether the mapper has set the threshold (then scans keep it).
    pub threshold_set: bool,
    /// The scanned area, `min_lon,min_lat,max_lon,max_lat`.
    pub bbox: String,
    /// Where the points came from ("candidates from the map", or a grid and why).
    pub points_from: String,
    /// What the extract already maps there: a suggestion of a type within 5 m of one is left out.
    pub mapped: Vec<model_core::data::candidates::MappedFeature>,
    /// Suggestions left out as already mapped.
    pub already_mapped: usize,
    /// When the scan started and how long it took, end to end (candidates, tiles, model),
    /// in milliseconds (for the benchmark).
    pub started_ms: f64,
    pub took_ms: Option<f64>,
    /// When the first `SCAN_FIRST` points (those always scored) were in, in milliseconds.
    pub first_ms: Option<f64>,
    /// How many workers scored the last scan (the model worker, and its scan helper).
    pub workers: usize,
    /// When the points went to the worker (the server's candidates were in), in milliseconds
    /// from the start.
    pub sent_ms: Option<f64>,
    /// What the scored points cost their workers, summed: tiles, then model, in milliseconds.
    pub cost_ms: [f64; 2],
}

/// The mapper's tags: the store in IndexedDB, the list's filter, the form, the undo stack.
#[derive(Clone, Copy)]
pub struct TagsState {
    pub store: RwSignal<TagStore>,
    /// The stored tags have been read (saving before that would overwrite them).
    pub ready: RwSignal<bool>,
    pub filter: RwSignal<Option<String>>,
    /// The tag form: a new tag or one being edited.
    pub draft: RwSignal<Option<Draft>>,
    /// Deleted tags, latest last ("Undo delete", Ctrl+Z).
    pub deleted: RwSignal<Vec<crate::store::Deleted>>,
}

/// The model worker and what the page knows of it: the model, the prediction, fine-tuning.
#[derive(Clone, Copy)]
pub struct WorkerState {
    pub handle: StoredValue<Option<Worker>, LocalStorage>,
    pub model: RwSignal<ModelState>,
    pub prediction: RwSignal<PredictionState>,
    pub next_request: StoredValue<u64>,
    /// When the latest prediction was requested (`performance.now()`).
    pub requested_at: StoredValue<f64>,
    pub finetune: RwSignal<FineTuneState>,
    /// A model operation (keep, import, revert, export) in progress or its outcome.
    pub model_op: RwSignal<Option<Result<String, String>>>,
    /// How many workers a scan started now would run on (`FromWorker::ScanWorkers`).
    pub scan_workers: RwSignal<usize>,
}

/// Suggestions: the view's scan, what it found, what the mapper rejected.
#[derive(Clone, Copy)]
pub struct SuggestState {
    pub scan: RwSignal<ScanState>,
    pub found: RwSignal<Vec<Suggestion>>,
    pub rejections: RwSignal<Vec<Rejection>>,
}

/// The map: its base layer, the Leaflet map itself, what OpenStreetMap maps in the view.
#[derive(Clone, Copy)]
pub struct MapState {
    pub tiles: RwSignal<TileSettings>,
    /// The Leaflet map, once it exists (the scan reads its bounds).
    pub leaflet: StoredValue<Option<leptos_leaflet::leaflet::Map>, LocalStorage>,
    pub osm: RwSignal<OsmLayer>,
    pub own_osm: RwSignal<OwnAreaOsm>,
}

/// Everything the components share, by concern. Each part is also a context of its own
/// ([`App`] provides them), so a component that needs one concern takes only that one; the
/// actions that span several (predict, tag here, select) are `Ctx`'s methods.
#[derive(Clone, Copy)]
pub struct Ctx {
    pub tags: TagsState,
    pub worker: WorkerState,
    pub suggest: SuggestState,
    pub map: MapState,
    /// One-line status for the screen-reader live region and sighted users alike.
    pub status: RwSignal<String>,
}

/// The one-line status as a context of its own (a newtype: a bare `RwSignal<String>` would
/// be any string's context).
#[derive(Clone, Copy)]
pub struct Status(pub RwSignal<String>);

impl Ctx {
    /// Suggestions at or above the threshold, not already tagged there.
    pub fn visible_suggestions(&self) -> Vec<Suggestion> {
        let t = self.suggest.scan.with(|s| s.threshold);
        self.suggest.found.with(|v| crate::scan::shown(v, |s| (s.confidence, s.lat, s.lon), t))
    }

    /// Changes the tags and saves them to IndexedDB (every change goes through here).
    pub fn edit_store(&self, f: impl FnOnce(&mut TagStore)) {
        self.tags.store.update(f);
        if !self.tags.ready.get_untracked() {
            return;
        }
        let json = self.tags.store.with_untracked(TagStore::to_json);
        let status = self.status;
        spawn_local(async move {
            if let Err(e) = idb::put(idb::TAGS_KEY, &json).await {
                status.set(format!("Saving tags failed: {e}"));
            }
        });
    }

    /// Asks the worker for a prediction at a point (the latest request wins).
    pub fn predict(&self, lat: f64, lon: f64, source: &str) {
        if !matches!(self.worker.model.get_untracked(), ModelState::Ready { .. }) {
            self.worker.prediction.set(PredictionState::Failed(
                "The model is not ready yet; the prediction will be possible once it has loaded."
                    .into(),
            ));
            return;
        }
        let id = self.worker.next_request.get_value() + 1;
        self.worker.next_request.set_value(id);
        self.worker.requested_at.set_value(crate::net::now_ms());
        self.worker.prediction.set(PredictionState::Waiting { lat, lon });
        send(self, &ToWorker::Predict { id, lat, lon, source: source.to_string() });
    }

    /// Opens the form for a new tag at a point and predicts there.
    pub fn new_tag_at(&self, lat: f64, lon: f64) {
        self.tags.draft.set(Some(Draft {
            id: None,
            lat,
            lon,
            label: "entrance".into(),
            source: DEFAULT_SOURCE.into(),
            note: String::new(),
            label_chosen: false,
            osm: OsmTagChoice::default(),
        }));
        self.status.set(format!("New tag at {lat:.5}, {lon:.5}: choose its type and save."));
        show_form_on_phone();
        self.predict(lat, lon, DEFAULT_SOURCE);
    }

    /// Deletes tag `id`; it can be undone ([`Ctx::undo_delete`]).
    pub fn delete_tag(&self, id: &str) {
        let mut gone = None;
        self.edit_store(|s| gone = s.delete(id));
        if let Some(d) = gone {
            self.tags.deleted.update(|v| v.push(d));
            self.status.set(format!("Deleted tag {id}. Undo delete (Ctrl+Z) brings it back."));
        }
    }

    /// Brings back the last deleted tag.
    pub fn undo_delete(&self) {
        let Some(d) = self.tags.deleted.try_update(|v| v.pop()).flatten() else {
            self.status.set("Nothing to undo.".into());
            return;
        };
        let id = d.tag.id.clone();
        let mut back = false;
        self.edit_store(|s| back = s.restore(d));
        self.status.set(if back {
            format!("Restored tag {id}.")
        } else {
            format!("Tag {id} is already back (imported again).")
        });
    }

    /// Opens the form for an existing tag and predicts at it.
    pub fn select(&self, id: &str) {
        let draft = self.tags.store.with_untracked(|store| {
            store.get(id).map(|t| Draft {
                id: Some(t.id.clone()),
                lat: t.lat,
                lon: t.lon,
                label: t.label.clone(),
                source: t.source.clone(),
                note: store.note(t).to_string(),
                label_chosen: true,
                osm: FeatureTypes::builtin()
                    .get(&t.label)
                    .map(|ty| ty.choice(&store.osm_tags(t)))
                    .unwrap_or_default(),
            })
        });
        let Some(d) = draft else { return };
        let (lat, lon, source) = (d.lat, d.lon, d.source.clone());
        self.tags.draft.set(Some(d));
        self.predict(lat, lon, &source);
    }
}

pub(crate) fn query_param(name: &str) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    web_sys::UrlSearchParams::new_with_str(&search).ok()?.get(name)
}

/// The page's base URL (directory of the page), for `model/` and `tiles/`.
fn base_url() -> String {
    let loc = web_sys::window().expect("a window").location();
    let origin = loc.origin().unwrap_or_default();
    let path = loc.pathname().unwrap_or_else(|_| "/".into());
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    format!("{origin}{}", if dir.is_empty() { "/" } else { dir })
}

/// A type's marker letter, from the feature-type table (information not by colour alone);
/// `none` ("no feature here") has a dash.
pub fn letter(label: &str) -> String {
    if label == NONE_LABEL {
        return "–".into();
    }
    FeatureTypes::builtin().letter(label).to_string()
}

/// What people read for a type, from the feature-type table; `none` is "no feature here".
pub fn display(label: &str) -> String {
    if label == NONE_LABEL {
        return "no feature here".into();
    }
    FeatureTypes::builtin().display(label)
}

/// The bar colour of `none` (grey: not a feature).
const NONE_COLOUR: &str = "#4b5563";

/// `.tag-<type> { background: <colour> }` for every type of the table (and the hollow
/// `.osm-<type>` ring of what OpenStreetMap already has), as one `<style>`.
fn type_styles() {
    let css: String = FeatureTypes::builtin()
        .types
        .iter()
        .map(|t| format!(".tag-{} {{ background: {}; }}\n", t.name, t.colour))
        .chain([format!(".tag-{NONE_LABEL} {{ background: {NONE_COLOUR}; }}\n")])
        .chain(
            FeatureTypes::builtin()
                .types
                .iter()
                .map(|t| format!(".osm-marker.osm-{} {{ border-color: {}; }}\n", t.name, t.colour)),
        )
        .collect();
    let Some(doc) = web_sys::window().and_then(|w| w.document()) else { return };
    if let (Ok(style), Some(head)) = (doc.create_element("style"), doc.head()) {
        style.set_text_content(Some(&css));
        let _ = head.append_child(&style);
    }
}

/// The widest viewport (CSS px) that gets the phone layout: `assets/app.css` says the same.
const PHONE_MAX_WIDTH: f64 = 700.0;

/// On a phone the panels are a bottom sheet that may be scrolled down: a new tag brings its
/// form (at the sheet's top) into view.
fn show_form_on_phone() {
    let Some(w) = web_sys::window() else { return };
    if w.inner_width().ok().and_then(|v| v.as_f64()).is_some_and(|x| x <= PHONE_MAX_WIDTH)
        && let Some(el) = w.document().and_then(|d| d.get_element_by_id("sidebar"))
    {
        el.set_scroll_top(0);
    }
}

pub fn backend_label(backend: &str) -> &'static str {
    match backend {
        "webgpu" => "WebGPU",
        _ => "CPU (wasm SIMD)",
    }
}

#[component]
fn App() -> impl IntoView {
    // A custom layer from the address has no default attribution, except the app's own
    // rendered tiles (drawn from ODbL data); the OSM layer has its own.
    let (url, default_attribution) = match query_param("tiles") {
        Some(u) if TileSourceSpec::is_rendered_template(&u) => {
            (u, RENDERED_TILES_ATTRIBUTION.to_string())
        }
        Some(u) => (u, String::new()),
        None => (OSM_TILES.to_string(), OSM_ATTRIBUTION.to_string()),
    };
    let ctx = Ctx {
        tags: TagsState {
            store: RwSignal::new(TagStore::default()),
            ready: RwSignal::new(false),
            filter: RwSignal::new(None),
            draft: RwSignal::new(None),
            deleted: RwSignal::new(Vec::new()),
        },
        worker: WorkerState {
            handle: StoredValue::new_local(None),
            model: RwSignal::new(ModelState::Loading),
            prediction: RwSignal::new(PredictionState::Idle),
            next_request: StoredValue::new(0),
            requested_at: StoredValue::new(0.0),
            finetune: RwSignal::new(FineTuneState::Idle),
            model_op: RwSignal::new(None),
            scan_workers: RwSignal::new(1),
        },
        suggest: SuggestState {
            scan: RwSignal::new(ScanState {
                running: false,
                id: 0,
                scanned: 0,
                total: 0,
                failed: 0,
                unscanned: 0,
                threshold: model_core::infer::DEFAULT_SUGGEST_THRESHOLD,
                threshold_set: false,
                bbox: String::new(),
                points_from: String::new(),
                mapped: Vec::new(),
                already_mapped: 0,
                started_ms: 0.0,
                took_ms: None,
                first_ms: None,
                workers: 0,
                sent_ms: None,
                cost_ms: [0.0; 2],
            }),
            found: RwSignal::new(Vec::new()),
            rejections: RwSignal::new(Vec::new()),
        },
        map: MapState {
            tiles: RwSignal::new(TileSettings {
                url,
                attribution: query_param("attribution").unwrap_or(default_attribution),
                model_view: false,
            }),
            leaflet: StoredValue::new_local(None),
            osm: RwSignal::new(OsmLayer { on: true, ..OsmLayer::default() }),
            own_osm: RwSignal::new(OwnAreaOsm::default()),
        },
        status: RwSignal::new(String::new()),
    };
    provide_context(ctx);
    provide_context(ctx.tags);
    provide_context(ctx.worker);
    provide_context(ctx.suggest);
    provide_context(ctx.map);
    provide_context(Status(ctx.status));
    offline::start();

    // Tags: load once from IndexedDB; `edit_store` saves after every change.
    let loaded = ctx.tags.ready;
    spawn_local(async move {
        match idb::get(idb::TAGS_KEY).await {
            Ok(Some(text)) => match TagStore::from_json(&text) {
                Ok(s) => ctx.tags.store.set(s),
                Err(e) => ctx.status.set(format!("Saved tags could not be read: {e}")),
            },
            Ok(None) => {}
            Err(e) => ctx.status.set(format!("Tags will not be saved: {e}")),
        }
        match idb::get(idb::REJECTIONS_KEY).await {
            Ok(Some(text)) => {
                if let Ok(r) = serde_json::from_str::<Vec<Rejection>>(&text) {
                    ctx.suggest.rejections.set(r);
                }
            }
            Ok(None) => {}
            Err(e) => ctx.status.set(format!("Rejected suggestions will not be saved: {e}")),
        }
        loaded.set(true);
    });
    let store_ready = move || loaded.get();

    start_worker(ctx);
    // Ctrl+Z (Cmd+Z) outside text fields undoes the last delete.
    if let Some(doc) = web_sys::window().and_then(|w| w.document()) {
        let on_key = wasm_bindgen::closure::Closure::<dyn Fn(web_sys::KeyboardEvent)>::new(
            move |e: web_sys::KeyboardEvent| {
                let in_field =
                    e.target().and_then(|t| t.dyn_into::<web_sys::Element>().ok()).is_some_and(
                        |el| matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT"),
                    );
                if (e.ctrl_key() || e.meta_key()) && e.key().eq_ignore_ascii_case("z") && !in_field
                {
                    e.prevent_default();
                    ctx.undo_delete();
                }
            },
        );
        let _ = doc.add_event_listener_with_callback("keydown", on_key.as_ref().unchecked_ref());
        on_key.forget();
    }

    let sheet_open = RwSignal::new(false);
    view! {
        <a class="skip-link" href="#sidebar">"Skip to the tag panel"</a>
        <header class="topbar">
            <h1>"AccessAtlas"</h1>
            <panels::BackendBadge/>
        </header>
        <offline::OfflineBanner/>
        <main class="layout">
            <map::MapView/>
            <aside id="sidebar" class="sidebar" class:sheet-open=move || sheet_open.get()
                aria-label="Tags and predictions" data-ready=move || store_ready().to_string()>
                // On a phone the panels are a bottom sheet under the map: this grows and
                // shrinks it (the layout hides it on a wide screen).
                <button type="button" class="sheet-toggle secondary" data-testid="sheet-toggle"
                    aria-controls="sidebar" aria-expanded=move || sheet_open.get().to_string()
                    on:click=move |_| sheet_open.update(|o| *o = !*o)>
                    {move || if sheet_open.get() { "Show more map" } else { "Show more panels" }}
                </button>
                <p class="status" role="status" aria-live="polite">{move || ctx.status.get()}</p>
                <panels::TagForm/>
                <panels::PredictionPanel/>
                <suggestions_panel::SuggestionsPanel/>
                <panels::TagList/>
                <fine_tune_panel::FineTunePanel/>
                <panels::ImportExport/>
                <offline::OfflinePanel/>
                <panels::Settings/>
                <panels::KeyboardHelp/>
            </aside>
        </main>
    }
}

/// Entry point of the `app` binary.
pub fn start() {
    console_error_panic_hook::set_once();
    type_styles();
    leptos::mount::mount_to_body(App);
}
