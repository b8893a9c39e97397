//! The sidebar: tag form, prediction panel, tag list with filter, import/export, settings,
//! and the backend badge in the top bar.

use leptos::prelude::*;
use leptos::task::spawn_local;
use model_core::data::features::{FeatureTypes, OsmTagChoice, format_osm_tags};
use model_core::data::osm_edit::EditFormat;
use model_core::data::tags::Rejected;
use wasm_bindgen::prelude::*;

use super::files::download;
use model_core::data::vocab::NONE_LABEL;

use super::{Ctx, ModelState, PredictionState, backend_label, display, letter};
use crate::geojson::{import_geojson, to_geojson};
use crate::protocol::BackendNote;
use crate::store::{ImportReport, labels};

#[component]
pub fn BackendBadge() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let text = move || match ctx.model.get() {
        ModelState::Loading => "Model: loading…".to_string(),
        ModelState::Ready { backend, .. } => format!("Model: {}", backend_label(&backend)),
        ModelState::Failed(_) => "Model: unavailable".to_string(),
    };
    // What a mapper needs: which model, ready or not, and a fallback in words.
    let line = move || match ctx.model.get() {
        ModelState::Loading => "Loading the model…".to_string(),
        ModelState::Ready { note, info, .. } => {
            let what = super::model_panels::origin_label(&info.origin);
            let mut s = format!("{}{}: ready", what[..1].to_uppercase(), &what[1..]);
            if let Some(n) = note {
                s.push_str(&format!(". {}", n.message));
            }
            s
        }
        ModelState::Failed(e) => e,
    };
    // The build details, behind "Details".
    let detail = move || match ctx.model.get() {
        ModelState::Ready { load_ms, warmup_ms, memory_bytes, info, .. } => Some(format!(
            "{} model (git {}{}), loaded in {load_ms:.0} ms, warm-up {warmup_ms:.0} ms, the \
             worker's memory {:.0} MB",
            info.encoder,
            info.git_revision,
            info.weights.map(|w| format!("; {w}")).unwrap_or_default(),
            memory_bytes / 1e6,
        )),
        _ => None,
    };
    let memory = move || match ctx.model.get() {
        ModelState::Ready { memory_bytes, .. } => format!("{memory_bytes:.0}"),
        _ => String::new(),
    };
    let backend = move || match ctx.model.get() {
        ModelState::Ready { backend, .. } => backend,
        ModelState::Loading => "loading".into(),
        ModelState::Failed(_) => "failed".into(),
    };
    let ready_at = move || match ctx.model.get() {
        ModelState::Ready { ready_at_ms, .. } => format!("{ready_at_ms:.1}"),
        _ => String::new(),
    };
    // The technical reason for a fallback, for those who want it.
    let why = move || match ctx.model.get() {
        ModelState::Ready { note: Some(BackendNote { detail: Some(d), .. }), .. } => Some(view! {
            <p class="badge-why" data-testid="backend-why">"Why the fallback: "<code>{d}</code></p>
        }),
        _ => None,
    };
    view! {
        <div class="badge-wrap">
            <span class="badge" data-testid="backend-badge" data-backend=backend data-ready-ms=ready_at
                data-worker-memory=memory>{text}</span>
            <span class="badge-detail" data-testid="backend-note">{line}</span>
            <Show when=move || detail().is_some()>
                <details class="badge-more" data-testid="backend-more">
                    <summary>"Details"</summary>
                    <span data-testid="backend-details">{detail}</span>
                    {why}
                </details>
            </Show>
        </div>
    }
}

/// The feature of the draft's type OpenStreetMap already has where the draft is (from the
/// "Already in OpenStreetMap" layer), by id.
fn on_osm(ctx: Ctx) -> Option<String> {
    let d = ctx.draft.get()?;
    ctx.osm.with(|o| {
        model_core::data::candidates::nearest_mapped(
            &o.features,
            &d.label,
            d.lat,
            d.lon,
            model_core::data::osm_edit::SAME_FEATURE_M,
        )
        .map(|(f, _)| f.id.clone())
    })
}

