//! `reference page-adapt`: the page's "Learn this area" in headless Chromium on the CPU
//! backend, from a model trained without the region, from the shipped model and from one
//! trained on every region but the measured views' places; the views it measures and the
//! tables of what it learned.

use super::*;

/// The region of the page's bundled view (central Helsinki): the one the page's adaptation
/// figure leaves out.
pub const PAGE_REGION: &str = "helsinki";

/// `reference page-adapt`: the page's "learn this area" on its bundled view, started from the
/// model trained without [`PAGE_REGION`] (trained here when `reference regions` left none),
/// from the shipped model (trained with it, on these very places) and from the model trained
/// on every region but the measured views' places ([`unseen_model`]: the in-region figure on
/// places it never saw), in headless Chromium on the CPU backend; written into the fixture as
/// `page_adapted`. With `--epochs 5,10,…` it also learns the view with each of those epoch
/// counts (the panel's Epochs field) and writes them as `page_adapted.sweep`. With
/// `--keep-left-out` the model trained without the region is not run again: the fixture's
/// figures of it are kept (checked to be of the same view and places; its run record is
/// kept as `left_out_run`).
pub fn page_adapt(root: &Path, args: &[String]) -> Result<()> {
    let sweep: Vec<usize> = match args.iter().position(|a| a == "--epochs") {
        Some(i) => args
            .get(i + 1)
            .context("--epochs needs a list, e.g. --epochs 5,10,20")?
            .split(',')
            .map(|n| n.trim().parse().with_context(|| format!("--epochs: `{n}` is not a count")))
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };
    let region = match args.iter().position(|a| a == "--region") {
        Some(i) => args.get(i + 1).context("--region needs a region's name")?.clone(),
        None => PAGE_REGION.to_string(),
    };
    let keep_left_out = args.iter().any(|a| a == "--keep-left-out");
    if keep_left_out && !sweep.is_empty() {
        bail!("--keep-left-out measures the default epochs only: leave out --epochs");
    }
    let last_stage = args.iter().any(|a| a == "--last-stage");
    let trial = match args.iter().position(|a| a == "--trial") {
        Some(i) => Some(args.get(i + 1).context("--trial needs a name")?.clone()),
        None => None,
    };
    if last_stage && trial.is_none() {
        bail!("--last-stage is a trial of the recipe: name it with --trial NAME");
    }
    if trial.is_some() && (keep_left_out || !sweep.is_empty()) {
        bail!(
            "--trial learns the view once with each model: leave out --keep-left-out and --epochs"
        );
    }
    let osm = extracts(root)?
        .into_iter()
        .find(|(_, r)| *r == region)
        .map(|(p, _)| p)
        .with_context(|| format!("--region {region}: no assets/osm/{region}.osm.pbf"))?;
    let exe = crate::accessatlas_exe(root)?;
    let data = work_data(root, &exe)?;
    let fixture = root.join(FIXTURE);
    let mut out = read_json(&fixture)?;
    let kept = if region == PAGE_REGION {
        out["page_adapted"].clone()
    } else {
        out["page_adapted_regions"][&region].clone()
    };
    let bundle = if keep_left_out {
        if !kept["left_out"].is_object() {
            bail!("--keep-left-out: the fixture has no figures of {region}'s view to keep");
        }
        None
    } else {
        Some(left_out_bundle(&exe, &data, &region)?)
    };
    // Another region than the bundled view's: its extract served, and a view of it the size
    // of the bundled one, where its features are mapped most densely.
    let view = if region == PAGE_REGION {
        None
    } else {
        // A view once chosen stays: the opening view's box moves by a metre between browsers,
        // and that may move the densest view of a region far.
        match out["page_adapted_regions"][&region]["view"].as_str() {
            Some(v) => Some(v.to_string()),
            None => {
                let (_, rows) = read_rows(&data.join("tags.csv"))?;
                Some(densest_view(&rows, &region, &opening_bbox(&out)?)?)
            }
        }
    };
    let unseen = match unseen_model(root, &exe, &data, &mut out) {
        Ok(b) => Some(b),
        Err(e) if region == PAGE_REGION && !out["page_adapted"]["left_out"].is_object() => {
            eprintln!("no in-region model without the view's places yet ({e:#}): run again");
            None
        }
        Err(e) => return Err(e),
    };
    let dist = crate::web::current_app(root)?;
    crate::web::ensure_chromium()?;
    // The page's own default (no epochs set), then each epoch count of the sweep.
    let learn = |epochs: Option<usize>| {
        learn_in_page(
            root,
            &PageRun {
                dist: &dist,
                view: view.as_deref().map(|v| (osm.as_path(), v)),
                left_out: bundle.as_deref(),
                unseen: unseen.as_deref(),
                epochs,
                last_stage,
            },
        )
    };
    let mut page = learn(None)?;
    if keep_left_out {
        for k in ["bbox", "learned_from", "train_places"] {
            if kept["left_out"][k] != page["in_region"][k] {
                bail!(
                    "--keep-left-out: {region}'s view changed ({k}: {} then, {} now): run without it",
                    kept["left_out"][k],
                    page["in_region"][k]
                );
            }
        }
        page["left_out"] = kept["left_out"].clone();
        page["left_out_run"] = kept.get("left_out_run").unwrap_or(&kept["run"]).clone();
    }
    let mut swept = Vec::new();
    for &n in &sweep {
        let v = learn(Some(n))?;
        swept.push(json!({
            "epochs": n,
            "left_out": v["left_out"],
            "in_region": v["in_region"],
            "in_region_unseen": v["in_region_unseen"],
        }));
    }
    page["region"] = json!(region);
    if !swept.is_empty() {
        page["sweep"] = json!(swept);
    } else if trial.is_none() && kept["sweep"].is_array() {
        // An earlier sweep stays, with the record of the run that measured it (its models
        // may be other trainings than this run's).
        page["sweep"] = kept["sweep"].clone();
        page["sweep_run"] = kept.get("sweep_run").unwrap_or(&kept["run"]).clone();
    }
    page["run"] = json!(crate::bench::run_record(root));
    if let Some(v) = &view {
        page["view"] = json!(v);
    }
    match (&trial, &view) {
        (Some(name), _) => {
            page["last_stage"] = json!(last_stage);
            out["page_trials"][name][&region] = page;
        }
        (None, None) => out["page_adapted"] = page,
        (None, Some(_)) => out["page_adapted_regions"][&region] = page,
    }
    std::fs::write(&fixture, serde_json::to_string_pretty(&out)? + "\n")?;
    eprintln!("{} written; commit it, and put these tables in {DOC}:\n", fixture.display());
    eprintln!("{}", page_table(&out));
    eprintln!("{}", page_sweep_table(&out));
    eprintln!("{}", page_regions_table(&out));
    eprintln!("{}", page_trials_table(&out));
    Ok(())
}

