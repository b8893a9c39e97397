//! The feature-type table: every accessibility feature type with its display name, marker
//! letter and colour, and the OpenStreetMap tags that record it (presets and optional keys).
//! `config/feature_types.toml` is compiled in ([`FeatureTypes::builtin`]); another table is
//! parsed from its text. The label vocabulary, the page's markers and tag form, and
//! `accessatlas osm export` all read it: adding a type is an entry there and a retrained model.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// The tags-CSV column (and GeoJSON property) holding a tag's OSM tags in [`format_osm_tags`]'s
/// form, `key=value;key=value`. Empty: its type's default preset.
pub const OSM_TAGS_COLUMN: &str = "osm_tags";

/// The default table, `config/feature_types.toml`.
pub const DEFAULT_TABLE: &str = include_str!("../../../config/feature_types.toml");

/// One way of tagging a feature in OSM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    pub name: String,
    /// `key=value` tags.
    pub tags: Vec<String>,
}

impl Preset {
    /// The preset's tags as `(key, value)` pairs.
    pub fn pairs(&self) -> Vec<(String, String)> {
        self.tags.iter().filter_map(|t| split_tag(t).ok()).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureType {
    /// The label the model and `tags.csv` use.
    pub name: String,
    /// What people read.
    pub display: String,
    /// One letter on markers and in lists (information not by colour alone).
    pub letter: String,
    /// `#rrggbb`, AA contrast against white text.
    pub colour: String,
    /// The first is the default.
    pub presets: Vec<Preset>,
    /// Further keys a mapper may set: `key=v1|v2` (usual values) or `key=*`.
    #[serde(default)]
    pub optional: Vec<String>,
}

impl FeatureType {
    /// The preset named `name`, or the default one; an unknown name is an error listing them.
    pub fn preset(&self, name: Option<&str>) -> Result<&Preset, CoreError> {
        match name {
            None => Ok(&self.presets[0]),
            Some(n) => self.presets.iter().find(|p| p.name == n).ok_or_else(|| {
                let known: Vec<&str> = self.presets.iter().map(|p| p.name.as_str()).collect();
                CoreError::InvalidConfig(format!(
                    "`{n}` is not a preset of `{}` (presets: {})",
                    self.name,
                    known.join(", ")
                ))
            }),
        }
    }

    /// The optional keys, without their usual values.
    pub fn optional_keys(&self) -> Vec<&str> {
        self.optional.iter().map(|o| o.split('=').next().unwrap_or(o.as_str())).collect()
    }

    /// Whether `tags` hold every tag of one of the presets (the feature is tagged as this
    /// type); the matching preset.
    pub fn matching_preset(&self, tags: &[(String, String)]) -> Option<&Preset> {
        self.presets.iter().find(|p| p.pairs().iter().all(|t| tags.contains(t)))
    }

    /// The usual values of optional key `key` (`None` when it takes any value or is not one of
    /// this type's optional keys).
    pub fn optional_values(&self, key: &str) -> Option<Vec<&str>> {
        let spec = self.optional.iter().find(|o| o.split('=').next() == Some(key))?;
        let values = spec.split_once('=').map_or("*", |(_, v)| v);
        (values != "*").then(|| values.split('|').collect())
    }

    /// `tags` as the tag form shows them: the most specific preset they hold (the default
    /// when none), the optional keys they set, and every other tag, kept as it was.
    pub fn choice(&self, tags: &[(String, String)]) -> OsmTagChoice {
        let preset = self
            .presets
            .iter()
            .enumerate()
            .filter(|(_, p)| p.pairs().iter().all(|t| tags.contains(t)))
            .max_by_key(|(i, p)| (p.tags.len(), usize::MAX - i))
            .map_or(0, |(i, _)| i);
        let in_preset = self.presets[preset].pairs();
        let optional_keys = self.optional_keys();
        let (mut optional, mut other) = (Vec::new(), Vec::new());
        for t in tags.iter().filter(|t| !in_preset.contains(t)) {
            if optional_keys.contains(&t.0.as_str()) {
                optional.push(t.clone());
            } else {
                other.push(t.clone());
            }
        }
        OsmTagChoice { preset, optional, other }
    }

    /// The OSM tags of a choice: the preset's tags, then the optional keys set (not those the
    /// preset sets), then the other tags (not those already given). Always holds a preset.
    pub fn compose(&self, c: &OsmTagChoice) -> Vec<(String, String)> {
        let mut tags = self.presets.get(c.preset).unwrap_or(&self.presets[0]).pairs();
        for (k, v) in c.optional.iter().chain(&c.other) {
            let v = v.trim();
            if !v.is_empty() && !tags.iter().any(|(tk, _)| tk == k) {
                tags.push((k.clone(), v.to_string()));
            }
        }
        tags
    }
}

/// A feature's OSM tags as the tag form holds them: one of its type's presets, values for its
/// optional keys, and any other tags (from an imported file), kept as they were.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OsmTagChoice {
    /// Index into the type's presets.
    pub preset: usize,
    /// The optional keys set, `(key, value)`.
    pub optional: Vec<(String, String)>,
    /// Tags that are neither the preset's nor optional keys.
    pub other: Vec<(String, String)>,
}

impl OsmTagChoice {
    /// The choice carried to another type: its default preset, the optional keys it also
    /// offers; other tags belonged to the old type and are dropped.
    pub fn for_type(&self, ty: &FeatureType) -> Self {
        let keys = ty.optional_keys();
        Self {
            preset: 0,
            optional: self
                .optional
                .iter()
                .filter(|(k, _)| keys.contains(&k.as_str()))
                .cloned()
                .collect(),
            other: Vec::new(),
        }
    }