#[component]
pub fn TagForm() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let field = move |f: fn(&mut super::Draft, String)| {
        move |ev: web_sys::Event| {
            let v = event_target_value(&ev);
            ctx.draft.update(|d| {
                if let Some(d) = d {
                    f(d, v)
                }
            });
        }
    };
    let save = move |ev: web_sys::SubmitEvent| {
        ev.prevent_default();
        let Some(d) = ctx.draft.get_untracked() else { return };
        let mut result = Ok(String::new());
        ctx.edit_store(|s| {
            result = match &d.id {
                Some(id) => {
                    s.edit(id, &d.label, &d.source, &d.note, &d.osm_tags()).map(|()| id.clone())
                }
                None => s.add(d.lat, d.lon, &d.label, &d.source, &d.note, &d.osm_tags()),
            }
        });
        match result {
            Ok(id) => {
                ctx.status.set(format!("Saved {} tag {id}.", display(&d.label)));
                ctx.draft.set(None);
            }
            Err(e) => ctx.status.set(format!("Not saved: {e}")),
        }
    };
    let delete = move |_| {
        let Some(Some(id)) = ctx.draft.get_untracked().map(|d| d.id) else { return };
        ctx.draft.set(None);
        ctx.delete_tag(&id);
    };
    let cancel = move |_| ctx.draft.set(None);
    // The type letters (R, E, D, T, O, from the feature-type table) pick the type.
    let pick_by_letter = move |e: web_sys::KeyboardEvent| {
        if e.ctrl_key() || e.meta_key() || e.alt_key() {
            return;
        }
        let key = e.key();
        let mut chars = key.chars();
        let (Some(c), None) = (chars.next(), chars.next()) else { return };
        if let Some(t) = FeatureTypes::builtin().by_letter(c) {
            e.prevent_default();
            let name = t.name.clone();
            ctx.draft.update(|d| {
                if let Some(d) = d {
                    d.set_label(&name);
                    d.label_chosen = true;
                }
            });
        }
    };
    let d = move || ctx.draft.get();
    view! {
        <Show when=move || d().is_some()>
            <form class="panel tag-form" data-testid="tag-form" on:submit=save
                on:keydown=move |e: web_sys::KeyboardEvent| if e.key() == "Escape" { ctx.draft.set(None) }>
                <h2>{move || if d().and_then(|d| d.id).is_some() { "Edit tag" } else { "New tag" }}</h2>
                <p class="coords">{move || d().map(|d| format!("{:.5}, {:.5}", d.lat, d.lon)).unwrap_or_default()}</p>
                <label for="tag-type">"Type"</label>
                <select id="tag-type" data-testid="tag-type" on:change=field(|d, v| {
                        d.set_label(&v);
                        d.label_chosen = true;
                    })
                    on:keydown=pick_by_letter
                    prop:value=move || d().map(|d| d.label).unwrap_or_default()>
                    {labels().names().iter().map(|l| view! {
                        <option value=l.clone()>{format!("{} ({})", display(l), letter(l))}</option>
                    }).collect_view()}
                </select>
                {move || on_osm(ctx).map(|id| view! {
                    <p class="on-osm" role="status" data-testid="on-osm">
                        {format!("Already in OpenStreetMap: {id} is this feature, within 3 m. Map it only if it is another one.")}
                    </p>
                })}
                <OsmTagFields/>
                <label for="tag-source">"Source"</label>
                <input id="tag-source" data-testid="tag-source" type="text" autocomplete="off"
                    on:input=field(|d, v| d.source = v)
                    prop:value=move || d().map(|d| d.source).unwrap_or_default()/>
                <label for="tag-note">"Note (optional)"</label>
                <textarea id="tag-note" data-testid="tag-note" rows="2"
                    on:input=field(|d, v| d.note = v)
                    prop:value=move || d().map(|d| d.note).unwrap_or_default()></textarea>
                <div class="buttons">
                    <button type="submit" data-testid="save-tag">"Save tag"</button>
                    <button type="button" class="secondary" on:click=cancel>"Cancel"</button>
                    <Show when=move || d().and_then(|d| d.id).is_some()>
                        <button type="button" class="danger" data-testid="delete-tag" on:click=delete>"Delete"</button>
                    </Show>
                </div>
            </form>
        </Show>
    }
}