/// One measurement of "learn this area" in headless Chromium, CPU backend: what
/// [`learn_in_page`] serves and learns.
pub(super) struct PageRun<'a> {
    /// The built app.
    pub(super) dist: &'a Path,
    /// The extract served and the view learned (`zoom/lat/lon`); else the bundled central
    /// Helsinki and the page's opening view.
    pub(super) view: Option<(&'a Path, &'a str)>,
    /// The model trained without the view's region (`left_out`), if any.
    pub(super) left_out: Option<&'a Path>,
    /// The model trained with the region but not on the view's places (`in_region_unseen`).
    pub(super) unseen: Option<&'a Path>,
    /// The panel's epochs; else the page's default.
    pub(super) epochs: Option<usize>,
    /// The panel's "also train the image encoder's last stage".
    pub(super) last_stage: bool,
}

/// Runs the e2e's `reference_learn_area_on_a_region_the_model_never_saw` on `p`: the view
/// learned with the shipped model (`in_region`) and with each model `p` names, the figures
/// the page showed, as it wrote them.
pub(super) fn learn_in_page(root: &Path, p: &PageRun) -> Result<Value> {
    let measured = work_dir().join("page-adapt.json");
    let _ = std::fs::remove_file(&measured);
    let mut cmd = crate::cargo();
    cmd.current_dir(root)
        .env("ACCESSATLAS_DIST", p.dist)
        .env("ACCESSATLAS_PAGE_ADAPT_OUT", &measured)
        .args(["test", "--test", "e2e", "--", "--ignored", "--exact"])
        .arg("reference_learn_area_on_a_region_the_model_never_saw");
    for (key, value) in [
        ("ACCESSATLAS_LEFT_OUT_MODEL", p.left_out.map(|b| b.as_os_str().to_owned())),
        ("ACCESSATLAS_UNSEEN_MODEL", p.unseen.map(|b| b.as_os_str().to_owned())),
        ("ACCESSATLAS_PAGE_ADAPT_EPOCHS", p.epochs.map(|n| n.to_string().into())),
        ("ACCESSATLAS_PAGE_ADAPT_LAST_STAGE", p.last_stage.then(|| "1".into())),
        ("ACCESSATLAS_PAGE_ADAPT_OSM", p.view.map(|(osm, _)| osm.as_os_str().to_owned())),
        ("ACCESSATLAS_PAGE_ADAPT_VIEW", p.view.map(|(_, v)| v.into())),
    ] {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    crate::run(&mut cmd)?;
    read_json(&measured)
}

/// The page's trials (`page_trials`: `reference page-adapt --trial NAME`), each beside the
/// default recipe on the same view: feature-type macro-F1 of the model trained without the
/// region, before -> after, and the share of the gap closed to the model trained with the
/// region but not on the view. Empty when none was measured.
pub fn page_trials_table(v: &Value) -> String {
    let Some(trials) = v["page_trials"].as_object() else { return String::new() };
    let mut out = String::from(
        "| view | recipe | trained without the region: macro-F1 before -> after | share of the gap closed (to the model not trained on the view / to the shipped) | seconds |\n\
         |---|---|---|---|---|\n",
    );
    let row = |view: &str, recipe: &str, p: &Value| {
        let lo = &p["left_out"];
        format!(
            "| {view} | {recipe} | {} -> {} | {} / {} | {:.0} |\n",
            f3(&lo["types_f1_before"]),
            f3(&lo["types_f1_after"]),
            share_words(lo, &p["in_region_unseen"]),
            share_words(lo, &p["in_region"]),
            lo["seconds"].as_f64().unwrap_or(f64::NAN),
        )
    };
    for (name, by_region) in trials {
        for (r, p) in by_region.as_object().into_iter().flatten() {
            let default =
                if r == PAGE_REGION { &v["page_adapted"] } else { &v["page_adapted_regions"][r] };
            out += &row(r, "default", default);
            out += &row(r, name, p);
        }
    }
    out
}

/// The bundle of the model trained without `region` (in the work folder; trained and exported
/// unless an earlier call left it there).
pub(super) fn left_out_bundle(exe: &Path, data: &Path, region: &str) -> Result<PathBuf> {
    let runs = work_dir().join("runs");
    let bundle = runs.join(format!("without-{region}-bundle"));
    let run = runs.join(format!("without-{region}"));
    trained_bundle(exe, data, &["--hold-out", region], &run, &bundle)?;
    Ok(bundle)
}

/// The recipe trained into `run` on `data` split by `preprocess` with `split`, and exported
/// into `bundle`; each step skipped where an earlier call left its output.
pub(super) fn trained_bundle(
    exe: &Path,
    data: &Path,
    split: &[&str],
    run: &Path,
    bundle: &Path,
) -> Result<()> {
    if !run.join("model.json").is_file() {
        train_on(exe, data, split, &[], run)?;
    }
    if !bundle.join("model.json").is_file() {
        crate::run(Command::new(exe).arg("preprocess").arg("--data").arg(data).args(split))?;
        crate::run(
            Command::new(exe)
                .arg("export")
                .arg("--model")
                .arg(run)
                .arg("--data")
                .arg(data)
                .arg("--out")
                .arg(bundle),
        )?;
    }
    Ok(())
}

/// The view of region `r` that "learn this area" is measured on beside the bundled one:
/// `zoom/lat/lon` at the opening view's zoom, centred on the region's mapped feature with the
/// most of its features in a box the size of the opening view (`bbox`: min lon, min lat, max
/// lon, max lat) around it. Chosen by where features are mapped, never by a figure measured
/// there; ties go to the smaller id.
pub(super) fn densest_view(rows: &[Row], r: &str, bbox: &[f64]) -> Result<String> {
    let (lat, lon) = densest_centre(rows, r, bbox)?;
    Ok(format!("{}/{lat:.5}/{lon:.5}", crate::regions::OPENING_ZOOM))
}

/// The centre (lat, lon) of [`densest_view`].
pub(super) fn densest_centre(rows: &[Row], r: &str, bbox: &[f64]) -> Result<(f64, f64)> {
    let (_, lat, lon) =
        densest_avoiding(rows, r, bbox, &[])?.with_context(|| format!("{r}: no mapped feature"))?;
    Ok((lat, lon))
}

/// The mapped feature of region `r` with the most of its features in a box the size of the
/// opening view (`bbox`) around it, among those whose box overlaps none of `avoid`: how many
/// features the box holds, and its centre (lat, lon, rounded as the page's `#map=` reads it,
/// which moves the box by at most half a metre). None where no feature's box is clear of
/// `avoid`. Ties go to the smaller id.
pub(super) fn densest_avoiding(
    rows: &[Row],
    r: &str,
    bbox: &[f64],
    avoid: &[[f64; 4]],
) -> Result<Option<(usize, f64, f64)>> {
    let features: Vec<&Row> = rows.iter().filter(|x| x.region == r && x.label != "none").collect();
    let overlaps =
        |a: &[f64; 4], b: &[f64; 4]| a[0] <= b[2] && b[0] <= a[2] && a[1] <= b[3] && b[1] <= a[3];
    let mut scored = Vec::new();
    for c in &features {
        let b = view_box(bbox, c.lat, c.lon)?;
        if avoid.iter().any(|a| overlaps(a, &b)) {
            continue;
        }
        let [w, s, e, n] = b;
        let inside = |f: &&&Row| f.lat >= s && f.lat <= n && f.lon >= w && f.lon <= e;
        scored.push((features.iter().filter(inside).count(), std::cmp::Reverse(c.id.clone()), c));
    }
    let round = |x: f64| (x * 1e5).round() / 1e5;
    Ok(scored
        .into_iter()
        .max_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)))
        .map(|(n, _, c)| (n, round(c.lat), round(c.lon))))
}

