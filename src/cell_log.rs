//! The record a long `accessatlas suggest` run keeps beside its output (`OUT.partial`): a
//! header line naming the run's settings, then one JSON line per finished cell, each appended
//! and synced to disk as the cell finishes. A run with the same settings reads it back and
//! skips those cells; a last line cut off by a stop is dropped (its cell runs again); a record
//! of other settings, or one that cannot be read, is replaced. The output itself is written
//! whole at the end (atomically), and the record removed.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use model_core::Prediction;
use model_core::data::candidates::{Candidate, CandidateKind};
use model_core::data::tile::TileId;

use crate::suggestions::{CellResult, Suggestion};

/// What makes two runs the same run: the area, the threshold, the cells, the model and the
/// extract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunKey {
    pub bbox: String,
    /// The user's threshold; `None`: the model's own at each place.
    pub threshold: Option<f32>,
    pub cell_zoom: u8,
    /// SHA-256 of the bundle's `model.json` and weights.
    pub model: String,
    /// The extract's name and how many nodes it has.
    pub osm: String,
}

impl RunKey {
    /// The settings that differ between `self` and `other`, named.
    fn differences(&self, other: &RunKey) -> Vec<&'static str> {
        let mut d = Vec::new();
        if self.bbox != other.bbox {
            d.push("bbox");
        }
        if self.threshold != other.threshold {
            d.push("threshold");
        }
        if self.cell_zoom != other.cell_zoom {
            d.push("cell zoom");
        }
        if self.model != other.model {
            d.push("model");
        }
        if self.osm != other.osm {
            d.push("extract");
        }
        d
    }
}

/// The header line: the record's kind, so a stray file is not taken for one.
#[derive(Serialize, Deserialize)]
struct Header {
    accessatlas_suggest_run: u32,
    key: RunKey,
}

const VERSION: u32 = 1;

/// A finished cell as its line in the record. Coordinates travel as text, Rust's shortest
/// exact form both ways: serde_json's own reading of a float may miss the last bit, and a
/// resumed run must write what an unbroken one writes.
#[derive(Serialize, Deserialize)]
struct CellLine {
    cell: TileId,
    candidates: usize,
    already_mapped: usize,
    outside_trained_area: usize,
    suggestions: Vec<SuggestionLine>,
}

#[derive(Serialize, Deserialize)]
struct SuggestionLine {
    lat: String,
    lon: String,
    kinds: Vec<CandidateKind>,
    prediction: Prediction,
}

impl CellLine {
    fn of(c: &CellResult) -> Self {
        CellLine {
            cell: c.cell,
            candidates: c.candidates,
            already_mapped: c.already_mapped,
            outside_trained_area: c.outside_trained_area,
            suggestions: c
                .suggestions
                .iter()
                .map(|g| SuggestionLine {
                    lat: g.candidate.lat.to_string(),
                    lon: g.candidate.lon.to_string(),
                    kinds: g.candidate.kinds.clone(),
                    prediction: g.prediction.clone(),
                })
                .collect(),
        }
    }

