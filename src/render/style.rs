//! AccessAtlas's base-map style: what is drawn, in which order, how wide, in which colour.
//! Widths are in metres so the map looks the same at every zoom. Accessibility features
//! themselves (kerbs, entrances, bollards, lifts, tactile paving) get no symbol: drawing them
//! would leak the label into the model input.

use crate::osm::Tags;

fn tag<'a>(tags: &'a Tags, key: &str) -> Option<&'a str> {
    debug_assert!(
        crate::osm::STYLE_KEYS.contains(&key),
        "the style reads `{key}`: list it in osm::STYLE_KEYS"
    );
    tags.get(key)
}

/// Bump when anything here changes: models record the style they were trained on.
pub const STYLE_VERSION: &str = "accessatlas-basic-1";

/// The land colour (also what model inputs are filled with where no tile covers them).
pub const BACKGROUND: [u8; 3] = model_core::data::tile::FILL;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    pub color: [u8; 3],
    pub width_m: f32,
    /// Dash and gap lengths in metres.
    pub dash_m: Option<(f32, f32)>,
    /// Darker outline drawn under the line, extra width in metres.
    pub casing: Option<([u8; 3], f32)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Paint {
    Area { fill: [u8; 3], outline: Option<[u8; 3]> },
    Line(Line),
}

/// Draw order: lower first.
pub type Layer = u8;

const GREEN: [u8; 3] = [200, 250, 204];
const WOOD: [u8; 3] = [173, 209, 158];
const BUILT: [u8; 3] = [224, 223, 223];
const WATER: [u8; 3] = [170, 211, 223];
const BUILDING: [u8; 3] = [217, 208, 201];
const BUILDING_LINE: [u8; 3] = [185, 169, 154];
const CASING: [u8; 3] = [160, 160, 160];

fn line(color: [u8; 3], width_m: f32) -> Line {
    Line { color, width_m, dash_m: None, casing: None }
}

/// Style of an area (closed way or multipolygon), if it is drawn as one.
pub fn area_style(tags: &Tags) -> Option<(Layer, Paint)> {
    let area = |fill| Paint::Area { fill, outline: None };
    if tag(tags, "building").is_some() || tag(tags, "building:part").is_some() {
        return Some((30, Paint::Area { fill: BUILDING, outline: Some(BUILDING_LINE) }));
    }
    if matches!(tag(tags, "natural"), Some("water"))
        || matches!(tag(tags, "waterway"), Some("riverbank" | "dock"))
        || matches!(tag(tags, "landuse"), Some("basin" | "reservoir"))
        || matches!(tag(tags, "leisure"), Some("swimming_pool"))
    {
        return Some((20, area(WATER)));
    }
    if matches!(tag(tags, "natural"), Some("wood" | "scrub"))
        || tag(tags, "landuse") == Some("forest")
    {
        return Some((11, area(WOOD)));
    }
    if matches!(
        tag(tags, "leisure"),
        Some("park" | "garden" | "pitch" | "playground" | "common" | "recreation_ground")
    ) || matches!(
        tag(tags, "landuse"),
        Some("grass" | "meadow" | "recreation_ground" | "cemetery" | "village_green")
    ) || matches!(tag(tags, "natural"), Some("grassland" | "heath"))
    {
        return Some((12, area(GREEN)));
    }
    if matches!(
        tag(tags, "landuse"),
        Some("residential" | "commercial" | "retail" | "industrial" | "railway" | "construction")
    ) {
        return Some((10, area(BUILT)));
    }
    if tag(tags, "area") == Some("yes")
        && matches!(tag(tags, "highway"), Some("pedestrian" | "footway" | "service"))
        || matches!(tag(tags, "place"), Some("square"))
        || matches!(tag(tags, "amenity"), Some("parking"))
    {
        return Some((25, Paint::Area { fill: [221, 221, 232], outline: Some([200, 200, 210]) }));
    }
    None
}

/// Style of a line (open way, or a closed way that is not an area), if it is drawn.
pub fn line_style(tags: &Tags) -> Option<(Layer, Paint)> {
    if let Some(hw) = tag(tags, "highway") {
        let road = |layer, color, width_m| {
            Some((
                layer,
                Paint::Line(Line { color, width_m, dash_m: None, casing: Some((CASING, 1.0)) }),
            ))
        };
        return match hw {
            "motorway" | "trunk" | "motorway_link" | "trunk_link" => {
                road(58, [232, 146, 162], 14.0)
            }
            "primary" | "primary_link" => road(57, [252, 214, 164], 12.0),
            "secondary" | "secondary_link" => road(56, [247, 250, 191], 11.0),
            "tertiary" | "tertiary_link" => road(55, [255, 255, 255], 10.0),
            "residential" | "unclassified" | "living_street" | "road" => {
                road(54, [255, 255, 255], 8.0)
            }
            "service" => road(53, [255, 255, 255], 5.0),
            "pedestrian" => road(52, [221, 221, 232], 7.0),
            "track" => Some((
                51,
                Paint::Line(Line { dash_m: Some((3.0, 1.5)), ..line([153, 102, 51], 2.0) }),
            )),
            "footway" | "path" | "bridleway" | "corridor" => Some((
                60,
                Paint::Line(Line { dash_m: Some((1.2, 0.8)), ..line([250, 128, 114], 1.0) }),
            )),
            "cycleway" => {
                Some((61, Paint::Line(Line { dash_m: Some((1.2, 0.8)), ..line([0, 0, 255], 1.0) })))
            }
            "steps" => Some((
                62,
                Paint::Line(Line { dash_m: Some((0.6, 0.6)), ..line([250, 128, 114], 3.0) }),
            )),
            _ => None,
        };
    }
    if let Some(rw) = tag(tags, "railway") {
        return match rw {
            "rail" | "light_rail" | "subway" | "narrow_gauge" | "tram" | "monorail" => Some((
                50,
                Paint::Line(Line {
                    casing: Some(([112, 112, 112], 0.8)),
                    dash_m: Some((6.0, 6.0)),
                    ..line([255, 255, 255], 1.2)
                }),
            )),
            "platform" => Some((49, Paint::Line(line([187, 187, 187], 3.0)))),
            _ => None,
        };
    }
    if let Some(ww) = tag(tags, "waterway") {
        return match ww {
            "river" | "canal" => Some((21, Paint::Line(line(WATER, 12.0)))),
            "stream" | "ditch" | "drain" => Some((21, Paint::Line(line(WATER, 3.0)))),
            _ => None,
        };
    }
    if matches!(tag(tags, "barrier"), Some("wall" | "fence" | "retaining_wall" | "city_wall")) {
        return Some((40, Paint::Line(line([150, 140, 130], 0.6))));
    }
    None
}