    /// The value set for optional key `key` (empty when not set).
    pub fn optional_value(&self, key: &str) -> &str {
        self.optional.iter().find(|(k, _)| k == key).map_or("", |(_, v)| v.as_str())
    }

    /// Sets optional key `key` (an empty value unsets it).
    pub fn set_optional(&mut self, key: &str, value: &str) {
        self.optional.retain(|(k, _)| k != key);
        let value = value.trim();
        if !value.is_empty() {
            self.optional.push((key.to_string(), value.to_string()));
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureTypes {
    pub types: Vec<FeatureType>,
}

impl FeatureTypes {
    /// Parses and checks a table: unique names and letters, one-letter letters, `#rrggbb`
    /// colours, at least one preset, every tag `key=value`.
    pub fn parse(text: &str) -> Result<Self, CoreError> {
        let t: Self = toml::from_str(text)
            .map_err(|e| CoreError::InvalidConfig(format!("feature types: {e}")))?;
        let bad = |m: String| Err(CoreError::InvalidConfig(format!("feature types: {m}")));
        if t.types.is_empty() {
            return bad("no types".into());
        }
        let mut names = std::collections::HashSet::new();
        let mut letters = std::collections::HashSet::new();
        for ty in &t.types {
            let n = &ty.name;
            if !names.insert(n.as_str()) {
                return bad(format!("`{n}` is listed twice"));
            }
            if ty.letter.chars().count() != 1 || !letters.insert(ty.letter.as_str()) {
                return bad(format!("`{n}`: letter `{}` is not one unused letter", ty.letter));
            }
            let hex = ty.colour.strip_prefix('#').unwrap_or("");
            if hex.len() != 6 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return bad(format!("`{n}`: colour `{}` is not #rrggbb", ty.colour));
            }
            if ty.presets.is_empty() {
                return bad(format!("`{n}` has no preset"));
            }
            for tag in ty.presets.iter().flat_map(|p| &p.tags).chain(&ty.optional) {
                if let Err(e) = split_tag(tag) {
                    return bad(format!("`{n}`: {e}"));
                }
            }
        }
        Ok(t)
    }

    /// The compiled-in table.
    pub fn builtin() -> &'static FeatureTypes {
        static TABLE: OnceLock<FeatureTypes> = OnceLock::new();
        TABLE
            .get_or_init(|| Self::parse(DEFAULT_TABLE).expect("config/feature_types.toml is valid"))
    }

    /// The labels in table order: the model's class order (`LabelVocab::default()`).
    pub fn names(&self) -> Vec<String> {
        self.types.iter().map(|t| t.name.clone()).collect()
    }

    /// The type named `name`, or an error listing the known ones.
    pub fn get(&self, name: &str) -> Result<&FeatureType, CoreError> {
        self.types.iter().find(|t| t.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.types.iter().map(|t| t.name.as_str()).collect();
            CoreError::UnknownLabel(name.to_string(), known.join(", "))
        })
    }

    /// What people read for a feature type: the table's display name, and for a name not in
    /// the table (`none` among them: callers word "no feature" as fits them) the name with
    /// spaces for underscores.
    pub fn display(&self, label: &str) -> String {
        self.get(label).map_or_else(|_| label.replace('_', " "), |t| t.display.clone())
    }

    /// A type's marker letter (`?` for a name not in the table).
    pub fn letter(&self, name: &str) -> &str {
        self.get(name).map_or("?", |t| t.letter.as_str())
    }

    /// The type whose letter is `letter` (case-insensitive), for keyboard shortcuts.
    pub fn by_letter(&self, letter: char) -> Option<&FeatureType> {
        let l = letter.to_ascii_uppercase().to_string();
        self.types.iter().find(|t| t.letter.to_ascii_uppercase() == l)
    }
}

/// `key=value` as a pair; key and value non-empty, no `=` in the key, no `;` anywhere (the CSV
/// form joins tags with it).
pub fn split_tag(tag: &str) -> Result<(String, String), String> {
    let (k, v) = tag.split_once('=').ok_or_else(|| format!("`{tag}` is not key=value"))?;
    let (k, v) = (k.trim(), v.trim());
    if k.is_empty() || v.is_empty() {
        return Err(format!("`{tag}`: empty key or value"));
    }
    if tag.contains(';') || k.chars().any(char::is_whitespace) {
        return Err(format!("`{tag}`: `;` or a space in a key is not allowed"));
    }
    if k.len() > 255 || v.chars().count() > 255 {
        return Err(format!("`{tag}`: OSM keys and values are at most 255 characters"));
    }
    Ok((k.to_string(), v.to_string()))
}

/// The `osm_tags` column's form, `k=v;k=v`, as pairs (empty text: none). A key given twice is
/// an error.
pub fn parse_osm_tags(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = split_tag(part)?;
        if out.iter().any(|(ok, _)| *ok == k) {
            return Err(format!("key `{k}` is given twice"));
        }
        out.push((k, v));
    }
    Ok(out)
}