/// A view the size of the opening one (`bbox`: min lon, min lat, max lon, max lat) centred on
/// `lat`, `lon`, as the same box: Web Mercator shrinks a view's latitude span with the cosine
/// of its latitude.
pub(super) fn view_box(bbox: &[f64], lat: f64, lon: f64) -> Result<[f64; 4]> {
    let [min_lon, min_lat, max_lon, max_lat] = bbox else { bail!("a bbox of 4 numbers: {bbox:?}") };
    let lat0 = (min_lat + max_lat) / 2.0;
    let half_lon = (max_lon - min_lon) / 2.0;
    let half_lat = (max_lat - min_lat) / 2.0 * lat.to_radians().cos() / lat0.to_radians().cos();
    Ok([lon - half_lon, lat - half_lat, lon + half_lon, lat + half_lat])
}

/// The page's opening view of [`PAGE_REGION`] as the fixture's `page_adapted` recorded it
/// (min lon, min lat, max lon, max lat).
pub(super) fn opening_bbox(out: &Value) -> Result<Vec<f64>> {
    let p = &out["page_adapted"];
    p["left_out"]["bbox"]
        .as_str()
        .or(p["in_region"]["bbox"].as_str())
        .context("page_adapted's bbox: run `reference page-adapt` for the bundled view first")?
        .split(',')
        .map(|x| x.parse::<f64>().with_context(|| format!("page_adapted's bbox: `{x}`")))
        .collect()
}

