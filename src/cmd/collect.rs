//! `accessatlas collect`: labelled locations (from OSM extracts or the user's CSV) and one
//! 224x224 map tile per location, centred on it, in `DATA/images/` + `DATA/tags.csv`. Several
//! extracts make one dataset: each row carries its region (the `region` column, the extract's
//! name), each extract's background points and tiles come from that extract.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use model_core::LabelVocab;
use model_core::data::background::background_points;
use model_core::data::preprocess::INPUT_SIZE;
use model_core::data::split::{SplitConfig, group_of};
use model_core::data::tags::{Rejected, Tag, TagTable, parse_tags_csv, write_tags_csv};
use model_core::data::tile::{TileId, Window};
use model_core::data::vocab::NONE_LABEL;
use model_core::infer::bundle::TileSourceSpec;

use crate::fsutil::write_atomic;
use crate::osm::rules::Rules;
use crate::osm::{KeepTags, OsmMap, labelled_features};
use crate::render::style;
use crate::run::DataDir;
use crate::tiles::{Origin, Politeness, fetch_with, tile_bar_style};

#[derive(Args, Debug)]
pub struct CollectArgs {
    /// Data directory to write `tags.csv` and `images/` into.
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// OSM extract: the source of labels (without --tags) and the map tiles are rendered from.
    /// Repeat it, or name a folder (its `*.pbf` files), for one dataset of several regions,
    /// each named after its file (`andorra.osm.pbf`: `andorra`). Default: the bundled extract
    /// of central Helsinki (region `helsinki`).
    #[arg(long)]
    pub osm: Vec<PathBuf>,
    /// Your own labelled locations (`id,lat,lon,type,source[,image][,region]`); labels come
    /// only from here (with one extract at most).
    #[arg(long)]
    pub tags: Option<PathBuf>,
    /// OSM tag -> type table (default: config/osm_rules.toml, compiled in).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Where tiles come from: `render` (offline, from the OSM extract), `xyz` (a tile server,
    /// --url), `mbtiles` (a file, --path).
    #[arg(long, default_value = "render",
          value_parser = clap::builder::PossibleValuesParser::new(TileSourceSpec::KINDS))]
    pub tiles: String,
    /// XYZ URL template with {z} {x} {y}, optional {s} (a|b|c) and {token}.
    #[arg(long, required_if_eq("tiles", "xyz"))]
    pub url: Option<String>,
    /// Environment variable holding the value of {token}.
    #[arg(long, default_value = "ACCESSATLAS_TILE_TOKEN")]
    pub token_env: String,
    /// Retries per tile on HTTP 429, 5xx and timeouts (exponential backoff).
    #[arg(long, default_value_t = 4)]
    pub retries: u32,
    /// First backoff delay in milliseconds; doubles on each retry.
    #[arg(long, default_value_t = 500)]
    pub backoff_ms: u64,
    /// Timeout of one tile request, in seconds.
    #[arg(long, default_value_t = 30.0)]
    pub timeout_secs: f64,
    /// MBTiles file for --tiles mbtiles.
    #[arg(long, required_if_eq("tiles", "mbtiles"))]
    pub path: Option<PathBuf>,
    /// Zoom level of the tiles.
    #[arg(long, default_value_t = 19)]
    pub zoom: u8,
    /// Background points (the `none` class, "no feature here") per labelled location: on
    /// footways, building outlines and road edges of the extract, at least 10 m from every
    /// mapped feature, in the map cells of the labelled locations. 0 leaves them out.
    #[arg(long, default_value_t = 1.0)]
    pub negatives_per_label: f64,
    /// Seed of the background points' sampling.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Exit non-zero if any row is rejected or any tile fails.
    #[arg(long)]
    pub strict: bool,
}

