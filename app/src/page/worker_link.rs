//! The page's end of the model worker: starting it ([`start_worker`]), sending it messages
//! ([`send`], [`send_with_bytes`]) and what each of its answers does to the page's state
//! ([`on_message`]). The messages are [`crate::protocol`]'s.

use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use web_sys::{MessageEvent, Worker};

use super::{
    Ctx, FineTuneState, ModelState, PredictionState, backend_label, base_url, fine_tune_panel,
    offline, query_param, suggestions_panel,
};
use crate::protocol::{BackendChoice, FromWorker, ToWorker};

/// Sends the worker a message.
pub(crate) fn send(ctx: &Ctx, msg: &ToWorker) {
    send_with_bytes(ctx, msg, None);
}

/// Sends a message with bytes beside it, transferred (not copied) to the worker.
pub(crate) fn send_with_bytes(ctx: &Ctx, msg: &ToWorker, bytes: Option<&[u8]>) {
    ctx.worker.handle.with_value(|w| {
        if let Some(w) = w {
            let text = serde_json::to_string(msg).expect("messages serialise");
            let (value, transfer) = crate::transfer::pack(&text, bytes);
            if let Err(e) = w.post_message_with_transfer(&value, &transfer) {
                web_sys::console::error_1(&e);
            }
        }
    });
}

/// Starts the model worker (`worker_loader.js`) and listens to it; a worker that does not
/// start or crashes is a failed model, said in words.
pub(crate) fn start_worker(ctx: Ctx) {
    let worker = match Worker::new("./worker_loader.js") {
        Ok(w) => w,
        Err(e) => {
            ctx.worker.model.set(ModelState::Failed(format!(
                "the model worker did not start: {}",
                crate::js::message(&e)
            )));
            return;
        }
    };
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
        let Some((text, bytes)) = crate::transfer::unpack(&e.data()) else { return };
        let Ok(msg) = serde_json::from_str::<FromWorker>(&text) else { return };
        on_message(&ctx, msg, bytes.as_deref());
    });
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
        ctx.worker
            .model
            .set(ModelState::Failed("the model worker crashed (see the console)".into()));
    });
    worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    on_error.forget();
    ctx.worker.handle.set_value(Some(worker));
}

