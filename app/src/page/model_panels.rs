//! Fine-tuning in the page and the suggestion layer.
//!
//! - [`FineTunePanel`]: fine-tune the model on the stored tags (and rejected suggestions) in
//!   the worker, with progress, a live loss curve and cancel; keep or discard the result;
//!   export the model in use as a bundle, import one, or go back to the shipped model.
//! - [`SuggestionsPanel`]: "Scan this view" predicts over a grid of the visible map; what
//!   passes the confidence threshold shows as suggestion markers to accept (a tag with source
//!   `model`) or reject (a negative example for the next fine-tune).

use leptos::prelude::*;
use leptos::task::spawn_local;
use model_core::Prediction;
use model_core::infer::bundle::{BUNDLE_CONFIG_FILE, BUNDLE_WEIGHTS_FILE};
use model_core::infer::prior::CandidatePrior;
use model_core::infer::suggest::Verdict;
use wasm_bindgen::JsCast;

use super::files::download;
use super::view_api::{candidates_in, features_in, view_bbox};
use super::{Ctx, FineTuneState, ModelState, Rejection, Suggestion, letter, send, send_with_bytes};
use crate::protocol::{FineTuneExample, ModelOrigin, ScanPoint, ToWorker, scan_points};

/// Points per side of the scan grid.
const SCAN_GRID: usize = 4;

pub fn origin_label(origin: &ModelOrigin) -> &'static str {
    match origin {
        ModelOrigin::Shipped => "shipped model",
        ModelOrigin::FineTuned => "model fine-tuned in this browser",
        ModelOrigin::Imported => "imported model",
    }
}

fn pct(x: f32) -> String {
    format!("{:.0} %", x * 100.0)
}

fn model_ready(ctx: &Ctx) -> bool {
    matches!(ctx.model.get(), ModelState::Ready { .. })
}

/// Downloads the worker's bundle as its two files, `model.json` and `weights.bpk` (the layout
/// `accessatlas predict --model DIR` reads).
pub fn download_bundle(ctx: &Ctx, manifest: &str, weights: Option<&[u8]>) {
    let result = weights.ok_or_else(|| "the weights did not arrive".to_string()).and_then(|w| {
        download(BUNDLE_CONFIG_FILE, "application/json", manifest.as_bytes())
            .and_then(|()| download(BUNDLE_WEIGHTS_FILE, "application/octet-stream", w))
            .map_err(|e| crate::js::message(&e))
    });
    match result {
        Ok(()) => {
            ctx.model_op.set(Some(Ok(format!(
                "Exported {BUNDLE_CONFIG_FILE} and {BUNDLE_WEIGHTS_FILE}: put both in one \
                 folder; `accessatlas predict --model FOLDER` loads it."
            ))));
        }
        Err(e) => ctx.model_op.set(Some(Err(format!("Export failed: {e}")))),
    }
}

/// The loss curve so far as an SVG polyline (for sighted users; the numbers are in the text).
fn loss_curve(losses: &[f32]) -> impl IntoView + use<> {
    let (w, h) = (220.0f32, 60.0f32);
    let max = losses.iter().copied().fold(f32::MIN, f32::max).max(1e-6);
    let n = losses.len().max(2) - 1;
    let points: String = losses
        .iter()
        .enumerate()
        .map(|(i, l)| format!("{:.1},{:.1} ", w * i as f32 / n as f32, h - h * (l / max)))
        .collect();
    view! {
        <svg class="loss-curve" width="220" height="60" viewBox="0 0 220 60" aria-hidden="true">
            <polyline points=points fill="none" stroke="currentColor" stroke-width="2"/>
        </svg>
    }
}

