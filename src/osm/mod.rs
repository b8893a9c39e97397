//! Reading OpenStreetMap PBF extracts: the map the renderer draws and the labelled features
//! collect turns into tags.

pub mod nodes;
pub mod rules;
pub mod tags;

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use model_core::data::candidates::{GeoNode, GeoWay, Geometry, MappedFeature};
use model_core::data::tile::BBox;
use osmpbf::{Element, RelMemberType};

/// The bundled extract of central Helsinki (© OpenStreetMap contributors, ODbL 1.0): what
/// `collect` labels and `serve` renders when no `--osm` is given.
pub const BUNDLED_OSM: &[u8] = include_bytes!("../../assets/osm/helsinki.osm.pbf");
pub const BUNDLED_OSM_NAME: &str = "assets/osm/helsinki.osm.pbf (bundled)";

/// Every bundled extract, relative to the repository root, sorted as `cargo xtask reference`
/// lists `assets/osm/` (the order makes the split): the regions the shipped model is trained
/// on (`cargo run --release` with no `--osm`).
pub const BUNDLED_EXTRACTS: [&str; 4] = [
    "assets/osm/andorra.osm.pbf",
    "assets/osm/helsinki.osm.pbf",
    "assets/osm/liechtenstein.osm.pbf",
    "assets/osm/monaco.osm.pbf",
];

pub use tags::Tags;

#[derive(Debug, Clone)]
pub struct Way {
    pub id: i64,
    pub tags: Tags,
    pub nodes: Vec<i64>,
}

/// A `type=multipolygon` relation: its outer and inner member ways.
#[derive(Debug, Clone)]
pub struct Multipolygon {
    pub id: i64,
    pub tags: Tags,
    pub outer: Vec<i64>,
    pub inner: Vec<i64>,
}

/// A tagged node.
#[derive(Debug, Clone)]
pub struct TaggedNode {
    pub id: i64,
    pub lat: f64,
    pub lon: f64,
    pub tags: Tags,
}

/// Everything of an extract that AccessAtlas uses, in memory.
#[derive(Debug, Default)]
pub struct OsmMap {
    /// Every node's `(lat, lon)`.
    pub coords: nodes::NodeCoords,
    pub tagged_nodes: Vec<TaggedNode>,
    pub ways: Vec<Way>,
    /// Indices into `ways` in ascending way id ([`OsmMap::way`] searches it); kept by
    /// [`OsmMap::index_ways`]. 4 bytes a way, where a hash map takes 20 or more.
    ways_by_id: Vec<u32>,
    pub multipolygons: Vec<Multipolygon>,
}

/// Every OSM key the renderer's style (`render::style`) reads; the style checks each read
/// against it in debug builds. Kept here, beside the reader that keeps these keys, so the map
/// does not depend on the renderer.
pub const STYLE_KEYS: &[&str] = &[
    "amenity",
    "area",
    "barrier",
    "building",
    "building:part",
    "highway",
    "landuse",
    "leisure",
    "natural",
    "place",
    "railway",
    "waterway",
];

/// Which tags reading keeps: every tag of an element the rules give a type (a feature: its OSM
/// tags go to `/api/features` and to the "never surveyed" view), and of every other element
/// only the keys something reads (the rules, the renderer's style, the candidate finder).
/// Names, addresses, opening hours and the like are most of an extract's tags and nothing
/// here reads them.
pub struct KeepTags {
    rules: rules::Rules,
    /// `None`: keep everything.
    keys: Option<std::collections::HashSet<String>>,
}

impl KeepTags {
    /// What `rules`, the style and the candidate finder read.
    pub fn for_rules(rules: &rules::Rules) -> Self {
        let mut keys: std::collections::HashSet<String> = rules.keys().map(String::from).collect();
        keys.extend(
            STYLE_KEYS.iter().chain(model_core::data::candidates::READ_KEYS).map(|k| k.to_string()),
        );
        keys.insert("type".into());
        Self { rules: rules.clone(), keys: Some(keys) }
    }

    /// For the default rules.
    pub fn default_rules() -> Result<Self> {
        Ok(Self::for_rules(&rules::Rules::default_rules(&model_core::LabelVocab::default())?))
    }

    /// Every tag of every element.
    pub fn everything() -> Result<Self> {
        Ok(Self { keys: None, ..Self::default_rules()? })
    }

