//! `cargo xtask reference page-views` (by hand): "Learn this area" measured on more views of
//! each region than the one `reference page-adapt` measures, so that the page's figure rests
//! on more than one view's 18 to 40 held-out places.
//!
//! Each region's further views are chosen by where its features are mapped, before any
//! model is measured there ([`further_views`]): the densest view again, clear of the views
//! chosen before it, while it holds at least [`MIN_VIEW_FEATURES`] mapped features (passing
//! over one of a single type), at most [`MORE_VIEWS`] of them. Each is learned as `page-adapt` learns one:
//! with the model trained without its region, with the shipped model, and with a model that
//! never saw the view's places, here one trained on every region less every place within
//! [`VIEW_MARGIN_M`] of every further view (`runs/without-more-views`; the first views keep
//! `page-adapt`'s own such model, so each view is measured against a model that left out
//! that view and kept the rest of its region that it could). Written into the fixture as
//! `page_views`, each view as soon as it is measured; a view measured before is skipped, so
//! an interrupted run goes on where it stopped.

use super::*;

/// At most this many views of a region beside the one `page-adapt` measures.
pub const MORE_VIEWS: usize = 2;

/// A further view is measured only where `collect` labelled at least this many features in
/// it (of at least two types: the page learns nothing from fewer kinds, features and
/// background together).
pub const MIN_VIEW_FEATURES: usize = 15;

/// A view of a region, the size of the opening one.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct View {
    pub region: String,
    /// `zoom/lat/lon`, as the page's `#map=` reads it.
    pub view: String,
    /// min lon, min lat, max lon, max lat.
    pub bbox: [f64; 4],
    /// The features `collect` labelled in it.
    pub features: usize,
}

impl View {
    /// The view as the fixture records it ([`recorded_views`] reads it back).
    fn record(&self) -> Value {
        json!({
            "region": self.region,
            "view": self.view,
            "bbox": rounded_box(&self.bbox),
            "features": self.features,
        })
    }
}

/// Region `r`'s further views (at most [`MORE_VIEWS`]): each the densest view clear of
/// `taken` (the region's view measured already) and of the views before it, while it holds
/// at least [`MIN_VIEW_FEATURES`] features; one of a single type is passed over. `opening` is
/// the page's opening view, whose size every view has.
pub(super) fn further_views(
    rows: &[Row],
    r: &str,
    opening: &[f64],
    taken: [f64; 4],
) -> Result<Vec<View>> {
    let mut avoid = vec![taken];
    let mut out = Vec::new();
    while out.len() < MORE_VIEWS {
        let Some((n, lat, lon)) = densest_avoiding(rows, r, opening, &avoid)? else { break };
        let bbox = view_box(opening, lat, lon)?;
        let [w, s, e, nn] = bbox;
        let types: std::collections::BTreeSet<&str> = rows
            .iter()
            .filter(|x| x.region == r && x.label != "none")
            .filter(|x| x.lat >= s && x.lat <= nn && x.lon >= w && x.lon <= e)
            .map(|x| x.label.as_str())
            .collect();
        if n < MIN_VIEW_FEATURES {
            break;
        }
        avoid.push(bbox);
        if types.len() < 2 {
            continue;
        }
        out.push(View {
            region: r.to_string(),
            view: format!("{OPENING_ZOOM}/{lat:.5}/{lon:.5}"),
            bbox,
            features: n,
        });
    }
    Ok(out)
}