#[component]
pub fn FineTunePanel() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let epochs = RwSignal::new(5usize);
    let last_stage = RwSignal::new(false);
    let counts = move || {
        let store = ctx.store.get();
        let mut per: Vec<(String, usize)> = crate::store::labels()
            .names()
            .iter()
            .map(|l| (l.clone(), store.tags.iter().filter(|t| &t.label == l).count()))
            .filter(|(_, n)| *n > 0)
            .collect();
        per.sort();
        let text: Vec<String> =
            per.into_iter().map(|(l, n)| format!("{} {n}", l.replace('_', " "))).collect();
        let rejected = ctx.rejections.with(Vec::len);
        format!(
            "Your tags: {}{}.",
            if text.is_empty() { "none yet".into() } else { text.join(", ") },
            if rejected > 0 { format!("; {rejected} rejected suggestions") } else { String::new() }
        )
    };
    let running = move || matches!(ctx.finetune.get(), FineTuneState::Running { .. });
    let start = move |_| {
        let mut examples: Vec<FineTuneExample> = ctx.store.with_untracked(|s| {
            s.tags
                .iter()
                .map(|t| FineTuneExample {
                    id: t.id.clone(),
                    lat: t.lat,
                    lon: t.lon,
                    source: t.source.clone(),
                    label: t.label.clone(),
                    negative: false,
                })
                .collect()
        });
        ctx.rejections.with_untracked(|r| {
            examples.extend(r.iter().enumerate().map(|(i, r)| FineTuneExample {
                id: format!("rejected-{}", i + 1),
                lat: r.lat,
                lon: r.lon,
                source: "model".into(),
                label: r.label.clone(),
                negative: true,
            }))
        });
        ctx.finetune.set(FineTuneState::Running {
            phase: "tiles".into(),
            percent: 0.0,
            epoch: 0,
            epochs: epochs.get_untracked(),
            losses: Vec::new(),
            val_accuracy: None,
            cancelling: false,
        });
        ctx.status.set("Fine-tuning started: loading the tags' map tiles.".into());
        send(
            &ctx,
            &ToWorker::FineTune {
                examples,
                epochs: epochs.get_untracked(),
                seed: 42,
                last_stage: last_stage.get_untracked(),
                area: None,
            },
        );
    };
    let cancel = move |_| {
        send(&ctx, &ToWorker::CancelFineTune);
        ctx.finetune.update(|f| {
            if let FineTuneState::Running { cancelling, .. } = f {
                *cancelling = true;
            }
        });
    };
    let keep = move |_| {
        ctx.model_op.set(None);
        send(&ctx, &ToWorker::KeepModel);
    };
    let discard = move |_| {
        send(&ctx, &ToWorker::DiscardModel);
        ctx.finetune.set(FineTuneState::Idle);
        ctx.status.set("The fine-tuned model was discarded; the model is unchanged.".into());
    };
    let learn = move |_| super::learn_area::learn_area(&ctx, epochs.get_untracked());
    let undo = move |_| {
        ctx.model_op.set(None);
        send(&ctx, &ToWorker::UndoModel);
    };
    let export = move |_| send(&ctx, &ToWorker::ExportModel);
    let revert = move |_| {
        ctx.model_op.set(None);
        send(&ctx, &ToWorker::RevertModel);
    };
    let on_import = move |ev: web_sys::Event| {
        let input: web_sys::HtmlInputElement = event_target(&ev);
        let Some(files) = input.files() else { return };
        let files: Vec<web_sys::File> = (0..files.length()).filter_map(|i| files.get(i)).collect();
        input.set_value("");
        spawn_local(async move {
            let mut manifest = None;
            let mut weights = None;
            for f in files {
                let name = f.name();
                match gloo_file::futures::read_as_bytes(&gloo_file::Blob::from(f)).await {
                    Ok(b) if name.ends_with(".json") => manifest = String::from_utf8(b).ok(),
                    Ok(b) => weights = Some(b),
                    Err(e) => ctx.model_op.set(Some(Err(format!("{name}: {e}")))),
                }
            }
            match (manifest, weights) {
                (Some(manifest), Some(w)) => {
                    send_with_bytes(&ctx, &ToWorker::ImportModel { manifest }, Some(&w));
                }
                _ => ctx.model_op.set(Some(Err(
                    "Pick both files of a bundle: model.json and weights.bpk.".into(),
                ))),
            }
        });
    };
    let progress_view = move || {
        let (percent, text, losses) = match ctx.finetune.get() {
            FineTuneState::Running {
                phase,
                percent,
                epoch,
                epochs,
                losses,
                val_accuracy,
                cancelling,
                ..
            } => {
                let text = if cancelling {
                    "Cancelling…".to_string()
                } else {
                    match phase.as_str() {
                        "area" => "Reading what the map has in this view…".to_string(),
                        "tiles" => {
                            "Loading the map tiles of the places it learns from…".to_string()
                        }
                        "features" => "Computing image features (once per place)…".to_string(),
                        _ => format!(
                            "Epoch {epoch} of {epochs}: loss {}, validation accuracy {}",
                            losses.last().map_or("-".into(), |l| format!("{l:.3}")),
                            val_accuracy.map_or("-".into(), pct)
                        ),
                    }
                };
                (percent, text, losses)
            }
            FineTuneState::Done(s) => (100.0, "Done.".to_string(), s.losses),
            _ => return None,
        };
        let p = format!("{percent:.0}");
        Some(view! {
            <div class="finetune-progress">
                <progress data-testid="finetune-progress" max="100" value=p.clone()
                    aria-valuenow=p aria-valuemin="0" aria-valuemax="100"
                    aria-label="Fine-tune progress"></progress>
                <p>{text}</p>
                {loss_curve(&losses)}
            </div>
        })
    };
    let result_view = move || {
        match ctx.finetune.get() {
        FineTuneState::Done(s) => Some({
            // What the fine-tune learned from: a view's places, or the mapper's tags.
            let examples = if s.area.is_some() { "places" } else { "tags" };
            view! {
                <div data-testid="finetune-result" data-before=s.before_accuracy.to_string()
                    data-after=s.after_accuracy.to_string()
                    data-features-s=s.features_seconds.to_string()
                    data-train-s=s.train_seconds.to_string()
                    data-epochs=s.epochs.to_string() data-steps=s.steps.to_string()
                    data-train-tags=s.train_tags.to_string()>
                    {s.area.clone().map(|a| view! {
                        <p data-testid="finetune-area" data-bbox=a.bbox>{format!("Learned this area from {}.", a.described)}</p>
                    })}
                    <p>{format!(
                        "Validation accuracy on {} held-out {} (other map cells): before {}, after {} ({} training {}, {} rejected suggestions, {} epochs, {:.1} s).",
                        s.val_tags, examples, pct(s.before_accuracy), pct(s.after_accuracy),
                        s.train_tags, examples, s.negatives, s.epochs, s.seconds
                    )}</p>
                    {(!s.skipped.is_empty()).then(|| view! {
                        <p>"Skipped (their tiles did not load or their type is unknown):"</p>
                        <ul class="rejected" data-testid="finetune-skipped">
                            {s.skipped.iter().map(|x| view! { <li>{x.clone()}</li> }).collect_view()}
                        </ul>
                    })}
                    <div class="buttons">
                        <button type="button" data-testid="finetune-keep" on:click=keep>"Keep the new model"</button>
                        <button type="button" data-testid="finetune-discard" on:click=discard>"Discard it"</button>
                    </div>
                </div>
            }
            .into_any()
        }),
        FineTuneState::Kept(s) => Some(
            view! {
                <p data-testid="finetune-kept" data-area=s.area.as_ref().map(|a| a.bbox.clone()).unwrap_or_default()>{format!(
                    "Using your fine-tuned model{} (validation accuracy {} -> {}).",
                    s.area.as_ref().map(|a| format!(", which learned the area {}", a.bbox)).unwrap_or_default(),
                    pct(s.before_accuracy), pct(s.after_accuracy)
                )}</p>
            }
            .into_any(),
        ),
        FineTuneState::Cancelled => Some(
            view! { <p data-testid="finetune-cancelled">"Cancelled; the model is unchanged."</p> }
                .into_any(),
        ),
        FineTuneState::Failed(e) => {
            Some(view! { <p class="error" role="alert" data-testid="finetune-error">{e}</p> }.into_any())
        }
        _ => None,
    }
    };
    let origin = move || match ctx.model.get() {
        ModelState::Ready { info, .. } => Some(info.origin),
        _ => None,
    };
    view! {
        <section class="panel" aria-labelledby="ft-h">
            <h2 id="ft-h">"Fine-tune the model: this area or your tags"</h2>
            <p class="hint">"Learn this area: the model learns the visible map from the features OpenStreetMap already has there and your tags in it, with places away from them as \"no feature here\". Best where it has not been trained (see the warning under a prediction)."</p>
            <div class="buttons">
                <button type="button" data-testid="learn-area" on:click=learn
                    disabled=move || running() || !model_ready(&ctx)>"Learn this area"</button>
            </div>
            <p>{counts}</p>
            <p class="hint">"Fine-tune trains the model's last layers in this page on your tags (each type needs at least 3). Either way the model you use now stays until you keep the new one."</p>
            <label for="ft-epochs">"Epochs"</label>
            <input id="ft-epochs" type="number" min="1" max="50" prop:value=move || epochs.get().to_string()
                on:change=move |ev| { if let Ok(n) = event_target_value(&ev).parse::<usize>() { epochs.set(n.clamp(1, 50)); } }/>
            <label class="check">
                <input type="checkbox" id="ft-last-stage" data-testid="finetune-last-stage"
                    prop:checked=move || last_stage.get()
                    on:change=move |ev| last_stage.set(event_target_checked(&ev))/>
                " Also train the image encoder's last stage (slower, can fit your area better)"
            </label>
            <div class="buttons">
                <button type="button" data-testid="finetune-start" on:click=start
                    disabled=move || running() || !model_ready(&ctx)>"Fine-tune"</button>
                <Show when=running>
                    <button type="button" data-testid="finetune-cancel" on:click=cancel>"Cancel"</button>
                </Show>
            </div>
            {progress_view}
            {result_view}
            <h3>"Model in use"</h3>
            <p data-testid="model-origin" data-origin=move || origin().map(|o| format!("{o:?}").to_lowercase()).unwrap_or_default()>
                {move || origin().map(|o| origin_label(&o).to_string()).unwrap_or_else(|| "loading…".into())}
            </p>
            <div class="buttons">
                <button type="button" data-testid="finetune-export" on:click=export
                    disabled=move || !model_ready(&ctx)>"Export the model"</button>
                <button type="button" data-testid="model-undo" on:click=undo
                    disabled=move || !matches!(origin(), Some(ModelOrigin::FineTuned | ModelOrigin::Imported))>"Undo: back to the model before"</button>
                <button type="button" data-testid="model-revert" on:click=revert
                    disabled=move || !matches!(origin(), Some(ModelOrigin::FineTuned | ModelOrigin::Imported))>"Back to the shipped model"</button>
            </div>
            <label for="model-import">"Import a model bundle (pick model.json and weights.bpk together)"</label>
            <input id="model-import" type="file" multiple data-testid="model-import" accept=".json,.bpk" on:change=on_import/>
            {move || ctx.model_op.get().map(|r| match r {
                Ok(m) => view! { <p data-testid="model-op">{m}</p> }.into_any(),
                Err(e) => view! { <p class="error" role="alert" data-testid="model-op-error">{e}</p> }.into_any(),
            })}
        </section>
    }
}