    fn keep<'a>(
        &self,
        it: impl Iterator<Item = (&'a str, &'a str)>,
        strings: &mut tags::Interner,
    ) -> Tags {
        let pairs: Vec<(&str, &str)> = it.collect();
        let all = self.keys.is_none() || self.rules.classify(&pairs).is_some();
        strings.tags(
            pairs
                .into_iter()
                .filter(|(k, _)| all || self.keys.as_ref().is_some_and(|keys| keys.contains(*k))),
        )
    }
}

impl OsmMap {
    /// Reads a `.osm.pbf` file, keeping what the default rules need. Errors name the file.
    pub fn read(path: &Path) -> Result<Self> {
        Self::read_keeping(path, &KeepTags::default_rules()?)
    }

    /// Reads a `.osm.pbf` file, keeping the tags `keep` says.
    /// The file is never held whole: each decoding thread reads one blob at a time.
    pub fn read_keeping(path: &Path, keep: &KeepTags) -> Result<Self> {
        use std::io::{Read, Seek, SeekFrom};
        let origin = path.display().to_string();
        let open =
            || std::fs::File::open(path).with_context(|| format!("opening OSM extract {origin}"));
        let mut file = open()?;
        let len = file.metadata().with_context(|| format!("opening OSM extract {origin}"))?.len();
        let read_at = |file: &mut std::fs::File, pos: usize, n: usize| -> Result<Vec<u8>> {
            let mut buf = vec![0; n];
            file.seek(SeekFrom::Start(pos as u64))?;
            file.read_exact(&mut buf)?;
            Ok(buf)
        };
        let frames = frames_in(len as usize, |pos, n| read_at(&mut file, pos, n))
            .with_context(|| format!("reading OSM extract {origin}"))?;
        Self::decode(&frames, &origin, keep, || {
            let mut file = open()?;
            let origin = &origin;
            Ok(move |f: &Frame| -> Result<Vec<u8>> {
                read_at(&mut file, f.start, f.end - f.start).with_context(|| {
                    format!("reading OSM extract {origin} at byte offset {}", f.start)
                })
            })
        })
    }

    /// The extract at `path`, or the bundled one; with the name logs and errors use.
    pub fn open(path: Option<&Path>) -> Result<(Self, String)> {
        Self::open_keeping(path, &KeepTags::default_rules()?)
    }

    /// [`OsmMap::open`], keeping the tags `keep` says.
    pub fn open_keeping(path: Option<&Path>, keep: &KeepTags) -> Result<(Self, String)> {
        match path {
            Some(p) => Ok((Self::read_keeping(p, keep)?, p.display().to_string())),
            None => Ok((
                Self::from_bytes_keeping(BUNDLED_OSM, BUNDLED_OSM_NAME, keep)?,
                BUNDLED_OSM_NAME.into(),
            )),
        }
    }

