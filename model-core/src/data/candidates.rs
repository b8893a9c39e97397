//! Candidate points for suggestions, from the map's own geometry: the places where
//! accessibility features occur. Where footways and crossings meet roads or sidewalks (kerbs,
//! tactile paving), where footways touch building outlines (entrances), the ends and junctions
//! of paths and where they cross barrier lines (obstacles), stations and platforms (elevators),
//! and the elements OSM itself marks as likely places but leaves without the accessibility
//! tags (crossing and kerb nodes, entrances), as StreetComplete's quests find them.
//!
//! No I/O: the caller hands in the geometry ([`Geometry`]); candidates closer than
//! [`MERGE_M`] merge, keeping every kind. [`nearest_mapped`] is the "already mapped" rule that
//! suggestions and `osm export` share.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::data::tile::distance_m;

/// A suggestion this close to a mapped feature of its type is not made ("already mapped"):
/// the CLI, the API and the page use this one value.
pub const ALREADY_MAPPED_M: f64 = 5.0;
/// Candidates closer than this merge into one.
pub const MERGE_M: f64 = 3.0;
/// A footway end this close to a building outline touches it.
pub const TOUCH_M: f64 = 2.0;
/// Spacing of facade candidates along a building outline.
pub const FACADE_STEP_M: f64 = 8.0;
/// A facade is a building outline this close to a path or road.
pub const FACADE_NEAR_M: f64 = 40.0;

/// A tagged node of the geometry.
#[derive(Debug, Clone, PartialEq)]
pub struct GeoNode {
    pub id: i64,
    pub lat: f64,
    pub lon: f64,
    pub tags: Vec<(String, String)>,
}

/// A way with its nodes' ids and coordinates, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct GeoWay {
    pub id: i64,
    pub tags: Vec<(String, String)>,
    pub nodes: Vec<(i64, f64, f64)>,
}

/// The part of a map candidates are found in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Geometry {
    pub nodes: Vec<GeoNode>,
    pub ways: Vec<GeoWay>,
}

/// Why a point is a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CandidateKind {
    /// A footway or crossing meets a road or a sidewalk: kerbs, tactile paving.
    Kerb,
    /// A footway touches a building outline: entrances.
    Entrance,
    /// The end or junction of paths, or a path through a barrier line: obstacles.
    PathNode,
    /// A station or platform: elevators.
    Station,
    /// A crossing node without `tactile_paving` or kerb information.
    MarkedCrossing,
    /// A kerb node without `kerb=*`.
    MarkedKerb,
    /// An entrance without `wheelchair=*`.
    MarkedEntrance,
    /// A path or road crossing, or ending at, a building outline or barrier line: gates,
    /// bollards, passages.
    Passage,
    /// A point of a building outline near a path or road, every [`FACADE_STEP_M`]: entrances
    /// that have no path drawn to them.
    Facade,
}

impl CandidateKind {
    pub fn name(self) -> &'static str {
        match self {
            CandidateKind::Kerb => "kerb",
            CandidateKind::Entrance => "entrance",
            CandidateKind::PathNode => "path_node",
            CandidateKind::Station => "station",
            CandidateKind::MarkedCrossing => "marked_crossing",
            CandidateKind::MarkedKerb => "marked_kerb",
            CandidateKind::MarkedEntrance => "marked_entrance",
            CandidateKind::Passage => "passage",
            CandidateKind::Facade => "facade",
        }
    }
}

/// A point worth asking the model about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub lat: f64,
    pub lon: f64,
    /// Every reason it was found for (merged candidates keep all), sorted.
    pub kinds: Vec<CandidateKind>,
}

impl Candidate {
    /// Its reasons, `+`-joined in order (e.g. `kerb+marked_crossing`): what the CSV's
    /// `candidate` column shows and what names its kind in the candidates' prior.
    pub fn reasons(&self) -> String {
        self.kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join("+")
    }
}

