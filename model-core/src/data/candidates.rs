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

/// Candidates closer than this merge into one.
pub const MERGE_M: f64 = 3.0;
/// A footway end this close to a building outline touches it.
pub const TOUCH_M: f64 = 2.0;

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

pub(crate) fn get<'a>(tags: &'a [(String, String)], key: &str) -> Option<&'a str> {
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
    let buildings: Vec<&GeoWay> = g.ways.iter().filter(|w| is_building(w)).collect();
    for w in g.ways.iter().filter(|w| is_footway(&w.tags) || is_crossing_way(&w.tags)) {
        for end in [w.nodes.first(), w.nodes.last()].into_iter().flatten() {
            let p = (end.1, end.2);
            if is_crossing_way(&w.tags) {
                raw.push((p.0, p.1, CandidateKind::Kerb));
                continue;
            }
            raw.push((p.0, p.1, CandidateKind::PathNode));
            let touches = buildings.iter().any(|b| {
                b.nodes
                    .windows(2)
                    .any(|s| to_segment_m(p, (s[0].1, s[0].2), (s[1].1, s[1].2)) <= TOUCH_M)
            });
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
    merge(raw)
}

/// Merges points closer than [`MERGE_M`] (the first in latitude order keeps its place).
fn merge(mut raw: Vec<(f64, f64, CandidateKind)>) -> Vec<Candidate> {
    raw.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut out: Vec<Candidate> = Vec::new();
    // Latitude window: 3 m is about 2.7e-5 degrees of latitude.
    let window = MERGE_M / 111_195.0 * 1.01;
    let mut start = 0;
    for (lat, lon, kind) in raw {
        while start < out.len() && out[start].lat < lat - window {
            start += 1;
        }
        match out[start..].iter_mut().find(|c| distance_m(c.lat, c.lon, lat, lon) < MERGE_M) {
            Some(c) => {
                if !c.kinds.contains(&kind) {
                    c.kinds.push(kind);
                    c.kinds.sort();
                }
            }
            None => out.push(Candidate { lat, lon, kinds: vec![kind] }),
        }
    }
    out
}

/// A feature the map already has.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedFeature {
    /// `node/123` or `way/456`.
    pub id: String,
    pub label: String,
    pub lat: f64,
    pub lon: f64,
}

/// The nearest feature of type `label` within `radius_m` of the point, and its distance: the
/// "already mapped" rule (`osm export` uses 3 m, suggestions 5 m).
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
        .map(|m| (m, distance_m(lat, lon, m.lat, m.lon)))
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
        };
        let mapped =
            [f("node/1", "ramp", 4.0), f("node/2", "entrance", 1.0), f("node/3", "ramp", 2.0)];
        let (m, d) = nearest_mapped(&mapped, "ramp", 60.17, 24.94, 5.0).unwrap();
        assert_eq!(m.id, "node/3");
        assert!((d - 2.0).abs() < 0.05, "{d}");
        assert!(nearest_mapped(&mapped, "ramp", 60.17, 24.94, 1.5).is_none());
        assert!(nearest_mapped(&mapped, "elevator", 60.17, 24.94, 50.0).is_none());
    }
}