    /// Reads PBF bytes, keeping what the default rules need; `origin` names them in errors.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Self> {
        Self::from_bytes_keeping(bytes, origin, &KeepTags::default_rules()?)
    }

    /// Reads PBF bytes; `origin` names them in errors. The file's framing is checked first
    /// ([`frames`]), so a truncated or corrupt file is an error naming the byte offset of the
    /// bad blob, never a silently shorter map.
    pub fn from_bytes_keeping(bytes: &[u8], origin: &str, keep: &KeepTags) -> Result<Self> {
        let frames = frames(bytes).with_context(|| format!("reading OSM extract {origin}"))?;
        Self::decode(&frames, origin, keep, || {
            Ok(|f: &Frame| -> Result<Vec<u8>> { Ok(bytes[f.start..f.end].to_vec()) })
        })
    }

    /// Decodes `frames` on every core, each thread a contiguous run of them reading one blob at
    /// a time through its own reader (`reader()`); the parts join in file order, so the map is
    /// the same as a sequential read's.
    fn decode<R>(
        frames: &[Frame],
        origin: &str,
        keep: &KeepTags,
        reader: impl Fn() -> Result<R> + Sync,
    ) -> Result<Self>
    where
        R: FnMut(&Frame) -> Result<Vec<u8>>,
    {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per = frames.len().div_ceil(threads.max(1)).max(1);
        let total = frames.last().map_or(0, |f| f.end);
        let bar =
            if total >= 16 << 20 { ProgressBar::new(total as u64) } else { ProgressBar::hidden() };
        bar.set_style(
            ProgressStyle::with_template("reading {bar:40} {bytes}/{total_bytes} {bytes_per_sec}")
                .expect("valid template"),
        );
        let parts: Vec<Result<OsmMap>> = std::thread::scope(|s| {
            let handles: Vec<_> = frames
                .chunks(per)
                .map(|run| {
                    let (bar, reader) = (&bar, &reader);
                    s.spawn(move || -> Result<OsmMap> {
                        let mut read = reader()?;
                        let mut map = OsmMap::default();
                        let mut strings = tags::Interner::default();
                        for f in run {
                            let blob = read(f)?;
                            map.add_blob(&blob, keep, &mut strings).with_context(|| {
                                format!(
                                    "reading OSM extract {origin}: corrupt blob at byte offset {}",
                                    f.start
                                )
                            })?;
                            bar.inc((f.end - f.start) as u64);
                        }
                        Ok(map)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("decoding does not panic")).collect()
        });
        bar.finish_and_clear();
        let mut map = OsmMap::default();
        for part in parts {
            map.append(part?);
        }
        map.index_ways();
        // The decoding threads' buffers are freed but held by their arenas.
        crate::memory::release_freed();
        Ok(map)
    }

    /// Decodes one blob (its length prefix, header and data) into the map.
    fn add_blob(
        &mut self,
        blob: &[u8],
        keep: &KeepTags,
        strings: &mut tags::Interner,
    ) -> Result<()> {
        for b in osmpbf::BlobReader::new(blob) {
            if let osmpbf::BlobDecode::OsmData(block) = b?.decode()? {
                block.for_each_element(|el| self.add_element(el, keep, strings));
            }
        }
        Ok(())
    }

    /// `other`'s elements after this map's (the next part of the same file).
    fn append(&mut self, other: OsmMap) {
        if self.ways.is_empty() && self.coords.is_empty() && self.multipolygons.is_empty() {
            *self = other;
            return;
        }
        self.coords.append(other.coords);
        self.tagged_nodes.extend(other.tagged_nodes);
        self.ways.extend(other.ways);
        self.multipolygons.extend(other.multipolygons);
    }

    fn add_element(&mut self, el: Element<'_>, keep: &KeepTags, strings: &mut tags::Interner) {
        match el {
            Element::Node(n) => {
                self.add_node(n.id(), n.lat(), n.lon(), keep.keep(n.tags(), strings))
            }
            Element::DenseNode(n) => {
                self.add_node(n.id(), n.lat(), n.lon(), keep.keep(n.tags(), strings))
            }
            Element::Way(w) => {
                let tags = keep.keep(w.tags(), strings);
                let mut nodes: Vec<i64> = w.refs().collect();
                nodes.shrink_to_fit();
                self.ways.push(Way { id: w.id(), tags, nodes });
            }
            Element::Relation(r) => {
                if !r.tags().any(|(k, v)| k == "type" && v == "multipolygon") {
                    return;
                }
                let tags = keep.keep(r.tags(), strings);
                let (mut outer, mut inner) = (Vec::new(), Vec::new());
                for m in r.members() {
                    if m.member_type != RelMemberType::Way {
                        continue;
                    }
                    match m.role() {
                        Ok("inner") => inner.push(m.member_id),
                        _ => outer.push(m.member_id),
                    }
                }
                self.multipolygons.push(Multipolygon { id: r.id(), tags, outer, inner });
            }
        }
    }

    fn add_node(&mut self, id: i64, lat: f64, lon: f64, tags: Tags) {
        self.coords.insert(id, (lat, lon));
        if !tags.is_empty() {
            self.tagged_nodes.push(TaggedNode { id, lat, lon, tags });
        }
    }

    /// Coordinates of a way's nodes (nodes missing from the extract are skipped).
    pub fn way_coords(&self, way: &Way) -> Vec<(f64, f64)> {
        way.nodes.iter().filter_map(|n| self.coords.get(n)).collect()
    }

    pub fn way(&self, id: i64) -> Option<&Way> {
        let found = self.ways_by_id.binary_search_by_key(&id, |&i| self.ways[i as usize].id);
        found.ok().map(|k| &self.ways[self.ways_by_id[k] as usize])
    }

    /// Files `ways` by id for [`OsmMap::way`]: call after changing `ways`. Files list ways in
    /// id order, so this is usually one pass over an already sorted list.
    pub fn index_ways(&mut self) {
        let ways = &self.ways;
        assert!(u32::try_from(ways.len()).is_ok(), "more than 2^32 ways");
        let mut order: Vec<u32> = (0..ways.len() as u32).collect();
        order.sort_by_key(|&i| ways[i as usize].id);
        self.ways_by_id = order;
    }

    /// A representative point of a way: the vertex mean of a closed way, the middle node of an
    /// open one.
    pub fn way_point(&self, way: &Way) -> Option<(f64, f64)> {
        let c = self.way_coords(way);
        if c.is_empty() {
            return None;
        }
        let closed = way.nodes.len() > 3 && way.nodes.first() == way.nodes.last();
        if closed {
            let pts = &c[..c.len() - 1];
            let n = pts.len() as f64;
            let (la, lo) = pts.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
            Some((la / n, lo / n))
        } else {
            Some(c[c.len() / 2])
        }
    }
}

impl OsmMap {
    /// The map as if the features `ids` (`node/<id>`, `way/<id>`) had never been surveyed:
    /// each loses its accessibility tags (`is_accessibility(key, value)`); one left with no
    /// tag is deleted, and a deleted node is dropped from its ways. Other elements are kept
    /// as they are.
    pub fn without_features(
        &self,
        ids: &std::collections::HashSet<String>,
        is_accessibility: impl Fn(&str, &str) -> bool,
    ) -> OsmMap {
        let strip = |tags: &Tags| -> Tags { tags.filtered(|k, v| !is_accessibility(k, v)) };
        let mut out = OsmMap {
            coords: self.coords.clone(),
            multipolygons: self.multipolygons.clone(),
            ..OsmMap::default()
        };
        let mut deleted = std::collections::HashSet::new();
        for n in &self.tagged_nodes {
            if !ids.contains(&format!("node/{}", n.id)) {
                out.tagged_nodes.push(n.clone());
                continue;
            }
            let tags = strip(&n.tags);
            if tags.is_empty() {
                deleted.insert(n.id);
            } else {
                out.tagged_nodes.push(TaggedNode { tags, ..n.clone() });
            }
        }
        if !deleted.is_empty() {
            out.coords.retain(|id| !deleted.contains(&id));
        }
        for w in &self.ways {
            let mut w = w.clone();
            if ids.contains(&format!("way/{}", w.id)) {
                w.tags = strip(&w.tags);
                if w.tags.is_empty() {
                    continue;
                }
            }
            if !deleted.is_empty() {
                w.nodes.retain(|n| !deleted.contains(n));
            }
            out.ways.push(w);
        }
        out.index_ways();
        out
    }
}

/// One blob of a PBF file: `bytes[start..end]` holds its length prefix, header and data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub start: usize,
    pub end: usize,
}

/// The blobs of a PBF file, from its framing alone (a 4-byte big-endian header length, a
/// `BlobHeader` whose field 3 is the data size, the data): an error names the byte offset
/// where the file is truncated or stops being PBF.
pub fn frames(bytes: &[u8]) -> Result<Vec<Frame>> {
    frames_in(bytes.len(), |pos, n| Ok(bytes[pos..pos + n].to_vec()))
}

/// [`frames`] of a source of `len` bytes that `read(pos, n)` reads from (`pos + n <= len`).
fn frames_in(
    len: usize,
    mut read: impl FnMut(usize, usize) -> Result<Vec<u8>>,
) -> Result<Vec<Frame>> {
    /// The limits of the PBF format (OSM wiki, PBF Format: 64 KiB headers, 32 MiB blobs).
    const MAX_HEADER: usize = 64 * 1024;
    const MAX_BLOB: usize = 32 * 1024 * 1024;
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < len {
        if pos + 4 > len {
            bail!("truncated at byte offset {pos}: {} stray bytes after the last blob", len - pos);
        }
        let prefix = read(pos, 4)?;
        let header_len = u32::from_be_bytes(prefix[..].try_into().expect("4 bytes")) as usize;
        if header_len == 0 || header_len > MAX_HEADER {
            bail!("not a PBF blob at byte offset {pos}: header length {header_len}");
        }
        if pos + 4 + header_len > len {
            bail!(
                "truncated at byte offset {pos}: the blob header needs {header_len} bytes, the file ends at {len}"
            );
        }
        let header = read(pos + 4, header_len)?;
        let data_len = blob_data_size(&header)
            .with_context(|| format!("not a PBF blob header at byte offset {pos}"))?;
        if data_len > MAX_BLOB {
            bail!("not a PBF blob at byte offset {pos}: data size {data_len}");
        }
        let end = pos + 4 + header_len + data_len;
        if end > len {
            bail!(
                "truncated at byte offset {pos}: the blob there needs {} bytes, the file ends at {len}",
                end - pos
            );
        }
        out.push(Frame { start: pos, end });
        pos = end;
    }
    Ok(out)
}

/// Field 3 (`datasize`, a varint) of a `BlobHeader`; fields 1 and 2 are length-delimited.
fn blob_data_size(mut h: &[u8]) -> Result<usize> {
    fn varint(h: &mut &[u8]) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = h.split_first().context("varint runs past the header")?;
            *h = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        bail!("varint longer than 10 bytes")
    }
    let mut size = None;
    while !h.is_empty() {
        let key = varint(&mut h)?;
        match (key >> 3, key & 7) {
            (3, 0) => size = Some(varint(&mut h)? as usize),
            (_, 0) => {
                varint(&mut h)?;
            }
            (_, 2) => {
                let n = varint(&mut h)? as usize;
                anyhow::ensure!(n <= h.len(), "field runs past the header");
                h = &h[n..];
            }
            (f, w) => bail!("unexpected field {f} of wire type {w}"),
        }
    }
    size.context("no data size")
}

