//! Import and export of tags: CSV, GeoJSON and the editor files.

use crate::geojson::{import_geojson, to_geojson};
use crate::page::Ctx;
use crate::page::files::download;
use crate::store::{ImportReport, labels};
use leptos::prelude::*;
use leptos::task::spawn_local;
use model_core::data::osm_edit::EditFormat;
use model_core::data::tags::{ParseReport, Rejected, TagsCsvReader};

/// What an editor file left out, for the status line.
fn left_out(e: &crate::store::EditExport, unchecked: Option<String>) -> String {
    let mut said = String::new();
    if e.from_osm > 0 {
        said += &format!(
            " {} tags with source osm left out: they came from OpenStreetMap.",
            e.from_osm
        );
    }
    if !e.already_mapped.is_empty() {
        let list: Vec<String> =
            e.already_mapped.iter().map(|(t, m)| format!("{t} ({m})")).collect();
        said += &format!(" Left out, already in OpenStreetMap: {}.", list.join(", "));
    }
    if let Some(why) = unchecked {
        said += &format!(" Not checked against OpenStreetMap: {why}.");
    }
    said
}

/// Rows read between two turns of the browser: a tenth of a 100,000-row file's parse, so the
/// page keeps answering while a large file is read.
const IMPORT_CHUNK_ROWS: usize = 5_000;

/// Reads a tags CSV a chunk of rows at a time, giving the browser a turn between chunks and
/// showing how far it got in `progress`.
async fn read_csv_in_chunks(
    bytes: &[u8],
    name: &str,
    progress: RwSignal<Option<(String, f64)>>,
) -> Result<ParseReport, String> {
    let labels = labels();
    let mut reader = TagsCsvReader::new(bytes, &labels).map_err(|e| e.to_string())?;
    progress.set(Some((name.to_string(), 0.0)));
    while reader.read(IMPORT_CHUNK_ROWS) {
        progress.set(Some((name.to_string(), reader.fraction_read())));
        gloo_timers::future::TimeoutFuture::new(0).await;
    }
    Ok(reader.into_report())
}

#[derive(Clone, PartialEq)]
struct ImportView {
    file: String,
    added: usize,
    replaced: usize,
    rejected: Vec<Rejected>,
}

