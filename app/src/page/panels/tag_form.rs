//! The tag form: a new or selected tag's type, source, note and OSM tags.

use crate::page::{Ctx, display, letter};
use crate::store::labels;
use leptos::prelude::*;
use model_core::data::features::{FeatureTypes, OsmTagChoice, format_osm_tags};

/// The feature of the draft's type OpenStreetMap already has where the draft is (from the
/// "Already in OpenStreetMap" layer), by id.
fn on_osm(ctx: Ctx) -> Option<String> {
    let d = ctx.tags.draft.get()?;
    ctx.map.osm.with(|o| {
        model_core::data::candidates::nearest_mapped(
            &o.features,
            &d.label,
            d.lat,
            d.lon,
            model_core::data::osm_edit::SAME_FEATURE_M,
        )
        .map(|(f, _)| f.id.clone())
    })
}

#[component]
pub fn TagForm() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let field = move |f: fn(&mut crate::page::Draft, String)| {
        move |ev: web_sys::Event| {
            let v = event_target_value(&ev);
            ctx.tags.draft.update(|d| {
                if let Some(d) = d {
                    f(d, v)
                }
            });
        }
    };
    let save = move |ev: web_sys::SubmitEvent| {
        ev.prevent_default();
        let Some(d) = ctx.tags.draft.get_untracked() else { return };
        let mut result = Ok(String::new());
        ctx.edit_store(|s| {
            result = match &d.id {
                Some(id) => {
                    s.edit(id, &d.label, &d.source, &d.note, &d.osm_tags()).map(|()| id.clone())
                }
                None => s.add(d.lat, d.lon, &d.label, &d.source, &d.note, &d.osm_tags()),
            }
        });
        match result {
            Ok(id) => {
                ctx.status.set(format!("Saved {} tag {id}.", display(&d.label)));
                ctx.tags.draft.set(None);
            }
            Err(e) => ctx.status.set(format!("Not saved: {e}")),
        }
    };
    let delete = move |_| {
        let Some(Some(id)) = ctx.tags.draft.get_untracked().map(|d| d.id) else { return };
        ctx.tags.draft.set(None);
        ctx.delete_tag(&id);
    };
    let cancel = move |_| ctx.tags.draft.set(None);
    // The type letters (R, E, D, T, O, from the feature-type table) pick the type.
    let pick_by_letter = move |e: web_sys::KeyboardEvent| {
        if e.ctrl_key() || e.meta_key() || e.alt_key() {
            return;
        }
        let key = e.key();
        let mut chars = key.chars();
        let (Some(c), None) = (chars.next(), chars.next()) else { return };
        if let Some(t) = FeatureTypes::builtin().by_letter(c) {
            e.prevent_default();
            let name = t.name.clone();
            ctx.tags.draft.update(|d| {
                if let Some(d) = d {
                    d.set_label(&name);
                    d.label_chosen = true;
                }
            });
        }
    };
    let d = move || ctx.tags.draft.get();
    view! {
        <Show when=move || d().is_some()>
            <form class="panel tag-form" data-testid="tag-form" on:submit=save
                on:keydown=move |e: web_sys::KeyboardEvent| if e.key() == "Escape" { ctx.tags.draft.set(None) }>
                <h2>{move || if d().and_then(|d| d.id).is_some() { "Edit tag" } else { "New tag" }}</h2>
                <p class="coords">{move || d().map(|d| format!("{:.5}, {:.5}", d.lat, d.lon)).unwrap_or_default()}</p>
                <label for="tag-type">"Type"</label>
                <select id="tag-type" data-testid="tag-type" on:change=field(|d, v| {
                        d.set_label(&v);
                        d.label_chosen = true;
                    })
                    on:keydown=pick_by_letter
                    prop:value=move || d().map(|d| d.label).unwrap_or_default()>
                    {labels().names().iter().map(|l| view! {
                        <option value=l.clone()>{format!("{} ({})", display(l), letter(l))}</option>
                    }).collect_view()}
                </select>
                {move || on_osm(ctx).map(|id| view! {
                    <p class="on-osm" role="status" data-testid="on-osm">
                        {format!("Already in OpenStreetMap: {id} is this feature, within 3 m. Map it only if it is another one.")}
                    </p>
                })}
                <OsmTagFields/>
                <label for="tag-source">"Source"</label>
                <input id="tag-source" data-testid="tag-source" type="text" autocomplete="off"
                    on:input=field(|d, v| d.source = v)
                    prop:value=move || d().map(|d| d.source).unwrap_or_default()/>
                <label for="tag-note">"Note (optional)"</label>
                <textarea id="tag-note" data-testid="tag-note" rows="2"
                    on:input=field(|d, v| d.note = v)
                    prop:value=move || d().map(|d| d.note).unwrap_or_default()></textarea>
                <div class="buttons">
                    <button type="submit" data-testid="save-tag">"Save tag"</button>
                    <button type="button" class="secondary" on:click=cancel>"Cancel"</button>
                    <Show when=move || d().and_then(|d| d.id).is_some()>
                        <button type="button" class="danger" data-testid="delete-tag" on:click=delete>"Delete"</button>
                    </Show>
                </div>
            </form>
        </Show>
    }
}

