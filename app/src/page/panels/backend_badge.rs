//! The backend badge in the top bar: which model runs where, and how ready it is.

use crate::page::{ModelState, WorkerState, backend_label};
use crate::protocol::BackendNote;
use leptos::prelude::*;

#[component]
pub fn BackendBadge() -> impl IntoView {
    let worker = expect_context::<WorkerState>();
    let text = move || match worker.model.get() {
        ModelState::Loading => "Model: loading…".to_string(),
        ModelState::Ready { backend, .. } => format!("Model: {}", backend_label(&backend)),
        ModelState::Failed(_) => "Model: unavailable".to_string(),
    };
    // What a mapper needs: which model, ready or not, and a fallback in words.
    let line = move || match worker.model.get() {
        ModelState::Loading => "Loading the model…".to_string(),
        ModelState::Ready { note, info, .. } => {
            let what = crate::page::fine_tune_panel::origin_label(&info.origin);
            let mut s = format!("{}{}: ready", what[..1].to_uppercase(), &what[1..]);
            if let Some(n) = note {
                s.push_str(&format!(". {}", n.message));
            }
            s
        }
        ModelState::Failed(e) => e,
    };
    // The build details, behind "Details".
    let detail = move || match worker.model.get() {
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
    let memory = move || match worker.model.get() {
        ModelState::Ready { memory_bytes, .. } => format!("{memory_bytes:.0}"),
        _ => String::new(),
    };
    let backend = move || match worker.model.get() {
        ModelState::Ready { backend, .. } => backend,
        ModelState::Loading => "loading".into(),
        ModelState::Failed(_) => "failed".into(),
    };
    let ready_at = move || match worker.model.get() {
        ModelState::Ready { ready_at_ms, .. } => format!("{ready_at_ms:.1}"),
        _ => String::new(),
    };
    // The technical reason for a fallback, for those who want it.
    let why = move || match worker.model.get() {
        ModelState::Ready { note: Some(BackendNote { detail: Some(d), .. }), .. } => Some(view! {
            <p class="badge-why" data-testid="backend-why">"Why the fallback: "<code>{d}</code></p>
        }),
        _ => None,
    };
    view! {
        <div class="badge-wrap">
            <span class="badge" data-testid="backend-badge" data-backend=backend data-ready-ms=ready_at
                data-worker-memory=memory data-scan-workers=move || worker.scan_workers.get()>{text}</span>
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