/// Every place within this distance of a measured view is kept out of the model that stands
/// for "in-region, but never saw these places": a training tile (224 pixels at zoom 19, at most
/// about 70 m across) centred farther away than this shows none of a view's places.
pub const VIEW_MARGIN_M: f64 = 100.0;

/// The views "learn this area" is measured on (min lon, min lat, max lon, max lat), by region:
/// the page's opening view of [`PAGE_REGION`] (`opening`, as the page reported it) and each
/// other region's view: its centre in `chosen` (the fixture's), else its [`densest_view`].
/// Fixed by the data alone, before any model is measured.
pub(super) fn measured_views(
    rows: &[Row],
    regions: &[String],
    opening: &[f64],
    chosen: &std::collections::BTreeMap<String, (f64, f64)>,
) -> Result<Vec<(String, [f64; 4])>> {
    regions
        .iter()
        .map(|r| {
            let b = if r == PAGE_REGION {
                view_box(opening, (opening[1] + opening[3]) / 2.0, (opening[0] + opening[2]) / 2.0)?
            } else {
                let (lat, lon) = match chosen.get(r) {
                    Some(&c) => c,
                    None => densest_centre(rows, r, opening)?,
                };
                view_box(opening, lat, lon)?
            };
            Ok((r.clone(), b))
        })
        .collect()
}

