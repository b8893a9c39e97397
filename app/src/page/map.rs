//! The slippy map: base layer (configurable, or the model's own tiles), a marker per tag
//! (colour and letter by type, draggable to move), a crosshair for keyboard tagging (arrow keys
//! pan, Enter tags the centre), and clicks that open a new tag with a prediction.

use leptos::html::Div;
use leptos::prelude::*;
use leptos_leaflet::leaflet;
use leptos_leaflet::prelude::*;
use wasm_bindgen::prelude::*;

use model_core::infer::bundle::{RENDERED_TILES_ATTRIBUTION, TileSourceSpec};

use super::{Ctx, ModelState, START, letter};

fn div_icon(class: &str, html: &str, title: &str) -> Result<leaflet::Icon, JsValue> {
    div_icon_with(class, html, title, "")
}

/// `attrs` go on the icon's inner element (e.g. a `data-testid`).
fn div_icon_with(
    class: &str,
    html: &str,
    title: &str,
    attrs: &str,
) -> Result<leaflet::Icon, JsValue> {
    let opts = leaflet::DivIconOptions::new();
    opts.set_class_name(class.to_string());
    opts.set_html(format!(
        "<span aria-hidden=\"true\" {attrs}>{html}</span><span class=\"sr-only\">{title}</span>"
    ));
    opts.set_icon_size(leaflet::Point::new(30.0, 30.0));
    opts.set_icon_anchor(leaflet::Point::new(15.0, 15.0));
    let l = js_sys::Reflect::get(&js_sys::global(), &"L".into())?;
    let f: js_sys::Function = js_sys::Reflect::get(&l, &"divIcon".into())?.dyn_into()?;
    Ok(f.call1(&l, &opts)?.unchecked_into())
}

/// A suggestion from the scan: dashed, with a question mark; click or Enter moves the focus to
/// its Accept button in the Suggestions panel.
fn suggestion_marker(s: &super::Suggestion, ctx: Ctx) -> Result<leaflet::Marker, JsValue> {
    let title = format!(
        "suggested {} ({:.0} %), {:.5}, {:.5}",
        s.label.replace('_', " "),
        s.confidence * 100.0,
        s.lat,
        s.lon
    );
    let opts = leaflet::MarkerOptions::new();
    opts.set_icon(div_icon_with(
        &format!("tag-marker suggestion-marker tag-{}", s.label),
        &format!("{}?", letter(&s.label)),
        &title,
        &format!("data-testid=\"suggestion\" data-label=\"{}\"", s.label),
    )?);
    opts.set_title(title);
    opts.set_keyboard(true);
    let marker = leaflet::Marker::new_with_options(&leaflet::LatLng::new(s.lat, s.lon), &opts);
    let key = s.key;
    let on_click = Closure::<dyn Fn(JsValue)>::new(move |_| {
        super::suggestions_panel::focus_accept(key);
        ctx.status.set("Suggestion selected: Accept or Reject it in the Suggestions panel.".into());
    });
    let ev: &leaflet::Evented = marker.unchecked_ref();
    ev.on("click", &on_click.into_js_value());
    Ok(marker)
}

/// A mark under the mapper's own markers: not interactive, not in the keyboard order.
fn passive_marker(
    lat: f64,
    lon: f64,
    icon: leaflet::Icon,
    title: String,
) -> Result<leaflet::Marker, JsValue> {
    let opts = leaflet::MarkerOptions::new();
    opts.set_icon(icon);
    opts.set_title(title);
    opts.set_keyboard(false);
    opts.set_interactive(false);
    opts.set_z_index_offset(-1000.0);
    Ok(leaflet::Marker::new_with_options(&leaflet::LatLng::new(lat, lon), &opts))
}

