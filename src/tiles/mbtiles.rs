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

/// The `metadata` name under which `tiles render` records the style it drew with.
pub const STYLE_KEY: &str = "accessatlas_style";

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

impl MbTiles {
    /// The stored bytes of tile `t` (`None` when the file does not hold it), undecoded.
    pub fn bytes(&self, t: TileId) -> Result<Option<Vec<u8>>> {
        let tms_y = (1u32 << t.z) - 1 - t.y;
        let conn = self.conn.lock().expect("no panics while holding");
        conn.query_row(
            "SELECT tile_data FROM tiles WHERE zoom_level = ?1 AND tile_column = ?2 AND tile_row = ?3",
            (t.z, t.x, tms_y),
            |r| r.get(0),
        )
        .optional()
        .with_context(|| format!("reading {}", self.path.display()))
    }

    /// A `metadata` value.
    pub fn metadata(&self, name: &str) -> Option<String> {
        let conn = self.conn.lock().expect("no panics while holding");
        conn.query_row("SELECT value FROM metadata WHERE name = ?1", [name], |r| r.get(0))
            .optional()
            .ok()
            .flatten()
    }

    /// The tile format (`png`, `jpg`).
    pub fn format(&self) -> &str {
        &self.format
    }
}

/// Writes a raster MBTiles file: into a temporary file beside the target, renamed into place
/// by [`MbTilesWriter::finish`] (an interrupted run leaves no half file under the name).
pub struct MbTilesWriter {
    /// `None` once finished.
    conn: Option<Connection>,
    tmp: PathBuf,
    path: PathBuf,
}

impl MbTilesWriter {
    /// `metadata`: name/value pairs (`format` is set to `png`).
    pub fn create(path: &Path, metadata: &[(&str, String)]) -> Result<Self> {
        let dir = &crate::fsutil::folder_of(path);
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let tmp = crate::fsutil::temp_path(path);
        let _ = std::fs::remove_file(&tmp);
        let conn = Connection::open(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        conn.execute_batch(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
             CREATE TABLE metadata (name TEXT, value TEXT);
             CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB);
             CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row);
             BEGIN;",
        )
        .with_context(|| format!("creating {}", tmp.display()))?;
        for (k, v) in metadata.iter().map(|(k, v)| (*k, v.as_str())).chain([("format", "png")]) {
            conn.execute("INSERT INTO metadata (name, value) VALUES (?1, ?2)", (k, v))
                .with_context(|| format!("writing {}", tmp.display()))?;
        }
        Ok(Self { conn: Some(conn), tmp, path: path.to_path_buf() })
    }

    pub fn insert(&mut self, t: TileId, png: &[u8]) -> Result<()> {
        let tms_y = (1u32 << t.z) - 1 - t.y;
        self.conn
            .as_ref()
            .expect("not finished")
            .execute(
                "INSERT OR REPLACE INTO tiles (zoom_level, tile_column, tile_row, tile_data) VALUES (?1, ?2, ?3, ?4)",
                (t.z, t.x, tms_y, png),
            )
            .with_context(|| format!("writing {}", self.tmp.display()))?;
        Ok(())
    }

    /// Commits, closes and renames the file into place.
    pub fn finish(mut self) -> Result<()> {
        let conn = self.conn.take().expect("finished once");
        conn.execute_batch("COMMIT;").with_context(|| format!("writing {}", self.tmp.display()))?;
        conn.close()
            .map_err(|(_, e)| e)
            .with_context(|| format!("closing {}", self.tmp.display()))?;
        std::fs::rename(&self.tmp, &self.path)
            .with_context(|| format!("renaming {} to {}", self.tmp.display(), self.path.display()))
    }
}

impl Drop for MbTilesWriter {
    fn drop(&mut self) {
        // Unfinished (an error or a panic on the way): no half file stays behind.
        if self.conn.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
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
        let Some(data) = self.bytes(t)? else {
            bail!("tile {}/{}/{} is not in {}", t.z, t.x, t.y, self.path.display());
        };
        let img = decode_tile(&data)
            .with_context(|| format!("tile {}/{}/{} in {}", t.z, t.x, t.y, self.path.display()))?;
        Ok((img, Origin::Read))
    }
}
