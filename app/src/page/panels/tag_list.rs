//! The tag list: filter by type, undo delete, and each tag to iD or JOSM.

use crate::page::{Ctx, display, letter};
use crate::store::labels;
use leptos::prelude::*;
use leptos::task::spawn_local;

/// The most tags the list holds at once: a list of 100,000 rows, each with its buttons, would
/// hold the page for seconds at every change.
pub const LISTED_AT_MOST: usize = 200;

#[component]
pub fn TagList() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    // The first tags of the chosen type, and how many of that type and in all.
    let listed = Memo::new(move |_| {
        let f = ctx.tags.filter.get();
        ctx.tags.store.with(|s| {
            let (first, of_type) = s.filtered_first(f.as_deref(), LISTED_AT_MOST);
            (first, of_type, s.tags.len())
        })
    });
    let rows = move || listed.with(|(first, _, _)| first.clone());
    let count = move || {
        listed.with(|(first, of_type, total)| {
            let mut said = format!("{of_type} of {total} tags shown");
            if first.len() < *of_type {
                said += &format!(
                    " (the list holds the first {}: choose a type to narrow it; the map shows them all)",
                    first.len()
                );
            }
            said
        })
    };
    let of_type = move || listed.with(|(_, n, _)| n.to_string());
    let total = move || listed.with(|(_, _, t)| t.to_string());
    view! {
        <section class="panel" aria-labelledby="tags-h">
            <h2 id="tags-h">"Tags"</h2>
            <label for="tag-filter">"Show type"</label>
            <select id="tag-filter" data-testid="tag-filter" on:change=move |ev| {
                let v = event_target_value(&ev);
                ctx.tags.filter.set((!v.is_empty()).then_some(v));
            }>
                <option value="">"All types"</option>
                {labels().names().iter().map(|l| view! { <option value=l.clone()>{display(l)}</option> }).collect_view()}
            </select>
            <p class="count" data-testid="tag-count" data-shown=of_type data-total=total>{count}</p>
            <Show when=move || ctx.tags.deleted.with(|v| !v.is_empty())>
                <button type="button" class="small secondary" data-testid="undo-delete"
                    on:click=move |_| ctx.undo_delete()>
                    {move || ctx.tags.deleted.with(|v| v.last().map(|d| format!("Undo delete of {} (Ctrl+Z)", d.tag.id)).unwrap_or_default())}
                </button>
            </Show>
            <ul class="tag-list" data-testid="tag-list">
                <For each=rows key=|t| (t.id.clone(), t.label.clone(), t.lat.to_bits(), t.lon.to_bits(), t.source.clone(), t.extra.clone())
                    children=move |t| {
                        let id = t.id.clone();
                        let id_del = t.id.clone();
                        let id_josm = t.id.clone();
                        let label = t.label.clone();
                        view! {
                            <li class="tag-row" data-id=t.id.clone() data-type=t.label.clone()>
                                <span class=format!("chip tag-{label}") aria-hidden="true">{letter(&label)}</span>
                                <span class="tag-text">{format!("{} · {} · {:.5}, {:.5}", display(&label), t.source, t.lat, t.lon)}<br/>
                                    <span class="tag-osm" data-testid="tag-osm">{ctx.tags.store.with_untracked(|s| s.osm_tags(&t)).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" + ")}</span></span>
                                <button type="button" class="small" aria-label=format!("Edit {} {}", display(&label), t.id)
                                    on:click=move |_| ctx.select(&id)>"Edit"</button>
                                <a class="small edit-id" data-testid="edit-in-id" target="_blank" rel="noopener"
                                    href=format!("https://www.openstreetmap.org/edit?editor=id#map=19/{:.6}/{:.6}", t.lat, t.lon)
                                    aria-label=format!("Edit in iD at {} {}", display(&label), t.id)>"Edit in iD"</a>
                                {(!t.source.eq_ignore_ascii_case("osm")).then(|| view! {
                                    <button type="button" class="small" data-testid="tag-to-josm"
                                        aria-label=format!("Open {} {} in JOSM", display(&label), t.id)
                                        on:click=move |_| tag_to_josm(ctx, &id_josm)>"JOSM"</button>
                                })}
                                <button type="button" class="small danger" aria-label=format!("Delete {} {}", display(&label), t.id)
                                    on:click=move |_| ctx.delete_tag(&id_del)>"Delete"</button>
                            </li>
                        }
                    }/>
            </ul>
        </section>
    }
}

/// One tag into a running JOSM as a new node with its OSM tags (remote control `add_node`).
fn tag_to_josm(ctx: Ctx, id: &str) {
    let Some((lat, lon, tags)) =
        ctx.tags.store.with_untracked(|s| s.get(id).map(|t| (t.lat, t.lon, s.osm_tags(t))))
    else {
        return;
    };
    let id = id.to_string();
    spawn_local(async move {
        ctx.status.set(match crate::josm::send(&crate::josm::add_node_url(lat, lon, &tags)).await {
            Ok(()) => {
                format!("Sent tag {id} to JOSM as a new node: review it there before uploading.")
            }
            Err(why) => why,
        })
    });
}