/// Whether a place lies in `view` or within `margin_m` of it.
pub(super) fn near_view(view: &[f64; 4], lat: f64, lon: f64, margin_m: f64) -> bool {
    let dlat = margin_m / 111_320.0;
    let dlon = margin_m / (111_320.0 * lat.to_radians().cos());
    lat >= view[1] - dlat && lat <= view[3] + dlat && lon >= view[0] - dlon && lon <= view[2] + dlon
}

/// `data` (collect's output) without the rows near any of `views` ([`VIEW_MARGIN_M`]), in
/// `out`: its `tags.csv` filtered, every other file of `collect`'s (the images) linked. Returns
/// how many rows were left out.
pub(super) fn data_without_views(
    data: &Path,
    out: &Path,
    views: &[(String, [f64; 4])],
) -> Result<usize> {
    let (header, rows) = read_rows(&data.join("tags.csv"))?;
    let keep: Vec<&Row> = rows
        .iter()
        .filter(|r| !views.iter().any(|(_, v)| near_view(v, r.lat, r.lon, VIEW_MARGIN_M)))
        .collect();
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out)?;
    let mut text = header + "\n";
    for r in &keep {
        text += &r.line;
        text.push('\n');
    }
    std::fs::write(out.join("tags.csv"), text)?;
    for e in std::fs::read_dir(data)? {
        let name = e?.file_name();
        let n = name.to_string_lossy();
        if n.starts_with("tags") || n == "preprocessing_metadata.json" {
            continue;
        }
        std::os::unix::fs::symlink(data.join(&name), out.join(&name))
            .with_context(|| format!("linking {n} into {}", out.display()))?;
    }
    Ok(rows.len() - keep.len())
}

/// The bundle of the model trained on every region but the measured views' places
/// ([`measured_views`]), trained and exported in the work folder unless an earlier call left
/// it there; what was left out is written into the fixture as `page_unseen_model`.
pub(super) fn unseen_model(
    root: &Path,
    exe: &Path,
    data: &Path,
    out: &mut Value,
) -> Result<PathBuf> {
    let bundle = work_dir().join("runs/without-views-bundle");
    // Trained by an earlier call, which wrote down what it left out.
    if bundle.join("model.json").is_file() && out["page_unseen_model"].is_object() {
        return Ok(bundle);
    }
    let opening = opening_bbox(out)?;
    let regions: Vec<String> = extracts(root)?.into_iter().map(|(_, r)| r).collect();
    let (_, rows) = read_rows(&data.join("tags.csv"))?;
    let views = measured_views(&rows, &regions, &opening, &chosen_views(out))?;
    let (bundle, mut record) = model_without_views(exe, data, &rows, &regions, &views, "views")?;
    record["views"] = views
        .iter()
        .map(|(r, b)| (r.clone(), json!(rounded_box(b))))
        .collect::<serde_json::Map<_, _>>()
        .into();
    out["page_unseen_model"] = record;
    Ok(bundle)
}

/// A view's box to six decimals (about 0.1 m), as the fixture records it.
pub(super) fn rounded_box(b: &[f64; 4]) -> [f64; 4] {
    b.map(|x| (x * 1e6).round() / 1e6)
}

/// The centre (lat, lon) of each region's view that the fixture's `page_adapted_regions`
/// records: chosen once, kept since.
pub(super) fn chosen_views(out: &Value) -> std::collections::BTreeMap<String, (f64, f64)> {
    out["page_adapted_regions"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(r, p)| {
            let v = p["view"].as_str()?;
            let mut it = v.split('/').skip(1).map(str::parse::<f64>);
            Some((r.clone(), (it.next()?.ok()?, it.next()?.ok()?)))
        })
        .collect()
}