    fn into_result(self) -> Option<CellResult> {
        let suggestions = self
            .suggestions
            .into_iter()
            .map(|s| {
                let candidate = Candidate {
                    lat: s.lat.parse().ok()?,
                    lon: s.lon.parse().ok()?,
                    kinds: s.kinds,
                };
                Some(Suggestion { candidate, prediction: s.prediction })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(CellResult {
            cell: self.cell,
            candidates: self.candidates,
            already_mapped: self.already_mapped,
            outside_trained_area: self.outside_trained_area,
            suggestions,
        })
    }
}

/// What [`CellLog::open`] found at its path.
#[derive(Debug)]
pub enum Found {
    /// No record: a new run.
    Nothing,
    /// A record of the same run: its finished cells; `cut_off` when its last line was
    /// incomplete or unreadable (dropped, the cell runs again).
    Resumed { cells: Vec<CellResult>, cut_off: bool },
    /// A record of another run (the settings named differ), replaced.
    OtherRun(Vec<&'static str>),
    /// A file that is not a record (why), replaced.
    Unreadable(String),
}

/// An open record, ready to take finished cells.
pub struct CellLog {
    path: PathBuf,
    file: File,
}

/// Where the record of a run writing `out` lives: `out` with `.partial` added.
pub fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".partial");
    out.with_file_name(name)
}

impl CellLog {
    /// Opens the record at `path` for the run `key`: what was there, and the record ready to
    /// append to (a new one when nothing usable was there).
    pub fn open(path: &Path, key: &RunKey) -> Result<(Self, Found)> {
        let found = match std::fs::read(path) {
            Ok(bytes) => read(&bytes, key),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Found::Nothing, 0),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let (found, keep) = found;
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let mut log = CellLog { path: path.to_path_buf(), file };
        log.file.set_len(keep as u64).with_context(|| format!("truncating {}", path.display()))?;
        log.file.seek(SeekFrom::End(0))?;
        if keep == 0 {
            let header = Header { accessatlas_suggest_run: VERSION, key: key.clone() };
            log.line(&serde_json::to_string(&header)?)?;
        }
        Ok((log, found))
    }

    /// Appends a finished cell and syncs it to disk.
    pub fn append(&mut self, cell: &CellResult) -> Result<()> {
        self.line(&serde_json::to_string(&CellLine::of(cell))?)
    }

    fn line(&mut self, json: &str) -> Result<()> {
        let mut bytes = json.as_bytes().to_vec();
        bytes.push(b'\n');
        self.file
            .write_all(&bytes)
            .and_then(|()| self.file.sync_data())
            .with_context(|| format!("writing {}", self.path.display()))
    }

