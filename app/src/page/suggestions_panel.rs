//! The Suggestions panel: "Scan this view" scores the view's candidate points (from the
//! server's `/api/candidates`); what passes the confidence threshold shows as suggestion
//! markers to accept (a tag with source `model`) or reject (a negative example for the next
//! fine-tune).

use super::fine_tune_panel::model_ready;
use super::view_api::{candidates_in, features_in, view_bbox};
use super::{Ctx, ModelState, Rejection, Suggestion, letter, send};
use crate::protocol::{ScanPoint, ToWorker, scan_points};
use leptos::prelude::*;
use leptos::task::spawn_local;
use model_core::Prediction;
use model_core::infer::prior::CandidatePrior;
use model_core::infer::suggest::Verdict;
use wasm_bindgen::JsCast;

/// Points per side of the scan grid.
const SCAN_GRID: usize = 4;

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
    let id = ctx.suggest.scan.get_untracked().id + 1;
    // The model's own threshold where the view is (its region's there), unless the mapper set one.
    let own = ctx.worker.model.with_untracked(|m| match m {
        ModelState::Ready { info, .. } => Some(info.threshold_at((s + n) / 2.0, (w + e) / 2.0)),
        _ => None,
    });
    ctx.suggest.scan.update(|sc| {
        if let (Some(t), false) = (own, sc.threshold_set) {
            sc.threshold = t;
        }
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
        sc.first_ms = None;
        sc.sent_ms = None;
        sc.cost_ms = [0.0; 2];
    });
    ctx.suggest.found.set(Vec::new());
    ctx.status.set("Finding candidate points in the visible map…".into());
    // Which candidates to try first: the kinds the model's prior says most often hold one.
    let prior = ctx.worker.model.with_untracked(|m| match m {
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
        ctx.suggest.scan.update(|sc| {
            sc.sent_ms = Some(crate::net::now_ms() - sc.started_ms);
            sc.total = total;
            sc.mapped = mapped;
            sc.points_from = from.clone();
        });
        if total == 0 {
            ctx.suggest.scan.update(|sc| sc.running = false);
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

/// How often the page takes in the scan's results: the results that arrive meanwhile wait and
/// are shown together. Shown one by one, each repainted the panel and the map (on a
/// two-core machine, CPU time the workers scoring the scan lost).
const SHOW_EVERY_MS: u32 = 200;

/// Scan results that arrived and are not shown yet.
struct Arrived {
    id: u64,
    /// Results of this scan so far, shown or not.
    count: usize,
    /// When the first [`SCAN_FIRST`] had arrived (ms since the page's time origin).
    first_at: Option<f64>,
    waiting: Vec<(f64, f64, Prediction, [f64; 2])>,
    /// Whether a [`show_arrived`] is due.
    due: bool,
}

thread_local! {
    static ARRIVED: std::cell::RefCell<Option<Arrived>> = const { std::cell::RefCell::new(None) };
}

/// One scored point of scan `id`, and what it cost its worker (`cost_ms`: tiles, model): kept
/// until the page next takes the arrived results in (at most [`SHOW_EVERY_MS`] later).
pub fn on_scan_result(ctx: &Ctx, id: u64, lat: f64, lon: f64, p: Prediction, cost_ms: [f64; 2]) {
    if ctx.suggest.scan.get_untracked().id != id {
        return;
    }
    let schedule = ARRIVED.with_borrow_mut(|a| {
        let a = match a {
            Some(a) if a.id == id => a,
            _ => {
                a.insert(Arrived { id, count: 0, first_at: None, waiting: Vec::new(), due: false })
            }
        };
        a.count += 1;
        if a.count == SCAN_FIRST {
            a.first_at = Some(crate::net::now_ms());
        }
        a.waiting.push((lat, lon, p, cost_ms));
        !std::mem::replace(&mut a.due, true)
    });
    if schedule {
        let ctx = *ctx;
        spawn_local(async move {
            gloo_timers::future::TimeoutFuture::new(SHOW_EVERY_MS).await;
            show_arrived(&ctx);
        });
    }
}

/// Shows the scan's results that arrived since last time: counted, and each a suggestion or
/// not by model-core's one rule.
fn show_arrived(ctx: &Ctx) {
    let Some((id, waiting, first_at)) = ARRIVED.with_borrow_mut(|a| {
        let a = a.as_mut()?;
        a.due = false;
        Some((a.id, std::mem::take(&mut a.waiting), a.first_at))
    }) else {
        return;
    };
    if ctx.suggest.scan.get_untracked().id != id || waiting.is_empty() {
        return;
    }
    // model-core's one rule, as `accessatlas suggest` applies it; at threshold 0 here, since
    // the mapper's slider filters what is shown (`Ctx::visible_suggestions`).
    let verdicts: Vec<_> = ctx.suggest.scan.with_untracked(|s| {
        waiting
            .iter()
            .map(|(lat, lon, p, _)| (*lat, *lon, crate::scan::verdict(p, *lat, *lon, &s.mapped)))
            .collect()
    });
    // One update of the scan's state for all of them.
    ctx.suggest.scan.update(|s| {
        s.scanned += waiting.len();
        for (_, _, _, cost) in &waiting {
            s.cost_ms[0] += cost[0];
            s.cost_ms[1] += cost[1];
        }
        s.already_mapped +=
            verdicts.iter().filter(|(_, _, v)| matches!(v, Verdict::AlreadyMapped)).count();
        if s.first_ms.is_none() {
            s.first_ms = first_at.map(|t| t - s.started_ms);
        }
    });
    let found: Vec<_> = verdicts
        .into_iter()
        .filter_map(|(lat, lon, v)| match v {
            Verdict::Suggest { label, confidence } => Some((lat, lon, label, confidence)),
            _ => None,
        })
        .collect();
    if !found.is_empty() {
        ctx.suggest.found.update(|v| {
            for (lat, lon, label, confidence) in found {
                let key = v.len() as u64 + 1;
                v.push(Suggestion { key, lat, lon, label, confidence });
            }
        });
    }
}

pub fn on_scan_done(ctx: &Ctx, id: u64, failed: usize, unscanned: usize, workers: usize) {
    if ctx.suggest.scan.get_untracked().id != id {
        return;
    }
    // What arrived last (the done message follows each worker's last result).
    show_arrived(ctx);
    ctx.suggest.scan.update(|s| {
        s.running = false;
        s.failed = failed;
        s.unscanned = unscanned;
        s.workers = workers;
        s.took_ms = Some(crate::net::now_ms() - s.started_ms);
    });
    let shown = ctx.visible_suggestions().len();
    // Nothing passes: say how sure the model was at best, so the mapper can lower the bar.
    let best = ctx
        .suggest
        .found
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
    let json =
        ctx.suggest.rejections.with_untracked(|r| serde_json::to_string(r).unwrap_or_default());
    let status = ctx.status;
    spawn_local(async move {
        if let Err(e) = crate::idb::put(crate::idb::REJECTIONS_KEY, &json).await {
            status.set(format!("Saving the rejection failed: {e}"));
        }
    });
}

pub fn accept(ctx: &Ctx, key: u64) {
    let Some(s) = ctx.suggest.found.with_untracked(|v| v.iter().find(|s| s.key == key).cloned())
    else {
        return;
    };
    let mut added = Err(String::new());
    ctx.edit_store(|st| {
        added = st.add(s.lat, s.lon, &s.label, "model", "accepted suggestion", &[]);
    });
    match added {
        Ok(id) => {
            ctx.suggest.found.update(|v| v.retain(|x| x.key != key));
            ctx.status.set(format!(
                "Accepted: {} tag {id} with source model (edit it like any tag).",
                s.label.replace('_', " ")
            ));
        }
        Err(e) => ctx.status.set(format!("Could not accept the suggestion: {e}")),
    }
}

pub fn reject(ctx: &Ctx, key: u64) {
    let Some(s) = ctx.suggest.found.with_untracked(|v| v.iter().find(|s| s.key == key).cloned())
    else {
        return;
    };
    ctx.suggest.found.update(|v| v.retain(|x| x.key != key));
    ctx.suggest
        .rejections
        .update(|r| r.push(Rejection { lat: s.lat, lon: s.lon, label: s.label.clone() }));
    save_rejections(ctx);
    ctx.status.set(format!(
        "Rejected: not a {} here. It will count as a negative example in the next fine-tune.",
        s.label.replace('_', " ")
    ));
}

#[component]
pub fn SuggestionsPanel() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let threshold = move || ctx.suggest.scan.with(|s| s.threshold);
    let status = move || {
        let s = ctx.suggest.scan.get();
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
                        ctx.suggest.scan.update(|s| {
                            s.threshold = v / 100.0;
                            s.threshold_set = true;
                        });
                    }
                }/>
            <div class="buttons">
                <button type="button" data-testid="scan-view" on:click=move |_| scan(&ctx)
                    disabled=move || !model_ready(&ctx) || ctx.suggest.scan.with(|s| s.running)>"Scan this view"</button>
            </div>
            <p data-testid="scan-status" data-id=move || ctx.suggest.scan.with(|s| s.id.to_string())
                data-bbox=move || ctx.suggest.scan.with(|s| s.bbox.clone())
                data-total=move || ctx.suggest.scan.with(|s| s.total.to_string())
                data-scanned=move || ctx.suggest.scan.with(|s| (s.total - s.unscanned).to_string())
                data-ms=move || ctx.suggest.scan.with(|s| s.took_ms.map(|t| format!("{t:.1}")).unwrap_or_default())
                data-first-ms=move || ctx.suggest.scan.with(|s| s.first_ms.map(|t| format!("{t:.1}")).unwrap_or_default())
                data-workers=move || ctx.suggest.scan.with(|s| s.workers.to_string())
                data-sent-ms=move || ctx.suggest.scan.with(|s| s.sent_ms.map(|t| format!("{t:.1}")).unwrap_or_default())
                data-tiles-ms=move || ctx.suggest.scan.with(|s| format!("{:.1}", s.cost_ms[0]))
                data-model-ms=move || ctx.suggest.scan.with(|s| format!("{:.1}", s.cost_ms[1]))
                data-results=move || ctx.suggest.scan.with(|s| s.scanned.to_string())
                data-failed=move || ctx.suggest.scan.with(|s| s.failed.to_string())>{status}</p>
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