/// A scan always scores this many of the view's most promising candidates...
const SCAN_FIRST: usize = 48;
/// ...then goes on down the list while it has taken less than this (the time the first 48
/// took before model-core's own kernels)...
const SCAN_BUDGET_MS: f64 = 3_000.0;
/// ...up to this many in all.
const SCAN_MAX: usize = 480;

/// Starts a scan of the visible map: the candidate points of its geometry from the server
/// (`/api/candidates`, what the extract already maps from `/api/features`), or, where the
/// server cannot say (no API, too large an area), a grid of points.
pub(super) fn scan(ctx: &Ctx) {
    let Some((bbox, [s, w, n, e])) = view_bbox(ctx) else { return };
    let id = ctx.scan.get_untracked().id + 1;
    ctx.scan.update(|sc| {
        sc.running = true;
        sc.id = id;
        sc.scanned = 0;
        sc.total = 0;
        sc.failed = 0;
        sc.unscanned = 0;
        sc.already_mapped = 0;
        sc.bbox = bbox.clone();
        sc.started_ms = crate::net::now_ms();
        sc.took_ms = None;
    });
    ctx.suggestions.set(Vec::new());
    ctx.status.set("Finding candidate points in the visible map…".into());
    // Which candidates to try first: the kinds the model's prior says most often hold one.
    let prior = ctx.model.with_untracked(|m| match m {
        ModelState::Ready { info, .. } => info.scan_prior().map(|(p, none)| (p.clone(), none)),
        _ => None,
    });
    let ctx = *ctx;
    spawn_local(async move {
        let (points, mapped, from) = match view_candidates(&bbox, prior).await {
            Ok((points, mapped)) => (points, mapped, "candidates from the map".to_string()),
            Err(why) => {
                let k = SCAN_GRID;
                let grid = (0..k)
                    .flat_map(|i| {
                        (0..k).map(move |j| {
                            let fy = (i as f64 + 0.5) / k as f64;
                            let fx = (j as f64 + 0.5) / k as f64;
                            ScanPoint {
                                lat: s + (n - s) * fy,
                                lon: w + (e - w) * fx,
                                reasons: String::new(),
                            }
                        })
                    })
                    .collect();
                (grid, Vec::new(), format!("a grid ({why})"))
            }
        };
        let total = points.len();
        ctx.scan.update(|sc| {
            sc.total = total;
            sc.mapped = mapped;
            sc.points_from = from.clone();
        });
        if total == 0 {
            ctx.scan.update(|sc| sc.running = false);
            ctx.status.set("No candidate points in the visible map.".into());
            return;
        }
        ctx.status.set(format!("Scanning {total} points of the visible map ({from})…"));
        send(
            &ctx,
            &ToWorker::Scan {
                id,
                points,
                source: "model".into(),
                first: SCAN_FIRST,
                budget_ms: SCAN_BUDGET_MS,
            },
        );
    });
}