/// What a collect run did.
#[derive(Debug, Default)]
pub struct Summary {
    pub per_type: BTreeMap<String, usize>,
    /// Rows per region (the extract's name), background points included.
    pub per_region: BTreeMap<String, usize>,
    /// Tiles obtained, by how.
    pub tiles: BTreeMap<Origin, usize>,
    /// Tag images written.
    pub written: usize,
    pub reused: usize,
    pub failed: Vec<String>,
    pub rejected: usize,
}

fn safe_file_name(id: &str) -> String {
    id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

pub fn run(args: CollectArgs) -> Result<()> {
    let s = collect(&args)?;
    println!("{:<14} {:>7}", "type", "tags");
    for (t, n) in &s.per_type {
        let note = if *n == 0 { "  (no examples: kept in the vocabulary)" } else { "" };
        println!("{t:<14} {n:>7}{note}");
    }
    if s.per_region.len() > 1 {
        let regions: Vec<String> = s.per_region.iter().map(|(r, n)| format!("{r} {n}")).collect();
        println!("rows per region: {}", regions.join(", "));
    }
    let tiles: Vec<String> =
        s.tiles.iter().map(|(o, n)| format!("{n} {o:?}").to_lowercase()).collect();
    println!(
        "images: {} written, {} existing reused, {} failed; tiles: {}; {} rows rejected",
        s.written,
        s.reused,
        s.failed.len(),
        if tiles.is_empty() { "none needed".to_string() } else { tiles.join(", ") },
        s.rejected
    );
    for f in &s.failed {
        println!("  failed: {f}");
    }
    let total: usize = s.per_type.values().sum();
    if total == 0 {
        bail!("no valid labelled location remains");
    }
    if args.strict && (s.rejected > 0 || !s.failed.is_empty()) {
        bail!("--strict: {} rejected rows, {} failed tiles", s.rejected, s.failed.len());
    }
    Ok(())
}

pub fn collect(args: &CollectArgs) -> Result<Summary> {
    if !(args.negatives_per_label.is_finite() && args.negatives_per_label >= 0.0) {
        bail!("--negatives-per-label must be a number >= 0, not {}", args.negatives_per_label);
    }
    let data = DataDir::new(&args.data);
    crate::fsutil::sweep_stale_temps(data.root(), true);
    let features = LabelVocab::default();
    let rules = match &args.rules {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            Rules::parse(&text, &p.display().to_string(), &features)?
        }
        None => Rules::default_rules(&features)?,
    };
    let extracts = crate::osm::extracts(&args.osm)?;
    if args.tags.is_some() && extracts.len() > 1 {
        bail!("--tags takes one extract (--osm once): the rows' tiles come from it");
    }
    let several = extracts.len() > 1;
    let mut summary = Summary::default();
    let mut table = TagTable::default();
    let mut rejected: Vec<Rejected> = Vec::new();
    let mut spec = None;
    for (path, region) in &extracts {
        let part = collect_region(args, path.as_deref(), region, several, &rules, &data)?;
        merge_tables(&mut table, part.table);
        rejected.extend(part.rejected);
        for (o, n) in part.summary.tiles {
            *summary.tiles.entry(o).or_default() += n;
        }
        summary.written += part.summary.written;
        summary.reused += part.summary.reused;
        summary.failed.extend(part.summary.failed);
        spec = Some(part.spec);
    }
    let spec = spec.expect("at least one extract");
    for l in features.names() {
        summary.per_type.insert(l.clone(), 0);
    }
    for t in &table.tags {
        *summary.per_type.entry(t.label.clone()).or_default() += 1;
    }
    for r in table.regions() {
        *summary.per_region.entry(r.to_string()).or_default() += 1;
    }
    summary.rejected = rejected.len() - summary.failed.len();
    write_atomic(&data.tags(), &write_tags_csv(&table))?;
    // Which tiles these images were cut from: the model bundle records it for every consumer.
    write_atomic(&data.tile_source(), serde_json::to_string_pretty(&spec)?.as_bytes())?;
    crate::fsutil::write_rejected(&data.rejected_rows(), &rejected)?;
    tracing::info!(
        "wrote {} ({} tags from {} region(s), style {}, zoom {})",
        data.tags().display(),
        table.tags.len(),
        extracts.len(),
        style::STYLE_VERSION,
        args.zoom
    );
    Ok(summary)
}