/// Every OSM key the candidate finder and the background sampler read. A map reader may drop
/// the other tags of elements that are not features (the tests' debug builds check each read
/// against this list).
pub const READ_KEYS: &[&str] = &[
    "area",
    "barrier",
    "building",
    "entrance",
    "footway",
    "highway",
    "kerb",
    "path",
    "public_transport",
    "railway",
    "tactile_paving",
    "wheelchair",
];

pub(crate) fn get<'a>(tags: &'a [(String, String)], key: &str) -> Option<&'a str> {
    debug_assert!(READ_KEYS.contains(&key), "candidates read `{key}`: list it in READ_KEYS");
    tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

pub(crate) fn is_footway(t: &[(String, String)]) -> bool {
    matches!(get(t, "highway"), Some("footway" | "path" | "pedestrian" | "steps" | "cycleway"))
}

pub(crate) fn is_crossing_way(t: &[(String, String)]) -> bool {
    get(t, "footway") == Some("crossing") || get(t, "path") == Some("crossing")
}

pub(crate) fn is_sidewalk(t: &[(String, String)]) -> bool {
    get(t, "footway") == Some("sidewalk")
}

pub(crate) fn is_road(t: &[(String, String)]) -> bool {
    matches!(
        get(t, "highway"),
        Some(
            "motorway"
                | "trunk"
                | "primary"
                | "secondary"
                | "tertiary"
                | "unclassified"
                | "residential"
                | "living_street"
                | "service"
                | "primary_link"
                | "secondary_link"
                | "tertiary_link"
        )
    )
}

pub(crate) fn is_building(w: &GeoWay) -> bool {
    get(&w.tags, "building").is_some_and(|v| v != "no")
        && w.nodes.len() > 3
        && w.nodes.first().map(|n| n.0) == w.nodes.last().map(|n| n.0)
}

fn is_barrier_line(t: &[(String, String)]) -> bool {
    matches!(get(t, "barrier"), Some("fence" | "wall" | "hedge" | "guard_rail" | "retaining_wall"))
}

/// Any line people or vehicles travel along (not an area).
fn is_travelled(t: &[(String, String)]) -> bool {
    get(t, "highway").is_some() && get(t, "area") != Some("yes")
}

fn is_station(t: &[(String, String)]) -> bool {
    matches!(get(t, "railway"), Some("station" | "platform" | "subway_entrance"))
        || matches!(get(t, "public_transport"), Some("station" | "platform"))
}

/// Distance in metres from `p` to the segment `a`-`b` (all `(lat, lon)`), on a local plane.
fn to_segment_m(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let k = p.0.to_radians().cos();
    let xy = |q: (f64, f64)| ((q.1 - p.1) * k, q.0 - p.0);
    let (ax, ay) = xy(a);
    let (bx, by) = xy(b);
    let (dx, dy) = (bx - ax, by - ay);
    let len2 = dx * dx + dy * dy;
    let t = if len2 == 0.0 { 0.0 } else { (-(ax * dx + ay * dy) / len2).clamp(0.0, 1.0) };
    let (cx, cy) = (ax + t * dx, ay + t * dy);
    // Degrees of latitude to metres.
    (cx * cx + cy * cy).sqrt() * 111_195.0
}

/// Items bucketed by latitude/longitude cells, for "what lies within r metres of here" over an
/// area of any size: a query looks only at the cells around it (its longitude reach widens
/// with the latitude's cosine), never at the whole area.
struct LatLonGrid<T> {
    /// Cell side in degrees (of latitude, and the same number of degrees of longitude).
    cell: f64,
    cells: HashMap<(i64, i64), Vec<T>>,
}