/// Moves the focus to suggestion `key`'s Accept button.
pub fn focus_accept(key: u64) {
    let el = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id(&format!("sg-{key}-accept")))
        .and_then(|el| el.dyn_into::<web_sys::HtmlElement>().ok());
    if let Some(el) = el {
        let _ = el.focus();
    }
}

/// The candidate points in `bbox` the scan asks about ([`scan_points`]: at most
/// [`SCAN_MAX`], by `prior`, the model's with its `none` class) and what is mapped there, from
/// the server.
async fn view_candidates(
    bbox: &str,
    prior: Option<(CandidatePrior, usize)>,
) -> Result<(Vec<ScanPoint>, Vec<model_core::data::candidates::MappedFeature>), String> {
    let cands = candidates_in(bbox).await?;
    let points = scan_points(cands, prior.as_ref().map(|(p, none)| (p, *none)), SCAN_MAX);
    let mapped = features_in(bbox).await?;
    Ok((points, mapped))
}

pub fn on_scan_result(ctx: &Ctx, id: u64, lat: f64, lon: f64, p: Prediction) {
    if ctx.scan.get_untracked().id != id {
        return;
    }
    ctx.scan.update(|s| s.scanned += 1);
    // model-core's one rule, as `accessatlas suggest` applies it; at threshold 0 here, since
    // the mapper's slider filters what is shown (`Ctx::visible_suggestions`).
    let verdict = ctx.scan.with_untracked(|s| crate::scan::verdict(&p, lat, lon, &s.mapped));
    match verdict {
        Verdict::Suggest { label, confidence } => ctx.suggestions.update(|v| {
            let key = v.len() as u64 + 1;
            v.push(Suggestion { key, lat, lon, label, confidence });
        }),
        Verdict::AlreadyMapped => ctx.scan.update(|s| s.already_mapped += 1),
        Verdict::Unsure => {}
    }
}

