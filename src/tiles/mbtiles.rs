//! Raster MBTiles 1.3 (<https://github.com/mapbox/mbtiles-spec/blob/master/1.3/spec.md>):
//! an SQLite file with `metadata(name, value)` and `tiles(zoom_level, tile_column, tile_row,
//! tile_data)`, rows in TMS order (y counted from the south).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use image::RgbaImage;
use model_core::data::tile::TileId;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::{Origin, TileSource, decode_tile};

pub struct MbTiles {
    path: PathBuf,
    conn: Mutex<Connection>,
    format: String,
}

impl MbTiles {
    pub fn open(path: &Path) -> Result<Self> {
        if !path.is_file() {
            bail!("MBTiles file {} does not exist", path.display());
        }
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("opening MBTiles {}", path.display()))?;
        let format: Option<String> = conn
            .query_row("SELECT value FROM metadata WHERE name = 'format'", [], |r| r.get(0))
            .optional()
            .with_context(|| {
                format!("{}: not an MBTiles file (no metadata table)", path.display())
            })?;
        let format = format.unwrap_or_else(|| "png".into());
        if !matches!(format.as_str(), "png" | "jpg" | "jpeg") {
            bail!(
                "{}: tile format `{format}` is not a raster format AccessAtlas reads (png, jpg)",
                path.display()
            );
        }
        Ok(Self { path: path.to_path_buf(), conn: Mutex::new(conn), format })
    }
}

impl TileSource for MbTiles {
    fn describe(&self) -> String {
        format!("mbtiles:{} ({})", self.path.display(), self.format)
    }
    fn workers(&self) -> usize {
        1
    }
    fn get(&self, t: TileId) -> Result<(RgbaImage, Origin)> {
        let tms_y = (1u32 << t.z) - 1 - t.y;
        let conn = self.conn.lock().expect("no panics while holding");
        let data: Option<Vec<u8>> = conn
            .query_row(
                "SELECT tile_data FROM tiles WHERE zoom_level = ?1 AND tile_column = ?2 AND tile_row = ?3",
                (t.z, t.x, tms_y),
                |r| r.get(0),
            )
            .optional()
            .with_context(|| format!("reading {}", self.path.display()))?;
        let Some(data) = data else {
            bail!("tile {}/{}/{} is not in {}", t.z, t.x, t.y, self.path.display());
        };
        let img = decode_tile(&data)
            .with_context(|| format!("tile {}/{}/{} in {}", t.z, t.x, t.y, self.path.display()))?;
        Ok((img, Origin::Read))
    }
}