impl<T: Clone> LatLonGrid<T> {
    fn new(cell_m: f64) -> Self {
        Self { cell: cell_m / 111_195.0, cells: HashMap::new() }
    }
    fn key(&self, lat: f64, lon: f64) -> (i64, i64) {
        ((lat / self.cell).floor() as i64, (lon / self.cell).floor() as i64)
    }
    /// Files `item` under every cell the box `(lat0, lon0)`-`(lat1, lon1)` touches.
    fn insert(&mut self, (lat0, lon0): (f64, f64), (lat1, lon1): (f64, f64), item: T) {
        let (a, b) = self.key(lat0.min(lat1), lon0.min(lon1));
        let (c, d) = self.key(lat0.max(lat1), lon0.max(lon1));
        for i in a..=c {
            for j in b..=d {
                self.cells.entry((i, j)).or_default().push(item.clone());
            }
        }
    }
    /// Every item filed within `r_m` metres of the point (and some farther; may repeat).
    fn near(&self, lat: f64, lon: f64, r_m: f64) -> impl Iterator<Item = &T> {
        // 1.5x: a margin over the local-plane and great-circle distances alike.
        let dlat = r_m * 1.5 / 111_195.0;
        let dlon = dlat / lat.to_radians().cos().max(0.01);
        let (a, b) = self.key(lat - dlat, lon - dlon);
        let (c, d) = self.key(lat + dlat, lon + dlon);
        (a..=c)
            .flat_map(move |i| (b..=d).map(move |j| (i, j)))
            .filter_map(|k| self.cells.get(&k))
            .flatten()
    }
}

/// A node's place, and how many footways, crossings, roads or sidewalks, building outlines
/// and barrier lines it belongs to.
#[derive(Debug, Clone, Copy, Default)]
struct Roles {
    lat: f64,
    lon: f64,
    foot: u32,
    cross: u32,
    road: u32,
    building: u32,
    barrier: u32,
}

/// Every candidate of `g`, merged within [`MERGE_M`], in a stable order (by latitude, then
/// longitude).
pub fn candidates(g: &Geometry) -> Vec<Candidate> {
    let mut raw: Vec<(f64, f64, CandidateKind)> = Vec::new();
    // How many ways of each kind each node belongs to.
    let mut roles: HashMap<i64, Roles> = HashMap::new();
    for w in &g.ways {
        let t = &w.tags;
        let (foot, cross) = (is_footway(t) && !is_sidewalk(t), is_crossing_way(t));
        let road = is_road(t) || is_sidewalk(t);
        let (building, barrier) = (is_building(w), is_barrier_line(t));
        for &(id, lat, lon) in &w.nodes {
            let r = roles.entry(id).or_insert(Roles { lat, lon, ..Roles::default() });
            r.foot += u32::from(foot);
            r.cross += u32::from(cross);
            r.road += u32::from(road);
            r.building += u32::from(building);
            r.barrier += u32::from(barrier);
        }
        if is_station(t) && !w.nodes.is_empty() {
            let n = w.nodes.len() as f64;
            let lat = w.nodes.iter().map(|x| x.1).sum::<f64>() / n;
            let lon = w.nodes.iter().map(|x| x.2).sum::<f64>() / n;
            raw.push((lat, lon, CandidateKind::Station));
        }
    }
    for r in roles.values() {
        let walked = r.foot > 0 || r.cross > 0;
        if walked && r.road > 0 {
            raw.push((r.lat, r.lon, CandidateKind::Kerb));
        }
        if walked && r.building > 0 {
            raw.push((r.lat, r.lon, CandidateKind::Entrance));
        }
        if r.foot >= 2 || (r.foot > 0 && r.barrier > 0) {
            raw.push((r.lat, r.lon, CandidateKind::PathNode));
        }
    }
    // Crossing ends are kerbs; footway ends are path nodes, or entrances where they touch a
    // building without sharing a node.
    let mut outlines: LatLonGrid<((f64, f64), (f64, f64))> = LatLonGrid::new(50.0);
    for b in g.ways.iter().filter(|w| is_building(w)) {
        for s in b.nodes.windows(2) {
            let (p, q) = ((s[0].1, s[0].2), (s[1].1, s[1].2));
            outlines.insert(p, q, (p, q));
        }
    }
    for w in g.ways.iter().filter(|w| is_footway(&w.tags) || is_crossing_way(&w.tags)) {
        for end in [w.nodes.first(), w.nodes.last()].into_iter().flatten() {
            let p = (end.1, end.2);
            if is_crossing_way(&w.tags) {
                raw.push((p.0, p.1, CandidateKind::Kerb));
                continue;
            }
            raw.push((p.0, p.1, CandidateKind::PathNode));
            let touches =
                outlines.near(p.0, p.1, TOUCH_M).any(|&(a, b)| to_segment_m(p, a, b) <= TOUCH_M);
            if touches {
                raw.push((p.0, p.1, CandidateKind::Entrance));
            }
        }
    }
    for n in &g.nodes {
        let t = &n.tags;
        let kind = if get(t, "highway") == Some("crossing")
            && get(t, "tactile_paving").is_none()
            && get(t, "kerb").is_none()
        {
            Some(CandidateKind::MarkedCrossing)
        } else if get(t, "barrier") == Some("kerb") && get(t, "kerb").is_none() {
            Some(CandidateKind::MarkedKerb)
        } else if get(t, "entrance").is_some() && get(t, "wheelchair").is_none() {
            Some(CandidateKind::MarkedEntrance)
        } else if is_station(t) {
            Some(CandidateKind::Station)
        } else {
            None
        };
        if let Some(k) = kind {
            raw.push((n.lat, n.lon, k));
        }
    }
    passages_and_facades(g, &mut raw);
    merge(raw)
}