/// A feature OpenStreetMap already has: hollow, its type's letter, named for screen readers;
/// not interactive (the mapper's own markers and the map's clicks stay on top of it).
fn osm_marker(f: &model_core::data::candidates::MappedFeature) -> Result<leaflet::Marker, JsValue> {
    let title = format!("{} already in OpenStreetMap ({})", f.label.replace('_', " "), f.id);
    let icon = div_icon_with(
        &format!("osm-marker osm-{}", f.label),
        &letter(&f.label),
        &title,
        &format!("data-testid=\"osm-feature\" data-label=\"{}\" data-id=\"{}\"", f.label, f.id),
    )?;
    passive_marker(f.lat, f.lon, icon, title)
}

/// Several features already in OpenStreetMap that would overlap at this zoom: one hollow
/// mark with their number; not interactive, like the rings.
fn osm_group_marker(lat: f64, lon: f64, count: usize) -> Result<leaflet::Marker, JsValue> {
    let title = format!("{count} features already in OpenStreetMap here: zoom in to see them");
    let icon = div_icon_with(
        "osm-marker osm-group",
        &count.to_string(),
        &title,
        &format!("data-testid=\"osm-group\" data-count=\"{count}\""),
    )?;
    passive_marker(lat, lon, icon, title)
}

/// Asks the server what its extract maps in the visible map (when the layer is on).
fn refresh_osm_layer(ctx: Ctx, m: &leaflet::Map) {
    if !ctx.map.osm.with_untracked(|o| o.on) {
        return;
    }
    let (bbox, _) = super::view_api::bounds_bbox(&m.get_bounds());
    leptos::task::spawn_local(async move {
        let got = super::view_api::features_in(&bbox).await;
        ctx.map.osm.update(|o| {
            o.bbox = bbox;
            match got {
                Ok(f) => {
                    o.features = f;
                    o.error = None;
                }
                Err(e) => {
                    o.features.clear();
                    o.error = Some(e);
                }
            }
        });
    });
}

/// Several of the mapper's own tags that would overlap at this zoom: one mark with their
/// number; click or Enter zooms in on them.
fn tag_group_marker(
    lat: f64,
    lon: f64,
    count: usize,
    m: &leaflet::Map,
) -> Result<leaflet::Marker, JsValue> {
    let title = format!("{count} of your tags here: zoom in to see them");
    let opts = leaflet::MarkerOptions::new();
    opts.set_icon(div_icon_with(
        "tag-marker tag-group",
        &count.to_string(),
        &title,
        &format!("data-testid=\"tag-group\" data-count=\"{count}\""),
    )?);
    opts.set_title(title);
    opts.set_keyboard(true);
    let marker = leaflet::Marker::new_with_options(&leaflet::LatLng::new(lat, lon), &opts);
    let m = m.clone();
    let on_click = Closure::<dyn Fn(JsValue)>::new(move |_| {
        m.set_view(&leaflet::LatLng::new(lat, lon), (m.get_zoom() + 2.0).min(20.0));
    });
    let ev: &leaflet::Evented = marker.unchecked_ref();
    ev.on("click", &on_click.into_js_value());
    Ok(marker)
}

/// A draggable, keyboard-focusable marker: click or Enter selects the tag, dragging moves it.
fn tag_marker(t: &model_core::data::tags::Tag, ctx: Ctx) -> Result<leaflet::Marker, JsValue> {
    let title = format!("{} tag {}, {:.5}, {:.5}", t.label.replace('_', " "), t.id, t.lat, t.lon);
    let opts = leaflet::MarkerOptions::new();
    opts.set_icon(div_icon(&format!("tag-marker tag-{}", t.label), &letter(&t.label), &title)?);
    opts.set_title(title);
    opts.set_keyboard(true);
    opts.set_draggable(true);
    let marker = leaflet::Marker::new_with_options(&leaflet::LatLng::new(t.lat, t.lon), &opts);
    let id = t.id.clone();
    let on_click = Closure::<dyn Fn(JsValue)>::new(move |_| ctx.select(&id));
    let id = t.id.clone();
    let m2 = marker.clone();
    let on_drag = Closure::<dyn Fn(JsValue)>::new(move |_| {
        let p = m2.get_lat_lng();
        let (lat, lon) = (p.lat(), p.lng());
        let mut moved = Ok(());
        ctx.edit_store(|s| moved = s.move_to(&id, lat, lon));
        match moved {
            Ok(()) => ctx.status.set(format!("Moved {id} to {lat:.5}, {lon:.5}.")),
            Err(e) => ctx.status.set(format!("Could not move {id}: {e}")),
        }
    });
    let ev: &leaflet::Evented = marker.unchecked_ref();
    ev.on("click", &on_click.into_js_value());
    ev.on("dragend", &on_drag.into_js_value());
    Ok(marker)
}

