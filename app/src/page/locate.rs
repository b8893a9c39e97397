//! Where I stand: "Locate me" asks the browser for the mapper's position (the Geolocation API,
//! through Leaflet's `map.locate` with `watch`), draws it with its accuracy circle and keeps
//! the map on it (follow mode) until pressed again; "Tag here" tags that position; the box
//! says how far the nearest suggestion is. A denied permission or no fix gets words, not
//! silence.

use leptos::prelude::*;
use leptos_leaflet::leaflet;
use wasm_bindgen::prelude::*;

use super::Ctx;
use model_core::data::tile::distance_m;

/// Where the browser says the mapper is.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Fix {
    lat: f64,
    lon: f64,
    /// Metres (the radius of the 95 % circle the browser reports).
    accuracy: f64,
}

/// The zoom "Locate me" shows at least: street level, where a mapper checks a place.
const LOCATE_ZOOM: f64 = 18.0;

/// What the browser's Geolocation error code means for a mapper.
fn error_words(code: i32) -> &'static str {
    match code {
        1 => {
            "Location permission is denied: allow this site to use your location in the \
             browser's settings, then press Locate me again."
        }
        2 => "No position fix yet (no GPS or network position): try again outdoors.",
        3 => "No position fix in time: try again outdoors, or wait a moment and retry.",
        _ => "This browser cannot tell where you are.",
    }
}

/// The locate control, "Tag here" and the box under them; `map` is the page's map.
pub fn where_i_stand(
    ctx: Ctx,
    map: ReadSignal<Option<leaflet::Map>, LocalStorage>,
) -> impl IntoView {
    let following = RwSignal::new(false);
    let fix = RwSignal::new(None::<Fix>);
    let error = RwSignal::new(None::<String>);
    let drawn = StoredValue::new_local(None::<(leaflet::CircleMarker, leaflet::Circle)>);
    let clear_drawn = move || {
        drawn.update_value(|d| {
            if let Some((dot, circle)) = d.take() {
                dot.remove();
                circle.remove();
            }
        })
    };

    // Leaflet's location events, once the map exists.
    Effect::new(move |_| {
        let Some(m) = map.get() else { return };
        let evented: &leaflet::Evented = m.unchecked_ref();
        let m2 = m.clone();
        let found = Closure::<dyn Fn(JsValue)>::new(move |e: JsValue| {
            if !following.get_untracked() {
                return;
            }
            let e: leaflet::LocationEvent = e.unchecked_into();
            let p = e.lat_lng();
            let f = Fix { lat: p.lat(), lon: p.lng(), accuracy: e.accuracy() };
            let first = fix.get_untracked().is_none();
            fix.set(Some(f));
            error.set(None);
            let at = leaflet::LatLng::new(f.lat, f.lon);
            drawn.update_value(|d| match d {
                Some((dot, circle)) => {
                    dot.set_lat_lng(&at);
                    circle.set_lat_lng(&at);
                    circle.set_radius(f.accuracy);
                }
                None => {
                    let o = leaflet::CircleOptions::new();
                    o.set_radius(f.accuracy);
                    o.set_weight(1.0);
                    o.set_interactive(false);
                    let circle = leaflet::Circle::new_with_options(&at, &o);
                    let o = leaflet::CircleOptions::new();
                    o.set_radius(8.0);
                    o.set_fill_opacity(1.0);
                    o.set_color("#ffffff".into());
                    o.set_fill_color("#1d4ed8".into());
                    o.set_interactive(false);
                    let dot = leaflet::CircleMarker::new_with_options(&at, &o);
                    circle.add_to(&m2);
                    dot.add_to(&m2);
                    *d = Some((dot, circle));
                }
            });
            // Follow mode: the map stays on the mapper, at street level from the first fix.
            let zoom = if first { m2.get_zoom().max(LOCATE_ZOOM) } else { m2.get_zoom() };
            m2.set_view(&at, zoom);
        });
        let failed = Closure::<dyn Fn(JsValue)>::new(move |e: JsValue| {
            if !following.get_untracked() {
                return;
            }
            let code = js_sys::Reflect::get(&e, &"code".into())
                .ok()
                .and_then(|c| c.as_f64())
                .map_or(0, |c| c as i32);
            error.set(Some(error_words(code).to_string()));
            // A denied permission will not change by waiting; anything else may.
            if code == 1 || code == 0 {
                following.set(false);
                if let Some(m) = map.get_untracked() {
                    m.stop_locate();
                }
            }
        });
        evented.on("locationfound", &found.into_js_value());
        evented.on("locationerror", &failed.into_js_value());
    });

    let toggle = move |_| {
        let Some(m) = map.get_untracked() else { return };
        if following.get_untracked() {
            following.set(false);
            m.stop_locate();
            fix.set(None);
            error.set(None);
            clear_drawn();
        } else {
            following.set(true);
            error.set(None);
            let mut o = leaflet::LocateOptions::new();
            o.watch(true).set_view(false).enable_high_accuracy(true).timeout(20_000.0);
            m.locate_with_options(&o);
        }
    };
    let tag_here = move |_| {
        if let Some(f) = fix.get_untracked() {
            ctx.new_tag_at(f.lat, f.lon);
        }
    };
    let words = move || {
        if let Some(e) = error.get() {
            return Some(e);
        }
        let f = fix.get()?;
        let nearest = ctx
            .visible_suggestions()
            .iter()
            .map(|s| distance_m(f.lat, f.lon, s.lat, s.lon))
            .min_by(f64::total_cmp);
        Some(format!(
            "You are here (within {:.0} m). {}",
            f.accuracy,
            match nearest {
                Some(d) => format!("Nearest suggestion: {d:.0} m away."),
                None => "No suggestion on the map: Scan this view to look for some.".into(),
            }
        ))
    };
    view! {
        <div class="where-i-stand">
            <div class="buttons">
                <button type="button" class="secondary" data-testid="locate-me"
                    aria-pressed=move || following.get().to_string()
                    on:click=toggle>
                    {move || if following.get() { "Stop following me" } else { "Locate me" }}
                </button>
                <Show when=move || fix.get().is_some()>
                    <button type="button" data-testid="tag-here" on:click=tag_here>"Tag here"</button>
                </Show>
            </div>
            <p class="located" role="status" data-testid="located"
                data-lat=move || fix.get().map(|f| format!("{:.6}", f.lat)).unwrap_or_default()
                data-lon=move || fix.get().map(|f| format!("{:.6}", f.lon)).unwrap_or_default()
                hidden=move || words().is_none()>
                {words}
            </p>
        </div>
    }
}
