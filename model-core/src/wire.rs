//! The API's wire: the answers `accessatlas serve` sends and the page reads, defined once. The
//! server serialises these types and the page deserialises the same ones, so a field renamed
//! on one side is a compile error on the other; `src/api/openapi.json` describes them (its
//! schemas are checked against these types' serialisations, and Schemathesis checks the
//! served answers against it). GeoJSON points are built through [`Feature::point`] only.
//!
//! Plain serde types: no I/O, builds for wasm32.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::data::candidates::MappedFeature;
use crate::infer::prediction::Probabilities;

/// Declares [`Code`]: every machine-readable error kind the API answers with, and its name on
/// the wire. The OpenAPI description's `ErrorResponse.code` enum lists exactly these (tested).
macro_rules! codes {
    ($($variant:ident => $name:literal,)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        pub enum Code {
            $(#[serde(rename = $name)] $variant,)*
        }

        impl Code {
            /// Every code, in the description's order.
            pub const ALL: &[Code] = &[$(Code::$variant,)*];

            /// The code's name on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $name,)*
                }
            }
        }
    };
}

codes! {
    MissingField => "missing_field",
    WrongType => "wrong_type",
    DuplicateField => "duplicate_field",
    UnknownField => "unknown_field",
    BadJson => "bad_json",
    BadMultipart => "bad_multipart",
    BadBase64 => "bad_base64",
    BadBody => "bad_body",
    BadQuery => "bad_query",
    BadBbox => "bad_bbox",
    BadThreshold => "bad_threshold",
    UnsupportedContentType => "unsupported_content_type",
    NotAnImage => "not_an_image",
    BadImage => "bad_image",
    OutOfRange => "out_of_range",
    TooLarge => "too_large",
    AreaTooLarge => "area_too_large",
    OutsideExtract => "outside_extract",
    Timeout => "timeout",
    Busy => "busy",
    NotFound => "not_found",
    NotAvailable => "not_available",
    Internal => "internal",
}

impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Every error answer's body: what was wrong (`error`, for people), its kind (`code`, for
/// programs) and the request field it concerns, when one does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: Code,
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// `GET /api/health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// Always `ok`: a server that answers is up.
    pub status: String,
    pub uptime_s: f64,
    /// Predictions being computed now, and waiting for the model thread.
    pub in_flight: usize,
    pub queued: usize,
    pub encoder: String,
    pub version: String,
}

/// `GET /api/model`: the model the server serves and its limits as the predictor applies
/// them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    #[serde(flatten)]
    pub model: ServedModel,
    /// The regions it was trained on (recorded, or implied by an older bundle's scaler): a
    /// place outside every one is read without its position and flagged.
    pub trained_areas: Vec<crate::data::metadata::TrainedArea>,
    /// Types with no training example (class weight 0): never offered.
    pub unlearned_types: Vec<String>,
}

/// What `/api/model` describes the served model by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ServedModel {
    /// A bundle (`export`'s): its manifest, `model.json`, with the scaler the predictor uses.
    Bundle(Box<crate::infer::bundle::BundleManifest>),
    /// A training run (`train`'s folder): what it records of the model.
    Run {
        config: crate::model::ModelConfig,
        temperature: f32,
        scaler: crate::data::metadata::Scaler,
    },
}

/// GeoJSON's type names, one per object kind: each serialises as its own name and refuses
/// any other when read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CollectionKind {
    #[default]
    FeatureCollection,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FeatureKind {
    #[default]
    Feature,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PointKind {
    #[default]
    Point,
}

/// A GeoJSON point: `[lon, lat]`, GeoJSON's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    #[serde(rename = "type")]
    pub kind: PointKind,
    pub coordinates: [f64; 2],
}

/// A GeoJSON point feature with properties `P`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feature<P> {
    #[serde(rename = "type")]
    pub kind: FeatureKind,
    pub geometry: Point,
    pub properties: P,
}

impl<P> Feature<P> {
    /// The feature at `lat`, `lon` (written `[lon, lat]`).
    pub fn point(lat: f64, lon: f64, properties: P) -> Self {
        Self {
            kind: FeatureKind::Feature,
            geometry: Point { kind: PointKind::Point, coordinates: [lon, lat] },
            properties,
        }
    }

    /// Its `(lat, lon)`.
    pub fn lat_lon(&self) -> (f64, f64) {
        let [lon, lat] = self.geometry.coordinates;
        (lat, lon)
    }
}

/// A GeoJSON FeatureCollection of points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureCollection<P> {
    #[serde(rename = "type")]
    pub kind: CollectionKind,
    pub features: Vec<Feature<P>>,
}

impl<P> FeatureCollection<P> {
    pub fn new(features: Vec<Feature<P>>) -> Self {
        Self { kind: CollectionKind::FeatureCollection, features }
    }
}

impl<P> FromIterator<Feature<P>> for FeatureCollection<P> {
    fn from_iter<I: IntoIterator<Item = Feature<P>>>(iter: I) -> Self {
        Self::new(iter.into_iter().collect())
    }
}

/// `GET /api/features`: a feature OpenStreetMap maps, with the type the rules give it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MappedProperties {
    /// `node` or `way`.
    pub osm_type: String,
    pub osm_id: i64,
    /// Its AccessAtlas type.
    #[serde(rename = "type")]
    pub label: String,
    /// Its OSM tags.
    pub tags: BTreeMap<String, String>,
    /// A way's whole line as `[lon, lat]` pairs (GeoJSON's order); absent for a node. The
    /// "already mapped" rule measures to all of it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub line: Vec<[f64; 2]>,
}