/// The recipe trained on `data` less every row within [`VIEW_MARGIN_M`] of `views`, and
/// exported (`runs/without-{name}` and its `-bundle` in the work folder, each kept when an
/// earlier call left it), with the record of what it left out: the margin, and the rows of
/// each of `regions`, and how many of them the model never saw.
pub(super) fn model_without_views(
    exe: &Path,
    data: &Path,
    rows: &[Row],
    regions: &[String],
    views: &[(String, [f64; 4])],
    name: &str,
) -> Result<(PathBuf, Value)> {
    let work = work_dir();
    let run = work.join(format!("runs/without-{name}"));
    let bundle = work.join(format!("runs/without-{name}-bundle"));
    let dv = work.join(format!("data-without-{name}"));
    let removed = data_without_views(data, &dv, views)?;
    trained_bundle(exe, &dv, &[], &run, &bundle)?;
    // Per region, its rows and how many of them the model never saw: a view that covers most
    // of a small region leaves that region little to be "in-region" with.
    let mut per_region = serde_json::Map::new();
    for r in regions {
        let of_r: Vec<&Row> = rows.iter().filter(|x| &x.region == r).collect();
        let near = of_r
            .iter()
            .filter(|x| views.iter().any(|(_, v)| near_view(v, x.lat, x.lon, VIEW_MARGIN_M)));
        per_region.insert(r.clone(), json!({ "rows": of_r.len(), "left_out": near.count() }));
    }
    let record = json!({
        "margin_m": VIEW_MARGIN_M,
        "rows_left_out": removed,
        "rows": rows.len(),
        "regions": per_region,
    });
    Ok((bundle, record))
}

/// The zoom of the page's opening view (`app/src/page/mod.rs`, `START`).
pub const OPENING_ZOOM: u32 = 16;

/// "Learn this area" on a view of each region but the bundled one (`page_adapted_regions`):
/// the model trained without the region before and after, the model that never saw the view's
/// places and the shipped model before, and the share of the gap closed against each of the
/// two. Empty when none was measured.
pub fn page_regions_table(v: &Value) -> String {
    let Some(regions) = v["page_adapted_regions"].as_object() else { return String::new() };
    let mut out = String::from(
        "| region (view) | places learned from / held out (with a feature) | trained without it: macro-F1 before -> after | trained with it, not on the view: before | shipped: before | share of the gap closed: to the model not trained on the view / to the shipped | seconds |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for (r, p) in regions {
        let lo = &p["left_out"];
        out += &format!(
            "| {r} (`#map={}`) | {} | {:.0} |\n",
            p["view"].as_str().unwrap_or("?"),
            view_figures(p),
            lo["seconds"].as_f64().unwrap_or(f64::NAN),
        );
    }
    out
}

/// One view's cells of the page's tables (`page-adapt`'s measurement of it): the places
/// learned from and held out, the model trained without the region before -> after, the
/// model not trained on the view and the shipped one before, and the share of the gap closed
/// to each of the two.
pub(super) fn view_figures(p: &Value) -> String {
    let lo = &p["left_out"];
    format!(
        "{} | {} -> {} | {} | {} | {} / {}",
        places(lo),
        f3(&lo["types_f1_before"]),
        f3(&lo["types_f1_after"]),
        f3(&p["in_region_unseen"]["types_f1_before"]),
        f3(&p["in_region"]["types_f1_before"]),
        share_words(lo, &p["in_region_unseen"]),
        share_words(lo, &p["in_region"]),
    )
}

/// [`page_share`] to two decimals; "no gap" where the reference is not [`MIN_GAP`] above the
/// start, "-" where there is no reference.
pub(super) fn share_words(left_out: &Value, in_region: &Value) -> String {
    match (page_share(left_out, in_region), in_region["types_f1_before"].as_f64()) {
        (Some(x), _) => format!("{x:.2}"),
        (None, Some(_)) if left_out["types_f1_before"].is_number() => "no gap".to_string(),
        _ => "-".to_string(),
    }
}

/// The share of the gap closed, `(after - before) / (in-region before - before)`, where the gap
/// is at least [`MIN_GAP`].
pub(super) fn page_share(left_out: &Value, in_region: &Value) -> Option<f64> {
    let (b, a, h) = (
        left_out["types_f1_before"].as_f64()?,
        left_out["types_f1_after"].as_f64()?,
        in_region["types_f1_before"].as_f64()?,
    );
    Gap::closing(a - b, h - b).share()
}