/// `part`'s rows appended to `table`, extra columns matched by name (a column only one side
/// has is empty on the other's rows). A feature two overlapping extracts both hold (the same
/// OSM id) is kept once, from the first.
fn merge_tables(table: &mut TagTable, part: TagTable) {
    for c in &part.extra_columns {
        if !table.extra_columns.contains(c) {
            table.extra_columns.push(c.clone());
        }
    }
    let n = table.extra_columns.len();
    for t in &mut table.tags {
        t.extra.resize(n, String::new());
    }
    let seen: HashSet<String> = table.tags.iter().map(|t| t.id.clone()).collect();
    for mut t in part.tags {
        if seen.contains(&t.id) {
            tracing::info!("{}: in two extracts, kept from the first", t.id);
            continue;
        }
        let mut extra = vec![String::new(); n];
        for (c, v) in part.extra_columns.iter().zip(std::mem::take(&mut t.extra)) {
            let i = table.extra_columns.iter().position(|x| x == c).expect("merged above");
            extra[i] = v;
        }
        t.extra = extra;
        table.tags.push(t);
    }
}

/// What one extract gave.
struct RegionPart {
    table: TagTable,
    rejected: Vec<Rejected>,
    summary: Summary,
    spec: TileSourceSpec,
}

/// One extract's rows (its features or the user's tags, its background points), each with
/// its image. `several`: background ids carry the region, so they stay unique.
fn collect_region(
    args: &CollectArgs,
    path: Option<&std::path::Path>,
    region: &str,
    several: bool,
    rules: &Rules,
    data: &DataDir,
) -> Result<RegionPart> {
    let labels = LabelVocab::with_none();
    let (map, origin) = OsmMap::open_keeping(path, &KeepTags::for_rules(rules))?;
    tracing::info!(
        "{origin}: {} nodes, {} ways, {} multipolygons",
        map.coords.len(),
        map.ways.len(),
        map.multipolygons.len()
    );
    crate::memory::log_stage("reading the map");
    let mut rejected: Vec<Rejected> = Vec::new();
    let mapped = labelled_features(&map, rules);
    let mut table = match &args.tags {
        Some(csv) => {
            let bytes = std::fs::read(csv).with_context(|| format!("reading {}", csv.display()))?;
            let report =
                parse_tags_csv(&bytes, &labels).with_context(|| csv.display().to_string())?;
            for r in &report.rejected {
                tracing::warn!("{}: {r}", csv.display());
            }
            rejected = report.rejected;
            report.table
        }
        None => {
            let tags = mapped
                .iter()
                .cloned()
                .map(|l| Tag {
                    id: l.id,
                    lat: l.lat,
                    lon: l.lon,
                    label: l.label,
                    source: "osm".into(),
                    image: None,
                    extra: Vec::new(),
                })
                .collect();
            TagTable { extra_columns: Vec::new(), tags }
        }
    };

    crate::memory::log_stage("labels");
    let mut background = background_tags(&map, &mapped, &table.tags, args)?;
    tracing::info!("{region}: {} background points (`{NONE_LABEL}`)", background.len());
    for b in &mut background {
        b.extra = vec![String::new(); table.extra_columns.len()];
        if several {
            b.id = b.id.replacen('/', &format!("/{region}/"), 1);
        }
    }
    table.tags.extend(background);
    table.fill_region(region);
    crate::memory::log_stage("background points");
    drop(mapped);
    crate::memory::release_freed();

    // The source as the bundle will record it, then its client (`tiles::open`).
    let location = match args.tiles.as_str() {
        "mbtiles" => args.path.as_ref().map(|p| p.display().to_string()),
        _ => args.url.clone(),
    };
    let spec = TileSourceSpec::from_kind(
        &args.tiles,
        location.as_deref(),
        style::STYLE_VERSION,
        args.zoom,
    )?;
    let politeness = Politeness {
        token: std::env::var(&args.token_env).ok(),
        cache_dir: data.tile_cache(),
        retries: args.retries,
        backoff: Duration::from_millis(args.backoff_ms),
        timeout: Duration::from_secs_f64(args.timeout_secs.max(0.001)),
    };
    let source = crate::tiles::open(&spec, &map, politeness)?;
    tracing::info!("{region}: tiles from {}", source.describe());
    crate::memory::log_stage("opening the tile source");
    let images_dir = data.images();
    std::fs::create_dir_all(&images_dir)
        .with_context(|| format!("creating {}", images_dir.display()))?;
    let mut summary = Summary::default();

    // Tags that bring their own image keep it (if it decodes); the others need a window.
    let mut kept = Vec::with_capacity(table.tags.len());
    let mut todo: Vec<(Tag, Window)> = Vec::new();
    for t in std::mem::take(&mut table.tags) {
        if let Some(img) = &t.image {
            match data.check_image(img) {
                Ok(()) => {
                    summary.reused += 1;
                    kept.push(t);
                }
                Err(e) => fail(&mut summary, &mut rejected, &t, format!("{e:#}")),
            }
            continue;
        }
        let w = Window::centered(t.lat, t.lon, args.zoom, INPUT_SIZE)?;
        todo.push((t, w));
    }
    let (outcomes, origins) = images(source.as_ref(), &todo, data);
    summary.tiles = origins;
    for ((mut t, _), outcome) in todo.into_iter().zip(outcomes) {
        match outcome {
            Ok(rel) => {
                summary.written += 1;
                t.image = Some(rel);
                kept.push(t);
            }
            Err(reason) => fail(&mut summary, &mut rejected, &t, reason),
        }
    }
    table.tags = kept;
    crate::memory::log_stage("images");
    Ok(RegionPart { table, rejected, summary, spec })
}