/// The draft's OSM tags: one of its type's presets (the first preselected) and its optional
/// keys (a list of the usual values, or free text for keys that take any).
#[component]
fn OsmTagFields() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let ty = move || {
        ctx.draft.with(|d| d.as_ref().and_then(|d| FeatureTypes::builtin().get(&d.label).ok()))
    };
    let osm = move || ctx.draft.with(|d| d.as_ref().map(|d| d.osm.clone()).unwrap_or_default());
    let set = move |f: Box<dyn FnOnce(&mut OsmTagChoice)>| {
        ctx.draft.update(|d| {
            if let Some(d) = d {
                f(&mut d.osm)
            }
        })
    };
    let shown = move || {
        ctx.draft.with(|d| d.as_ref().map(|d| format_osm_tags(&d.osm_tags())).unwrap_or_default())
    };
    view! {
        <fieldset class="osm-tags" data-testid="osm-tags" data-tags=shown>
            <legend>"OpenStreetMap tags"</legend>
            <label for="tag-preset">"Preset"</label>
            <select id="tag-preset" data-testid="tag-preset"
                on:change=move |ev| {
                    let i = event_target_value(&ev).parse().unwrap_or(0);
                    set(Box::new(move |o| o.preset = i));
                }
                prop:value=move || osm().preset.to_string()>
                {move || ty().map(|t| t.presets.iter().enumerate().map(|(i, p)| view! {
                    <option value=i.to_string() prop:selected=move || osm().preset == i>{format!("{} ({})", p.name, p.tags.join(" + "))}</option>
                }).collect_view())}
            </select>
            {move || ty().map(|t| t.optional_keys().into_iter().map(|k| {
                let key = k.to_string();
                let id = format!("tag-opt-{}", key.replace(':', "-"));
                let value = move || ctx.draft.with(|d| d.as_ref().map(|d| d.osm.optional_value(&key).to_string()).unwrap_or_default());
                let chosen = value.clone();
                let key_set = k.to_string();
                let on = move |ev: web_sys::Event| {
                    let (k, v) = (key_set.clone(), event_target_value(&ev));
                    set(Box::new(move |o| o.set_optional(&k, &v)));
                };
                let input = match t.optional_values(k) {
                    Some(values) => view! {
                        <select id=id.clone() data-testid=id.clone() data-key=k.to_string() on:change=on prop:value=value>
                            <option value="">"(not set)"</option>
                            {values.into_iter().map(|v| {
                                let (v, chosen) = (v.to_string(), chosen.clone());
                                view! { <option value=v.clone() prop:selected={let v = v.clone(); move || chosen() == v}>{v.clone()}</option> }
                            }).collect_view()}
                        </select>
                    }.into_any(),
                    None => view! {
                        <input id=id.clone() data-testid=id.clone() data-key=k.to_string() type="text" autocomplete="off" on:input=on prop:value=value/>
                    }.into_any(),
                };
                view! { <label for=id.clone()>{format!("{k} (optional)")}</label>{input} }
            }).collect_view())}
            <p class="hint osm-preview">{shown}</p>
        </fieldset>
    }
}