pub fn on_scan_done(ctx: &Ctx, id: u64, failed: usize, unscanned: usize) {
    if ctx.scan.get_untracked().id != id {
        return;
    }
    ctx.scan.update(|s| {
        s.running = false;
        s.failed = failed;
        s.unscanned = unscanned;
        s.took_ms = Some(crate::net::now_ms() - s.started_ms);
    });
    let shown = ctx.visible_suggestions().len();
    // Nothing passes: say how sure the model was at best, so the mapper can lower the bar.
    let best = ctx
        .suggestions
        .with_untracked(|v| v.iter().max_by(|a, b| a.confidence.total_cmp(&b.confidence)).cloned());
    let hint = match best {
        Some(b) if shown == 0 => format!(
            " (the likeliest: {} at {:.0} %; lower the minimum confidence to see more)",
            super::display(&b.label),
            b.confidence * 100.0
        ),
        _ => String::new(),
    };
    ctx.status.set(format!(
        "Scan done: {shown} suggestions above the threshold{hint}{}.",
        if failed > 0 { format!("; {failed} points had no map tiles") } else { String::new() }
    ));
}

fn save_rejections(ctx: &Ctx) {
    let json = ctx.rejections.with_untracked(|r| serde_json::to_string(r).unwrap_or_default());
    let status = ctx.status;
    spawn_local(async move {
        if let Err(e) = crate::idb::put(crate::idb::REJECTIONS_KEY, &json).await {
            status.set(format!("Saving the rejection failed: {e}"));
        }
    });
}

