//! The "Already in OpenStreetMap" layer at low zoom: features that would overlap on the
//! screen are drawn as one numbered group, so a city view shows a few dozen marks instead of
//! hundreds of rings. Plain Rust (the grid is model-core's tile math), tested natively.

use std::collections::HashMap;

use model_core::data::candidates::MappedFeature;
use model_core::data::tags::Tag;
use model_core::data::tile::lat_lon_to_pixel;

/// From this zoom up every feature has its own ring.
pub const CLUSTER_BELOW_ZOOM: f64 = 18.0;

/// The side of a grid cell, in screen pixels: features in one cell make one group.
pub const CELL_PX: f64 = 48.0;

/// Something drawn at a place on the map.
pub trait Placed {
    fn lat_lon(&self) -> (f64, f64);
}

impl Placed for MappedFeature {
    fn lat_lon(&self) -> (f64, f64) {
        (self.lat, self.lon)
    }
}

impl Placed for Tag {
    fn lat_lon(&self) -> (f64, f64) {
        (self.lat, self.lon)
    }
}

impl<T: Placed> Placed for &T {
    fn lat_lon(&self) -> (f64, f64) {
        (*self).lat_lon()
    }
}

/// The most of the mapper's own tags the map draws one marker each for; beyond, it draws
/// those in view, grouped by cells where they are still more (100,000 imported tags as as
/// many Leaflet markers held the page for seconds).
pub const MARKERS_AT_MOST: usize = 300;

/// The marks for the mapper's own `tags` (those of the type shown) on a map showing `view`
/// (west, south, east, north) at `zoom`: one each while they are at most [`MARKERS_AT_MOST`].
/// Beyond, only those in the view grown by a fifth of its size on each side, one each if they
/// are few enough, else grouped by [`CELL_PX`] cells; the second value is then true (the
/// marks follow the view).
pub fn tag_marks<'a>(
    tags: &[&'a Tag],
    view: (f64, f64, f64, f64),
    zoom: f64,
) -> (Vec<Mark<'a, Tag>>, bool) {
    if tags.len() <= MARKERS_AT_MOST {
        return (tags.iter().map(|t| Mark::One(*t)).collect(), false);
    }
    let (w, s, e, n) = view;
    let (dx, dy) = ((e - w) / 5.0, (n - s) / 5.0);
    let in_view: Vec<&Tag> = tags
        .iter()
        .copied()
        .filter(|t| t.lon >= w - dx && t.lon <= e + dx && t.lat >= s - dy && t.lat <= n + dy)
        .collect();
    if in_view.len() <= MARKERS_AT_MOST {
        return (in_view.into_iter().map(Mark::One).collect(), true);
    }
    let marks = grouped(&in_view, zoom)
        .into_iter()
        .map(|m| match m {
            Mark::One(t) => Mark::One(*t),
            Mark::Group { lat, lon, count } => Mark::Group { lat, lon, count },
        })
        .collect();
    (marks, true)
}

/// What the layer draws: one feature, or several in one cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Mark<'a, T = MappedFeature> {
    One(&'a T),
    /// Several features: where to draw the group (their mean position) and how many.
    Group {
        lat: f64,
        lon: f64,
        count: usize,
    },
}

/// The marks for `features` at the map's `zoom` (Leaflet's, may be fractional). Below
/// [`CLUSTER_BELOW_ZOOM`] the features are grouped by [`CELL_PX`] cells of the screen; a cell
/// with one feature keeps its ring. Marks come in the order of each cell's first feature.
pub fn marks<T: Placed>(features: &[T], zoom: f64) -> Vec<Mark<'_, T>> {
    if zoom >= CLUSTER_BELOW_ZOOM || !zoom.is_finite() {
        return features.iter().map(Mark::One).collect();
    }
    grouped(features, zoom)
}