#[component]
pub fn PredictionPanel() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let summary = move || match ctx.prediction.get() {
        PredictionState::Idle => {
            "Click the map (or press Enter on it) to get a prediction.".to_string()
        }
        PredictionState::Waiting { lat, lon } => format!("Predicting at {lat:.5}, {lon:.5}…"),
        PredictionState::Done { prediction, model_ms, tiles_ms, .. } => format!(
            "{}, {:.0} % confident ({:.0} ms: tiles {tiles_ms:.0} ms, model {model_ms:.0} ms).",
            if prediction.label == NONE_LABEL {
                "No feature here".to_string()
            } else {
                format!("Predicted {}", display(&prediction.label))
            },
            prediction.confidence * 100.0,
            tiles_ms + model_ms
        ),
        PredictionState::Failed(e) => format!("No prediction: {e}"),
    };
    // The model's own limits, in words: a place outside the area it was trained on, and the
    // types it never saw an example of (no probability is shown for those).
    let info = move || match ctx.model.get() {
        ModelState::Ready { info, .. } => Some(info),
        _ => None,
    };
    let outside = move || match ctx.prediction.get() {
        PredictionState::Done { prediction, .. } if prediction.outside_trained_area => {
            let area = info()
                .map(|i| i.trained_areas.iter().map(|a| a.describe()).collect::<Vec<_>>())
                .filter(|a| !a.is_empty())
                .map(|a| format!(" ({})", a.join("; ")))
                .unwrap_or_default();
            Some(view! {
                <p class="warning" role="status" data-testid="outside-area">
                    {format!("This place lies outside the area the model was trained on{area}. \
                        It ignored the position and answered from the map alone: treat this as a \
                        guess until the model is fine-tuned on tags from this area.")}
                </p>
            })
        }
        _ => None,
    };
    let bars = move || {
        let unlearned = info().map(|i| i.unlearned).unwrap_or_default();
        match ctx.prediction.get() {
        PredictionState::Done { prediction, .. } => prediction
            .probabilities
            .0
            .into_iter()
            .map(|(l, p)| {
                let not_learned = unlearned.contains(&l);
                let pct = if not_learned {
                    "cannot be predicted yet (no training example)".to_string()
                } else {
                    format!("{:.1} %", p * 100.0)
                };
                let width = if not_learned { 0.0 } else { p * 100.0 };
                let top = l == prediction.label;
                view! {
                    <li class="bar-row" class:top=top class:unlearned=not_learned data-label=l.clone()
                        data-probability=p.to_string() data-unlearned=not_learned.to_string()>
                        <span class="bar-label">{format!("{} {}", letter(&l), display(&l))}</span>
                        <span class=format!("bar tag-{l}") style=format!("width: {width:.1}%") aria-hidden="true"></span>
                        <span class="bar-value">{pct}</span>
                    </li>
                }
            })
            .collect_view()
            .into_any(),
        _ => ().into_any(),
    }
    };
    let timing = move || match ctx.prediction.get() {
        PredictionState::Done { latency_ms, model_ms, .. } => {
            format!("{latency_ms:.1} {model_ms:.1}")
        }
        _ => String::new(),
    };
    let state = move || match ctx.prediction.get() {
        PredictionState::Idle => "idle",
        PredictionState::Waiting { .. } => "waiting",
        PredictionState::Done { .. } => "done",
        PredictionState::Failed(_) => "failed",
    };
    view! {
        <section class="panel" data-testid="prediction" data-state=state data-timing=timing aria-labelledby="prediction-h">
            <h2 id="prediction-h">"Prediction"</h2>
            <p aria-live="polite" aria-atomic="true" class="prediction-summary">{summary}</p>
            {outside}
            <ul class="bars" aria-label="Probability per type">{bars}</ul>
        </section>
    }
}

/// One tag into a running JOSM as a new node with its OSM tags (remote control `add_node`).
fn tag_to_josm(ctx: Ctx, id: &str) {
    let Some((lat, lon, tags)) =
        ctx.store.with_untracked(|s| s.get(id).map(|t| (t.lat, t.lon, s.osm_tags(t))))
    else {
        return;
    };
    let id = id.to_string();
    spawn_local(async move {
        ctx.status.set(match crate::josm::send(&crate::josm::add_node_url(lat, lon, &tags)).await {
            Ok(()) => {
                format!("Sent tag {id} to JOSM as a new node: review it there before uploading.")
            }
            Err(why) => why,
        })
    });
}

