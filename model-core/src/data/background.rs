//! Background points: the examples of the `none` class ("no feature here"). Places where a
//! mapper could stand and where an accessibility feature could be but none is mapped, at least
//! [`MIN_DISTANCE_M`] from every mapped feature of any type: first the suggestion candidates
//! ([`crate::data::candidates`]: path ends and junctions, facades, passages...), the very
//! places the model is asked about when it suggests, so "no feature here" is learned where it
//! is needed; then, if more are wanted, points along footways, paths, pedestrian ways,
//! crossings and sidewalks, along building outlines, and at road edges.
//!
//! No I/O: the caller hands in the geometry and the features to keep away from. Sampling is
//! seeded, so the same extract gives the same points on every platform.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::data::candidates::{
    GeoWay, Geometry, candidates, get, is_building, is_crossing_way, is_footway, is_road,
    is_sidewalk,
};
use crate::data::tile::distance_m;
use crate::rng::Rng;

/// A background point is at least this far from every mapped feature.
pub const MIN_DISTANCE_M: f64 = 10.0;
/// Spacing of the places sampled along a way.
pub const STEP_M: f64 = 8.0;
/// How far beside a road's centre line its edge is taken to be.
pub const ROAD_EDGE_M: f64 = 5.0;

/// Where a background point lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaceKind {
    /// A suggestion candidate.
    Candidate,
    /// On a footway, path, pedestrian way, crossing or sidewalk.
    Walkway,
    /// On a building outline.
    Building,
    /// Beside a road, where its kerb would be.
    RoadEdge,
}

