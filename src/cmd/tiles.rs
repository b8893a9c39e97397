//! `accessatlas tiles render`: an area of the extract drawn once, in parallel, into an MBTiles
//! file or a `z/x/y.png` folder, so `serve --tiles FILE.mbtiles` (and `collect --tiles
//! mbtiles`) use the tiles without holding the extract in memory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use indicatif::ProgressBar;
use model_core::data::tile::{BBox, TileId};

use crate::fsutil::write_atomic;
use crate::osm::OsmMap;
use crate::render::Renderer;
use crate::render::style::STYLE_VERSION;
use crate::tiles::mbtiles::MbTilesWriter;
use crate::tiles::rendered::{MAX_RENDER_ZOOM, tile_png};
use crate::tiles::tile_bar_style;

#[derive(Subcommand)]
pub enum TilesCommand {
    /// Render an area of the extract once into FILE.mbtiles or a z/x/y.png folder.
    Render(RenderArgs),
}

#[derive(Args, Debug)]
pub struct RenderArgs {
    /// The area: MIN_LON,MIN_LAT,MAX_LON,MAX_LAT (default: the whole extract).
    #[arg(long)]
    pub bbox: Option<String>,
    /// Zoom level, or a range such as 15-19.
    #[arg(long, default_value = "19")]
    pub zoom: String,
    /// Output: a file ending in `.mbtiles`, otherwise a folder of `z/x/y.png`.
    #[arg(long)]
    pub out: PathBuf,
    /// The extract to draw (default: the bundled one).
    #[arg(long)]
    pub osm: Option<PathBuf>,
    /// Rendering threads (default: the machine's cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

pub fn run(cmd: TilesCommand) -> Result<()> {
    match cmd {
        TilesCommand::Render(a) => {
            if a.out.is_dir() {
                crate::fsutil::sweep_stale_temps(&a.out, true);
            } else {
                crate::fsutil::sweep_stale_temps(&crate::fsutil::folder_of(&a.out), false);
            }
            let n = render(&a)?;
            println!("{n} tiles written to {}", a.out.display());
            Ok(())
        }
    }
}

/// `19` or `15-19`.
fn zooms(text: &str) -> Result<(u8, u8)> {
    let parse = |s: &str| -> Result<u8> {
        let z: u8 =
            s.trim().parse().with_context(|| format!("--zoom: `{s}` is not a zoom level"))?;
        if z > MAX_RENDER_ZOOM {
            bail!("--zoom: {z} is above {MAX_RENDER_ZOOM}");
        }
        Ok(z)
    };
    let (a, b) = match text.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => (parse(text)?, parse(text)?),
    };
    if a > b {
        bail!("--zoom: {text} is inverted");
    }
    Ok((a, b))
}

/// Every tile of `bbox` at zooms `lo..=hi`, zoom by zoom, row by row (model-core's tile math).
pub fn tiles_in(bbox: &BBox, (lo, hi): (u8, u8)) -> Result<Vec<TileId>> {
    Ok(bbox.tiles(lo, hi)?)
}

/// The extract's own extent (its nodes').
fn extent(map: &OsmMap) -> Option<BBox> {
    let mut b = BBox { min_lon: f64::MAX, min_lat: f64::MAX, max_lon: f64::MIN, max_lat: f64::MIN };
    for (lat, lon) in map.coords.values() {
        b = BBox {
            min_lon: b.min_lon.min(lon),
            min_lat: b.min_lat.min(lat),
            max_lon: b.max_lon.max(lon),
            max_lat: b.max_lat.max(lat),
        };
    }
    (b.min_lat <= b.max_lat).then_some(b)
}