impl Feature<MappedProperties> {
    /// The feature `id` (`node/123`) at `lat`, `lon` with `line` as `[lat, lon]` pairs, as
    /// model-core's "already mapped" rule holds it.
    pub fn mapped(f: &MappedFeature, tags: BTreeMap<String, String>) -> Option<Self> {
        let (kind, id) = f.id.split_once('/')?;
        let properties = MappedProperties {
            osm_type: kind.to_string(),
            osm_id: id.parse().ok()?,
            label: f.label.clone(),
            tags,
            line: f.line.iter().map(|p| [p[1], p[0]]).collect(),
        };
        Some(Self::point(f.lat, f.lon, properties))
    }

    /// The feature as the "already mapped" rule reads it (the line back in `[lat, lon]`).
    pub fn to_mapped(&self) -> MappedFeature {
        let (lat, lon) = self.lat_lon();
        let p = &self.properties;
        MappedFeature {
            id: format!("{}/{}", p.osm_type, p.osm_id),
            label: p.label.clone(),
            lat,
            lon,
            line: p.line.iter().map(|q| [q[1], q[0]]).collect(),
        }
    }
}

/// `GET /api/candidates`: a place the map's geometry makes worth asking the model about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateProperties {
    /// Its kinds, `+`-joined (`crossing+kerb`).
    pub candidate: String,
}

/// `GET /api/suggest` (and `accessatlas suggest --format geojson`): one suggestion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuggestionProperties {
    #[serde(rename = "type")]
    pub label: String,
    pub confidence: f32,
    pub candidate: String,
    pub probabilities: Probabilities,
    pub outside_trained_area: bool,
}

/// `GET /api/suggest`'s answer: the suggestions and what the area held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suggestions {
    #[serde(flatten)]
    pub collection: FeatureCollection<SuggestionProperties>,
    /// Candidates scored, those dropped as already mapped, and those outside the trained area.
    pub candidates: usize,
    pub already_mapped: usize,
    pub outside_trained_area: usize,
}

/// A server answer's text as `T`; an error answer ([`ErrorBody`]) gives its words, anything
/// else (a proxy's page, another server) says it is not this server's answer.
pub fn read_answer<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| match serde_json::from_str::<ErrorBody>(text) {
        Ok(err) => err.error,
        Err(_) => format!("not an answer of this server: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapped_line_goes_out_in_geojson_order_and_comes_back() {
        let f = MappedFeature {
            id: "way/240859307".into(),
            label: "obstacle".into(),
            lat: 60.17,
            lon: 24.94,
            line: vec![[60.17, 24.94], [60.171, 24.941]],
        };
        let tags = BTreeMap::from([("barrier".to_string(), "bollard".to_string())]);
        let out = Feature::mapped(&f, tags).unwrap();
        let v = serde_json::to_value(FeatureCollection::new(vec![out])).unwrap();
        assert_eq!(v["type"], "FeatureCollection");
        let g = &v["features"][0];
        assert_eq!((&g["type"], &g["geometry"]["type"]), (&"Feature".into(), &"Point".into()));
        assert_eq!(g["geometry"]["coordinates"], serde_json::json!([24.94, 60.17]));
        assert_eq!(g["properties"]["line"][1], serde_json::json!([24.941, 60.171]));
        assert_eq!(
            (&g["properties"]["osm_type"], &g["properties"]["osm_id"]),
            (&"way".into(), &240859307.into())
        );
        let back: FeatureCollection<MappedProperties> = serde_json::from_value(v).unwrap();
        assert_eq!(back.features[0].to_mapped(), f);
        // A node has no line on the wire.
        let node = MappedFeature { id: "node/1".into(), line: vec![], ..f };
        let v = serde_json::to_value(Feature::mapped(&node, BTreeMap::new()).unwrap()).unwrap();
        assert!(v["properties"].get("line").is_none(), "{v}");
    }

    #[test]
    fn another_geojson_type_or_an_unknown_code_is_refused() {
        let ok = r#"{"type":"FeatureCollection","features":[{"type":"Feature",
            "geometry":{"type":"Point","coordinates":[1.5,42.5]},"properties":{"candidate":"kerb"}}]}"#;
        let c: FeatureCollection<CandidateProperties> = serde_json::from_str(ok).unwrap();
        assert_eq!(c.features[0].lat_lon(), (42.5, 1.5));
        let line = ok.replace(r#""type":"Point""#, r#""type":"LineString""#);
        assert!(serde_json::from_str::<FeatureCollection<CandidateProperties>>(&line).is_err());
        let e: ErrorBody =
            serde_json::from_str(r#"{"code":"area_too_large","error":"zoom in"}"#).unwrap();
        assert_eq!((e.code, e.field), (Code::AreaTooLarge, None));
        assert!(serde_json::from_str::<ErrorBody>(r#"{"code":"nope","error":"x"}"#).is_err());
    }

    #[test]
    fn an_error_answer_gives_its_words_and_a_foreign_one_says_so() {
        type Candidates = FeatureCollection<CandidateProperties>;
        let e = read_answer::<Candidates>(
            r#"{"code":"area_too_large","error":"the area is 30 km2; at most 25","field":"bbox"}"#,
        );
        assert_eq!(e.unwrap_err(), "the area is 30 km2; at most 25");
        let e = read_answer::<Candidates>("<html>proxy</html>");
        assert!(e.unwrap_err().starts_with("not an answer of this server"));
    }
}