/// The region of the bundled extract.
pub const BUNDLED_REGION: &str = "helsinki";

/// The extracts `--osm` names, folders expanded to their `*.pbf` files (sorted), each with its
/// region: the file name without `.osm.pbf`/`.pbf`. None: the bundled extract.
pub fn extracts(osm: &[std::path::PathBuf]) -> Result<Vec<(Option<std::path::PathBuf>, String)>> {
    if osm.is_empty() {
        return Ok(vec![(None, BUNDLED_REGION.to_string())]);
    }
    let mut out: Vec<(Option<std::path::PathBuf>, String)> = Vec::new();
    for p in osm {
        let files = if p.is_dir() {
            let mut f: Vec<std::path::PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("--osm {}: reading the folder", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "pbf"))
                .collect();
            f.sort();
            if f.is_empty() {
                bail!("--osm {}: the folder holds no .pbf file", p.display());
            }
            f
        } else {
            vec![p.clone()]
        };
        for f in files {
            let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let region = name
                .strip_suffix(".osm.pbf")
                .or_else(|| name.strip_suffix(".pbf"))
                .unwrap_or(&name)
                .to_string();
            if out.iter().any(|(_, r)| *r == region) {
                bail!(
                    "--osm {}: a second extract named `{region}` (regions are file names)",
                    f.display()
                );
            }
            out.push((Some(f), region));
        }
    }
    Ok(out)
}