/// Local plane in metres around a reference latitude.
#[derive(Clone, Copy)]
struct Plane {
    k: f64,
}

impl Plane {
    const M_PER_DEG: f64 = 111_195.0;
    fn xy(self, lat: f64, lon: f64) -> (f64, f64) {
        (lon * self.k * Self::M_PER_DEG, lat * Self::M_PER_DEG)
    }
    fn lat_lon(self, x: f64, y: f64) -> (f64, f64) {
        (y / Self::M_PER_DEG, x / (self.k * Self::M_PER_DEG))
    }
}

type Seg = ((f64, f64), (f64, f64));

/// Segments bucketed on a square grid, for "which segments are near here".
struct SegmentGrid {
    cell: f64,
    cells: HashMap<(i64, i64), Vec<Seg>>,
}

impl SegmentGrid {
    fn new(cell: f64) -> Self {
        Self { cell, cells: HashMap::new() }
    }
    fn key(&self, x: f64, y: f64) -> (i64, i64) {
        ((x / self.cell).floor() as i64, (y / self.cell).floor() as i64)
    }
    fn insert(&mut self, s: Seg) {
        let (a, b) = self.key(s.0.0.min(s.1.0), s.0.1.min(s.1.1));
        let (c, d) = self.key(s.0.0.max(s.1.0), s.0.1.max(s.1.1));
        for i in a..=c {
            for j in b..=d {
                self.cells.entry((i, j)).or_default().push(s);
            }
        }
    }
    /// Segments in the cells within `r` of the box of `s` (may repeat).
    fn near(&self, s: Seg, r: f64) -> impl Iterator<Item = &Seg> {
        let (a, b) = self.key(s.0.0.min(s.1.0) - r, s.0.1.min(s.1.1) - r);
        let (c, d) = self.key(s.0.0.max(s.1.0) + r, s.0.1.max(s.1.1) + r);
        (a..=c)
            .flat_map(move |i| (b..=d).map(move |j| (i, j)))
            .filter_map(|k| self.cells.get(&k))
            .flatten()
    }
}

/// Where segments `p` and `q` cross, if they do.
fn crossing(p: Seg, q: Seg) -> Option<(f64, f64)> {
    let (r, s) = ((p.1.0 - p.0.0, p.1.1 - p.0.1), (q.1.0 - q.0.0, q.1.1 - q.0.1));
    let den = r.0 * s.1 - r.1 * s.0;
    if den.abs() < 1e-12 {
        return None;
    }
    let (dx, dy) = (q.0.0 - p.0.0, q.0.1 - p.0.1);
    let t = (dx * s.1 - dy * s.0) / den;
    let u = (dx * r.1 - dy * r.0) / den;
    ((0.0..=1.0).contains(&t) && (0.0..=1.0).contains(&u))
        .then_some((p.0.0 + t * r.0, p.0.1 + t * r.1))
}