/// `cargo xtask reference page-views [--again]`: see the module's doc. `--again` measures
/// every view again (with the models the work folder keeps), where views measured before are
/// otherwise kept.
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let again = match args {
        [] => false,
        [a] if a == "--again" => true,
        _ => bail!("reference page-views: unknown arguments {args:?} (only --again)"),
    };
    let exe = crate::accessatlas_exe(root)?;
    let data = work_data(root, &exe)?;
    let fixture = root.join(FIXTURE);
    let mut out = read_json(&fixture)?;
    let extracts = extracts(root)?;
    let regions: Vec<String> = extracts.iter().map(|(_, r)| r.clone()).collect();
    let (_, rows) = read_rows(&data.join("tags.csv"))?;
    // Views once chosen stay: the opening view's box, whose size every view takes, moves by
    // metres between builds of the page, and with it what the densest views would be.
    let views = match recorded_views(&out["page_views"]["unseen_model"]) {
        Some(views) => views,
        None => {
            let opening = opening_bbox(&out)?;
            let first = measured_views(&rows, &regions, &opening, &chosen_views(&out))?;
            let mut views = Vec::new();
            for (r, taken) in &first {
                views.extend(further_views(&rows, r, &opening, *taken)?);
            }
            views
        }
    };
    if views.is_empty() {
        bail!("no region has a further view of {MIN_VIEW_FEATURES} features");
    }
    let boxes: Vec<(String, [f64; 4])> = views.iter().map(|v| (v.region.clone(), v.bbox)).collect();
    let (unseen, mut record) =
        model_without_views(&exe, &data, &rows, &regions, &boxes, "more-views")?;
    record["views"] = views.iter().map(View::record).collect();
    let kept = match again {
        true => Vec::new(),
        false => out["page_views"]["views"].as_array().cloned().unwrap_or_default(),
    };
    if out["page_views"]["unseen_model"].is_object() && out["page_views"]["unseen_model"] != record
    {
        bail!(
            "the fixture's page_views were measured with a model that left out other places: \
             remove `page_views` from {FIXTURE} and runs/without-more-views* from {} to measure again",
            work_dir().display()
        );
    }
    out["page_views"] = json!({
        "more_views": MORE_VIEWS,
        "min_features": MIN_VIEW_FEATURES,
        "unseen_model": record,
        "views": kept,
    });
    let dist = crate::web::current_app(root)?;
    crate::web::ensure_chromium()?;
    for v in &views {
        let done = kept.iter().any(|k| {
            k["region"] == json!(v.region) && k["view"] == json!(v.view) && k["page"].is_object()
        });
        if done {
            eprintln!("{} {}: measured before, kept", v.region, v.view);
            continue;
        }
        let osm = &extracts.iter().find(|(_, r)| *r == v.region).expect("a bundled region").0;
        let left_out = left_out_bundle(&exe, &data, &v.region)?;
        let page = learn_in_page(
            root,
            &PageRun {
                dist: &dist,
                view: Some((osm, &v.view)),
                left_out: Some(&left_out),
                unseen: Some(&unseen),
                epochs: None,
                last_stage: false,
            },
        )?;
        let measured = json!({
            "region": v.region,
            "view": v.view,
            "features": v.features,
            "page": page,
            "run": crate::bench::run_record(root),
        });
        out["page_views"]["views"].as_array_mut().expect("an array").push(measured);
        std::fs::write(&fixture, serde_json::to_string_pretty(&out)? + "\n")?;
    }
    eprintln!("{} written; commit it, and put these tables in {DOC}:\n", fixture.display());
    eprintln!("{}", views_table(&out));
    eprintln!("{}", means_table(&out));
    if let Some([b, a, u, _]) = every_view_means(&out) {
        eprintln!(
            "The README quotes: from {b:.3} to {a:.3} on the mean, past the {u:.3} of models \
             trained with the region but not on the views."
        );
    }
    Ok(())
}

/// The views a `page_views.unseen_model` record holds (as [`run`] wrote them), if any.
fn recorded_views(record: &Value) -> Option<Vec<View>> {
    let views = record["views"].as_array()?;
    views
        .iter()
        .map(|v| {
            let b: Vec<f64> = v["bbox"].as_array()?.iter().filter_map(Value::as_f64).collect();
            Some(View {
                region: v["region"].as_str()?.to_string(),
                view: v["view"].as_str()?.to_string(),
                bbox: b.try_into().ok()?,
                features: v["features"].as_u64()? as usize,
            })
        })
        .collect()
}

/// The figures of every view of region `r` "learn this area" was measured on: the one of
/// `page-adapt` first, then the further ones (`page_views`).
fn region_views<'a>(v: &'a Value, r: &str) -> Vec<&'a Value> {
    let first = if r == PAGE_REGION { &v["page_adapted"] } else { &v["page_adapted_regions"][r] };
    let further = v["page_views"]["views"].as_array().into_iter().flatten();
    std::iter::once(first)
        .filter(|p| p["left_out"].is_object())
        .chain(further.filter(|x| x["region"] == json!(r)).map(|x| &x["page"]))
        .collect()
}