#[component]
pub fn TagList() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let rows = move || {
        let f = ctx.filter.get();
        ctx.store.with(|s| s.filtered(f.as_deref()))
    };
    let count = move || {
        let n = rows().len();
        let total = ctx.store.with(|s| s.tags.len());
        format!("{n} of {total} tags shown")
    };
    view! {
        <section class="panel" aria-labelledby="tags-h">
            <h2 id="tags-h">"Tags"</h2>
            <label for="tag-filter">"Show type"</label>
            <select id="tag-filter" data-testid="tag-filter" on:change=move |ev| {
                let v = event_target_value(&ev);
                ctx.filter.set((!v.is_empty()).then_some(v));
            }>
                <option value="">"All types"</option>
                {labels().names().iter().map(|l| view! { <option value=l.clone()>{display(l)}</option> }).collect_view()}
            </select>
            <p class="count">{count}</p>
            <Show when=move || ctx.deleted.with(|v| !v.is_empty())>
                <button type="button" class="small secondary" data-testid="undo-delete"
                    on:click=move |_| ctx.undo_delete()>
                    {move || ctx.deleted.with(|v| v.last().map(|d| format!("Undo delete of {} (Ctrl+Z)", d.tag.id)).unwrap_or_default())}
                </button>
            </Show>
            <ul class="tag-list" data-testid="tag-list">
                <For each=rows key=|t| (t.id.clone(), t.label.clone(), t.lat.to_bits(), t.lon.to_bits(), t.source.clone(), t.extra.clone())
                    children=move |t| {
                        let id = t.id.clone();
                        let id_del = t.id.clone();
                        let id_josm = t.id.clone();
                        let label = t.label.clone();
                        view! {
                            <li class="tag-row" data-id=t.id.clone() data-type=t.label.clone()>
                                <span class=format!("chip tag-{label}") aria-hidden="true">{letter(&label)}</span>
                                <span class="tag-text">{format!("{} · {} · {:.5}, {:.5}", display(&label), t.source, t.lat, t.lon)}<br/>
                                    <span class="tag-osm" data-testid="tag-osm">{ctx.store.with_untracked(|s| s.osm_tags(&t)).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" + ")}</span></span>
                                <button type="button" class="small" aria-label=format!("Edit {} {}", display(&label), t.id)
                                    on:click=move |_| ctx.select(&id)>"Edit"</button>
                                <a class="small edit-id" data-testid="edit-in-id" target="_blank" rel="noopener"
                                    href=format!("https://www.openstreetmap.org/edit?editor=id#map=19/{:.6}/{:.6}", t.lat, t.lon)
                                    aria-label=format!("Edit in iD at {} {}", display(&label), t.id)>"Edit in iD"</a>
                                {(!t.source.eq_ignore_ascii_case("osm")).then(|| view! {
                                    <button type="button" class="small" data-testid="tag-to-josm"
                                        aria-label=format!("Open {} {} in JOSM", display(&label), t.id)
                                        on:click=move |_| tag_to_josm(ctx, &id_josm)>"JOSM"</button>
                                })}
                                <button type="button" class="small danger" aria-label=format!("Delete {} {}", display(&label), t.id)
                                    on:click=move |_| ctx.delete_tag(&id_del)>"Delete"</button>
                            </li>
                        }
                    }/>
            </ul>
        </section>
    }
}

/// What an editor file left out, for the status line.
fn left_out(e: &crate::store::EditExport, unchecked: Option<String>) -> String {
    let mut said = String::new();
    if e.from_osm > 0 {
        said += &format!(
            " {} tags with source osm left out: they came from OpenStreetMap.",
            e.from_osm
        );
    }
    if !e.already_mapped.is_empty() {
        let list: Vec<String> =
            e.already_mapped.iter().map(|(t, m)| format!("{t} ({m})")).collect();
        said += &format!(" Left out, already in OpenStreetMap: {}.", list.join(", "));
    }
    if let Some(why) = unchecked {
        said += &format!(" Not checked against OpenStreetMap: {why}.");
    }
    said
}