/// Distance from point `p` to segment `s`, and the nearest point.
fn to_seg(p: (f64, f64), s: Seg) -> f64 {
    let (dx, dy) = (s.1.0 - s.0.0, s.1.1 - s.0.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 == 0.0 {
        0.0
    } else {
        (((p.0 - s.0.0) * dx + (p.1 - s.0.1) * dy) / len2).clamp(0.0, 1.0)
    };
    ((s.0.0 + t * dx - p.0).powi(2) + (s.0.1 + t * dy - p.1).powi(2)).sqrt()
}

/// [`CandidateKind::Passage`] and [`CandidateKind::Facade`] candidates: found on a local
/// plane with segment grids, so an area's cost grows with its size, not with its square.
fn passages_and_facades(g: &Geometry, raw: &mut Vec<(f64, f64, CandidateKind)>) {
    let Some(lat0) = g.ways.iter().flat_map(|w| w.nodes.first()).map(|n| n.1).next() else {
        return;
    };
    let plane = Plane { k: lat0.to_radians().cos().max(0.05) };
    let segs = |w: &GeoWay| -> Vec<Seg> {
        w.nodes.windows(2).map(|p| (plane.xy(p[0].1, p[0].2), plane.xy(p[1].1, p[1].2))).collect()
    };
    let mut travelled = SegmentGrid::new(40.0);
    let mut walls = SegmentGrid::new(40.0);
    let mut ends: Vec<(f64, f64)> = Vec::new();
    for w in &g.ways {
        if is_travelled(&w.tags) {
            for s in segs(w) {
                travelled.insert(s);
            }
            for n in [w.nodes.first(), w.nodes.last()].into_iter().flatten() {
                ends.push(plane.xy(n.1, n.2));
            }
        } else if is_building(w) || is_barrier_line(&w.tags) {
            for s in segs(w) {
                walls.insert(s);
            }
        }
    }
    let mut push = |(x, y): (f64, f64), k| {
        let (lat, lon) = plane.lat_lon(x, y);
        raw.push((lat, lon, k));
    };
    // Paths and roads through walls and outlines (shared nodes included: they cross there).
    for w in g.ways.iter().filter(|w| is_travelled(&w.tags)) {
        for s in segs(w) {
            for q in walls.near(s, 0.0) {
                if let Some(p) = crossing(s, *q) {
                    push(p, CandidateKind::Passage);
                }
            }
        }
    }
    // Paths and roads that end at a wall or outline.
    for &e in &ends {
        if walls.near((e, e), TOUCH_M).any(|q| to_seg(e, *q) <= TOUCH_M) {
            push(e, CandidateKind::Passage);
        }
    }
    // Facades: outline points near a path or road.
    for w in g.ways.iter().filter(|w| is_building(w)) {
        for s in segs(w) {
            let len = ((s.1.0 - s.0.0).powi(2) + (s.1.1 - s.0.1).powi(2)).sqrt();
            // (A side a hair over a whole number of steps is not worth one more point.)
            let n = (len / FACADE_STEP_M - 0.05).ceil().max(1.0) as usize;
            for i in 0..n {
                let f = (i as f64 + 0.5) / n as f64;
                let p = (s.0.0 + f * (s.1.0 - s.0.0), s.0.1 + f * (s.1.1 - s.0.1));
                let near =
                    travelled.near((p, p), FACADE_NEAR_M).any(|q| to_seg(p, *q) <= FACADE_NEAR_M);
                if near {
                    push(p, CandidateKind::Facade);
                }
            }
        }
    }
}

/// Merges points closer than [`MERGE_M`] (the first in latitude order keeps its place).
fn merge(mut raw: Vec<(f64, f64, CandidateKind)>) -> Vec<Candidate> {
    raw.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut out: Vec<Candidate> = Vec::new();
    let mut grid: LatLonGrid<u32> = LatLonGrid::new(4.0 * MERGE_M);
    for (lat, lon, kind) in raw {
        // The earliest kept point within reach (the latitude order's first).
        let hit = grid
            .near(lat, lon, MERGE_M)
            .copied()
            .filter(|&i| {
                let c = &out[i as usize];
                distance_m(c.lat, c.lon, lat, lon) < MERGE_M
            })
            .min();
        match hit {
            Some(i) => {
                let c = &mut out[i as usize];
                if !c.kinds.contains(&kind) {
                    c.kinds.push(kind);
                    c.kinds.sort();
                }
            }
            None => {
                grid.insert((lat, lon), (lat, lon), out.len() as u32);
                out.push(Candidate { lat, lon, kinds: vec![kind] });
            }
        }
    }
    out
}

/// A feature the map already has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MappedFeature {
    /// `node/123` or `way/456`.
    pub id: String,
    pub label: String,
    /// Its representative point (a way's middle node or centroid).
    pub lat: f64,
    pub lon: f64,
    /// A way's nodes as `[lat, lon]`, in order (a bollard row, a kerb line, an outline); empty
    /// for a node. The rule measures to the whole line, not to its one point.
    pub line: Vec<[f64; 2]>,
}

