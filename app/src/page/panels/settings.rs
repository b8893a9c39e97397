//! Settings: the base map (the configured tile server or what the model sees) and its tile URL
//! and attribution, carried in the page address so a setup can be shared.

use crate::page::{MapState, Status};
use leptos::prelude::*;
use wasm_bindgen::prelude::*;

#[component]
pub fn Settings() -> impl IntoView {
    let map = expect_context::<MapState>();
    let Status(status) = expect_context::<Status>();
    let url = RwSignal::new(map.tiles.get_untracked().url);
    let attribution = RwSignal::new(map.tiles.get_untracked().attribution);
    let apply = move |ev: web_sys::SubmitEvent| {
        ev.prevent_default();
        let u = url.get_untracked();
        if !(u.contains("{z}") && u.contains("{x}") && u.contains("{y}")) {
            status.set("A tile URL needs {z}, {x} and {y}.".into());
            return;
        }
        map.tiles.update(|t| {
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
        status.set("Map tiles updated; the page address now shares this setup.".into());
    };
    view! {
        <details class="panel">
            <summary>"Map settings"</summary>
            <fieldset>
                <legend>"Base layer"</legend>
                <label class="inline">
                    <input type="radio" name="base" checked=move || !map.tiles.get().model_view
                        on:change=move |_| map.tiles.update(|t| t.model_view = false)/>
                    "Map tiles (below)"
                </label>
                <label class="inline">
                    <input type="radio" name="base" data-testid="model-view" checked=move || map.tiles.get().model_view
                        on:change=move |_| map.tiles.update(|t| t.model_view = true)/>
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