/// Pairs in the `osm_tags` column's form.
pub fn format_osm_tags(tags: &[(String, String)]) -> String {
    tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(";")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_table_is_the_label_vocabulary() {
        let t = FeatureTypes::builtin();
        assert_eq!(t.names(), crate::LabelVocab::default().names());
        assert_eq!(t.letter("entrance"), "D");
        assert_eq!(t.by_letter('t').unwrap().name, "tactile_path");
        let ramp = t.get("ramp").unwrap();
        assert_eq!(
            ramp.preset(None).unwrap().pairs(),
            [
                ("barrier".to_string(), "kerb".to_string()),
                ("kerb".to_string(), "lowered".to_string())
            ]
        );
        let e = ramp.preset(Some("escalator")).unwrap_err().to_string();
        assert!(e.contains("escalator") && e.contains("lowered kerb"), "{e}");
        assert!(t.get("stairs").unwrap_err().to_string().contains("obstacle"));
    }

    #[test]
    fn bad_tables_are_refused_with_the_reason() {
        let one = |body: &str| FeatureTypes::parse(&format!("[[types]]\n{body}"));
        let ok = "name = \"a\"\ndisplay = \"a\"\nletter = \"A\"\ncolour = \"#112233\"\npresets = [{ name = \"p\", tags = [\"k=v\"] }]";
        assert!(one(ok).is_ok());
        let e = one(&ok.replace("k=v", "kv")).unwrap_err().to_string();
        assert!(e.contains("key=value"), "{e}");
        let e = one(&ok.replace("#112233", "blue")).unwrap_err().to_string();
        assert!(e.contains("#rrggbb"), "{e}");
        let e = FeatureTypes::parse(&format!("[[types]]\n{ok}\n[[types]]\n{ok}")).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
    }

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse_osm_tags(text).unwrap()
    }

    #[test]
    fn tags_split_into_preset_optional_keys_and_others_and_back() {
        let t = FeatureTypes::builtin();
        let tactile = t.get("tactile_path").unwrap();
        // The most specific preset wins: a crossing with tactile paving, not just paving.
        let c =
            tactile.choice(&pairs("highway=crossing;tactile_paving=yes;crossing=marked;name=X"));
        assert_eq!(tactile.presets[c.preset].name, "crossing with tactile paving");
        assert_eq!(c.optional, pairs("crossing=marked"));
        assert_eq!(c.other, pairs("name=X"));
        assert_eq!(
            format_osm_tags(&tactile.compose(&c)),
            "highway=crossing;tactile_paving=yes;crossing=marked;name=X"
        );
        // Nothing given: the default preset.
        let entrance = t.get("entrance").unwrap();
        let mut c = entrance.choice(&[]);
        assert_eq!(format_osm_tags(&entrance.compose(&c)), "entrance=yes");
        c.preset = 1;
        c.set_optional("wheelchair", "limited");
        c.set_optional("door", "sliding");
        c.set_optional("door", "");
        assert_eq!(c.optional_value("wheelchair"), "limited");
        assert_eq!(format_osm_tags(&entrance.compose(&c)), "entrance=main;wheelchair=limited");
        assert!(entrance.matching_preset(&entrance.compose(&c)).is_some());
        // To another type: its default preset, the optional keys it shares.
        let ramp = t.get("ramp").unwrap();
        let moved = c.for_type(ramp);
        assert_eq!(
            format_osm_tags(&ramp.compose(&moved)),
            "barrier=kerb;kerb=lowered;wheelchair=limited"
        );
        assert_eq!(entrance.optional_values("door").unwrap()[0], "hinged");
        assert_eq!(t.get("elevator").unwrap().optional_values("level"), None);
        assert_eq!(entrance.optional_values("level"), None);
    }

    #[test]
    fn osm_tags_round_trip_in_the_csv_form() {
        let tags = parse_osm_tags("barrier=kerb; kerb=lowered;tactile_paving=yes").unwrap();
        assert_eq!(tags.len(), 3);
        assert_eq!(format_osm_tags(&tags), "barrier=kerb;kerb=lowered;tactile_paving=yes");
        assert_eq!(parse_osm_tags(&format_osm_tags(&tags)).unwrap(), tags);
        assert!(parse_osm_tags("").unwrap().is_empty());
        assert!(parse_osm_tags("kerb=lowered;kerb=flush").unwrap_err().contains("twice"));
        assert!(parse_osm_tags("=yes").unwrap_err().contains("empty"));
        assert!(parse_osm_tags("wheel chair=yes").is_err());
    }
}