#[derive(Clone, PartialEq)]
struct ImportView {
    file: String,
    added: usize,
    replaced: usize,
    rejected: Vec<Rejected>,
}

#[component]
pub fn ImportExport() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let report = RwSignal::new(None::<Result<ImportView, String>>);
    let on_file = move |ev: web_sys::Event| {
        let input: web_sys::HtmlInputElement = event_target(&ev);
        let Some(file) = input.files().and_then(|f| f.get(0)) else { return };
        input.set_value("");
        let name = file.name();
        spawn_local(async move {
            let text = gloo_file::futures::read_as_bytes(&gloo_file::Blob::from(file)).await;
            let result: Result<ImportReport, String> = match text {
                Err(e) => Err(format!("{name}: {e}")),
                Ok(bytes) => {
                    let mut out = Err(String::new());
                    let is_csv = name.to_ascii_lowercase().ends_with(".csv");
                    ctx.edit_store(|s| {
                        out = if is_csv {
                            s.import_csv(&bytes)
                        } else {
                            match String::from_utf8(bytes) {
                                Ok(t) => import_geojson(s, &t),
                                Err(_) => Err("not UTF-8 text".into()),
                            }
                        }
                    });
                    out.map_err(|e| format!("{name}: {e}"))
                }
            };
            let view = result.map(|r| ImportView {
                file: name.clone(),
                added: r.added,
                replaced: r.replaced,
                rejected: r.rejected,
            });
            ctx.status.set(match &view {
                Ok(v) => format!(
                    "Imported {name}: {} added, {} replaced, {} rejected.",
                    v.added,
                    v.replaced,
                    v.rejected.len()
                ),
                Err(e) => format!("Import failed: {e}"),
            });
            report.set(Some(view));
        });
    };
    let export_csv = move |_| {
        let bytes = ctx.store.with_untracked(|s| s.to_csv());
        if let Err(e) = download("tags.csv", "text/csv", &bytes) {
            ctx.status.set(format!("Export failed: {}", crate::js::message(&e)));
        }
    };
    let export_geojson = move |_| {
        let text = ctx.store.with_untracked(to_geojson);
        if let Err(e) = download("tags.geojson", "application/geo+json", text.as_bytes()) {
            ctx.status.set(format!("Export failed: {}", crate::js::message(&e)));
        }
    };
    // What OpenStreetMap already has around the mapper's tags, asked again when they move
    // out of the area asked about: the exports leave those features out.
    Effect::new(move |_| {
        let bbox = ctx.store.with(|s| s.own_bbox());
        if ctx.own_osm.with_untracked(|o| o.bbox == bbox) {
            return;
        }
        let Some(b) = bbox else {
            ctx.own_osm.set(super::OwnAreaOsm::default());
            return;
        };
        ctx.own_osm.set(super::OwnAreaOsm { bbox, pending: true, ..Default::default() });
        spawn_local(async move {
            let got =
                super::view_api::features_in(&format!("{},{},{},{}", b.0, b.1, b.2, b.3)).await;
            ctx.own_osm.update(|o| {
                if o.bbox != bbox {
                    return;
                }
                o.pending = false;
                match got {
                    Ok(f) => o.features = f,
                    Err(e) => o.error = Some(e),
                }
            });
        });
    });
    let osm_check = move || {
        ctx.own_osm.with(|o| match (o.pending, &o.error) {
            (true, _) => "pending",
            (false, Some(_)) => "failed",
            (false, None) => "done",
        })
    };
    // For an OpenStreetMap editor: the mapper reviews every object there and uploads from it.
    let export_edit = move |format: EditFormat| {
        let name = format!("tags.{}", format.extension());
        let (mapped, unchecked) =
            ctx.own_osm.with_untracked(|o| (o.features.clone(), o.unchecked()));
        let result = ctx.store.with_untracked(|s| s.to_osm_edit(format, &mapped)).and_then(|e| {
            download(&name, "application/xml", e.text.as_bytes())
                .map(|()| e)
                .map_err(|e| crate::js::message(&e))
        });
        match result {
            Ok(e) => ctx.status.set(format!(
                "Exported {name} ({} new nodes): open it in your editor and review each object before uploading.{}",
                e.nodes,
                left_out(&e, unchecked)
            )),
            Err(e) => ctx.status.set(format!("Export failed: {e}")),
        }
    };
    // The same JOSM file straight into a running JOSM, as a new layer to review.
    let open_in_josm = move |_| {
        let (mapped, unchecked) =
            ctx.own_osm.with_untracked(|o| (o.features.clone(), o.unchecked()));
        match ctx.store.with_untracked(|s| s.to_osm_edit(EditFormat::Josm, &mapped)) {
            Err(e) => ctx.status.set(format!("Not sent to JOSM: {e}")),
            Ok(e) => spawn_local(async move {
                ctx.status.set(match crate::josm::send(&crate::josm::load_data_url(&e.text)).await {
                    Ok(()) => format!(
                        "Sent {} new nodes to JOSM as the layer \"{}\": review each object there before uploading.{}",
                        e.nodes,
                        crate::josm::LAYER_NAME,
                        left_out(&e, unchecked)
                    ),
                    Err(why) => why,
                })
            }),
        }
    };
    // For MapRoulette: a challenge other mappers work through, one task per tag.
    let export_maproulette = move |_| {
        let result = ctx.store.with_untracked(|s| s.to_maproulette()).and_then(|text| {
            download("tags.maproulette.geojson", "application/geo+json-seq", text.as_bytes())
                .map_err(|e| crate::js::message(&e))
        });
        match result {
            Ok(()) => ctx.status.set(
                "Exported tags.maproulette.geojson: a MapRoulette challenge, one task per tag to review."
                    .into(),
            ),
            Err(e) => ctx.status.set(format!("Export failed: {e}")),
        }
    };
    view! {
        <section class="panel" aria-labelledby="io-h">
            <h2 id="io-h">"Import and export"</h2>
            <label for="import-file">"Import tags (CSV in the pipeline's tags.csv schema, or GeoJSON)"</label>
            <input id="import-file" type="file" data-testid="import-file"
                accept=".csv,.geojson,.json,text/csv,application/geo+json" on:change=on_file/>
            <div class="buttons">
                <button type="button" data-testid="export-csv" on:click=export_csv>"Export CSV"</button>
                <button type="button" data-testid="export-geojson" on:click=export_geojson>"Export GeoJSON"</button>
            </div>
            <p class="hint">"For OpenStreetMap: a file your editor opens, one new node per tag with its type's OSM tags, leaving out what OpenStreetMap already has within 3 m. Review every object there before you upload; AccessAtlas uploads nothing."</p>
            <div class="buttons" data-testid="edit-exports" data-osm-check=osm_check>
                <button type="button" data-testid="export-josm" on:click=move |_| export_edit(EditFormat::Josm)>"Export for JOSM (.osm)"</button>
                <button type="button" data-testid="export-osc" on:click=move |_| export_edit(EditFormat::OsmChange)>"Export osmChange (.osc)"</button>
                <button type="button" data-testid="export-maproulette" on:click=export_maproulette>"Export MapRoulette challenge"</button>
                <button type="button" data-testid="open-in-josm" on:click=open_in_josm>"Open in JOSM"</button>
                {move || ctx.store.with(|s| s.own_bbox()).map(|b| {
                    let (z, lat, lon) = crate::address::fit_view(b);
                    view! {
                        <a class="edit-id" data-testid="edit-area-in-id" target="_blank" rel="noopener"
                            href=format!("https://www.openstreetmap.org/edit?editor=id{}", crate::address::format_view(z, lat, lon))>
                            "Edit the area of your tags in iD"</a>
                    }
                })}
            </div>
            {move || report.get().map(|r| match r {
                Err(e) => view! { <p class="error" data-testid="import-report">{e}</p> }.into_any(),
                Ok(v) => { let n_rejected = v.rejected.len(); view! {
                    <div data-testid="import-report" data-added=v.added.to_string() data-rejected=n_rejected.to_string()>
                        <p>{format!("{}: {} added, {} replaced, {n_rejected} rejected.", v.file, v.added, v.replaced)}</p>
                        <ul class="rejected" data-testid="import-rejected">
                            {v.rejected.into_iter().map(|r| view! { <li>{r.to_string()}</li> }).collect_view()}
                        </ul>
                    </div>
                }.into_any() },
            })}
        </section>
    }
}

