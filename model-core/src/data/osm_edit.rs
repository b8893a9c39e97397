//! From the mapper's tags to files an OpenStreetMap editor opens for review: osmChange
//! (`.osc`, API 0.6, new nodes under `<create>`) and JOSM XML (`.osm`, `upload='true'`, new
//! nodes with `action='modify'`). New nodes have negative ids, as editors expect of objects
//! not yet uploaded. Nothing here uploads: OSM's automated-edits code of conduct asks a person
//! to review every object, so the files go to an editor, and the mapper uploads from there.

use crate::data::features::FeatureType;
use crate::wire::{Feature, FeatureCollection};

/// A tag this close to a feature of its type that the extract already has is that feature:
/// exports leave it out ("already mapped: node/ID") and the page's tag form says so.
pub const SAME_FEATURE_M: f64 = 3.0;

/// A node to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNode {
    pub lat: f64,
    pub lon: f64,
    pub tags: Vec<(String, String)>,
}

/// The file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditFormat {
    /// osmChange, `.osc`.
    OsmChange,
    /// JOSM's `.osm` with `action='modify'` on new objects.
    Josm,
}

impl EditFormat {
    pub fn extension(self) -> &'static str {
        match self {
            EditFormat::OsmChange => "osc",
            EditFormat::Josm => "osm",
        }
    }
}

/// The OSM tags of one of the mapper's tags: `osm_tags` as the mapper set them (they must hold
/// every tag of one of the type's presets), or the type's default preset; plus `note=` when
/// given. Errors name what is wrong.
pub fn node_tags(
    ty: &FeatureType,
    osm_tags: &[(String, String)],
    note: Option<&str>,
) -> Result<Vec<(String, String)>, String> {
    let mut tags = if osm_tags.is_empty() {
        ty.preset(None).map_err(|e| e.to_string())?.pairs()
    } else {
        if ty.matching_preset(osm_tags).is_none() {
            let known: Vec<String> =
                ty.presets.iter().map(|p| format!("{} ({})", p.name, p.tags.join(" + "))).collect();
            return Err(format!(
                "the OSM tags match no preset of `{}` (presets: {})",
                ty.name,
                known.join("; ")
            ));
        }
        osm_tags.to_vec()
    };
    if let Some(n) = note.map(str::trim).filter(|n| !n.is_empty()) {
        if n.chars().count() > 255 {
            return Err("the note is over 255 characters (the OSM limit of a value)".into());
        }
        tags.retain(|(k, _)| k != "note");
        tags.push(("note".into(), n.to_string()));
    }
    Ok(tags)
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

/// One MapRoulette task: a proposed node and what the mapper is told about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub node: NewNode,
    /// Extra properties shown with the task (for example the model's type and confidence),
    /// beside the node's OSM tags.
    pub info: Vec<(String, serde_json::Value)>,
}

/// RFC 7464's record separator, which starts each line of a line-by-line GeoJSON file.
pub const RECORD_SEPARATOR: char = '\u{1e}';

/// A MapRoulette challenge file in its line-by-line GeoJSON form
/// (<https://learn.maproulette.org/documentation/line-by-line-geojson/>): one line per task,
/// each a record separator and a FeatureCollection holding the proposed node as a point whose
/// properties are its OSM tags (and `info`, under keys that are not OSM tags). A mapper
/// reviews each task in an editor before anything reaches OpenStreetMap.
pub fn maproulette(tasks: &[Task]) -> String {
    let mut out = String::new();
    for t in tasks {
        let mut props = serde_json::Map::new();
        for (k, v) in &t.node.tags {
            props.insert(k.clone(), serde_json::Value::String(v.clone()));
        }
        for (k, v) in &t.info {
            props.insert(k.clone(), v.clone());
        }
        let round = |v: f64| (v * 1e7).round() / 1e7;
        let point = Feature::point(round(t.node.lat), round(t.node.lon), props);
        let task = serde_json::to_string(&FeatureCollection::new(vec![point]))
            .expect("a FeatureCollection serialises");
        out.push(RECORD_SEPARATOR);
        out.push_str(&task);
        out.push('\n');
    }
    out
}