/// The page's epochs sweep (`page_adapted.sweep`): feature-type macro-F1 after learning the
/// view, per epoch count, left out and in-region, and the share of the gap closed.
pub fn page_sweep_table(v: &Value) -> String {
    let mut out = String::from(
        "| epochs | trained without the region: macro-F1 after | shipped: macro-F1 after | share of the gap closed |\n\
         |---|---|---|---|\n",
    );
    for s in v["page_adapted"]["sweep"].as_array().into_iter().flatten() {
        let share = page_share(&s["left_out"], &s["in_region"])
            .map_or("-".to_string(), |x| format!("{x:.2}"));
        out += &format!(
            "| {} | {} | {} | {share} |\n",
            s["epochs"],
            f3(&s["left_out"]["types_f1_after"]),
            f3(&s["in_region"]["types_f1_after"]),
        );
    }
    out
}

/// The page's adaptation table (`page_adapted` of the fixture): the bundled view's held-out
/// places, with the model trained without its region before and after "learn this area",
/// with the model trained with it but not on the view's places, and with the shipped model
/// (trained on them too).
pub fn page_table(v: &Value) -> String {
    let p = &v["page_adapted"];
    let lo = &p["left_out"];
    let r = p["region"].as_str().unwrap_or("?");
    let row = |model: String, x: &Value| {
        if !x.is_object() {
            return String::new();
        }
        format!(
            "| {model} | {} | {} -> {} | {} -> {} | {:.0} |\n",
            places(x),
            f3(&x["types_f1_before"]),
            f3(&x["types_f1_after"]),
            f3(&x["accuracy_before"]),
            f3(&x["accuracy_after"]),
            x["seconds"].as_f64().unwrap_or(f64::NAN),
        )
    };
    format!(
        "| model | places learned from / held out (with a feature) | feature types macro-F1: before -> after | accuracy, `none` included: before -> after | seconds |\n\
         |---|---|---|---|---|\n{}{}{}\nShare of the gap closed: {} to the model trained with {r} but not on this view, {} to the shipped model.\n",
        row(format!("trained without {r}"), lo),
        row(format!("trained with {r}, not on this view"), &p["in_region_unseen"]),
        row(format!("shipped, trained with {r} and on this view"), &p["in_region"]),
        share_words(lo, &p["in_region_unseen"]),
        share_words(lo, &p["in_region"]),
    )
}

