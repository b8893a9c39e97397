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
        for bad in ["", "#", "#map=18/60.17", "#map=25/60/24", "#map=18/95/24", "#map=a/b/c"] {
            assert_eq!(parse_view(bad), None, "{bad}");
        }
    }
}