/// Renders and writes the tiles; their number.
pub fn render(args: &RenderArgs) -> Result<usize> {
    let range = zooms(&args.zoom)?;
    let (map, origin) = OsmMap::open(args.osm.as_deref())?;
    let bbox = match &args.bbox {
        Some(b) => BBox::parse(b).map_err(|e| anyhow::anyhow!("--bbox: {e}"))?,
        None => extent(&map).with_context(|| format!("{origin} has no node"))?,
    };
    let tiles = tiles_in(&bbox, range)?;
    const MAX_TILES: usize = 5_000_000;
    if tiles.len() > MAX_TILES {
        bail!("{} tiles is more than {MAX_TILES}: a smaller --bbox or fewer zooms", tiles.len());
    }
    let mut renderers = Vec::new();
    for z in range.0..=range.1 {
        renderers.push(Renderer::new(&map, z)?);
    }
    let mbtiles = args.out.extension().is_some_and(|e| e == "mbtiles");
    let mut writer = if mbtiles {
        let name = args.out.file_stem().and_then(|s| s.to_str()).unwrap_or("tiles").to_string();
        let centre = ((bbox.min_lon + bbox.max_lon) / 2.0, (bbox.min_lat + bbox.max_lat) / 2.0);
        Some(MbTilesWriter::create(
            &args.out,
            &[
                ("name", name),
                ("type", "baselayer".into()),
                ("version", "1".into()),
                (
                    "description",
                    format!("AccessAtlas rendered tiles of {origin}, style {STYLE_VERSION}"),
                ),
                ("attribution", "© OpenStreetMap contributors (ODbL 1.0)".into()),
                (
                    "bounds",
                    format!(
                        "{:.7},{:.7},{:.7},{:.7}",
                        bbox.min_lon, bbox.min_lat, bbox.max_lon, bbox.max_lat
                    ),
                ),
                ("center", format!("{:.7},{:.7},{}", centre.0, centre.1, range.1)),
                ("minzoom", range.0.to_string()),
                ("maxzoom", range.1.to_string()),
                (crate::tiles::mbtiles::STYLE_KEY, STYLE_VERSION.into()),
            ],
        )?)
    } else {
        None
    };
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
        .max(1);
    let bar = ProgressBar::new(tiles.len() as u64);
    bar.set_style(tile_bar_style("render"));
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::sync_channel::<(TileId, Result<Vec<u8>>)>(256);
    let written = std::thread::scope(|s| -> Result<usize> {
        for _ in 0..threads {
            let tx = tx.clone();
            let (tiles, renderers, next) = (&tiles, &renderers, &next);
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&t) = tiles.get(i) else { break };
                    let r = &renderers[usize::from(t.z - range.0)];
                    if tx.send((t, tile_png(r.render_tile(t)))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut n = 0;
        for (t, png) in rx {
            let png = png?;
            match writer.as_mut() {
                Some(w) => w.insert(t, &png)?,
                None => write_atomic(&tile_path(&args.out, t), &png)?,
            }
            n += 1;
            bar.inc(1);
        }
        Ok(n)
    });
    bar.finish_and_clear();
    // On an error the writer drops unfinished and removes its temporary file.
    let written = written?;
    if let Some(w) = writer {
        w.finish()?;
    }
    Ok(written)
}

fn tile_path(dir: &Path, t: TileId) -> PathBuf {
    dir.join(t.z.to_string()).join(t.x.to_string()).join(format!("{}.png", t.y))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoom_ranges_parse_and_bad_ones_say_why() {
        assert_eq!(zooms("19").unwrap(), (19, 19));
        assert_eq!(zooms("15-19").unwrap(), (15, 19));
        assert!(zooms("19-15").unwrap_err().to_string().contains("inverted"));
        assert!(zooms("25").unwrap_err().to_string().contains("above"));
        assert!(zooms("x").unwrap_err().to_string().contains("not a zoom"));
    }

    #[test]
    fn an_area_covers_each_zoom_row_by_row() {
        use model_core::data::tile::lat_lon_to_tile;
        let b = BBox { min_lon: 24.94, min_lat: 60.165, max_lon: 24.945, max_lat: 60.168 };
        let t = tiles_in(&b, (17, 18)).unwrap();
        let z17 = t.iter().filter(|t| t.z == 17).count();
        let z18 = t.iter().filter(|t| t.z == 18).count();
        assert!(z17 >= 1 && z18 >= 2 * z17 - 1 && z18 + z17 == t.len(), "{z17} {z18}");
        for c in [(60.165, 24.94), (60.168, 24.945), (60.1665, 24.9425)] {
            let want = lat_lon_to_tile(c.0, c.1, 18).unwrap();
            assert!(t.contains(&want), "{want:?}");
        }
    }
}