/// What one message of the worker does (`bytes`: what came transferred beside it).
fn on_message(ctx: &Ctx, msg: FromWorker, bytes: Option<&[u8]>) {
    match msg {
        FromWorker::Started => {
            let backend = BackendChoice::from_query(query_param("backend").as_deref());
            send(ctx, &ToWorker::Load { base: base_url(), backend, scan_helper: false });
        }
        FromWorker::Ready { backend, note, load_ms, warmup_ms, model, memory_bytes } => {
            ctx.status.set(format!("Model ready ({}).", backend_label(&backend)));
            if let Some(s) = model.fine_tune.clone() {
                ctx.worker.finetune.set(FineTuneState::Kept(s));
            }
            // `?profile=N`: time N forward passes by kind of operation (the benchmark's).
            if let Some(runs) = query_param("profile").and_then(|r| r.parse().ok()) {
                send(ctx, &ToWorker::Profile { runs });
            }
            // Scans start at the model's own threshold (its overall one until a scan knows the
            // view's region; the user's slider moves it).
            ctx.suggest.scan.update(|s| {
                s.threshold =
                    model_core::infer::suggest::threshold_or_default(None, model.suggest_threshold);
                s.threshold_set = false;
            });
            let ready_at_ms = crate::net::now_ms();
            ctx.worker.model.set(ModelState::Ready {
                backend,
                note,
                load_ms,
                warmup_ms,
                memory_bytes,
                info: Box::new(model),
                ready_at_ms,
            });
            offline::keep_for_offline(ctx);
        }
        FromWorker::Prediction { id, lat, lon, prediction, tiles_ms, model_ms } => {
            if id == ctx.worker.next_request.get_value() {
                ctx.tags.draft.update(|d| {
                    if let Some(d) = d {
                        d.prefill(lat, lon, &prediction);
                    }
                });
                ctx.worker.prediction.set(PredictionState::Done {
                    lat,
                    lon,
                    prediction,
                    tiles_ms,
                    model_ms,
                    latency_ms: crate::net::now_ms() - ctx.worker.requested_at.get_value(),
                });
            }
        }
        FromWorker::Profile { .. } => {
            // For whoever asked (`?profile=N`): the result as JSON on `<body data-profile>`.
            let body = web_sys::window().and_then(|w| w.document()).and_then(|d| d.body());
            if let (Some(body), Ok(json)) = (body, serde_json::to_string(&msg)) {
                let _ = body.set_attribute("data-profile", &json);
            }
        }
        FromWorker::Failed { id: None, message } => {
            ctx.worker.model.set(ModelState::Failed(message))
        }
        FromWorker::FineTuneProgress { phase, percent, epoch, epochs, loss, val_accuracy } => {
            ctx.worker.finetune.update(|f| {
                let (mut losses, cancelling) = match f {
                    FineTuneState::Running { losses, cancelling, .. } => {
                        (std::mem::take(losses), *cancelling)
                    }
                    _ => (Vec::new(), false),
                };
                if let Some(l) = loss {
                    losses.push(l);
                }
                *f = FineTuneState::Running {
                    phase,
                    percent,
                    epoch,
                    epochs,
                    losses,
                    val_accuracy,
                    cancelling,
                };
            });
        }
        FromWorker::FineTuneDone { summary } => {
            ctx.status.set(format!(
                "Fine-tune finished: validation accuracy {:.0} % before, {:.0} % after. Keep or discard the new model.",
                summary.before_accuracy * 100.0,
                summary.after_accuracy * 100.0
            ));
            ctx.worker.finetune.set(FineTuneState::Done(summary));
        }
        FromWorker::FineTuneCancelled => {
            ctx.status.set("Fine-tune cancelled; the model is unchanged.".into());
            ctx.worker.finetune.set(FineTuneState::Cancelled);
        }
        FromWorker::FineTuneFailed { message } => {
            ctx.status.set(format!("Fine-tune failed: {message}"));
            ctx.worker.finetune.set(FineTuneState::Failed(message));
        }
        FromWorker::ModelChanged { model } => {
            // Keeping what "learn this area" learned rescans the view with it.
            let kept_area = matches!(&model.origin, crate::protocol::ModelOrigin::FineTuned)
                && matches!(ctx.worker.finetune.get_untracked(), FineTuneState::Done(s) if s.area.is_some());
            if let Some(s) = model.fine_tune.clone() {
                ctx.worker.finetune.set(FineTuneState::Kept(s));
            } else {
                ctx.worker.finetune.set(FineTuneState::Idle);
            }
            let what = fine_tune_panel::origin_label(&model.origin);
            ctx.status.set(format!("Predictions now use the {what}."));
            ctx.worker.model_op.set(Some(Ok(format!("Using the {what}."))));
            ctx.worker.model.update(|m| {
                if let ModelState::Ready { info, .. } = m {
                    **info = model;
                }
            });
            if kept_area {
                suggestions_panel::scan(ctx);
            }
        }
        FromWorker::ModelError { message } => {
            ctx.status.set(message.clone());
            ctx.worker.model_op.set(Some(Err(message)));
        }
        FromWorker::ModelExport { manifest } => {
            fine_tune_panel::download_bundle(ctx, &manifest, bytes)
        }
        FromWorker::ScanResult { id, lat, lon, prediction, tiles_ms, model_ms } => {
            suggestions_panel::on_scan_result(ctx, id, lat, lon, prediction, [tiles_ms, model_ms])
        }
        FromWorker::ScanWorkers { workers } => ctx.worker.scan_workers.set(workers),
        FromWorker::ScanDone { id, failed, unscanned, workers } => {
            suggestions_panel::on_scan_done(ctx, id, failed, unscanned, workers)
        }
        FromWorker::Failed { id: Some(id), message } => {
            if id == ctx.worker.next_request.get_value() {
                ctx.worker.prediction.set(PredictionState::Failed(message));
            }
        }
    }
}