/// The marks for `features` grouped by [`CELL_PX`] cells of the screen at any zoom (the
/// mapper's own tags, when there are more than the map can draw one by one).
pub fn grouped<'a, T: Placed>(features: &'a [T], zoom: f64) -> Vec<Mark<'a, T>> {
    let zoom = if zoom.is_finite() { zoom } else { CLUSTER_BELOW_ZOOM };
    let z = zoom.floor().clamp(0.0, 24.0) as u8;
    // A fractional zoom scales the screen: the cells keep their size in screen pixels.
    let scale = 2f64.powf(zoom - f64::from(z));
    let mut cell_of: HashMap<(i64, i64), usize> = HashMap::new();
    let mut cells: Vec<Vec<&T>> = Vec::new();
    for f in features {
        let (lat, lon) = f.lat_lon();
        let Ok((x, y)) = lat_lon_to_pixel(lat, lon, z) else {
            continue;
        };
        let key = ((x * scale / CELL_PX).floor() as i64, (y * scale / CELL_PX).floor() as i64);
        let i = *cell_of.entry(key).or_insert_with(|| {
            cells.push(Vec::new());
            cells.len() - 1
        });
        cells[i].push(f);
    }
    cells
        .into_iter()
        .map(|v| match v.as_slice() {
            [one] => Mark::One(*one),
            many => {
                let n = many.len() as f64;
                let (lat, lon) = many.iter().fold((0.0, 0.0), |(a, b), f| {
                    let (lat, lon) = f.lat_lon();
                    (a + lat, b + lon)
                });
                Mark::Group { lat: lat / n, lon: lon / n, count: many.len() }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(id: &str, lat: f64, lon: f64) -> MappedFeature {
        MappedFeature { id: id.into(), label: "ramp".into(), lat, lon, line: Vec::new() }
    }

    fn count<T>(m: &[Mark<T>]) -> usize {
        m.iter().map(|m| if let Mark::Group { count, .. } = m { *count } else { 1 }).sum()
    }

    #[test]
    fn close_features_group_at_low_zoom_and_part_when_zoomed_in() {
        // Two features 10 m apart and one 1 km away.
        let f = [
            at("node/1", 60.17, 24.94),
            at("node/2", 60.17009, 24.94),
            at("node/3", 60.179, 24.94),
        ];
        let low = marks(&f, 15.0);
        assert_eq!(low.len(), 2, "{low:?}");
        assert!(
            matches!(low[0], Mark::Group { count: 2, lat, .. } if (lat - 60.170045).abs() < 1e-9),
            "{low:?}"
        );
        assert_eq!(low[1], Mark::One(&f[2]));
        assert_eq!(count(&low), 3, "every feature is counted once");
        let high = marks(&f, CLUSTER_BELOW_ZOOM);
        assert_eq!(high, f.iter().map(Mark::One).collect::<Vec<_>>());
    }

    #[test]
    fn a_city_view_draws_far_fewer_marks_and_loses_no_feature() {
        // 400 features on a 20 x 20 grid, 25 m apart: one zoom-16 screen of central Helsinki.
        let f: Vec<MappedFeature> = (0..400)
            .map(|i| {
                at(
                    &format!("node/{i}"),
                    60.165 + (i / 20) as f64 * 0.000225,
                    24.93 + (i % 20) as f64 * 0.00045,
                )
            })
            .collect();
        let m = marks(&f, 16.0);
        assert!(m.len() * 3 < 400, "{} marks", m.len());
        assert_eq!(count(&m), 400);
        assert_eq!(count(&marks(&f, 16.5)), 400, "a fractional zoom loses none either");
    }

    /// The mapper's own tags group at any zoom when asked: 1,000 tags in one street at zoom
    /// 19 make a few marks, and every tag is counted once.
    #[test]
    fn many_tags_group_at_any_zoom() {
        let t: Vec<Tag> = (0..1000)
            .map(|i| Tag {
                id: format!("t{i}"),
                lat: 60.17 + (i % 50) as f64 * 1e-5,
                lon: 24.94 + (i / 50) as f64 * 1e-5,
                label: "ramp".into(),
                source: "user".into(),
                image: None,
                extra: Vec::new(),
            })
            .collect();
        let m = grouped(&t, 19.0);
        assert!(m.len() < 40, "{} marks", m.len());
        assert_eq!(count(&m), 1000);
        assert_eq!(marks(&t, 19.0).len(), 1000, "marks() keeps each one from zoom 18");
    }

    /// A few tags are each drawn wherever they are; many are drawn only in and around the
    /// view, grouped when still too many, none lost from the view's count.
    #[test]
    fn many_tags_are_drawn_in_view_and_grouped() {
        let tag = |i: usize, lat: f64, lon: f64| Tag {
            id: format!("t{i}"),
            lat,
            lon,
            label: "ramp".into(),
            source: "user".into(),
            image: None,
            extra: Vec::new(),
        };
        let view = (24.93, 60.165, 24.95, 60.175);
        let few: Vec<Tag> = (0..10).map(|i| tag(i, 10.0, i as f64)).collect();
        let refs: Vec<&Tag> = few.iter().collect();
        let (m, follows) = tag_marks(&refs, view, 16.0);
        assert_eq!((m.len(), follows), (10, false), "a few tags, each drawn even out of view");

        // 2,000 far away and 500 in a 100 m square in view: only those 500, grouped.
        let mut many: Vec<Tag> = (0..2000).map(|i| tag(i, 48.0, 2.0)).collect();
        many.extend((0..500).map(|i| {
            tag(2000 + i, 60.17 + (i % 25) as f64 * 4e-5, 24.94 + (i / 25) as f64 * 8e-5)
        }));
        let refs: Vec<&Tag> = many.iter().collect();
        let (m, follows) = tag_marks(&refs, view, 16.0);
        assert!(follows);
        assert!(m.len() < 50, "{} marks", m.len());
        assert_eq!(count(&m), 500, "each tag in view counted once, none of those far away");
        // Zoomed out of sight of them: none drawn.
        let (m, _) = tag_marks(&refs, (0.0, 0.0, 1.0, 1.0), 16.0);
        assert!(m.is_empty());
    }
}
