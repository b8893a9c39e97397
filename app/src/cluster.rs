//! The "Already in OpenStreetMap" layer at low zoom: features that would overlap on the
//! screen are drawn as one numbered group, so a city view shows a few dozen marks instead of
//! hundreds of rings. Plain Rust (the grid is model-core's tile math), tested natively.

use model_core::data::candidates::MappedFeature;
use model_core::data::tile::lat_lon_to_pixel;

/// From this zoom up every feature has its own ring.
pub const CLUSTER_BELOW_ZOOM: f64 = 18.0;

/// The side of a grid cell, in screen pixels: features in one cell make one group.
pub const CELL_PX: f64 = 48.0;

/// What the layer draws: one feature, or several in one cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Mark<'a> {
    One(&'a MappedFeature),
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
pub fn marks(features: &[MappedFeature], zoom: f64) -> Vec<Mark<'_>> {
    if zoom >= CLUSTER_BELOW_ZOOM || !zoom.is_finite() {
        return features.iter().map(Mark::One).collect();
    }
    let z = zoom.floor().clamp(0.0, 24.0) as u8;
    // A fractional zoom scales the screen: the cells keep their size in screen pixels.
    let scale = 2f64.powf(zoom - f64::from(z));
    let mut cells: Vec<((i64, i64), Vec<&MappedFeature>)> = Vec::new();
    for f in features {
        let Ok((x, y)) = lat_lon_to_pixel(f.lat, f.lon, z) else {
            continue;
        };
        let key = ((x * scale / CELL_PX).floor() as i64, (y * scale / CELL_PX).floor() as i64);
        match cells.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(f),
            None => cells.push((key, vec![f])),
        }
    }
    cells
        .into_iter()
        .map(|(_, v)| match v.as_slice() {
            [one] => Mark::One(one),
            many => Mark::Group {
                lat: many.iter().map(|f| f.lat).sum::<f64>() / many.len() as f64,
                lon: many.iter().map(|f| f.lon).sum::<f64>() / many.len() as f64,
                count: many.len(),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(id: &str, lat: f64, lon: f64) -> MappedFeature {
        MappedFeature { id: id.into(), label: "ramp".into(), lat, lon, line: Vec::new() }
    }

    fn count(m: &[Mark]) -> usize {
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
}