/// The `none` class's rows: background points of the extract in the labelled locations' map
/// cells (zoom 17, the split's groups), away from every mapped feature and every labelled
/// location, with the labelled rows' most common source (so the metadata cannot tell them
/// apart).
/// Zoom of the areas background points are sampled in one at a time (about 5 km across):
/// the geometry of one area is held at once, never the whole map's.
const BACKGROUND_AREA_ZOOM: u8 = 12;
/// An area near more ways than this is cut in four, down to [`BACKGROUND_FINEST_ZOOM`], so a
/// dense city holds as little at once as a sparse one (the bundled extract has 5,130 ways).
const BACKGROUND_SPLIT_WAYS: usize = 20_000;
const BACKGROUND_FINEST_ZOOM: u8 = 14;
/// Geometry this far around an area is looked at too (candidates there depend on what is near).
const BACKGROUND_MARGIN_M: f64 = 200.0;

fn background_tags(
    map: &OsmMap,
    mapped: &[crate::osm::Labelled],
    labelled: &[Tag],
    args: &CollectArgs,
) -> Result<Vec<Tag>> {
    use crate::osm::{Area, AreaIndex};
    let n = (args.negatives_per_label * labelled.len() as f64).round() as usize;
    if n == 0 || labelled.is_empty() {
        return Ok(Vec::new());
    }
    let zoom = SplitConfig::default().group_zoom;
    let cell_of = |lat: f64, lon: f64| group_of(lat, lon, zoom).ok();
    // The split-group cell `c` lies in area `a`.
    let within = |c: (u32, u32), (z, t): Area| (c.0 >> (zoom - z), c.1 >> (zoom - z)) == t;
    let row_cells: Vec<(u32, u32)> =
        labelled.iter().filter_map(|t| cell_of(t.lat, t.lon)).collect();
    let cells: HashSet<(u32, u32)> = row_cells.iter().copied().collect();
    let index = AreaIndex::new(map, BACKGROUND_FINEST_ZOOM, BACKGROUND_MARGIN_M);
    crate::memory::log_stage("indexing areas");
    // The areas holding labelled rows, in order, dense ones cut into their quarters; each is
    // asked for its share of the points.
    let mut per_area: Vec<(Area, usize)> = Vec::new();
    let mut todo: Vec<Area> = {
        let top: BTreeSet<(u32, u32)> = row_cells
            .iter()
            .map(|c| (c.0 >> (zoom - BACKGROUND_AREA_ZOOM), c.1 >> (zoom - BACKGROUND_AREA_ZOOM)))
            .collect();
        top.into_iter().rev().map(|t| (BACKGROUND_AREA_ZOOM, t)).collect()
    };
    while let Some(area @ (z, (x, y))) = todo.pop() {
        if z < BACKGROUND_FINEST_ZOOM && index.ways_near(area) > BACKGROUND_SPLIT_WAYS {
            let quarters =
                [(0, 0), (0, 1), (1, 0), (1, 1)].map(|(dx, dy)| (z + 1, (2 * x + dx, 2 * y + dy)));
            todo.extend(quarters.into_iter().rev());
            continue;
        }
        let rows = row_cells.iter().filter(|&&c| within(c, area)).count();
        if rows > 0 {
            per_area.push((area, rows));
        }
    }
    let shares = shares(n, &per_area.iter().map(|(_, rows)| *rows).collect::<Vec<_>>());
    // Mapped features and labelled places keep points away; filed by the finest areas.
    let finest = |lat: f64, lon: f64| {
        cell_of(lat, lon).map(|c| {
            let shift = zoom - BACKGROUND_FINEST_ZOOM;
            (c.0 >> shift, c.1 >> shift)
        })
    };
    let mut avoid: HashMap<(u32, u32), Vec<(f64, f64)>> = HashMap::new();
    let places =
        mapped.iter().map(|l| (l.lat, l.lon)).chain(labelled.iter().map(|t| (t.lat, t.lon)));
    for (lat, lon) in places {
        if let Some(f) = finest(lat, lon) {
            avoid.entry(f).or_default().push((lat, lon));
        }
    }
    let mut points = Vec::new();
    // One pass per area: a bar when there is more than one.
    let bar = if per_area.len() > 1 {
        ProgressBar::new(per_area.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("background {bar:40} {pos}/{len} areas eta {eta}")
            .expect("valid template"),
    );
    for (i, (&(area, _), &want)) in per_area.iter().zip(&shares).enumerate() {
        bar.inc(1);
        let geometry = index.geometry(map, area)?;
        // What lies in this area and one finest area around it keeps points away.
        let (z, (x, y)) = area;
        let k = 1i64 << (BACKGROUND_FINEST_ZOOM - z);
        let mut near: Vec<(f64, f64)> = Vec::new();
        for fx in x as i64 * k - 1..=(x as i64 + 1) * k {
            for fy in y as i64 * k - 1..=(y as i64 + 1) * k {
                if let (Ok(fx), Ok(fy)) = (u32::try_from(fx), u32::try_from(fy))
                    && let Some(v) = avoid.get(&(fx, fy))
                {
                    near.extend(v);
                }
            }
        }
        let found = background_points(&geometry, &near, want, args.seed + i as u64, |lat, lon| {
            cell_of(lat, lon).is_some_and(|c| cells.contains(&c) && within(c, area))
        });
        for p in &found {
            if let Some(f) = finest(p.lat, p.lon) {
                avoid.entry(f).or_default().push((p.lat, p.lon));
            }
        }
        points.extend(found);
    }
    bar.finish_and_clear();
    if points.len() < n {
        tracing::warn!(
            "asked for {n} background points, the extract has room for {}",
            points.len()
        );
    }
    let mut sources: BTreeMap<&str, usize> = BTreeMap::new();
    for t in labelled {
        *sources.entry(t.source.as_str()).or_default() += 1;
    }
    let source = sources.iter().max_by_key(|(_, n)| **n).map_or("osm", |(s, _)| *s).to_string();
    Ok(points
        .into_iter()
        .enumerate()
        .map(|(i, p)| Tag {
            id: format!("{NONE_LABEL}/{}", i + 1),
            lat: p.lat,
            lon: p.lon,
            label: NONE_LABEL.to_string(),
            source: source.clone(),
            image: None,
            extra: Vec::new(),
        })
        .collect())
}

/// `n` split in proportion to `weights`, the largest remainders rounding up: the shares sum
/// to `n` (one weight: all of it).
fn shares(n: usize, weights: &[usize]) -> Vec<usize> {
    let total: usize = weights.iter().sum();
    if total == 0 {
        return vec![0; weights.len()];
    }
    let mut out: Vec<usize> = weights.iter().map(|w| n * w / total).collect();
    let mut rest: Vec<(usize, usize)> =
        weights.iter().enumerate().map(|(i, w)| (n * w % total, i)).collect();
    rest.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let missing = n - out.iter().sum::<usize>();
    for &(_, i) in rest.iter().take(missing) {
        out[i] += 1;
    }
    out
}

/// Places per batch. A batch's tiles are fetched together and kept only while one of the next
/// [`LOOKAHEAD`] batches needs them; batches follow the places' Z-order, so memory holds the
/// tiles around a few hundred places whatever the size of the area. (Kept until their last
/// use instead, the tiles of places where the Z-order curve jumps pile up as areas grow.)
const BATCH: usize = 48;
/// How many batches ahead a tile is kept for (fetched again if needed later).
const LOOKAHEAD: usize = 8;

/// `(x, y)` interleaved bit by bit: nearby tiles get nearby keys.
fn z_order(x: u32, y: u32) -> u64 {
    let spread = |v: u32| {
        let mut v = u64::from(v);
        v = (v | (v << 16)) & 0x0000_ffff_0000_ffff;
        v = (v | (v << 8)) & 0x00ff_00ff_00ff_00ff;
        v = (v | (v << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
        v = (v | (v << 2)) & 0x3333_3333_3333_3333;
        (v | (v << 1)) & 0x5555_5555_5555_5555
    };
    spread(x) | (spread(y) << 1)
}

/// Cuts each place's image from its tiles and writes it: the image's path relative to the data
/// folder, or why it failed, in `todo`'s order; and how the tiles were obtained. A tile is
/// fetched again only when the batches needing it are more than [`LOOKAHEAD`] apart.
fn images(
    source: &dyn crate::tiles::TileSource,
    todo: &[(Tag, Window)],
    data: &DataDir,
) -> (Vec<Result<String, String>>, BTreeMap<Origin, usize>) {
    // Placements are recomputed where needed rather than held for every place (a country's
    // places would hold hundreds of MB of them).
    let first_tile = |i: usize| todo[i].1.placements().first().map(|p| z_order(p.tile.x, p.tile.y));
    let mut order: Vec<usize> = (0..todo.len()).collect();
    order.sort_by_cached_key(|&i| first_tile(i));
    let batches: Vec<&[usize]> = order.chunks(BATCH).collect();
    // The batches that need each tile, ascending.
    let mut uses: HashMap<TileId, Vec<u32>> = HashMap::new();
    for (b, batch) in batches.iter().enumerate() {
        for &i in *batch {
            for p in todo[i].1.placements() {
                let u = uses.entry(p.tile).or_default();
                if u.last() != Some(&(b as u32)) {
                    u.push(b as u32);
                }
            }
        }
    }
    // The next batch after `b` that needs tile `t`.
    let next_use = |t: &TileId, b: usize| -> Option<usize> {
        let u = &uses[t];
        u.get(u.partition_point(|&x| x as usize <= b)).map(|&x| x as usize)
    };
    let progress = MultiProgress::new();
    let tile_bar = progress.add(ProgressBar::new(uses.len() as u64));
    tile_bar.set_style(tile_bar_style("tiles "));
    let image_bar = progress.add(ProgressBar::new(todo.len() as u64));
    image_bar.set_style(
        ProgressStyle::with_template("images {bar:40} {pos}/{len} {per_sec} eta {eta}")
            .expect("valid template"),
    );
    let mut origins = BTreeMap::new();
    let mut held: HashMap<TileId, Result<image::RgbaImage, String>> = HashMap::new();
    let (mut most_held, mut refetched) = (0, 0);
    let mut out: Vec<Option<Result<String, String>>> = vec![None; todo.len()];
    for (b, batch) in batches.iter().enumerate() {
        let missing: BTreeSet<TileId> = batch
            .iter()
            .flat_map(|&i| todo[i].1.placements())
            .map(|p| p.tile)
            .filter(|t| !held.contains_key(t))
            .collect();
        let missing: Vec<TileId> = missing.into_iter().collect();
        // Tiles fetched before and dropped since count again.
        let again = missing.iter().filter(|t| uses[*t][0] as usize != b).count();
        tile_bar.inc_length(again as u64);
        refetched += again;
        for (t, r) in fetch_with(source, &missing, &tile_bar) {
            held.insert(
                t,
                r.map(|(img, origin)| {
                    *origins.entry(origin).or_default() += 1;
                    img
                })
                .map_err(|e| format!("tile {}/{}/{}: {e:#}", t.z, t.x, t.y)),
            );
        }
        for &i in *batch {
            image_bar.inc(1);
            let (t, w) = &todo[i];
            let mut parts = Vec::new();
            let mut errors = Vec::new();
            for p in w.placements() {
                match &held[&p.tile] {
                    Ok(img) => parts.push((p, img)),
                    Err(e) => errors.push(e.clone()),
                }
            }
            out[i] = Some(if errors.is_empty() {
                let rel = DataDir::image_rel(&safe_file_name(&t.id));
                encode_png(&w.stitch(&parts, style::BACKGROUND))
                    .and_then(|png| write_atomic(&data.resolve(&rel), &png))
                    .map(|()| rel)
                    .map_err(|e| format!("{e:#}"))
            } else {
                Err(errors.join("; "))
            });
        }
        held.retain(|t, _| next_use(t, b).is_some_and(|n| n <= b + LOOKAHEAD));
        most_held = most_held.max(held.len());
    }
    tracing::debug!(
        "at most {most_held} tiles held at once; {refetched} fetched again for later batches"
    );
    tile_bar.finish_and_clear();
    image_bar.finish_and_clear();
    (out.into_iter().map(|o| o.expect("every place is in one batch")).collect(), origins)
}

fn encode_png(img: &image::RgbImage) -> Result<Vec<u8>> {
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    Ok(png)
}

/// A tag whose image could not be made: listed in the summary and in rejected_rows.csv.
fn fail(summary: &mut Summary, rejected: &mut Vec<Rejected>, t: &Tag, reason: String) {
    summary.failed.push(format!("{}: {reason}", t.id));
    rejected.push(Rejected::for_tag(t, "image", &reason));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_sum_to_the_whole_in_proportion() {
        assert_eq!(shares(689, &[689]), vec![689]);
        assert_eq!(shares(10, &[1, 1, 1]), vec![4, 3, 3]);
        assert_eq!(shares(7, &[5, 0, 2]), vec![5, 0, 2]);
        assert_eq!(shares(5, &[0, 0]), vec![0, 0]);
        let s = shares(1000, &[3, 7, 11, 13]);
        assert_eq!(s.iter().sum::<usize>(), 1000);
        assert!(s.windows(2).all(|w| w[0] <= w[1]), "{s:?}");
    }

    #[test]
    fn z_order_keeps_neighbours_close() {
        assert_eq!(z_order(0, 0), 0);
        assert_eq!(z_order(1, 0), 1);
        assert_eq!(z_order(0, 1), 2);
        assert_eq!(z_order(1, 1), 3);
        assert_eq!(z_order(2, 0), 4);
        assert!(z_order(u32::MAX, u32::MAX) == u64::MAX);
    }
}