#[component]
pub fn ImportExport() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let report = RwSignal::new(None::<Result<ImportView, String>>);
    let progress = RwSignal::new(None::<(String, f64)>);
    let on_file = move |ev: web_sys::Event| {
        let input: web_sys::HtmlInputElement = event_target(&ev);
        let Some(file) = input.files().and_then(|f| f.get(0)) else { return };
        input.set_value("");
        let name = file.name();
        spawn_local(async move {
            let text = gloo_file::futures::read_as_bytes(&gloo_file::Blob::from(file)).await;
            let result: Result<ImportReport, String> = match text {
                Err(e) => Err(format!("{name}: {e}")),
                Ok(bytes) if name.to_ascii_lowercase().ends_with(".csv") => {
                    match read_csv_in_chunks(&bytes, &name, progress).await {
                        Ok(parsed) => {
                            let mut out = Err(String::new());
                            ctx.edit_store(|s| out = s.import_parsed(parsed));
                            out
                        }
                        Err(e) => Err(e),
                    }
                    .map_err(|e| format!("{name}: {e}"))
                }
                Ok(bytes) => {
                    let mut out = Err(String::new());
                    ctx.edit_store(|s| {
                        out = match String::from_utf8(bytes) {
                            Ok(t) => import_geojson(s, &t),
                            Err(_) => Err("not UTF-8 text".into()),
                        }
                    });
                    out.map_err(|e| format!("{name}: {e}"))
                }
            };
            progress.set(None);
            let view = result.map(|r| ImportView {
                file: name.clone(),
                added: r.added,
                replaced: r.replaced,
                rejected: r.rejected,
            });
            ctx.status.set(match &view {
                Ok(v) => format!(
                    "Imported {name}: {} added, {} replaced, {} rejected.",
                    v.added,
                    v.replaced,
                    v.rejected.len()
                ),
                Err(e) => format!("Import failed: {e}"),
            });
            report.set(Some(view));
        });
    };
    let export_csv = move |_| {
        let bytes = ctx.tags.store.with_untracked(|s| s.to_csv());
        if let Err(e) = download("tags.csv", "text/csv", &bytes) {
            ctx.status.set(format!("Export failed: {}", crate::js::message(&e)));
        }
    };
    let export_geojson = move |_| {
        let text = ctx.tags.store.with_untracked(to_geojson);
        if let Err(e) = download("tags.geojson", "application/geo+json", text.as_bytes()) {
            ctx.status.set(format!("Export failed: {}", crate::js::message(&e)));
        }
    };
    // What OpenStreetMap already has around the mapper's tags, asked again when they move
    // out of the area asked about: the exports leave those features out.
    Effect::new(move |_| {
        let bbox = ctx.tags.store.with(|s| s.own_bbox());
        if ctx.map.own_osm.with_untracked(|o| o.bbox == bbox) {
            return;
        }
        let Some(b) = bbox else {
            ctx.map.own_osm.set(crate::page::OwnAreaOsm::default());
            return;
        };
        ctx.map.own_osm.set(crate::page::OwnAreaOsm { bbox, pending: true, ..Default::default() });
        spawn_local(async move {
            let got =
                crate::page::view_api::features_in(&format!("{},{},{},{}", b.0, b.1, b.2, b.3))
                    .await;
            ctx.map.own_osm.update(|o| {
                if o.bbox != bbox {
                    return;
                }
                o.pending = false;
                match got {
                    Ok(f) => o.features = f,
                    Err(e) => o.error = Some(e),
                }
            });
        });
    });
    let osm_check = move || {
        ctx.map.own_osm.with(|o| match (o.pending, &o.error) {
            (true, _) => "pending",
            (false, Some(_)) => "failed",
            (false, None) => "done",
        })
    };
    // For an OpenStreetMap editor: the mapper reviews every object there and uploads from it.
    let export_edit = move |format: EditFormat| {
        let name = format!("tags.{}", format.extension());
        let (mapped, unchecked) =
            ctx.map.own_osm.with_untracked(|o| (o.features.clone(), o.unchecked()));
        let result =
            ctx.tags.store.with_untracked(|s| s.to_osm_edit(format, &mapped)).and_then(|e| {
                download(&name, "application/xml", e.text.as_bytes())
                    .map(|()| e)
                    .map_err(|e| crate::js::message(&e))
            });
        match result {
            Ok(e) => ctx.status.set(format!(
                "Exported {name} ({} new nodes): open it in your editor and review each object before uploading.{}",
                e.nodes,
                left_out(&e, unchecked)
            )),
            Err(e) => ctx.status.set(format!("Export failed: {e}")),
        }
    };
    // The same JOSM file straight into a running JOSM, as a new layer to review.
    let open_in_josm = move |_| {
        let (mapped, unchecked) =
            ctx.map.own_osm.with_untracked(|o| (o.features.clone(), o.unchecked()));
        match ctx.tags.store.with_untracked(|s| s.to_osm_edit(EditFormat::Josm, &mapped)) {
            Err(e) => ctx.status.set(format!("Not sent to JOSM: {e}")),
            Ok(e) => spawn_local(async move {
                ctx.status.set(match crate::josm::send(&crate::josm::load_data_url(&e.text)).await {
                    Ok(()) => format!(
                        "Sent {} new nodes to JOSM as the layer \"{}\": review each object there before uploading.{}",
                        e.nodes,
                        crate::josm::LAYER_NAME,
                        left_out(&e, unchecked)
                    ),
                    Err(why) => why,
                })
            }),
        }
    };
    // For MapRoulette: a challenge other mappers work through, one task per tag.
    let export_maproulette = move |_| {
        let result = ctx.tags.store.with_untracked(|s| s.to_maproulette()).and_then(|text| {
            download("tags.maproulette.geojson", "application/geo+json-seq", text.as_bytes())
                .map_err(|e| crate::js::message(&e))
        });
        match result {
            Ok(()) => ctx.status.set(
                "Exported tags.maproulette.geojson: a MapRoulette challenge, one task per tag to review."
                    .into(),
            ),
            Err(e) => ctx.status.set(format!("Export failed: {e}")),
        }
    };
    view! {
        <section class="panel" aria-labelledby="io-h">
            <h2 id="io-h">"Import and export"</h2>
            <label for="import-file">"Import tags (CSV in the pipeline's tags.csv schema, or GeoJSON)"</label>
            <input id="import-file" type="file" data-testid="import-file"
                accept=".csv,.geojson,.json,text/csv,application/geo+json" on:change=on_file/>
            <div class="buttons">
                <button type="button" data-testid="export-csv" on:click=export_csv>"Export CSV"</button>
                <button type="button" data-testid="export-geojson" on:click=export_geojson>"Export GeoJSON"</button>
            </div>
            <p class="hint">"For OpenStreetMap: a file your editor opens, one new node per tag with its type's OSM tags, leaving out what OpenStreetMap already has within 3 m. Review every object there before you upload; AccessAtlas uploads nothing."</p>
            <div class="buttons" data-testid="edit-exports" data-osm-check=osm_check>
                <button type="button" data-testid="export-josm" on:click=move |_| export_edit(EditFormat::Josm)>"Export for JOSM (.osm)"</button>
                <button type="button" data-testid="export-osc" on:click=move |_| export_edit(EditFormat::OsmChange)>"Export osmChange (.osc)"</button>
                <button type="button" data-testid="export-maproulette" on:click=export_maproulette>"Export MapRoulette challenge"</button>
                <button type="button" data-testid="open-in-josm" on:click=open_in_josm>"Open in JOSM"</button>
                {move || ctx.tags.store.with(|s| s.own_bbox()).map(|b| {
                    let (z, lat, lon) = crate::address::fit_view(b);
                    view! {
                        <a class="edit-id" data-testid="edit-area-in-id" target="_blank" rel="noopener"
                            href=format!("https://www.openstreetmap.org/edit?editor=id{}", crate::address::format_view(z, lat, lon))>
                            "Edit the area of your tags in iD"</a>
                    }
                })}
            </div>
            {move || progress.get().map(|(file, done)| view! {
                <p class="import-progress" role="status">
                    <label for="import-progress">{format!("Reading {file}: {:.0} %", done * 100.0)}</label>
                    <progress id="import-progress" data-testid="import-progress" max="1" value=done.to_string()></progress>
                </p>
            })}
            {move || report.get().map(|r| match r {
                Err(e) => view! { <p class="error" data-testid="import-report">{e}</p> }.into_any(),
                Ok(v) => { let n_rejected = v.rejected.len(); view! {
                    <div data-testid="import-report" data-added=v.added.to_string() data-rejected=n_rejected.to_string()>
                        <p>{format!("{}: {} added, {} replaced, {n_rejected} rejected.", v.file, v.added, v.replaced)}</p>
                        <ul class="rejected" data-testid="import-rejected">
                            {v.rejected.into_iter().map(|r| view! { <li>{r.to_string()}</li> }).collect_view()}
                        </ul>
                    </div>
                }.into_any() },
            })}
        </section>
    }
}
