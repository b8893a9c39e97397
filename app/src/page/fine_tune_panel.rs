//! The Fine-tune panel: fine-tune the model on the stored tags (and rejected suggestions) in
//! the worker, with progress, a live loss curve and cancel; keep or discard the result;
//! "Learn this area"; export the model in use as a bundle, import one, or go back to the
//! shipped model.

use super::files::download;
use super::{Ctx, FineTuneState, ModelState, send, send_with_bytes};
use crate::protocol::{FineTuneExample, ModelOrigin, ToWorker};
use leptos::prelude::*;
use leptos::task::spawn_local;
use model_core::infer::bundle::{BUNDLE_CONFIG_FILE, BUNDLE_WEIGHTS_FILE};

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

/// Whether the model has loaded (what every model action waits for).
pub(super) fn model_ready(ctx: &Ctx) -> bool {
    matches!(ctx.worker.model.get(), ModelState::Ready { .. })
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
            ctx.worker.model_op.set(Some(Ok(format!(
                "Exported {BUNDLE_CONFIG_FILE} and {BUNDLE_WEIGHTS_FILE}: put both in one \
                 folder; `accessatlas predict --model FOLDER` loads it."
            ))));
        }
        Err(e) => ctx.worker.model_op.set(Some(Err(format!("Export failed: {e}")))),
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
    let epochs = RwSignal::new(model_core::train::finetune::FineTuneConfig::default().epochs);
    let last_stage = RwSignal::new(false);
    let counts = move || {
        let store = ctx.tags.store.get();
        let mut per: Vec<(String, usize)> = crate::store::labels()
            .names()
            .iter()
            .map(|l| (l.clone(), store.tags.iter().filter(|t| &t.label == l).count()))
            .filter(|(_, n)| *n > 0)
            .collect();
        per.sort();
        let text: Vec<String> =
            per.into_iter().map(|(l, n)| format!("{} {n}", l.replace('_', " "))).collect();
        let rejected = ctx.suggest.rejections.with(Vec::len);
        format!(
            "Your tags: {}{}.",
            if text.is_empty() { "none yet".into() } else { text.join(", ") },
            if rejected > 0 { format!("; {rejected} rejected suggestions") } else { String::new() }
        )
    };
    let running = move || matches!(ctx.worker.finetune.get(), FineTuneState::Running { .. });
    let start = move |_| {
        let mut examples: Vec<FineTuneExample> = ctx.tags.store.with_untracked(|s| {
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
        ctx.suggest.rejections.with_untracked(|r| {
            examples.extend(r.iter().enumerate().map(|(i, r)| FineTuneExample {
                id: format!("rejected-{}", i + 1),
                lat: r.lat,
                lon: r.lon,
                source: "model".into(),
                label: r.label.clone(),
                negative: true,
            }))
        });
        ctx.worker.finetune.set(FineTuneState::Running {
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
        ctx.worker.finetune.update(|f| {
            if let FineTuneState::Running { cancelling, .. } = f {
                *cancelling = true;
            }
        });
    };
    let keep = move |_| {
        ctx.worker.model_op.set(None);
        send(&ctx, &ToWorker::KeepModel);
    };
    let discard = move |_| {
        send(&ctx, &ToWorker::DiscardModel);
        ctx.worker.finetune.set(FineTuneState::Idle);
        ctx.status.set("The fine-tuned model was discarded; the model is unchanged.".into());
    };
    let learn = move |_| {
        super::learn_area::learn_area(&ctx, epochs.get_untracked(), last_stage.get_untracked())
    };
    let undo = move |_| {
        ctx.worker.model_op.set(None);
        send(&ctx, &ToWorker::UndoModel);
    };
    let export = move |_| send(&ctx, &ToWorker::ExportModel);
    let revert = move |_| {
        ctx.worker.model_op.set(None);
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
                    Err(e) => ctx.worker.model_op.set(Some(Err(format!("{name}: {e}")))),
                }
            }
            match (manifest, weights) {
                (Some(manifest), Some(w)) => {
                    send_with_bytes(&ctx, &ToWorker::ImportModel { manifest }, Some(&w));
                }
                _ => ctx.worker.model_op.set(Some(Err(
                    "Pick both files of a bundle: model.json and weights.bpk.".into(),
                ))),
            }
        });
    };
    let progress_view = move || {
        let (percent, text, losses) = match ctx.worker.finetune.get() {
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
        match ctx.worker.finetune.get() {
        FineTuneState::Done(s) => Some({
            // What the fine-tune learned from: a view's places, or the mapper's tags.
            let examples = if s.area.is_some() { "places" } else { "tags" };
            view! {
                <div data-testid="finetune-result" data-before=s.before_accuracy.to_string()
                    data-after=s.after_accuracy.to_string()
                    data-before-types-f1=s.before_types_f1.map(|f| f.to_string()).unwrap_or_default()
                    data-after-types-f1=s.after_types_f1.map(|f| f.to_string()).unwrap_or_default()
                    data-features-s=s.features_seconds.to_string()
                    data-train-s=s.train_seconds.to_string()
                    data-epochs=s.epochs.to_string() data-steps=s.steps.to_string()
                    data-train-tags=s.train_tags.to_string()
                    data-val-tags=s.val_tags.to_string()
                    data-val-features=s.val_features.to_string()
                    data-last-stage=s.last_stage.to_string()>
                    {s.area.clone().map(|a| view! {
                        <p data-testid="finetune-area" data-bbox=a.bbox>{format!("Learned this area from {}.", a.described)}</p>
                    })}
                    <p>{format!(
                        "Validation accuracy on {} held-out {} (other map cells): before {}, after {} ({} training {}, {} rejected suggestions, {} epochs, {:.1} s).",
                        s.val_tags, examples, pct(s.before_accuracy), pct(s.after_accuracy),
                        s.train_tags, examples, s.negatives, s.epochs, s.seconds
                    )}{s.last_stage.then_some(" The image encoder's last stage trained too.")}</p>
                    {s.before_types_f1.zip(s.after_types_f1).map(|(b, a)| view! {
                        <p data-testid="finetune-types-f1">{format!(
                            "Feature types alone (macro-F1 over the {} held-out places with a feature): before {b:.2}, after {a:.2}.",
                            s.val_features
                        )}</p>
                    })}
                    {s.change_words().zip(s.types_change).map(|(w, c)| view! {
                        <p data-testid="finetune-change" data-low=c.change.low.to_string()
                            data-high=c.change.high.to_string()
                            data-cells=c.change.cells.to_string()>{w}</p>
                    })}
                    {s.worse_than_before().map(|w| view! {
                        <p class="warning" role="status" data-testid="finetune-worse">{w}</p>
                    })}
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
    let origin = move || match ctx.worker.model.get() {
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
            {move || ctx.worker.model_op.get().map(|r| match r {
                Ok(m) => view! { <p data-testid="model-op">{m}</p> }.into_any(),
                Err(e) => view! { <p class="error" role="alert" data-testid="model-op-error">{e}</p> }.into_any(),
            })}
        </section>
    }
}