/// The further views (`page_views`), one row each, as the regions' table of `page-adapt`
/// shows its views.
pub fn views_table(v: &Value) -> String {
    let Some(views) = v["page_views"]["views"].as_array() else { return String::new() };
    let mut out = String::from(
        "| region (view) | mapped features | places learned from / held out (with a feature) | trained without it: macro-F1 before -> after | trained with it, not on the view: before | shipped: before | share of the gap closed: to the model not trained on the view / to the shipped |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for x in views {
        let p = &x["page"];
        out += &format!(
            "| {} (`#map={}`) | {} | {} |\n",
            x["region"].as_str().unwrap_or("?"),
            x["view"].as_str().unwrap_or("?"),
            x["features"],
            view_figures(p),
        );
    }
    out
}

/// The mean over views of each figure that `views` all have: the model trained without the
/// region before and after, the model not trained on the view before, the shipped before.
fn means(views: &[&Value]) -> Option<[f64; 4]> {
    let mut sum = [0.0; 4];
    for p in views {
        let figures = [
            p["left_out"]["types_f1_before"].as_f64()?,
            p["left_out"]["types_f1_after"].as_f64()?,
            p["in_region_unseen"]["types_f1_before"].as_f64()?,
            p["in_region"]["types_f1_before"].as_f64()?,
        ];
        for (s, f) in sum.iter_mut().zip(figures) {
            *s += f;
        }
    }
    (!views.is_empty()).then(|| sum.map(|s| s / views.len() as f64))
}

