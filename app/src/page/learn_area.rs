//! "Learn this area": the model learns the visible map from what it already holds. The features
//! the server's extract maps in the view (`/api/features`) and the mapper's own tags there are
//! the labels; the view's candidate points away from all of them (`/api/candidates`) are its
//! "no feature here" examples. Model-core picks and caps them ([`area_examples`]); the worker's
//! fine-tune splits them by map cell, trains, and measures before and after on the held-out
//! cells. Keeping the result rescans the view; "Undo" goes back to the model before.

use leptos::prelude::*;
use leptos::task::spawn_local;
use model_core::LabelVocab;
use model_core::data::tile::BBox;
use model_core::train::area::{AreaLimits, AreaPoint, area_examples};

use super::view_api::{candidates_in, features_in, view_bbox};
use super::{Ctx, FineTuneState, ModelState, send};
use crate::protocol::{FineTuneExample, LearnedArea, ToWorker};

/// Starts learning the visible map with `epochs` epochs; `last_stage` trains the image
/// encoder's last stage too (the panel's checkbox, as for the mapper's own tags).
pub fn learn_area(ctx: &Ctx, epochs: usize, last_stage: bool) {
    let Some((bbox, [s, w, n, e])) = view_bbox(ctx) else { return };
    let labels = ctx.worker.model.with_untracked(|m| match m {
        ModelState::Ready { info, .. } => LabelVocab::new(info.labels.clone()).ok(),
        _ => None,
    });
    let Some(labels) = labels else { return };
    let view = BBox { min_lon: w, min_lat: s, max_lon: e, max_lat: n };
    let own: Vec<AreaPoint> = ctx.tags.store.with_untracked(|st| {
        st.tags
            .iter()
            .filter(|t| view.contains(t.lat, t.lon))
            .map(|t| AreaPoint {
                id: t.id.clone(),
                lat: t.lat,
                lon: t.lon,
                label: t.label.clone(),
                source: t.source.clone(),
            })
            .collect()
    });
    ctx.worker.finetune.set(FineTuneState::Running {
        phase: "area".into(),
        percent: 0.0,
        epoch: 0,
        epochs,
        losses: Vec::new(),
        val_accuracy: None,
        cancelling: false,
    });
    ctx.status.set("Learning this area: reading what the map has in the view…".into());
    let ctx = *ctx;
    spawn_local(async move {
        let plan = async {
            let mapped = features_in(&bbox).await?;
            let candidates: Vec<(f64, f64)> =
                candidates_in(&bbox).await?.iter().map(|p| (p.lat, p.lon)).collect();
            area_examples(&own, &mapped, &candidates, &labels, AreaLimits::default())
                .map_err(|e| e.to_string())
        }
        .await;
        let plan = match plan {
            Ok(p) => p,
            Err(e) => {
                let message = format!("Learning this area is not possible: {e}");
                ctx.status.set(message.clone());
                ctx.worker.finetune.set(FineTuneState::Failed(message));
                return;
            }
        };
        let described = plan.describe();
        ctx.status.set(format!("Learning this area from {described}: loading their map tiles…"));
        let examples = plan
            .examples
            .into_iter()
            .map(|p| FineTuneExample {
                id: p.id,
                lat: p.lat,
                lon: p.lon,
                source: p.source,
                label: p.label,
                negative: false,
            })
            .collect();
        send(
            &ctx,
            &ToWorker::FineTune {
                examples,
                epochs,
                seed: 42,
                last_stage,
                area: Some(LearnedArea { bbox, described }),
            },
        );
    });
}