/// The places a view was learned from and held out, and of those the ones with a feature
/// (`-` where a measurement from before the page said so has none).
pub(super) fn places(page: &Value) -> String {
    let n = |k: &str| page[k].as_u64().map_or("-".to_string(), |n| n.to_string());
    format!("{} / {} ({})", n("train_places"), n("val_places"), n("val_features"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The other region's view is centred where its features are densest, at the opening zoom,
    /// its latitude span scaled by the cosine of the latitude; `none` rows and other regions'
    /// rows do not count.
    #[test]
    fn the_other_region_s_view_is_where_its_features_are_densest() {
        let row = |id: &str, label: &str, region: &str, lat: f64, lon: f64| Row {
            line: String::new(),
            id: id.into(),
            label: label.into(),
            region: region.into(),
            lat,
            lon,
        };
        let mut rows = vec![row("node/1", "ramp", "m", 43.70, 7.40)];
        for i in 0..3 {
            rows.push(row(&format!("node/2{i}"), "entrance", "m", 43.74 + i as f64 * 1e-3, 7.42));
        }
        for i in 0..5 {
            rows.push(row(&format!("node/3{i}"), "none", "m", 43.70 + i as f64 * 1e-4, 7.40));
            rows.push(row(&format!("node/4{i}"), "ramp", "x", 43.70 + i as f64 * 1e-4, 7.40));
        }
        // The opening view at 60 degrees north: 0.02 of longitude by 0.008 of latitude.
        let bbox = [24.93, 60.166, 24.95, 60.174];
        assert_eq!(densest_view(&rows, "m", &bbox).unwrap(), "16/43.74000/7.42000");
        // At 43.74 degrees the view spans 0.008 * cos(43.74) / cos(60.17) = 0.0116 of latitude,
        // 0.0058 either side of its centre: centred on node/21, four features (node/20 is 0.006
        // from node/5); node/6 is too far from all.
        rows.push(row("node/5", "ramp", "m", 43.746, 7.42));
        rows.push(row("node/6", "ramp", "m", 43.77, 7.42));
        assert_eq!(densest_view(&rows, "m", &bbox).unwrap(), "16/43.74100/7.42000");
        assert!(densest_view(&rows, "nowhere", &bbox).is_err());
    }

    /// The model for "in-region, never saw the view" is trained on `collect`'s rows less every
    /// row in a measured view or within [`VIEW_MARGIN_M`] of it, whatever its label; the rows
    /// farther away are kept as they were and the images are linked, not copied.
    #[test]
    fn the_unseen_model_s_data_leaves_out_each_view_and_its_margin() {
        let dir = tempfile::tempdir().unwrap();
        let (data, out) = (dir.path().join("data"), dir.path().join("without"));
        std::fs::create_dir_all(data.join("images")).unwrap();
        std::fs::write(data.join("images/a.png"), b"png").unwrap();
        std::fs::write(data.join("tags_train.csv"), "a split").unwrap();
        // A view of 0.01 by 0.01 degrees at 60 N: 100 m is 0.0009 of latitude and 0.0018 of
        // longitude there.
        let view = [24.93, 60.16, 24.94, 60.17];
        let rows = [
            ("node/in", 60.165, 24.935, "ramp"),
            ("node/bg", 60.165, 24.939, "none"),
            ("node/north-80m", 60.17072, 24.935, "entrance"),
            ("node/east-80m", 60.165, 24.94144, "obstacle"),
            ("node/north-120m", 60.17108, 24.935, "ramp"),
            ("node/west-150m", 60.165, 24.92730, "none"),
            ("node/far", 60.2, 24.9, "elevator"),
        ];
        let mut csv = String::from("id,lat,lon,type,source,image,region\n");
        for (id, lat, lon, label) in rows {
            csv += &format!("{id},{lat},{lon},{label},osm,images/a.png,helsinki\n");
        }
        std::fs::write(data.join("tags.csv"), &csv).unwrap();
        let views = vec![("helsinki".to_string(), view)];
        assert_eq!(data_without_views(&data, &out, &views).unwrap(), 4);
        let (_, kept) = read_rows(&out.join("tags.csv")).unwrap();
        let ids: Vec<&str> = kept.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["node/north-120m", "node/west-150m", "node/far"]);
        assert_eq!(kept[0].line, "node/north-120m,60.17108,24.935,ramp,osm,images/a.png,helsinki");
        assert!(std::fs::symlink_metadata(out.join("images")).unwrap().is_symlink());
        assert_eq!(std::fs::read(out.join("images/a.png")).unwrap(), b"png");
        assert!(!out.join("tags_train.csv").exists(), "the splits are made again there");
    }

    /// The measured views: the opening view as the page reported it, and each other region's
    /// densest view, of the opening view's size (its latitude span scaled by the cosine).
    #[test]
    fn the_measured_views_are_the_opening_one_and_each_region_s_densest() {
        let opening = [24.93, 60.166, 24.95, 60.174];
        let row = |id: &str, region: &str, lat: f64, lon: f64| Row {
            line: String::new(),
            id: id.into(),
            label: "ramp".into(),
            region: region.into(),
            lat,
            lon,
        };
        let rows = vec![row("node/1", "helsinki", 60.17, 24.94), row("node/2", "m", 43.74, 7.42)];
        let regions = vec!["helsinki".to_string(), "m".to_string()];
        let v = measured_views(&rows, &regions, &opening, &Default::default()).unwrap();
        assert_eq!(v[0].0, "helsinki");
        for (a, b) in v[0].1.iter().zip(opening) {
            assert!((a - b).abs() < 1e-9, "{:?}", v[0]);
        }
        let [w, s, e, n] = v[1].1;
        assert!(((w + e) / 2.0 - 7.42).abs() < 1e-9 && ((s + n) / 2.0 - 43.74).abs() < 1e-9);
        assert!((e - w - 0.02).abs() < 1e-9, "{:?}", v[1]);
        let span = 0.008 * 43.74_f64.to_radians().cos() / 60.17_f64.to_radians().cos();
        assert!((n - s - span).abs() < 1e-9, "{:?}", v[1]);
        // A view chosen before (the fixture's) stays where it was.
        let chosen = [("m".to_string(), (43.7, 7.4))].into_iter().collect();
        let v = measured_views(&rows, &regions, &opening, &chosen).unwrap();
        let [w, s, e, n] = v[1].1;
        assert!(((w + e) / 2.0 - 7.4).abs() < 1e-9 && ((s + n) / 2.0 - 43.7).abs() < 1e-9);
    }
}