impl MappedFeature {
    /// Distance in metres from `lat`/`lon` to the feature's geometry: its point, or the
    /// nearest point of its line (segments measured in a local flat projection, exact to
    /// well under a centimetre at the few metres the rule cares about).
    pub fn distance_m(&self, lat: f64, lon: f64) -> f64 {
        let point = distance_m(lat, lon, self.lat, self.lon);
        if self.line.is_empty() {
            return point;
        }
        // Metres east and north of the query point.
        let k = 6_371_008.8f64.to_radians();
        let cos = lat.to_radians().cos();
        let xy = |p: &[f64; 2]| ((p[1] - lon) * k * cos, (p[0] - lat) * k);
        let mut best = point;
        if self.line.len() == 1 {
            let (x, y) = xy(&self.line[0]);
            return best.min(x.hypot(y));
        }
        for seg in self.line.windows(2) {
            let ((ax, ay), (bx, by)) = (xy(&seg[0]), xy(&seg[1]));
            let (dx, dy) = (bx - ax, by - ay);
            let len2 = dx * dx + dy * dy;
            let t = if len2 > 0.0 { (-(ax * dx + ay * dy) / len2).clamp(0.0, 1.0) } else { 0.0 };
            best = best.min((ax + t * dx).hypot(ay + t * dy));
        }
        best
    }
}