#[component]
pub fn MapView() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let (map, set_map) = signal_local(None::<leaflet::Map>);
    let node = NodeRef::<Div>::new();
    let tile_error = RwSignal::new(None::<String>);

    // The base layer follows the settings; a failing tile server gets a message, not a crash.
    let current = StoredValue::new_local(None::<leaflet::TileLayer>);
    Effect::new(move |_| {
        let Some(m) = map.get() else { return };
        let s = ctx.map.tiles.get();
        current.with_value(|l| {
            if let Some(l) = l {
                l.remove();
            }
        });
        tile_error.set(None);
        let opts = leaflet::TileLayerOptions::default();
        let (url, attribution, max_zoom) = if s.model_view {
            // The model's own tile source (the rendered tiles until the model has loaded).
            let source = match ctx.worker.model.get() {
                ModelState::Ready { info, .. } => Some(info.tile_source),
                _ => None,
            };
            let url = match &source {
                Some(src) => src.url_template("").unwrap_or_else(|e| {
                    tile_error.set(Some(e.to_string()));
                    TileSourceSpec::rendered_template("")
                }),
                None => TileSourceSpec::rendered_template(""),
            };
            let attribution =
                source.as_ref().map_or(RENDERED_TILES_ATTRIBUTION, |s| s.attribution());
            (url, attribution.to_string(), 20.0)
        } else {
            (s.url.clone(), s.attribution.clone(), 19.0)
        };
        if !attribution.is_empty() {
            opts.set_attribution(attribution);
        }
        opts.set_max_zoom(max_zoom);
        let layer = leaflet::TileLayer::new_options(&url, &opts);
        let host = url.split('/').take(3).collect::<Vec<_>>().join("/");
        let on_error = Closure::<dyn Fn(JsValue)>::new(move |_| {
            if tile_error.get_untracked().is_none() {
                tile_error.set(Some(format!(
                    "Map tiles from {host} failed to load (offline, wrong URL, or no CORS). \
                     Tagging and predictions still work; change the tile URL in Map settings."
                )));
            }
        });
        let evented: &leaflet::Evented = layer.unchecked_ref();
        evented.on("tileerror", &on_error.into_js_value());
        layer.add_to(&m);
        current.set_value(Some(layer));
    });

    // The view follows the address (`#map=zoom/lat/lon`, OSM's form) both ways.
    Effect::new(move |_| {
        let Some(m) = map.get() else { return };
        let m2 = m.clone();
        let on_move = Closure::<dyn Fn(JsValue)>::new(move |_| {
            let c = m2.get_center();
            let hash = crate::address::format_view(m2.get_zoom(), c.lat(), c.lng());
            if let Some(w) = web_sys::window()
                && let Ok(h) = w.history()
            {
                let _ = h.replace_state_with_url(&JsValue::NULL, "", Some(&hash));
            }
        });
        let evented: &leaflet::Evented = m.unchecked_ref();
        evented.on("moveend", &on_move.into_js_value());
        // The "Already in OpenStreetMap" layer follows the view.
        let m3 = m.clone();
        let on_view = Closure::<dyn Fn(JsValue)>::new(move |_| refresh_osm_layer(ctx, &m3));
        evented.on("moveend", &on_view.into_js_value());
        refresh_osm_layer(ctx, &m);
    });

    // Its markers, below the mapper's own.
    let osm_shown = StoredValue::new_local(Vec::<leaflet::Marker>::new());
    Effect::new(move |_| {
        let Some(m) = map.get() else { return };
        let layer = ctx.map.osm.get();
        osm_shown.update_value(|v| {
            for old in v.drain(..) {
                old.remove();
            }
        });
        if !layer.on {
            return;
        }
        for mark in crate::cluster::marks(&layer.features, m.get_zoom()) {
            let marker = match mark {
                crate::cluster::Mark::One(f) => osm_marker(f),
                crate::cluster::Mark::Group { lat, lon, count } => {
                    osm_group_marker(lat, lon, count)
                }
            };
            match marker {
                Ok(marker) => {
                    marker.add_to(&m);
                    osm_shown.update_value(|v| v.push(marker));
                }
                Err(e) => web_sys::console::error_2(&"OSM marker".into(), &e),
            }
        }
    });
    let toggle_osm = move |ev: web_sys::Event| {
        let on = event_target_checked(&ev);
        ctx.map.osm.update(|o| o.on = on);
        if on && let Some(m) = map.get_untracked() {
            refresh_osm_layer(ctx, &m);
        }
    };
    let osm_summary = move || {
        ctx.map.osm.with(|o| match (&o.error, o.on) {
            (_, false) => String::new(),
            (Some(e), true) => format!(" (not available: {e})"),
            (None, true) => format!(" ({} in view)", o.features.len()),
        })
    };

    // Keyboard: Leaflet pans with the arrow keys; Enter tags the point under the crosshair.
    Effect::new(move |_| {
        let Some(m) = map.get() else { return };
        let container = m.get_container();
        container.set_attribute("aria-label", "Map. Arrow keys move the map under the crosshair; Enter adds a tag at the crosshair.").ok();
        container.set_attribute("role", "application").ok();
        container.set_attribute("aria-roledescription", "map").ok();
        let m2 = m.clone();
        let on_key =
            Closure::<dyn Fn(web_sys::KeyboardEvent)>::new(move |e: web_sys::KeyboardEvent| {
                if e.key() == "Enter" && e.target() == e.current_target() {
                    e.prevent_default();
                    let c = m2.get_center();
                    ctx.new_tag_at(c.lat(), c.lng());
                }
            });
        container.add_event_listener_with_callback("keydown", on_key.as_ref().unchecked_ref()).ok();
        on_key.forget();
    });

    let events = MapEvents::new().mouse_click(move |e: leaflet::MouseEvent| {
        let p = e.lat_lng();
        ctx.new_tag_at(p.lat(), p.lng());
    });

    // One Leaflet marker per shown tag, rebuilt when tags or the filter change. Built through
    // `L.divIcon` directly: the `leaflet` crate's `DivIcon` constructs an `L.Icon`, which
    // needs an image URL.
    // Past `cluster::MARKERS_AT_MOST` tags, only those in view, grouped where still too many:
    // drawn again as the view moves.
    let shown = StoredValue::new_local(Vec::<leaflet::Marker>::new());
    let view_moved = RwSignal::new(0u64);
    Effect::new(move |_| {
        let Some(m) = map.get() else { return };
        let m2 = m.clone();
        let on_move = Closure::<dyn Fn(JsValue)>::new(move |_| {
            if m2.get_zoom().is_finite() {
                view_moved.update(|n| *n += 1);
            }
        });
        let evented: &leaflet::Evented = m.unchecked_ref();
        evented.on("moveend", &on_move.into_js_value());
    });
    Effect::new(move |_| {
        let Some(m) = map.get() else { return };
        let f = ctx.tags.filter.get();
        shown.update_value(|v| {
            for old in v.drain(..) {
                old.remove();
            }
        });
        let b = m.get_bounds();
        let (sw, ne) = (b.get_south_west(), b.get_north_east());
        let view = (sw.lng(), sw.lat(), ne.lng(), ne.lat());
        let markers: Vec<Result<leaflet::Marker, JsValue>> = ctx.tags.store.with(|s| {
            let of_type: Vec<&model_core::data::tags::Tag> =
                s.tags.iter().filter(|t| f.as_deref().is_none_or(|l| t.label == l)).collect();
            let (marks, follows_view) = crate::cluster::tag_marks(&of_type, view, m.get_zoom());
            if follows_view {
                view_moved.track();
            }
            marks
                .into_iter()
                .map(|mark| match mark {
                    crate::cluster::Mark::One(t) => tag_marker(t, ctx),
                    crate::cluster::Mark::Group { lat, lon, count } => {
                        tag_group_marker(lat, lon, count, &m)
                    }
                })
                .collect()
        });
        for marker in markers {
            match marker {
                Ok(marker) => {
                    marker.add_to(&m);
                    shown.update_value(|v| v.push(marker));
                }
                Err(e) => web_sys::console::error_2(&"marker".into(), &e),
            }
        }
    });

    // The map handle for the scan; suggestion markers follow the suggestions and threshold.
    Effect::new(move |_| {
        if let Some(m) = map.get() {
            ctx.map.leaflet.set_value(Some(m));
        }
    });
    let suggested = StoredValue::new_local(Vec::<leaflet::Marker>::new());
    Effect::new(move |_| {
        let Some(m) = map.get() else { return };
        let list = ctx.visible_suggestions();
        suggested.update_value(|v| {
            for old in v.drain(..) {
                old.remove();
            }
        });
        for s in &list {
            match suggestion_marker(s, ctx) {
                Ok(marker) => {
                    marker.add_to(&m);
                    suggested.update_value(|v| v.push(marker));
                }
                Err(e) => web_sys::console::error_2(&"suggestion marker".into(), &e),
            }
        }
    });

    // Where the map opens: the address's `#map=` view, else the bundled data's centre.
    let start = web_sys::window()
        .and_then(|w| w.location().hash().ok())
        .and_then(|h| crate::address::parse_view(&h))
        .unwrap_or((START.2, START.0, START.1));
    view! {
        <section class="map-wrap" aria-label="Map" data-testid="map">
            <MapContainer
                class="map"
                center=Position::new(start.1, start.2)
                zoom=start.0
                set_view=true
                map=set_map
                node_ref=node
                events=events
            >
            </MapContainer>
            <div class="crosshair" aria-hidden="true"></div>
            {super::locate::where_i_stand(ctx, map)}
            // On a phone (the layout shows it there only): a tap-sized way to tag the point
            // under the crosshair, as Enter does on a keyboard.
            <button type="button" class="tag-crosshair" data-testid="tag-crosshair"
                on:click=move |_| {
                    if let Some(m) = map.get_untracked() {
                        let c = m.get_center();
                        ctx.new_tag_at(c.lat(), c.lng());
                    }
                }>"Tag the crosshair"</button>
            <label class="osm-layer" data-testid="osm-layer"
                data-bbox=move || ctx.map.osm.with(|o| o.bbox.clone())
                data-count=move || ctx.map.osm.with(|o| o.features.len().to_string())>
                <input type="checkbox" data-testid="osm-layer-toggle" prop:checked=move || ctx.map.osm.with(|o| o.on) on:change=toggle_osm/>
                " Already in OpenStreetMap"
                <span data-testid="osm-layer-count">{osm_summary}</span>
            </label>
            <Show when=move || tile_error.get().is_some()>
                <div class="tile-error" role="alert">
                    <p>{move || tile_error.get().unwrap_or_default()}</p>
                    // One click to the map this server draws itself from the bundled data.
                    <Show when=move || !ctx.map.tiles.get().model_view>
                        <button type="button" data-testid="use-rendered-tiles"
                            on:click=move |_| ctx.map.tiles.update(|t| t.model_view = true)>
                            "Use this server's own map"
                        </button>
                    </Show>
                </div>
            </Show>
        </section>
    }
}