    /// The record's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The run is done and its output written: the record goes.
    pub fn finish(self) -> Result<()> {
        drop(self.file);
        std::fs::remove_file(&self.path)
            .with_context(|| format!("removing {}", self.path.display()))
    }
}

/// What `bytes` hold for the run `key`, and how many of them to keep (0: start afresh).
fn read(bytes: &[u8], key: &RunKey) -> (Found, usize) {
    let mut lines = complete_lines(bytes);
    let Some((first, mut end)) = lines.next() else {
        return (Found::Unreadable("it is empty or its first line is cut off".into()), 0);
    };
    let header: Header = match serde_json::from_slice(first) {
        Ok(h) => h,
        Err(e) => return (Found::Unreadable(format!("line 1 is not a run's header: {e}")), 0),
    };
    if header.accessatlas_suggest_run != VERSION {
        let v = header.accessatlas_suggest_run;
        return (Found::Unreadable(format!("line 1: record version {v}, not {VERSION}")), 0);
    }
    let d = header.key.differences(key);
    if !d.is_empty() {
        return (Found::OtherRun(d), 0);
    }
    let mut cells = Vec::new();
    let mut cut_off = false;
    for (line, line_end) in lines {
        match serde_json::from_slice::<CellLine>(line).ok().and_then(CellLine::into_result) {
            Some(c) => {
                cells.push(c);
                end = line_end;
            }
            None => {
                cut_off = true;
                break;
            }
        }
    }
    // Bytes after the last newline: a line the stop cut off.
    cut_off |= end < bytes.len();
    (Found::Resumed { cells, cut_off }, end)
}

/// The lines of `bytes` that end in a newline, each with the offset just past it.
fn complete_lines(bytes: &[u8]) -> impl Iterator<Item = (&[u8], usize)> {
    let mut start = 0;
    std::iter::from_fn(move || {
        let nl = bytes[start..].iter().position(|&b| b == b'\n')?;
        let line = &bytes[start..start + nl];
        start += nl + 1;
        Some((line, start))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> RunKey {
        RunKey {
            bbox: "24.9,60.1,25,60.2".into(),
            threshold: Some(0.3),
            cell_zoom: 16,
            model: "abc".into(),
            osm: "bundled (10 nodes)".into(),
        }
    }

    fn cell(x: u32) -> CellResult {
        let labels = model_core::LabelVocab::with_none();
        let logits: Vec<f32> = (0..labels.len()).map(|k| k as f32 * 0.37).collect();
        CellResult {
            cell: TileId { z: 16, x, y: 7 },
            candidates: 5,
            already_mapped: 1,
            outside_trained_area: 0,
            suggestions: vec![Suggestion {
                // Coordinates whose last bit serde_json's float reading may miss.
                candidate: Candidate {
                    lat: (60.168_684_1 + f64::from(x) * 1e-9).next_up(),
                    lon: 24.937_090_65_f64.next_down(),
                    kinds: vec![CandidateKind::Facade],
                },
                prediction: Prediction::from_logits(&logits, &labels, 1.0),
            }],
        }
    }

    fn cells(found: &Found) -> Vec<u32> {
        match found {
            Found::Resumed { cells, .. } => cells.iter().map(|c| c.cell.x).collect(),
            other => panic!("{other:?}"),
        }
    }

    /// Cells appended are read back by the same run; a line cut off midway is dropped and
    /// the record truncated before it, so the next append makes a whole record again.
    #[test]
    fn the_same_run_resumes_and_a_cut_off_line_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.csv.partial");
        let (mut log, found) = CellLog::open(&path, &key()).unwrap();
        assert!(matches!(found, Found::Nothing));
        log.append(&cell(1)).unwrap();
        log.append(&cell(2)).unwrap();
        drop(log);
        // A stop in the middle of the third line.
        let whole = std::fs::read(&path).unwrap();
        let third = serde_json::to_string(&CellLine::of(&cell(3))).unwrap();
        let mut cut = whole.clone();
        cut.extend_from_slice(&third.as_bytes()[..third.len() / 2]);
        std::fs::write(&path, &cut).unwrap();

        let (mut log, found) = CellLog::open(&path, &key()).unwrap();
        assert!(matches!(found, Found::Resumed { cut_off: true, .. }), "{found:?}");
        assert_eq!(cells(&found), [1, 2]);
        assert_eq!(std::fs::read(&path).unwrap(), whole, "the cut-off line is gone");
        log.append(&cell(3)).unwrap();
        drop(log);
        let (_, found) = CellLog::open(&path, &key()).unwrap();
        assert!(matches!(found, Found::Resumed { cut_off: false, .. }), "{found:?}");
        assert_eq!(cells(&found), [1, 2, 3]);
        let Found::Resumed { cells: back, .. } = found else { unreachable!() };
        for (b, x) in back.iter().zip([1, 2, 3]) {
            let (got, want) = (&b.suggestions[0], &cell(x).suggestions[0]);
            assert_eq!(got.candidate, want.candidate, "coordinates back bit for bit");
            assert_eq!(got.prediction, want.prediction);
        }
    }

    /// Another run's record (other settings, named) and a file that is no record are
    /// replaced by a new record; finishing removes it.
    #[test]
    fn other_runs_and_stray_files_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.csv.partial");
        let (mut log, _) = CellLog::open(&path, &key()).unwrap();
        log.append(&cell(1)).unwrap();
        drop(log);
        let other = RunKey { threshold: None, model: "def".into(), ..key() };
        let (log, found) = CellLog::open(&path, &other).unwrap();
        assert!(matches!(&found, Found::OtherRun(d) if d == &["threshold", "model"]), "{found:?}");
        drop(log);
        let (_, found) = CellLog::open(&path, &other).unwrap();
        assert_eq!(cells(&found), Vec::<u32>::new(), "the new record has no cells yet");

        std::fs::write(&path, "lat,lon\n1,2\n").unwrap();
        let (log, found) = CellLog::open(&path, &key()).unwrap();
        assert!(matches!(&found, Found::Unreadable(w) if w.contains("line 1")), "{found:?}");
        log.finish().unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn the_record_sits_beside_the_output() {
        assert_eq!(partial_path(Path::new("out/s.csv")), Path::new("out/s.csv.partial"));
    }
}