/// Every view measured, of every region (`regions` of the fixture), region by region.
fn every_view(v: &Value) -> Vec<(&str, Vec<&Value>)> {
    v["regions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|r| (r, region_views(v, r)))
        .collect()
}

/// The means over every view measured ([`means`]: the model trained without the region before
/// and after, the one not trained on the view before, the shipped before); None before
/// `page-views` ran or where a view lacks a figure.
pub fn every_view_means(v: &Value) -> Option<[f64; 4]> {
    v["page_views"]["views"].as_array()?;
    means(&every_view(v).into_iter().flat_map(|(_, views)| views).collect::<Vec<_>>())
}

/// Per region, and over every view of every region: the mean feature-type macro-F1 over the
/// views "learn this area" was measured on (`page-adapt`'s and `page-views`'), and the share of
/// the gap closed on those means, to the model not trained on the views and to the shipped.
pub fn means_table(v: &Value) -> String {
    if !v["page_views"]["views"].is_array() {
        return String::new();
    }
    let mut out = String::from(
        "| region | views | trained without it: mean macro-F1 before -> after | trained with it, not on the view: mean before | shipped: mean before | share of the gap closed, on the means: to the model not trained on the view / to the shipped |\n\
         |---|---|---|---|---|---|\n",
    );
    let row = |name: &str, views: &[&Value]| {
        let Some([b, a, u, s]) = means(views) else {
            return format!("| {name} | {} | - | - | - | - |\n", views.len());
        };
        let share = |h: f64| match Gap::closing(a - b, h - b).share() {
            Some(share) => format!("{share:.2}"),
            None => "no gap".to_string(),
        };
        format!(
            "| {name} | {} | {b:.3} -> {a:.3} | {u:.3} | {s:.3} | {} / {} |\n",
            views.len(),
            share(u),
            share(s)
        )
    };
    let mut all = Vec::new();
    for (r, views) in every_view(v) {
        out += &row(r, &views);
        all.extend(views);
    }
    out += &row("every view", &all);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, label: &str, lat: f64, lon: f64) -> Row {
        Row {
            line: String::new(),
            id: id.to_string(),
            label: label.to_string(),
            region: "r".to_string(),
            lat,
            lon,
        }
    }

    /// Further views go where features are densest, clear of the view taken and of each
    /// other, pass over a view of one type and stop at one with too few features.
    #[test]
    fn further_views_are_the_densest_clear_ones_while_they_hold_enough() {
        let opening = [24.93, 60.166, 24.95, 60.174];
        let taken = view_box(&opening, 60.0, 10.0).unwrap();
        let mut rows = Vec::new();
        let mut cluster = |name: &str, n: usize, lat: f64, lon: f64, labels: &[&str]| {
            for i in 0..n {
                let label = labels[i % labels.len()];
                rows.push(row(&format!("{name}{i:03}"), label, lat + i as f64 * 1e-5, lon));
            }
        };
        cluster("a", 40, 60.0, 10.0, &["ramp", "entrance"]); // in the view taken
        cluster("b", 20, 60.1, 10.0, &["ramp", "obstacle"]);
        cluster("c", 30, 60.2, 10.0, &["elevator", "entrance"]);
        cluster("d", 25, 60.3, 10.0, &["obstacle"]); // one type only: passed over
        cluster("e", 18, 60.4, 10.0, &["ramp", "entrance"]); // one view too many
        rows.push(row("f000", "none", 60.5, 10.0));
        let v = further_views(&rows, "r", &opening, taken).unwrap();
        let found: Vec<(usize, &str)> = v.iter().map(|x| (x.features, &x.view[..9])).collect();
        assert_eq!(found, [(30, "16/60.200"), (20, "16/60.100")], "{v:?}");
        for x in &v {
            let [w, s, e, n] = x.bbox;
            assert!(s > taken[3] || n < taken[1] || w > taken[2] || e < taken[0], "{x:?}");
        }
        // Too few features: no further view at all.
        let few: Vec<Row> = (0..MIN_VIEW_FEATURES - 1)
            .map(|i| row(&format!("g{i}"), ["ramp", "entrance"][i % 2], 61.0, 10.0))
            .collect();
        assert!(further_views(&few, "r", &opening, taken).unwrap().is_empty());
    }

    /// Views written into the record are read back as they were: a run again measures the
    /// same views.
    #[test]
    fn recorded_views_are_read_back() {
        let v = View {
            region: "r".into(),
            view: "16/60.10000/10.00000".into(),
            bbox: [9.99, 60.09, 10.01, 60.11],
            features: 20,
        };
        let record = json!({ "views": [v.record()] });
        assert_eq!(recorded_views(&record), Some(vec![v]));
        assert_eq!(recorded_views(&json!({})), None);
    }

    /// The means table averages each region's views, the first one included, and takes the
    /// share of the gap on the means.
    #[test]
    fn the_means_table_averages_every_view_of_a_region() {
        let page = |b: f64, a: f64, u: f64, s: f64| {
            json!({
                "left_out": { "types_f1_before": b, "types_f1_after": a },
                "in_region_unseen": { "types_f1_before": u },
                "in_region": { "types_f1_before": s },
            })
        };
        let v = json!({
            "regions": ["helsinki", "monaco"],
            "page_adapted": page(0.2, 0.5, 0.6, 0.8),
            "page_adapted_regions": { "monaco": page(0.4, 0.4, 0.3, 0.6) },
            "page_views": { "views": [
                { "region": "helsinki", "view": "16/1/2", "features": 20, "page": page(0.4, 0.5, 0.6, 0.6) },
            ]},
        });
        let t = means_table(&v);
        // helsinki: means 0.3 -> 0.5, 0.6, 0.7: shares 0.2 / 0.3 = 0.67 and 0.2 / 0.4 = 0.50.
        assert!(
            t.contains("| helsinki | 2 | 0.300 -> 0.500 | 0.600 | 0.700 | 0.67 / 0.50 |"),
            "{t}"
        );
        assert!(
            t.contains("| monaco | 1 | 0.400 -> 0.400 | 0.300 | 0.600 | no gap / 0.00 |"),
            "{t}"
        );
        assert!(t.contains("| every view | 3 | 0.333 -> 0.467 |"), "{t}");
        assert!(
            views_table(&v).contains("| helsinki (`#map=16/1/2`) | 20 |"),
            "{}",
            views_table(&v)
        );
    }
}
