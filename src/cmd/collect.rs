//! `accessatlas collect`: labelled locations (from an OSM extract or the user's CSV) and one
//! 224x224 map tile per location, centred on it, in `DATA/images/` + `DATA/tags.csv`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use image::RgbaImage;
use indicatif::{ProgressBar, ProgressStyle};
use model_core::LabelVocab;
use model_core::preprocess::INPUT_SIZE;
use model_core::tags::{
    Rejected, Tag, TagTable, parse_tags_csv, write_rejected_csv, write_tags_csv,
};
use model_core::tile::{TileId, Window};

use crate::fsutil::write_atomic;
use crate::osm::rules::Rules;
use crate::osm::{OsmMap, labelled_features};
use crate::render::{Renderer, style};

/// The bundled extract of central Helsinki (© OpenStreetMap contributors, ODbL 1.0).
pub const BUNDLED_OSM: &[u8] = include_bytes!("../../assets/osm/helsinki.osm.pbf");
pub const BUNDLED_OSM_NAME: &str = "assets/osm/helsinki.osm.pbf (bundled)";

#[derive(Args, Debug)]
pub struct CollectArgs {
    /// Data directory to write `tags.csv` and `images/` into.
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// OSM extract: the source of labels (without --tags) and the map tiles are rendered from.
    /// Default: the bundled extract of central Helsinki.
    #[arg(long)]
    pub osm: Option<PathBuf>,
    /// Your own labelled locations (`id,lat,lon,type,source[,image]`); labels come only from here.
    #[arg(long)]
    pub tags: Option<PathBuf>,
    /// OSM tag -> type table (default: config/osm_rules.toml, compiled in).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Zoom level of the tiles.
    #[arg(long, default_value_t = 19)]
    pub zoom: u8,
    /// Exit non-zero if any row is rejected or any tile fails.
    #[arg(long)]
    pub strict: bool,
}

/// What a collect run did.
#[derive(Debug, Default)]
pub struct Summary {
    pub per_type: BTreeMap<String, usize>,
    pub rendered: usize,
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
    println!(
        "tiles: {} rendered, {} existing images reused, {} failed; {} rows rejected",
        s.rendered,
        s.reused,
        s.failed.len(),
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
    let labels = LabelVocab::default();
    let (map, origin) = match &args.osm {
        Some(p) => (OsmMap::read(p)?, p.display().to_string()),
        None => (OsmMap::from_bytes(BUNDLED_OSM, BUNDLED_OSM_NAME)?, BUNDLED_OSM_NAME.to_string()),
    };
    tracing::info!(
        "{origin}: {} nodes, {} ways, {} multipolygons",
        map.coords.len(),
        map.ways.len(),
        map.multipolygons.len()
    );
    let mut rejected: Vec<Rejected> = Vec::new();
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
            let rules = match &args.rules {
                Some(p) => {
                    let text = std::fs::read_to_string(p)
                        .with_context(|| format!("reading {}", p.display()))?;
                    Rules::parse(&text, &p.display().to_string(), &labels)?
                }
                None => Rules::default_rules(&labels)?,
            };
            let tags = labelled_features(&map, &rules)
                .into_iter()
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

    let renderer = Renderer::new(&map, args.zoom)?;
    let images_dir = args.data.join("images");
    std::fs::create_dir_all(&images_dir)
        .with_context(|| format!("creating {}", images_dir.display()))?;
    let bar = ProgressBar::new(table.tags.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("collect {bar:40} {pos}/{len} tiles {per_sec} eta {eta}")
            .expect("valid template"),
    );
    let mut summary = Summary::default();
    let mut cache: HashMap<TileId, RgbaImage> = HashMap::new();
    let mut kept = Vec::with_capacity(table.tags.len());
    for mut t in std::mem::take(&mut table.tags) {
        bar.inc(1);
        if let Some(img) = &t.image {
            match check_existing(&args.data, img) {
                Ok(()) => {
                    summary.reused += 1;
                    kept.push(t);
                }
                Err(e) => summary.failed.push(format!("{}: {e:#}", t.id)),
            }
            continue;
        }
        let rel = format!("images/{}.png", safe_file_name(&t.id));
        match render_window(&renderer, &mut cache, t.lat, t.lon)
            .and_then(|png| write_atomic(&args.data.join(&rel), &png))
        {
            Ok(()) => {
                summary.rendered += 1;
                t.image = Some(rel);
                kept.push(t);
            }
            Err(e) => summary.failed.push(format!("{}: {e:#}", t.id)),
        }
    }
    bar.finish_and_clear();
    table.tags = kept;
    for l in labels.names() {
        summary.per_type.insert(l.clone(), 0);
    }
    for t in &table.tags {
        *summary.per_type.entry(t.label.clone()).or_default() += 1;
    }
    summary.rejected = rejected.len();
    write_atomic(&args.data.join("tags.csv"), &write_tags_csv(&table))?;
    let rejected_path = args.data.join("rejected_rows.csv");
    if rejected.is_empty() {
        let _ = std::fs::remove_file(&rejected_path);
    } else {
        write_atomic(&rejected_path, &write_rejected_csv(&rejected))?;
    }
    tracing::info!(
        "wrote {} ({} tags, style {}, zoom {})",
        args.data.join("tags.csv").display(),
        table.tags.len(),
        style::STYLE_VERSION,
        args.zoom
    );
    Ok(summary)
}

/// The 224x224 model input around a point, as PNG bytes, from rendered tiles.
pub fn render_window(
    renderer: &Renderer,
    cache: &mut HashMap<TileId, RgbaImage>,
    lat: f64,
    lon: f64,
) -> Result<Vec<u8>> {
    let window = Window::centered(lat, lon, renderer.zoom(), INPUT_SIZE)?;
    let tiles: Vec<_> = window
        .placements()
        .into_iter()
        .map(|p| {
            let img = cache.entry(p.tile).or_insert_with(|| renderer.render_tile(p.tile));
            (p, img.clone())
        })
        .collect();
    let rgb = window.stitch(&tiles, style::BACKGROUND);
    let mut png = Vec::new();
    rgb.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    Ok(png)
}

fn check_existing(data: &Path, rel: &str) -> Result<()> {
    let p = if Path::new(rel).is_absolute() { PathBuf::from(rel) } else { data.join(rel) };
    let bytes = std::fs::read(&p).with_context(|| format!("image {}", p.display()))?;
    model_core::preprocess::decode_rgb(&bytes).with_context(|| format!("image {}", p.display()))?;
    Ok(())
}