pub fn accept(ctx: &Ctx, key: u64) {
    let Some(s) = ctx.suggestions.with_untracked(|v| v.iter().find(|s| s.key == key).cloned())
    else {
        return;
    };
    let mut added = Err(String::new());
    ctx.edit_store(|st| {
        added = st.add(s.lat, s.lon, &s.label, "model", "accepted suggestion", &[]);
    });
    match added {
        Ok(id) => {
            ctx.suggestions.update(|v| v.retain(|x| x.key != key));
            ctx.status.set(format!(
                "Accepted: {} tag {id} with source model (edit it like any tag).",
                s.label.replace('_', " ")
            ));
        }
        Err(e) => ctx.status.set(format!("Could not accept the suggestion: {e}")),
    }
}

pub fn reject(ctx: &Ctx, key: u64) {
    let Some(s) = ctx.suggestions.with_untracked(|v| v.iter().find(|s| s.key == key).cloned())
    else {
        return;
    };
    ctx.suggestions.update(|v| v.retain(|x| x.key != key));
    ctx.rejections.update(|r| r.push(Rejection { lat: s.lat, lon: s.lon, label: s.label.clone() }));
    save_rejections(ctx);
    ctx.status.set(format!(
        "Rejected: not a {} here. It will count as a negative example in the next fine-tune.",
        s.label.replace('_', " ")
    ));
}

