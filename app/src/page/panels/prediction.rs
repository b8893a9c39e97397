//! The prediction panel: the model's answer at the draft's place.

use crate::page::{ModelState, PredictionState, WorkerState, display, letter};
use leptos::prelude::*;
use model_core::data::vocab::NONE_LABEL;

#[component]
pub fn PredictionPanel() -> impl IntoView {
    let worker = expect_context::<WorkerState>();
    let summary = move || match worker.prediction.get() {
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
    let info = move || match worker.model.get() {
        ModelState::Ready { info, .. } => Some(info),
        _ => None,
    };
    let outside = move || match worker.prediction.get() {
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
        match worker.prediction.get() {
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
    let timing = move || match worker.prediction.get() {
        PredictionState::Done { latency_ms, model_ms, .. } => {
            format!("{latency_ms:.1} {model_ms:.1}")
        }
        _ => String::new(),
    };
    let state = move || match worker.prediction.get() {
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
