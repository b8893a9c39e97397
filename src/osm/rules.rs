//! The documented, configurable table that maps OSM tags to feature types
//! (`config/osm_rules.toml` is the default, compiled in).

use anyhow::{Context, Result, bail};
use model_core::LabelVocab;
use serde::Deserialize;

/// Keys that only ever record accessibility (the feature table's optional keys that say how
/// accessible something is, and the kerb keys).
pub const ACCESSIBILITY_KEYS: [&str; 7] =
    ["wheelchair", "tactile_paving", "kerb", "curb", "ramp:wheelchair", "door", "automatic_door"];

/// The default table, `config/osm_rules.toml`.
pub const DEFAULT_RULES: &str = include_str!("../../config/osm_rules.toml");

#[derive(Debug, Clone, PartialEq)]
enum Values {
    Any,
    OneOf(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
struct Condition {
    key: String,
    values: Values,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub label: String,
    conditions: Vec<Condition>,
}

/// Ordered rules: the first that matches wins.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules(pub Vec<Rule>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    rules: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(rename = "type")]
    label: String,
    #[serde(rename = "match")]
    conditions: Vec<String>,
}

impl Rules {
    /// Parses a rules table; every type must be in `labels`.
    pub fn parse(text: &str, origin: &str, labels: &LabelVocab) -> Result<Self> {
        let raw: RawRules = toml::from_str(text).with_context(|| format!("parsing {origin}"))?;
        let mut rules = Vec::new();
        for (i, r) in raw.rules.into_iter().enumerate() {
            labels.index(&r.label).with_context(|| format!("{origin}: rule #{}", i + 1))?;
            if r.conditions.is_empty() {
                bail!("{origin}: rule #{} has no conditions", i + 1);
            }
            let mut conditions = Vec::new();
            for c in r.conditions {
                let Some((key, value)) = c.split_once('=') else {
                    bail!("{origin}: rule #{}: condition `{c}` is not `key=value`", i + 1);
                };
                let values = if value == "*" {
                    Values::Any
                } else {
                    Values::OneOf(value.split('|').map(str::to_string).collect())
                };
                conditions.push(Condition { key: key.to_string(), values });
            }
            rules.push(Rule { label: r.label, conditions });
        }
        Ok(Self(rules))
    }

    pub fn default_rules(labels: &LabelVocab) -> Result<Self> {
        Self::parse(DEFAULT_RULES, "config/osm_rules.toml", labels)
    }

    /// Whether some rule's condition names this tag: it is part of what makes an element a
    /// feature (`barrier=kerb`, `entrance=main`), not of what else it is (`highway=crossing`).
    pub fn names_tag(&self, key: &str, value: &str) -> bool {
        self.0.iter().flat_map(|r| &r.conditions).any(|c| {
            c.key == key
                && match &c.values {
                    Values::Any => true,
                    Values::OneOf(vs) => vs.iter().any(|x| x == value),
                }
        })
    }

    /// Whether a tag records accessibility: one a rule names, or one of
    /// [`ACCESSIBILITY_KEYS`]. What a survey adds; removing these makes a feature unmapped,
    /// while what else an element is (`highway=crossing`, `crossing=marked`, `level=1`,
    /// `access=private`) stays.
    /// Every key a condition reads.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().flat_map(|r| &r.conditions).map(|c| c.key.as_str())
    }

    pub fn is_accessibility(&self, key: &str, value: &str) -> bool {
        self.names_tag(key, value) || ACCESSIBILITY_KEYS.contains(&key)
    }

    /// The type for an element with these tags, if any rule matches.
    pub fn classify<'a>(&self, tags: &[(&'a str, &'a str)]) -> Option<&str> {
        let get = |k: &str| tags.iter().find(|(tk, _)| *tk == k).map(|(_, v)| *v);
        self.0
            .iter()
            .find(|r| {
                r.conditions.iter().all(|c| match (get(&c.key), &c.values) {
                    (Some(_), Values::Any) => true,
                    (Some(v), Values::OneOf(vs)) => vs.iter().any(|x| x == v),
                    (None, _) => false,
                })
            })
            .map(|r| r.label.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules::default_rules(&LabelVocab::default()).unwrap()
    }

    #[test]
    fn default_table_maps_the_documented_tags() {
        let r = rules();
        assert_eq!(r.classify(&[("highway", "elevator")]), Some("elevator"));
        assert_eq!(r.classify(&[("barrier", "kerb"), ("kerb", "lowered")]), Some("ramp"));
        assert_eq!(r.classify(&[("curb", "sloped")]), Some("ramp"));
        assert_eq!(r.classify(&[("ramp:wheelchair", "yes")]), Some("ramp"));
        assert_eq!(r.classify(&[("entrance", "main")]), Some("entrance"));
        assert_eq!(r.classify(&[("tactile_paving", "contrasted")]), Some("tactile_path"));
        assert_eq!(r.classify(&[("barrier", "bollard")]), Some("obstacle"));
        assert_eq!(r.classify(&[("barrier", "kerb"), ("kerb", "raised")]), Some("obstacle"));
        assert_eq!(r.classify(&[("tactile_paving", "no")]), None);
        assert_eq!(r.classify(&[("amenity", "bench")]), None);
        // order: an elevator that is also an entrance is an elevator
        assert_eq!(r.classify(&[("entrance", "yes"), ("highway", "elevator")]), Some("elevator"));
    }

    /// What `osm export` writes for a type, `collect` reads back as that type: every preset
    /// of the feature-type table (with each optional key) classifies as its own type.
    #[test]
    fn every_preset_of_the_feature_table_reads_back_as_its_type() {
        let r = rules();
        for ty in &model_core::data::features::FeatureTypes::builtin().types {
            for p in &ty.presets {
                let mut tags = p.pairs();
                for o in &ty.optional {
                    let (k, v) = o.split_once('=').unwrap();
                    tags.push((k.into(), v.split('|').next().unwrap().replace('*', "yes")));
                }
                let refs: Vec<(&str, &str)> =
                    tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                assert_eq!(r.classify(&refs), Some(ty.name.as_str()), "{} / {}", ty.name, p.name);
            }
        }
    }

    #[test]
    fn bad_tables_are_refused_with_the_reason() {
        let v = LabelVocab::default();
        let e = Rules::parse("[[rules]]\ntype = \"stairs\"\nmatch = [\"a=b\"]\n", "x.toml", &v)
            .unwrap_err();
        assert!(format!("{e:#}").contains("stairs"));
        let e = Rules::parse("[[rules]]\ntype = \"ramp\"\nmatch = [\"nokey\"]\n", "x.toml", &v)
            .unwrap_err();
        assert!(format!("{e:#}").contains("nokey"));
        assert!(Rules::parse("rules = 3", "x.toml", &v).is_err());
    }
}