/// One OSM element that a rule labelled.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    /// `node/<id>` or `way/<id>`.
    pub id: String,
    pub lat: f64,
    pub lon: f64,
    pub label: String,
    /// The element's OSM tags.
    pub tags: Tags,
    /// A way's nodes as `[lat, lon]` (empty for a node): what the "already mapped" rule
    /// measures to.
    pub line: Vec<[f64; 2]>,
}

fn as_refs(t: &Tags) -> Vec<(&str, &str)> {
    t.iter().collect()
}

/// The part of the map in `bbox`, as model-core's candidate finder reads it: every way with a
/// node inside (all its nodes), every tagged node inside.
pub fn geometry_in(map: &OsmMap, bbox: &BBox) -> Geometry {
    let outlines = building_outlines(map);
    geometry_among(map, bbox, &outlines, 0..map.ways.len(), 0..map.tagged_nodes.len())
}

/// The `building` value of each way that is an outer ring of a multipolygon building: those
/// outlines carry their relation's tag in the candidate finder's geometry, so it sees them as
/// buildings.
fn building_outlines(map: &OsmMap) -> HashMap<i64, String> {
    let mut out = HashMap::new();
    for r in &map.multipolygons {
        if let Some(b) = r.tags.get("building") {
            for &o in &r.outer {
                out.insert(o, b.to_string());
            }
        }
    }
    out
}

/// [`geometry_in`] looking only at the ways and tagged nodes listed (indices, ascending): the
/// same result when the lists hold every element near `bbox`.
fn geometry_among(
    map: &OsmMap,
    bbox: &BBox,
    building_of: &HashMap<i64, String>,
    ways: impl Iterator<Item = usize>,
    nodes: impl Iterator<Item = usize>,
) -> Geometry {
    let inside = |id: &i64| map.coords.get(id).is_some_and(|(la, lo)| bbox.contains(la, lo));
    let ways = ways
        .map(|i| &map.ways[i])
        .filter(|w| w.nodes.iter().any(inside))
        .map(|w| GeoWay {
            id: w.id,
            tags: match building_of.get(&w.id) {
                Some(b) if w.tags.get("building").is_none() => {
                    w.tags.with("building", b).to_pairs()
                }
                _ => w.tags.to_pairs(),
            },
            nodes: w
                .nodes
                .iter()
                .filter_map(|n| map.coords.get(n).map(|(la, lo)| (*n, la, lo)))
                .collect(),
        })
        .collect();
    let nodes = nodes
        .map(|i| &map.tagged_nodes[i])
        .filter(|n| bbox.contains(n.lat, n.lon))
        .map(|n| GeoNode { id: n.id, lat: n.lat, lon: n.lon, tags: n.tags.to_pairs() })
        .collect();
    Geometry { nodes, ways }
}