#[component]
pub fn SuggestionsPanel() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let threshold = move || ctx.scan.with(|s| s.threshold);
    let status = move || {
        let s = ctx.scan.get();
        if s.running {
            format!("Scanning: {} of up to {} points…", s.scanned + s.failed, s.total)
        } else if s.total > 0 {
            format!(
                "{} points scanned ({}{}): {} suggestions at {:.0} % confidence or more{}{}.",
                s.total - s.unscanned,
                s.points_from,
                if s.unscanned > 0 {
                    format!(
                        "; the {} least promising of {} did not fit in the scan's time: zoom in \
                         to scan them",
                        s.unscanned, s.total
                    )
                } else {
                    String::new()
                },
                ctx.visible_suggestions().len(),
                s.threshold * 100.0,
                if s.already_mapped > 0 {
                    format!("; {} already in OpenStreetMap", s.already_mapped)
                } else {
                    String::new()
                },
                if s.failed > 0 { format!(" ({} without tiles)", s.failed) } else { String::new() }
            )
        } else {
            "The model looks at candidate points of the visible map (kerbs, entrances, path nodes, stations, untagged crossings) and suggests features you can accept or reject.".into()
        }
    };
    view! {
        <section class="panel" aria-labelledby="sg-h">
            <h2 id="sg-h">"Suggestions"</h2>
            <label for="scan-threshold">{move || format!("Minimum confidence: {:.0} %", threshold() * 100.0)}</label>
            <input id="scan-threshold" data-testid="scan-threshold" type="range" min="1" max="99" step="1"
                prop:value=move || format!("{:.0}", threshold() * 100.0)
                on:input=move |ev| {
                    if let Ok(v) = event_target_value(&ev).parse::<f32>() {
                        ctx.scan.update(|s| s.threshold = v / 100.0);
                    }
                }/>
            <div class="buttons">
                <button type="button" data-testid="scan-view" on:click=move |_| scan(&ctx)
                    disabled=move || !model_ready(&ctx) || ctx.scan.with(|s| s.running)>"Scan this view"</button>
            </div>
            <p data-testid="scan-status" data-bbox=move || ctx.scan.with(|s| s.bbox.clone())
                data-total=move || ctx.scan.with(|s| s.total.to_string())
                data-scanned=move || ctx.scan.with(|s| (s.total - s.unscanned).to_string())
                data-ms=move || ctx.scan.with(|s| s.took_ms.map(|t| format!("{t:.1}")).unwrap_or_default())>{status}</p>
            <ul class="suggestions" data-testid="suggestion-list" on:keydown=move |e: web_sys::KeyboardEvent| {
                if e.ctrl_key() || e.meta_key() || e.alt_key() {
                    return;
                }
                let act: fn(&Ctx, u64) = match e.key().as_str() {
                    "a" | "A" => accept,
                    "x" | "X" => reject,
                    _ => return,
                };
                // The suggestion whose item holds the focus.
                let key = e
                    .target()
                    .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
                    .and_then(|el| el.closest("[data-key]").ok().flatten())
                    .and_then(|li| li.get_attribute("data-key"))
                    .and_then(|k| k.parse::<u64>().ok());
                let Some(key) = key else { return };
                e.prevent_default();
                let next = ctx.visible_suggestions().into_iter().map(|s| s.key).find(|&k| k > key);
                act(&ctx, key);
                // The next suggestion's Accept button takes the focus.
                if let Some(k) = next {
                    focus_accept(k);
                }
            }>
                {move || ctx.visible_suggestions().into_iter().map(|s| {
                    let key = s.key;
                    view! {
                        <li data-testid="suggestion-item" data-key=key.to_string() data-label=s.label.clone()
                            data-lat=format!("{:.7}", s.lat) data-lon=format!("{:.7}", s.lon)>
                            <span class=format!("chip tag-{}", s.label) aria-hidden="true">{letter(&s.label)}</span>
                            {format!(" {} {:.0} % at {:.5}, {:.5} ", s.label.replace('_', " "), s.confidence * 100.0, s.lat, s.lon)}
                            <button type="button" id=format!("sg-{key}-accept") data-testid="suggestion-accept"
                                on:click=move |_| accept(&ctx, key)>"Accept"</button>
                            <button type="button" data-testid="suggestion-reject"
                                on:click=move |_| reject(&ctx, key)>"Reject"</button>
                        </li>
                    }
                }).collect_view()}
            </ul>
        </section>
    }
}