/// The draft's OSM tags: one of its type's presets (the first preselected) and its optional
/// keys (a list of the usual values, or free text for keys that take any).
#[component]
fn OsmTagFields() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let ty = move || {
        ctx.tags.draft.with(|d| d.as_ref().and_then(|d| FeatureTypes::builtin().get(&d.label).ok()))
    };
    let osm =
        move || ctx.tags.draft.with(|d| d.as_ref().map(|d| d.osm.clone()).unwrap_or_default());
    let set = move |f: Box<dyn FnOnce(&mut OsmTagChoice)>| {
        ctx.tags.draft.update(|d| {
            if let Some(d) = d {
                f(&mut d.osm)
            }
        })
    };
    let shown = move || {
        ctx.tags
            .draft
            .with(|d| d.as_ref().map(|d| format_osm_tags(&d.osm_tags())).unwrap_or_default())
    };
    view! {
        <fieldset class="osm-tags" data-testid="osm-tags" data-tags=shown>
            <legend>"OpenStreetMap tags"</legend>
            <label for="tag-preset">"Preset"</label>
            <select id="tag-preset" data-testid="tag-preset"
                on:change=move |ev| {
                    let i = event_target_value(&ev).parse().unwrap_or(0);
                    set(Box::new(move |o| o.preset = i));
                }
                prop:value=move || osm().preset.to_string()>
                {move || ty().map(|t| t.presets.iter().enumerate().map(|(i, p)| view! {
                    <option value=i.to_string() prop:selected=move || osm().preset == i>{format!("{} ({})", p.name, p.tags.join(" + "))}</option>
                }).collect_view())}
            </select>
            {move || ty().map(|t| t.optional_keys().into_iter().map(|k| {
                let key = k.to_string();
                let id = format!("tag-opt-{}", key.replace(':', "-"));
                let value = move || ctx.tags.draft.with(|d| d.as_ref().map(|d| d.osm.optional_value(&key).to_string()).unwrap_or_default());
                let chosen = value.clone();
                let key_set = k.to_string();
                let on = move |ev: web_sys::Event| {
                    let (k, v) = (key_set.clone(), event_target_value(&ev));
                    set(Box::new(move |o| o.set_optional(&k, &v)));
                };
                let input = match t.optional_values(k) {
                    Some(values) => view! {
                        <select id=id.clone() data-testid=id.clone() data-key=k.to_string() on:change=on prop:value=value>
                            <option value="">"(not set)"</option>
                            {values.into_iter().map(|v| {
                                let (v, chosen) = (v.to_string(), chosen.clone());
                                view! { <option value=v.clone() prop:selected={let v = v.clone(); move || chosen() == v}>{v.clone()}</option> }
                            }).collect_view()}
                        </select>
                    }.into_any(),
                    None => view! {
                        <input id=id.clone() data-testid=id.clone() data-key=k.to_string() type="text" autocomplete="off" on:input=on prop:value=value/>
                    }.into_any(),
                };
                view! { <label for=id.clone()>{format!("{k} (optional)")}</label>{input} }
            }).collect_view())}
            <p class="hint osm-preview">{shown}</p>
        </fieldset>
    }
}