/// The map's ways and tagged nodes filed by the tiles of one zoom level they come within
/// `margin_m` of: the geometry of one area (that tile, or any tile of a lower zoom: the union
/// of its children) without looking at the rest of the map, so work done area by area costs
/// what the areas hold, not areas x map.
pub struct AreaIndex {
    zoom: u8,
    margin_m: f64,
    ways: HashMap<(u32, u32), Vec<u32>>,
    nodes: HashMap<(u32, u32), Vec<u32>>,
    /// [`building_outlines`], found once for every area.
    outlines: HashMap<i64, String>,
}

/// An area: a tile `(x, y)` at a zoom.
pub type Area = (u8, (u32, u32));

impl AreaIndex {
    /// Files at `zoom` (the finest area it can answer for). `margin_m` must be smaller than a
    /// tile at that zoom.
    pub fn new(map: &OsmMap, zoom: u8, margin_m: f64) -> Self {
        let mut index = Self {
            zoom,
            margin_m,
            ways: HashMap::new(),
            nodes: HashMap::new(),
            outlines: building_outlines(map),
        };
        let mut tiles = Vec::with_capacity(4);
        for (i, w) in map.ways.iter().enumerate() {
            tiles.clear();
            for (lat, lon) in w.nodes.iter().filter_map(|n| map.coords.get(n)) {
                index.tiles_near(lat, lon, &mut tiles);
            }
            tiles.sort_unstable();
            tiles.dedup();
            for t in &tiles {
                index.ways.entry(*t).or_default().push(i as u32);
            }
        }
        for (i, n) in map.tagged_nodes.iter().enumerate() {
            tiles.clear();
            index.tiles_near(n.lat, n.lon, &mut tiles);
            tiles.sort_unstable();
            tiles.dedup();
            for t in &tiles {
                index.nodes.entry(*t).or_default().push(i as u32);
            }
        }
        index
    }

    /// The tiles within `margin_m` of a point (the corners of the box around it).
    fn tiles_near(&self, lat: f64, lon: f64, out: &mut Vec<(u32, u32)>) {
        let dlat = self.margin_m / 111_195.0;
        let dlon = dlat / lat.to_radians().cos().max(0.01);
        for (a, b) in [(-dlat, -dlon), (-dlat, dlon), (dlat, -dlon), (dlat, dlon)] {
            let (la, lo) = ((lat + a).clamp(-85.0, 85.0), (lon + b).clamp(-180.0, 179.999_999));
            if let Ok(t) = model_core::data::tile::lat_lon_to_tile(la, lo, self.zoom) {
                out.push((t.x, t.y));
            }
        }
    }

    /// What is filed under the index's tiles inside `area`: ascending, each once.
    fn filed(&self, of: &HashMap<(u32, u32), Vec<u32>>, (z, (x, y)): Area) -> Vec<usize> {
        assert!(z <= self.zoom, "area zoom {z} is finer than the index's {}", self.zoom);
        let k = 1u32 << (self.zoom - z);
        let mut out: Vec<usize> = Vec::new();
        for cx in x * k..(x + 1) * k {
            for cy in y * k..(y + 1) * k {
                out.extend(of.get(&(cx, cy)).into_iter().flatten().map(|&i| i as usize));
            }
        }
        if k > 1 {
            out.sort_unstable();
            out.dedup();
        }
        out
    }

    /// How many ways come within the margin of `area`: what its geometry will hold.
    pub fn ways_near(&self, area: Area) -> usize {
        self.filed(&self.ways, area).len()
    }

    /// [`geometry_in`] for `area` grown by the margin.
    pub fn geometry(&self, map: &OsmMap, area: Area) -> Result<Geometry> {
        let (z, (x, y)) = area;
        let (west, south, east, north) =
            model_core::data::tile::tile_bounds(model_core::data::tile::TileId { z, x, y })?;
        let dlat = self.margin_m / 111_195.0;
        let dlon = dlat / north.abs().max(south.abs()).to_radians().cos().max(0.01);
        let bbox = BBox {
            min_lon: west - dlon,
            min_lat: south - dlat,
            max_lon: east + dlon,
            max_lat: north + dlat,
        };
        let ways = self.filed(&self.ways, area).into_iter();
        let nodes = self.filed(&self.nodes, area).into_iter();
        Ok(geometry_among(map, &bbox, &self.outlines, ways, nodes))
    }
}