/// The nearest feature of type `label` within `radius_m` of the point, and its distance to the
/// feature's whole geometry ([`MappedFeature::distance_m`]): the "already mapped" rule
/// (exports and the page's tag form use [`crate::data::osm_edit::SAME_FEATURE_M`], suggestions
/// [`ALREADY_MAPPED_M`]).
pub fn nearest_mapped<'a>(
    mapped: &'a [MappedFeature],
    label: &str,
    lat: f64,
    lon: f64,
    radius_m: f64,
) -> Option<(&'a MappedFeature, f64)> {
    mapped
        .iter()
        .filter(|m| m.label == label)
        .map(|m| (m, m.distance_m(lat, lon)))
        .filter(|(_, d)| *d <= radius_m)
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(t: &[&str]) -> Vec<(String, String)> {
        t.iter()
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    fn way(id: i64, t: &[&str], nodes: &[(i64, f64, f64)]) -> GeoWay {
        GeoWay { id, tags: tags(t), nodes: nodes.to_vec() }
    }

    /// About one metre of latitude, in degrees.
    const M: f64 = 1.0 / 111_195.0;

    #[test]
    fn a_crossing_meeting_a_road_gives_a_kerb_candidate() {
        let (lat, lon) = (60.17, 24.94);
        let g = Geometry {
            nodes: vec![],
            ways: vec![
                way(
                    1,
                    &["highway=residential"],
                    &[(10, lat, lon - 0.001), (11, lat, lon), (12, lat, lon + 0.001)],
                ),
                way(
                    2,
                    &["highway=footway", "footway=crossing"],
                    &[(20, lat - 20.0 * M, lon), (11, lat, lon)],
                ),
            ],
        };
        let c = candidates(&g);
        let at_road = c
            .iter()
            .find(|c| distance_m(c.lat, c.lon, lat, lon) < 0.5)
            .expect("a candidate at the junction");
        assert!(at_road.kinds.contains(&CandidateKind::Kerb), "{at_road:?}");
        let far_end =
            c.iter().find(|c| distance_m(c.lat, c.lon, lat - 20.0 * M, lon) < 0.5).unwrap();
        assert_eq!(far_end.kinds, [CandidateKind::Kerb], "the crossing's other end is a kerb too");
        // The road alone gives nothing.
        assert!(candidates(&Geometry { nodes: vec![], ways: vec![g.ways[0].clone()] }).is_empty());
    }

    #[test]
    fn a_footway_touching_a_building_gives_an_entrance_candidate() {
        let (lat, lon) = (60.17, 24.94);
        let d = 10.0 * M;
        let house = way(
            1,
            &["building=yes"],
            &[
                (1, lat, lon),
                (2, lat, lon + 2.0 * d),
                (3, lat + d, lon + 2.0 * d),
                (4, lat + d, lon),
                (1, lat, lon),
            ],
        );
        // A footway ending 1 m south of the wall's middle, sharing no node with it.
        let end = (lat - 1.0 * M, lon + d);
        let path =
            way(2, &["highway=footway"], &[(30, lat - 30.0 * M, lon + d), (31, end.0, end.1)]);
        let c = candidates(&Geometry { nodes: vec![], ways: vec![house.clone(), path] });
        let door = c.iter().find(|c| distance_m(c.lat, c.lon, end.0, end.1) < 0.5).unwrap();
        assert!(door.kinds.contains(&CandidateKind::Entrance), "{door:?}");
        // 5 m away it does not touch.
        let far = way(
            3,
            &["highway=footway"],
            &[(40, lat - 30.0 * M, lon + d), (41, lat - 5.0 * M, lon + d)],
        );
        let c = candidates(&Geometry { nodes: vec![], ways: vec![house, far] });
        assert!(c.iter().all(|c| !c.kinds.contains(&CandidateKind::Entrance)), "{c:?}");
    }

    #[test]
    fn a_road_through_a_wall_is_a_passage_and_outlines_near_paths_are_facades() {
        let (lat, lon) = (60.17f64, 24.94f64);
        let k = lat.to_radians().cos();
        let east = |m: f64| lon + m * M / k;
        // A wall north-south at x = 0; a service road crossing it at y = 0 (no shared node).
        let wall = way(1, &["barrier=wall"], &[(1, lat - 20.0 * M, lon), (2, lat + 20.0 * M, lon)]);
        let road = way(2, &["highway=service"], &[(3, lat, east(-30.0)), (4, lat, east(30.0))]);
        // A 16 m house 10 m north of the road's east part, another 100 m away from any path.
        let square = |id: i64, y: f64, x: f64| {
            let n = |i: i64, dy: f64, dx: f64| (id * 10 + i, lat + (y + dy) * M, east(x + dx));
            way(
                id,
                &["building=yes"],
                &[n(1, 0., 0.), n(2, 0., 16.), n(3, 16., 16.), n(4, 16., 0.), n(1, 0., 0.)],
            )
        };
        let near = square(5, 10.0, 5.0);
        let far = square(6, 100.0, 100.0);
        let c = candidates(&Geometry { nodes: vec![], ways: vec![wall, road, near, far] });
        let gate = c.iter().find(|c| distance_m(c.lat, c.lon, lat, lon) < 0.5).unwrap();
        assert!(gate.kinds.contains(&CandidateKind::Passage), "{gate:?}");
        let facades: Vec<&Candidate> =
            c.iter().filter(|c| c.kinds.contains(&CandidateKind::Facade)).collect();
        // Two points per 16 m side (8 m apart), every side within 40 m of the road.
        assert_eq!(facades.len(), 8, "{facades:?}");
        assert!(facades.iter().all(|f| f.lat < lat + 30.0 * M), "the far house has none");
    }

    #[test]
    fn candidates_within_three_metres_merge_and_keep_their_kinds() {
        let (lat, lon) = (60.17, 24.94);
        let node =
            |id, dlat: f64, t: &[&str]| GeoNode { id, lat: lat + dlat * M, lon, tags: tags(t) };
        let g = Geometry {
            nodes: vec![
                node(1, 0.0, &["highway=crossing"]),
                node(2, 2.0, &["barrier=kerb"]),
                node(3, 10.0, &["entrance=yes"]),
                node(4, 20.0, &["entrance=yes", "wheelchair=yes"]),
                node(5, 30.0, &["barrier=kerb", "kerb=lowered"]),
            ],
            ways: vec![],
        };
        let c = candidates(&g);
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[0].kinds, [CandidateKind::MarkedCrossing, CandidateKind::MarkedKerb]);
        assert_eq!(c[1].kinds, [CandidateKind::MarkedEntrance]);
    }

    #[test]
    fn already_mapped_means_the_same_type_within_the_radius() {
        let f = |id: &str, label: &str, dlat: f64| MappedFeature {
            id: id.into(),
            label: label.into(),
            lat: 60.17 + dlat * M,
            lon: 24.94,
            line: Vec::new(),
        };
        let mapped =
            [f("node/1", "ramp", 4.0), f("node/2", "entrance", 1.0), f("node/3", "ramp", 2.0)];
        let (m, d) = nearest_mapped(&mapped, "ramp", 60.17, 24.94, 5.0).unwrap();
        assert_eq!(m.id, "node/3");
        assert!((d - 2.0).abs() < 0.05, "{d}");
        assert!(nearest_mapped(&mapped, "ramp", 60.17, 24.94, 1.5).is_none());
        assert!(nearest_mapped(&mapped, "elevator", 60.17, 24.94, 50.0).is_none());
    }

    /// A bollard row mapped as a way, 60 m long, its representative point at its middle node:
    /// a point 3 m beside the row's end is already mapped (it is 30 m from the middle), one
    /// 3 m past the end along the line too, one 8 m beside it is not.
    #[test]
    fn already_mapped_measures_to_a_lines_whole_geometry() {
        let lon_m = 1.0 / (111_195.0 * 60.17f64.to_radians().cos());
        let row = MappedFeature {
            id: "way/240859307".into(),
            label: "obstacle".into(),
            lat: 60.17,
            lon: 24.94,
            line: vec![
                [60.17, 24.94 - 30.0 * lon_m],
                [60.17, 24.94],
                [60.17, 24.94 + 30.0 * lon_m],
            ],
        };
        let beside_end = (60.17 + 3.0 * M, 24.94 + 29.0 * lon_m);
        let (m, d) =
            nearest_mapped(std::slice::from_ref(&row), "obstacle", beside_end.0, beside_end.1, 5.0)
                .expect("within 5 m of the line");
        assert_eq!(m.id, "way/240859307");
        assert!((d - 3.0).abs() < 0.05, "{d}");
        let past_end = (60.17, 24.94 + 33.0 * lon_m);
        assert!((row.distance_m(past_end.0, past_end.1) - 3.0).abs() < 0.05);
        let away = (60.17 + 8.0 * M, 24.94 + 10.0 * lon_m);
        assert!(
            nearest_mapped(std::slice::from_ref(&row), "obstacle", away.0, away.1, 5.0).is_none()
        );
        // The old rule, the representative point only, would have missed the first.
        let point_only = MappedFeature { line: Vec::new(), ..row.clone() };
        assert!(point_only.distance_m(beside_end.0, beside_end.1) > 25.0);
    }
}