impl PlaceKind {
    pub fn name(self) -> &'static str {
        match self {
            PlaceKind::Candidate => "candidate",
            PlaceKind::Walkway => "walkway",
            PlaceKind::Building => "building",
            PlaceKind::RoadEdge => "road_edge",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackgroundPoint {
    pub lat: f64,
    pub lon: f64,
    pub kind: PlaceKind,
    /// The way it was sampled on (0 for a candidate).
    pub way: i64,
}

/// Points on a grid of `cell_m` metres, for "is anything within r" in constant time.
#[derive(Debug, Clone)]
pub struct PointIndex {
    cell_m: f64,
    cells: HashMap<(i64, i64), Vec<(f64, f64)>>,
}

impl PointIndex {
    pub fn new(points: impl IntoIterator<Item = (f64, f64)>, cell_m: f64) -> Self {
        let mut idx = Self { cell_m, cells: HashMap::new() };
        for p in points {
            idx.cells.entry(idx.cell(p.0, p.1)).or_default().push(p);
        }
        idx
    }

    fn cell(&self, lat: f64, lon: f64) -> (i64, i64) {
        // Equirectangular metres; the cosine of the latitude keeps cells square enough
        // everywhere the map is drawn (Web Mercator stops at 85°).
        let y = lat * 111_195.0;
        let x = lon * 111_195.0 * lat.to_radians().cos().max(0.05);
        ((x / self.cell_m).floor() as i64, (y / self.cell_m).floor() as i64)
    }

    /// Whether a point of the index lies within `r` metres (`r` at most the cell size).
    pub fn any_within(&self, lat: f64, lon: f64, r: f64) -> bool {
        debug_assert!(r <= self.cell_m);
        let (cx, cy) = self.cell(lat, lon);
        (-1..=1).any(|dx| {
            (-1..=1).any(|dy| {
                self.cells
                    .get(&(cx + dx, cy + dy))
                    .is_some_and(|v| v.iter().any(|&(la, lo)| distance_m(lat, lon, la, lo) < r))
            })
        })
    }
}

/// The places of one way, every [`STEP_M`] along it (road edges: both sides).
fn places_of(w: &GeoWay, out: &mut Vec<BackgroundPoint>) {
    let t = &w.tags;
    let kind = if is_footway(t)
        || is_crossing_way(t)
        || is_sidewalk(t)
        || get(t, "highway") == Some("pedestrian")
    {
        PlaceKind::Walkway
    } else if is_building(w) {
        PlaceKind::Building
    } else if is_road(t) {
        PlaceKind::RoadEdge
    } else {
        return;
    };
    let mut side = 1.0;
    for pair in w.nodes.windows(2) {
        let ((_, la0, lo0), (_, la1, lo1)) = (pair[0], pair[1]);
        let len = distance_m(la0, lo0, la1, lo1);
        if len <= 0.0 {
            continue;
        }
        let n = (len / STEP_M).ceil().max(1.0) as usize;
        for i in 0..n {
            let f = (i as f64 + 0.5) / n as f64;
            let (mut lat, mut lon) = (la0 + f * (la1 - la0), lo0 + f * (lo1 - lo0));
            if kind == PlaceKind::RoadEdge {
                // Perpendicular offset in metres, alternating sides.
                let k = lat.to_radians().cos().max(0.05);
                let (dx, dy) = ((lo1 - lo0) * k, la1 - la0);
                let norm = (dx * dx + dy * dy).sqrt();
                let off = ROAD_EDGE_M / 111_195.0 * side;
                lat += dx / norm * off;
                lon -= dy / norm * off / k;
                side = -side;
            }
            out.push(BackgroundPoint { lat, lon, kind, way: w.id });
        }
    }
}

/// Up to `n` background points of `geometry`, each at least [`MIN_DISTANCE_M`] from every
/// point of `avoid` and from each other, only where `keep` says yes (the caller keeps them
/// near its labelled points, so position alone cannot tell `none` apart). Seeded; in a stable
/// order.
pub fn background_points(
    geometry: &Geometry,
    avoid: &[(f64, f64)],
    n: usize,
    seed: u64,
    keep: impl Fn(f64, f64) -> bool,
) -> Vec<BackgroundPoint> {
    let avoid_idx = PointIndex::new(avoid.iter().copied(), MIN_DISTANCE_M);
    let usable = |p: &BackgroundPoint| {
        keep(p.lat, p.lon) && !avoid_idx.any_within(p.lat, p.lon, MIN_DISTANCE_M)
    };
    let mut rng = Rng::new(seed);
    let mut first: Vec<BackgroundPoint> = candidates(geometry)
        .into_iter()
        .map(|c| BackgroundPoint { lat: c.lat, lon: c.lon, kind: PlaceKind::Candidate, way: 0 })
        .filter(usable)
        .collect();
    rng.shuffle(&mut first);
    let mut then = Vec::new();
    for w in &geometry.ways {
        places_of(w, &mut then);
    }
    then.retain(usable);
    rng.shuffle(&mut then);
    let places = first.into_iter().chain(then);
    // Greedy: each chosen point keeps the next ones MIN_DISTANCE_M away (no near-duplicates).
    let mut chosen: Vec<BackgroundPoint> = Vec::with_capacity(n);
    let mut near = PointIndex::new(std::iter::empty(), MIN_DISTANCE_M);
    for p in places {
        if chosen.len() == n {
            break;
        }
        if near.any_within(p.lat, p.lon, MIN_DISTANCE_M) {
            continue;
        }
        let c = near.cell(p.lat, p.lon);
        near.cells.entry(c).or_default().push((p.lat, p.lon));
        chosen.push(p);
    }
    chosen
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn tags(t: &[&str]) -> Vec<(String, String)> {
        t.iter()
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    /// A 200 m east-west footway, a 200 m road 30 m south, a house north of the footway.
    fn street() -> Geometry {
        let (lat, lon) = (60.17f64, 24.94f64);
        let dlon = 200.0 / (111_195.0 * lat.to_radians().cos());
        let south = 30.0 / 111_195.0;
        let north = 20.0 / 111_195.0;
        let side = 15.0 / 111_195.0;
        let way = |id, t: &[&str], nodes: Vec<(i64, f64, f64)>| GeoWay { id, tags: tags(t), nodes };
        Geometry {
            nodes: vec![],
            ways: vec![
                way(1, &["highway=footway"], vec![(1, lat, lon), (2, lat, lon + dlon)]),
                way(
                    2,
                    &["highway=residential"],
                    vec![(3, lat - south, lon), (4, lat - south, lon + dlon)],
                ),
                way(
                    3,
                    &["building=yes"],
                    vec![
                        (5, lat + north, lon),
                        (6, lat + north, lon + side),
                        (7, lat + north + side, lon + side),
                        (8, lat + north + side, lon),
                        (5, lat + north, lon),
                    ],
                ),
                way(
                    4,
                    &["landuse=grass"],
                    vec![(9, lat + 0.01, lon), (10, lat + 0.01, lon + dlon)],
                ),
            ],
        }
    }

    #[test]
    fn points_lie_on_walkable_places_away_from_features_and_each_other() {
        let g = street();
        let feature = (60.17, 24.94 + 100.0 / (111_195.0 * 60.17f64.to_radians().cos()));
        let pts = background_points(&g, &[feature], 1000, 7, |_, _| true);
        assert!(pts.len() > 20, "{}", pts.len());
        let kinds: HashSet<PlaceKind> = pts.iter().map(|p| p.kind).collect();
        // (The house's outline is all facade candidates already.)
        for k in [PlaceKind::Candidate, PlaceKind::Walkway, PlaceKind::RoadEdge] {
            assert!(kinds.contains(&k), "{k:?} missing: {kinds:?}");
        }
        assert!(pts.iter().all(|p| p.way != 4), "grass is not a walkable place");
        for (i, p) in pts.iter().enumerate() {
            assert!(distance_m(p.lat, p.lon, feature.0, feature.1) >= MIN_DISTANCE_M);
            for q in &pts[..i] {
                assert!(distance_m(p.lat, p.lon, q.lat, q.lon) >= MIN_DISTANCE_M);
            }
        }
        // Road edges sit beside the road, not on it.
        let road_lat = 60.17 - 30.0 / 111_195.0;
        for p in pts.iter().filter(|p| p.kind == PlaceKind::RoadEdge) {
            let off = (p.lat - road_lat).abs() * 111_195.0;
            assert!((off - ROAD_EDGE_M).abs() < 0.1, "{off}");
        }
    }

    #[test]
    fn candidates_come_first() {
        let g = street();
        let all = candidates(&g);
        let few = background_points(&g, &[], 4, 3, |_, _| true);
        assert_eq!(few.len(), 4);
        for p in &few {
            assert_eq!(p.kind, PlaceKind::Candidate);
            assert!(all.iter().any(|c| (c.lat, c.lon) == (p.lat, p.lon)));
        }
    }

    #[test]
    fn sampling_is_seeded_counted_and_filtered() {
        let g = street();
        let a = background_points(&g, &[], 5, 1, |_, _| true);
        assert_eq!(a.len(), 5);
        assert_eq!(a, background_points(&g, &[], 5, 1, |_, _| true));
        assert_ne!(a, background_points(&g, &[], 5, 2, |_, _| true));
        let north = background_points(&g, &[], 1000, 1, |lat, _| lat > 60.17 + 1e-6);
        assert!(!north.is_empty());
        assert!(north.iter().all(|p| matches!(p.kind, PlaceKind::Building | PlaceKind::Candidate)));
        assert!(background_points(&g, &[], 0, 1, |_, _| true).is_empty());
    }

    #[test]
    fn the_index_finds_points_across_cell_borders() {
        let idx = PointIndex::new([(60.0, 25.0)], 10.0);
        let east = 25.0 + 9.0 / (111_195.0 * 60f64.to_radians().cos());
        assert!(idx.any_within(60.0, east, 10.0));
        assert!(!idx.any_within(60.0 + 11.0 / 111_195.0, 25.0, 10.0));
    }
}
