//! The keyboard help.

use crate::page::display;
use leptos::prelude::*;
use model_core::data::features::FeatureTypes;

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
