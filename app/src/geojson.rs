//! Tags as a GeoJSON FeatureCollection of Points (RFC 7946: `[lon, lat]`), properties `id`,
//! `type`, `source` and every extra column (the note among them).

use model_core::data::tags::{Rejected, Tag};
use model_core::data::tile::validate_lat_lon;
use model_core::wire::{Feature, FeatureCollection};
use serde_json::{Map, Value, json};

use model_core::data::features::OSM_TAGS_COLUMN;

use crate::store::{ImportReport, TagStore, labels};

pub fn to_geojson(store: &TagStore) -> String {
    let features: FeatureCollection<Map<String, Value>> = store
        .tags
        .iter()
        .map(|t| {
            let mut props = Map::new();
            props.insert("id".into(), json!(t.id));
            props.insert("type".into(), json!(t.label));
            props.insert("source".into(), json!(t.source));
            for (c, v) in store.extra_columns.iter().zip(&t.extra) {
                props.insert(c.clone(), json!(v));
            }
            Feature::point(t.lat, t.lon, props)
        })
        .collect();
    serde_json::to_string_pretty(&features).expect("GeoJSON serialises")
}

fn reject(n: usize, field: &str, reason: String, raw: &Value) -> Rejected {
    Rejected {
        line: n as u64,
        field: Some(field.to_string()),
        reason: format!("feature {n}: {reason}"),
        raw: raw.to_string(),
    }
}

fn parse_feature(n: usize, f: &Value) -> Result<(Tag, Map<String, Value>), Rejected> {
    let coords = f
        .pointer("/geometry/coordinates")
        .and_then(Value::as_array)
        .filter(|_| f.pointer("/geometry/type") == Some(&json!("Point")))
        .ok_or_else(|| reject(n, "geometry", "not a Point".into(), f))?;
    let (Some(lon), Some(lat)) =
        (coords.first().and_then(Value::as_f64), coords.get(1).and_then(Value::as_f64))
    else {
        return Err(reject(n, "geometry", "coordinates are not numbers".into(), f));
    };
    validate_lat_lon(lat, lon).map_err(|e| reject(n, "geometry", e.to_string(), f))?;
    let props = f.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
    let text = |k: &str| props.get(k).and_then(Value::as_str).map(str::trim).unwrap_or("");
    let id = match props.get("id") {
        Some(Value::Number(v)) => v.to_string(),
        _ => text("id").to_string(),
    };
    if id.is_empty() {
        return Err(reject(n, "id", "missing id".into(), f));
    }
    let label = text("type");
    labels().index(label).map_err(|e| reject(n, "type", e.to_string(), f))?;
    let source = text("source");
    if source.is_empty() {
        return Err(reject(n, "source", "missing source".into(), f));
    }
    let tag = Tag {
        id,
        lat,
        lon,
        label: label.to_string(),
        source: source.to_string(),
        image: None,
        extra: Vec::new(),
    };
    Ok((tag, props))
}

/// Imports a FeatureCollection: valid Point features are added (or replace the tag with the
/// same id); other features are reported by number (1-based) and field.
pub fn import_geojson(store: &mut TagStore, text: &str) -> Result<ImportReport, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let features = v
        .get("features")
        .and_then(Value::as_array)
        .filter(|_| v.get("type") == Some(&json!("FeatureCollection")))
        .ok_or("not a GeoJSON FeatureCollection")?;
    let mut report = ImportReport::default();
    let mut upserts = store.upserts();
    for (i, f) in features.iter().enumerate() {
        match parse_feature(i + 1, f) {
            Ok((mut tag, props)) => {
                let new_columns = props
                    .keys()
                    .filter(|k| !matches!(k.as_str(), "id" | "type" | "source" | "image"))
                    .try_for_each(|k| upserts.store.ensure_column(k));
                if let Err(e) = new_columns {
                    report.rejected.push(reject(i + 1, "properties", e, f));
                    continue;
                }
                tag.extra = upserts
                    .store
                    .extra_columns
                    .iter()
                    .map(|c| match props.get(c) {
                        Some(Value::String(s)) => s.clone(),
                        Some(Value::Null) | None => String::new(),
                        Some(other) => other.to_string(),
                    })
                    .collect();
                upserts
                    .upsert(tag, &mut report, |reason| reject(i + 1, OSM_TAGS_COLUMN, reason, f));
            }
            Err(r) => report.rejected.push(r),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bad_features() {
        let mut s = TagStore::default();
        s.add(60.17, 24.94, "ramp", "user", "steep", &[]).unwrap();
        s.add(60.18, 24.95, "tactile_path", "osm", "", &[]).unwrap();
        let text = to_geojson(&s);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["features"][0]["geometry"]["coordinates"], json!([24.94, 60.17]));
        assert_eq!(v["features"][0]["properties"]["note"], json!("steep"));
        let mut t = TagStore::default();
        let r = import_geojson(&mut t, &text).unwrap();
        assert_eq!((r.added, r.rejected.len()), (2, 0));
        assert_eq!(t.tags, s.tags);

        let bad = r#"{"type":"FeatureCollection","features":[
            {"type":"Feature","geometry":{"type":"Point","coordinates":[24.9,60.1]},
             "properties":{"id":7,"type":"entrance","source":"user"}},
            {"type":"Feature","geometry":{"type":"LineString","coordinates":[[0,0],[1,1]]},
             "properties":{"id":"x","type":"ramp","source":"user"}},
            {"type":"Feature","geometry":{"type":"Point","coordinates":[24.9,95]},
             "properties":{"id":"y","type":"ramp","source":"user"}},
            {"type":"Feature","geometry":{"type":"Point","coordinates":[24.9,60.1]},
             "properties":{"id":"z","type":"bench","source":"user"}}]}"#;
        let mut u = TagStore::default();
        let r = import_geojson(&mut u, bad).unwrap();
        assert_eq!(r.added, 1);
        assert_eq!(u.tags[0].id, "7");
        let fields: Vec<_> = r.rejected.iter().map(|r| r.field.clone().unwrap()).collect();
        assert_eq!(fields, ["geometry", "geometry", "type"]);
        assert_eq!(r.rejected[2].line, 4);
        assert!(import_geojson(&mut u, "[]").is_err());
    }
}