/// The file for `nodes`, ids -1, -2, ... in order; coordinates to 7 decimals (OSM's
/// precision).
pub fn write(nodes: &[NewNode], format: EditFormat, generator: &str) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let g = escape(generator);
    match format {
        EditFormat::OsmChange => {
            x += &format!("<osmChange version=\"0.6\" generator=\"{g}\">\n<create>\n")
        }
        EditFormat::Josm => {
            x += &format!("<osm version=\"0.6\" upload=\"true\" generator=\"{g}\">\n")
        }
    }
    for (i, n) in nodes.iter().enumerate() {
        let id = -(i as i64) - 1;
        let attrs = match format {
            EditFormat::OsmChange => format!("id=\"{id}\" version=\"0\""),
            EditFormat::Josm => format!("id=\"{id}\" action=\"modify\" visible=\"true\""),
        };
        x += &format!("  <node {attrs} lat=\"{:.7}\" lon=\"{:.7}\">\n", n.lat, n.lon);
        for (k, v) in &n.tags {
            x += &format!("    <tag k=\"{}\" v=\"{}\"/>\n", escape(k), escape(v));
        }
        x += "  </node>\n";
    }
    match format {
        EditFormat::OsmChange => x += "</create>\n</osmChange>\n",
        EditFormat::Josm => x += "</osm>\n",
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::features::FeatureTypes;

    #[test]
    fn tags_come_from_the_preset_or_the_mapper_and_must_match_a_preset() {
        let t = FeatureTypes::builtin();
        let ramp = t.get("ramp").unwrap();
        let got = node_tags(ramp, &[], Some("east side")).unwrap();
        assert_eq!(
            got.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            ["barrier=kerb", "kerb=lowered", "note=east side"]
        );
        let own = [
            ("barrier".into(), "kerb".into()),
            ("kerb".into(), "flush".into()),
            ("tactile_paving".into(), "yes".into()),
        ];
        assert_eq!(node_tags(ramp, &own, None).unwrap(), own.to_vec());
        let e = node_tags(ramp, &[("highway".into(), "elevator".into())], None).unwrap_err();
        assert!(e.contains("no preset of `ramp`"), "{e}");
    }

    #[test]
    fn files_escape_and_number_new_nodes() {
        let nodes = [
            NewNode { lat: 60.1, lon: 24.9, tags: vec![("note".into(), "a \"<&>' b".into())] },
            NewNode { lat: -33.123456789, lon: 151.2, tags: vec![] },
        ];
        let osc = write(&nodes, EditFormat::OsmChange, "AccessAtlas");
        assert!(osc.contains("<create>") && osc.contains("id=\"-2\""), "{osc}");
        assert!(osc.contains("lat=\"-33.1234568\""), "{osc}");
        assert!(osc.contains("v=\"a &quot;&lt;&amp;&gt;&apos; b\""), "{osc}");
        let josm = write(&nodes, EditFormat::Josm, "AccessAtlas");
        assert!(josm.contains("upload=\"true\"") && josm.contains("action=\"modify\""), "{josm}");
        assert!(!josm.contains("<create>"));
    }

    #[test]
    fn a_maproulette_file_holds_one_task_per_line_with_its_osm_tags() {
        let tasks = vec![
            Task {
                node: NewNode {
                    lat: 60.1699123456,
                    lon: 24.9384,
                    tags: vec![
                        ("barrier".into(), "kerb".into()),
                        ("kerb".into(), "lowered".into()),
                    ],
                },
                info: vec![("accessatlas:confidence".into(), serde_json::json!(0.81))],
            },
            Task {
                node: NewNode {
                    lat: 60.17,
                    lon: 24.94,
                    tags: vec![("entrance".into(), "yes".into())],
                },
                info: vec![],
            },
        ];
        let text = maproulette(&tasks);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        for (line, task) in lines.iter().zip(&tasks) {
            let json = line.strip_prefix(RECORD_SEPARATOR).expect("each line starts with RS");
            let v: serde_json::Value = serde_json::from_str(json).unwrap();
            assert_eq!(v["type"], "FeatureCollection");
            let f = &v["features"][0];
            assert_eq!(v["features"].as_array().unwrap().len(), 1);
            assert_eq!(f["geometry"]["type"], "Point");
            let c = f["geometry"]["coordinates"].as_array().unwrap();
            assert!((c[0].as_f64().unwrap() - task.node.lon).abs() < 1e-7);
            assert!((c[1].as_f64().unwrap() - task.node.lat).abs() < 1e-7);
            for (k, val) in &task.node.tags {
                assert_eq!(f["properties"][k], *val);
            }
        }
        let first: serde_json::Value =
            serde_json::from_str(lines[0].trim_start_matches(RECORD_SEPARATOR)).unwrap();
        assert_eq!(first["features"][0]["properties"]["accessatlas:confidence"], 0.81);
    }
}