#[component]
pub fn Settings() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let url = RwSignal::new(ctx.tiles.get_untracked().url);
    let attribution = RwSignal::new(ctx.tiles.get_untracked().attribution);
    let apply = move |ev: web_sys::SubmitEvent| {
        ev.prevent_default();
        let u = url.get_untracked();
        if !(u.contains("{z}") && u.contains("{x}") && u.contains("{y}")) {
            ctx.status.set("A tile URL needs {z}, {x} and {y}.".into());
            return;
        }
        ctx.tiles.update(|t| {
            t.url = u.clone();
            t.attribution = attribution.get_untracked();
        });
        // Shareable: the page URL carries the setup.
        if let Some(w) = web_sys::window() {
            let params =
                web_sys::UrlSearchParams::new_with_str(&w.location().search().unwrap_or_default())
                    .ok();
            if let Some(p) = params {
                p.set("tiles", &u);
                p.set("attribution", &attribution.get_untracked());
                let _ = w.history().and_then(|h| {
                    h.replace_state_with_url(
                        &JsValue::NULL,
                        "",
                        Some(&format!("?{}", String::from(p.to_string()))),
                    )
                });
            }
        }
        ctx.status.set("Map tiles updated; the page address now shares this setup.".into());
    };
    view! {
        <details class="panel">
            <summary>"Map settings"</summary>
            <fieldset>
                <legend>"Base layer"</legend>
                <label class="inline">
                    <input type="radio" name="base" checked=move || !ctx.tiles.get().model_view
                        on:change=move |_| ctx.tiles.update(|t| t.model_view = false)/>
                    "Map tiles (below)"
                </label>
                <label class="inline">
                    <input type="radio" name="base" data-testid="model-view" checked=move || ctx.tiles.get().model_view
                        on:change=move |_| ctx.tiles.update(|t| t.model_view = true)/>
                    "What the model sees (rendered tiles)"
                </label>
            </fieldset>
            <form on:submit=apply>
                <label for="tile-url">"Tile URL template"</label>
                <input id="tile-url" type="url" bind:value=url/>
                <label for="tile-attribution">"Attribution (HTML)"</label>
                <input id="tile-attribution" type="text" bind:value=attribution/>
                <button type="submit">"Apply"</button>
            </form>
        </details>
    }
}

/// Every keyboard shortcut of the page, in one place.
#[component]
pub fn KeyboardHelp() -> impl IntoView {
    let letters: Vec<String> = FeatureTypes::builtin()
        .types
        .iter()
        .map(|t| format!("{} {}", t.letter, display(&t.name)))
        .collect();
    view! {
        <details class="panel" data-testid="keyboard-help">
            <summary>"Keyboard shortcuts"</summary>
            <dl class="shortcuts">
                <dt>"Arrow keys (map focused)"</dt><dd>"Move the map under the crosshair."</dd>
                <dt>"Enter (map focused)"</dt><dd>"New tag at the crosshair, with a prediction."</dd>
                <dt>"Type letters (Type field)"</dt><dd>{format!("Pick the type: {}.", letters.join(", "))}</dd>
                <dt>"Escape (tag form)"</dt><dd>"Close the form without saving."</dd>
                <dt>"A / X (a suggestion focused)"</dt><dd>"Accept or reject it; the focus moves to the next one."</dd>
                <dt>"Ctrl+Z (outside text fields)"</dt><dd>"Undo the last delete."</dd>
            </dl>
        </details>
    }
}