impl Labelled {
    /// The feature as the "already mapped" rule reads it.
    pub fn mapped(&self) -> MappedFeature {
        MappedFeature {
            id: self.id.clone(),
            label: self.label.clone(),
            lat: self.lat,
            lon: self.lon,
            line: self.line.clone(),
        }
    }
}

/// The features the rules give a type, as the "already mapped" rule reads them.
pub fn mapped_features(map: &OsmMap, rules: &rules::Rules) -> Vec<MappedFeature> {
    labelled_features(map, rules).iter().map(Labelled::mapped).collect()
}

/// Applies the rules to every tagged node and way, in file order.
pub fn labelled_features(map: &OsmMap, rules: &rules::Rules) -> Vec<Labelled> {
    let mut out = Vec::new();
    for n in &map.tagged_nodes {
        if let Some(label) = rules.classify(&as_refs(&n.tags)) {
            out.push(Labelled {
                id: format!("node/{}", n.id),
                lat: n.lat,
                lon: n.lon,
                label: label.into(),
                tags: n.tags.clone(),
                line: Vec::new(),
            });
        }
    }
    for w in &map.ways {
        if let Some(label) = rules.classify(&as_refs(&w.tags))
            && let Some((lat, lon)) = map.way_point(w)
        {
            out.push(Labelled {
                id: format!("way/{}", w.id),
                lat,
                lon,
                label: label.into(),
                tags: w.tags.clone(),
                line: map.way_coords(w).into_iter().map(|(la, lo)| [la, lo]).collect(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(t: &[&str]) -> Tags {
        t.iter().map(|kv| kv.split_once('=').unwrap()).collect()
    }

    #[test]
    fn an_area_from_the_index_equals_the_scan_of_the_whole_map() {
        let map = OsmMap::from_bytes(BUNDLED_OSM, "bundled").unwrap();
        let index = AreaIndex::new(&map, 16, 50.0);
        let scan = |(z, (x, y)): Area| {
            let (w, s, e, n) =
                model_core::data::tile::tile_bounds(model_core::data::tile::TileId { z, x, y })
                    .unwrap();
            let dlat = 50.0 / 111_195.0;
            let dlon = dlat / n.abs().max(s.abs()).to_radians().cos();
            geometry_in(
                &map,
                &BBox {
                    min_lon: w - dlon,
                    min_lat: s - dlat,
                    max_lon: e + dlon,
                    max_lat: n + dlat,
                },
            )
        };
        let mut areas = Vec::new();
        // Areas of the index's own zoom, and coarser ones answered from their children.
        for z in [16u8, 15, 14] {
            let t = model_core::data::tile::lat_lon_to_tile(60.1645, 24.936, z).unwrap();
            for y in 0..3u32 {
                for x in 0..3u32 {
                    areas.push((z, (t.x + x, t.y - 2 + y)));
                }
            }
        }
        let mut seen = 0;
        for area in areas {
            let (from_index, scanned) = (index.geometry(&map, area).unwrap(), scan(area));
            assert_eq!(from_index, scanned, "area {area:?}");
            assert!(index.ways_near(area) >= scanned.ways.len());
            seen += scanned.ways.len();
        }
        assert!(seen > 2000, "only {seen} ways in the areas tried");
    }

    #[test]
    fn the_parallel_read_equals_a_sequential_one() {
        let parallel = OsmMap::from_bytes(BUNDLED_OSM, "bundled").unwrap();
        let mut seq = OsmMap::default();
        let keep = KeepTags::default_rules().unwrap();
        for f in frames(BUNDLED_OSM).unwrap() {
            seq.add_blob(&BUNDLED_OSM[f.start..f.end], &keep, &mut tags::Interner::default())
                .unwrap();
        }
        assert_eq!(parallel.coords, seq.coords);
        seq.index_ways();
        assert_eq!(parallel.ways_by_id, seq.ways_by_id);
        let ids = |m: &OsmMap| -> (Vec<i64>, Vec<i64>, Vec<i64>) {
            (
                m.tagged_nodes.iter().map(|n| n.id).collect(),
                m.ways.iter().map(|w| w.id).collect(),
                m.multipolygons.iter().map(|r| r.id).collect(),
            )
        };
        let same_ways = |a: &OsmMap, b: &OsmMap| {
            a.ways.iter().zip(&b.ways).all(|(a, b)| a.nodes == b.nodes && a.tags == b.tags)
        };
        assert_eq!(ids(&parallel), ids(&seq));
        assert!(same_ways(&parallel, &seq));
        // Two or more parts really were joined (the extract has several blobs of ways).
        assert!(frames(BUNDLED_OSM).unwrap().len() >= 4);
        // A file, read blob by blob, gives the same map as its bytes.
        let path = std::env::temp_dir().join(format!("aa-osm-read-{}.pbf", std::process::id()));
        std::fs::write(&path, BUNDLED_OSM).unwrap();
        let from_file = OsmMap::read(&path).unwrap();
        std::fs::remove_file(&path).ok();
        assert_eq!(from_file.coords, parallel.coords);
        assert_eq!(ids(&from_file), ids(&parallel));
        assert!(same_ways(&from_file, &parallel));
    }

    #[test]
    fn framing_finds_every_blob_and_names_where_a_file_breaks() {
        let all = frames(BUNDLED_OSM).unwrap();
        assert!(all.len() > 2);
        assert_eq!(all[0].start, 0);
        assert_eq!(all.last().unwrap().end, BUNDLED_OSM.len());
        assert!(all.windows(2).all(|w| w[0].end == w[1].start));
        // Cut anywhere inside the last blob, or inside the next one's length: the offset of
        // the blob that is cut short.
        let last = *all.last().unwrap();
        for cut in [last.start + 2, last.start + 10, last.end - 1] {
            let e = frames(&BUNDLED_OSM[..cut]).unwrap_err().to_string();
            assert!(e.contains(&format!("truncated at byte offset {}", last.start)), "{e}");
        }
        // Cut exactly between blobs: a shorter but well-formed file (the reader then sees
        // fewer elements; only the framing can be checked for such a cut).
        assert_eq!(frames(&BUNDLED_OSM[..last.start]).unwrap().len(), all.len() - 1);
        let e = frames(b"definitely not protobuf").unwrap_err().to_string();
        assert!(e.contains("byte offset 0"), "{e}");
        // Corrupt data inside a blob: the decoder's error names the blob.
        let mut bad = BUNDLED_OSM.to_vec();
        let mid = all[all.len() / 2];
        let half = (mid.start + mid.end) / 2;
        for b in &mut bad[half..half + 200] {
            *b ^= 0x5a;
        }
        let e = format!("{:#}", OsmMap::from_bytes(&bad, "x.pbf").unwrap_err());
        assert!(e.contains(&format!("x.pbf: corrupt blob at byte offset {}", mid.start)), "{e}");
    }

    #[test]
    fn removing_features_deletes_bare_ones_and_strips_the_rest() {
        let mut map = OsmMap::default();
        for (id, t) in [
            (1, tags(&["barrier=kerb", "kerb=lowered"])),
            (2, tags(&["highway=crossing", "crossing=marked", "tactile_paving=yes"])),
            (3, tags(&["entrance=main", "ref=A"])),
            (4, tags(&["barrier=bollard"])),
        ] {
            map.add_node(id, 60.0 + id as f64 * 1e-4, 25.0, t);
        }
        map.add_node(5, 60.0, 25.001, Tags::new());
        map.ways.push(Way { id: 10, tags: tags(&["highway=footway"]), nodes: vec![1, 2, 4, 5] });
        map.ways.push(Way { id: 11, tags: tags(&["barrier=bollard"]), nodes: vec![5, 1] });
        map.index_ways();
        let rules = rules::Rules::default_rules(&model_core::LabelVocab::default()).unwrap();
        let ids: std::collections::HashSet<String> =
            ["node/1", "node/2", "node/3", "way/11"].map(String::from).into();
        let out = map.without_features(&ids, |k, v| rules.is_accessibility(k, v));
        let node = |id: i64| out.tagged_nodes.iter().find(|n| n.id == id).map(|n| n.tags.clone());
        // A kerb node is all accessibility tags: gone, from its way too.
        assert!(node(1).is_none() && !out.coords.contains_key(&1));
        assert_eq!(out.way(10).unwrap().nodes, vec![2, 4, 5]);
        // A crossing keeps what it is, loses its tactile paving.
        assert_eq!(node(2).unwrap(), tags(&["highway=crossing", "crossing=marked"]));
        // An entrance keeps its ref.
        assert_eq!(node(3).unwrap(), tags(&["ref=A"]));
        // Not asked for: untouched. A bare feature way: gone.
        assert_eq!(node(4).unwrap(), tags(&["barrier=bollard"]));
        assert!(out.way(11).is_none());
        // What the rules see afterwards: only the untouched bollard.
        let left = labelled_features(&out, &rules);
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0].id, "node/4");
    }
}
