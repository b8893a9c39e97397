//! The view in the address, in OpenStreetMap's form: `#map=zoom/lat/lon`. A shared link opens
//! the same view; moving the map rewrites it (without a history entry per move).

/// `(zoom, lat, lon)` from a location hash such as `#map=18/60.17100/24.94200`; `None` for
/// anything else (another hash, a zoom outside 0..=20, coordinates out of range).
pub fn parse_view(hash: &str) -> Option<(f64, f64, f64)> {
    let rest = hash.strip_prefix('#').unwrap_or(hash);
    let view = rest.split('&').find_map(|p| p.strip_prefix("map="))?;
    let mut parts = view.split('/').map(|s| s.trim().parse::<f64>().ok());
    let (z, lat, lon) = (parts.next()??, parts.next()??, parts.next()??);
    let ok = (0.0..=20.0).contains(&z)
        && (-85.0511..=85.0511).contains(&lat)
        && (-180.0..=180.0).contains(&lon);
    ok.then_some((z, lat, lon))
}

/// The hash for a view: whole zooms as OSM writes them, five decimals (about a metre).
pub fn format_view(zoom: f64, lat: f64, lon: f64) -> String {
    format!("#map={}/{lat:.5}/{lon:.5}", zoom.round() as i64)
}

/// The view that shows a whole bbox `(min_lon, min_lat, max_lon, max_lat)` on a screen about
/// 1,000 pixels wide: its centre, and the largest zoom (at most 19, at least 2) at which it
/// fits in Web Mercator.
pub fn fit_view(b: (f64, f64, f64, f64)) -> (f64, f64, f64) {
    let (lat, lon) = ((b.1 + b.3) / 2.0, (b.0 + b.2) / 2.0);
    // The bbox in pixels at zoom 0 (model-core's tile math); each zoom doubles it.
    let px = |lat, lon| model_core::data::tile::lat_lon_to_pixel(lat, lon, 0).ok();
    let size = match (px(b.1, b.0), px(b.3, b.2)) {
        (Some(a), Some(c)) => (c.0 - a.0).abs().max((c.1 - a.1).abs()),
        _ => f64::INFINITY,
    };
    let zoom = (1000.0 / size.max(1e-9)).log2().floor().clamp(2.0, 19.0);
    (zoom, lat, lon)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_round_trip_and_bad_ones_are_ignored() {
        assert_eq!(parse_view("#map=18/60.17100/24.94200"), Some((18.0, 60.171, 24.942)));
        assert_eq!(
            parse_view(&format_view(17.4, 60.1699, 24.93841)),
            Some((17.0, 60.1699, 24.93841))
        );
        assert_eq!(format_view(16.0, 60.1699, 24.9384), "#map=16/60.16990/24.93840");
        assert_eq!(parse_view("#layers=M&map=15/1/2"), Some((15.0, 1.0, 2.0)));
        // A bbox a few hundred metres wide fits at zoom 16 or 17; a point at 19.
        let (z, lat, lon) = fit_view((24.94, 60.17, 24.946, 60.172));
        assert_eq!((z, lat, lon), (17.0, 60.171, 24.943));
        assert_eq!(fit_view((24.94, 60.17, 24.94, 60.17)).0, 19.0);
        assert_eq!(fit_view((-180.0, -80.0, 180.0, 80.0)).0, 2.0);
        for bad in ["", "#", "#map=18/60.17", "#map=25/60/24", "#map=18/95/24", "#map=a/b/c"] {
            assert_eq!(parse_view(bad), None, "{bad}");
        }
    }
}
