//! Label and source vocabularies: the mapping between names and model indices.
//!
//! Both are plain ordered lists so they serialise as JSON arrays and read back identically in
//! the CLI and the browser.

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// The tag sources AccessAtlas knows by default. Anything else maps to [`UNKNOWN_SOURCE`].
pub const DEFAULT_SOURCES: [&str; 3] = ["osm", "user", "model"];

/// The bucket that every source outside the vocabulary falls into.
pub const UNKNOWN_SOURCE: &str = "unknown";

/// The class of "no feature here": background points, never offered by the tag form. A
/// model trained with it has it last; one trained without it (five outputs) works as before.
pub const NONE_LABEL: &str = "none";

/// Ordered list of class names; the index of a name is its class id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LabelVocab(Vec<String>);

/// The feature-type table's labels, in model-index order ([`crate::data::features`]).
impl Default for LabelVocab {
    fn default() -> Self {
        Self(crate::data::features::FeatureTypes::builtin().names())
    }
}

impl LabelVocab {
    /// The feature types and [`NONE_LABEL`] last: what a model that can say "no feature
    /// here" predicts, and what `tags.csv` rows are checked against.
    pub fn with_none() -> Self {
        let mut names = Self::default().0;
        names.push(NONE_LABEL.to_string());
        Self(names)
    }
    /// The index of [`NONE_LABEL`], if this vocabulary has it.
    pub fn none_index(&self) -> Option<usize> {
        self.0.iter().position(|n| n == NONE_LABEL)
    }
    /// The feature types: every label but [`NONE_LABEL`].
    pub fn feature_names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str).filter(|n| *n != NONE_LABEL)
    }
    /// A vocabulary from names; duplicates and empty names are refused.
    pub fn new(names: Vec<String>) -> Result<Self, CoreError> {
        validate_names(&names, "label")?;
        Ok(Self(names))
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn names(&self) -> &[String] {
        &self.0
    }
    pub fn name(&self, index: usize) -> Option<&str> {
        self.0.get(index).map(String::as_str)
    }
    /// The class id of `name`, or an error that lists the known names.
    pub fn index(&self, name: &str) -> Result<usize, CoreError> {
        self.0
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| CoreError::UnknownLabel(name.to_string(), self.0.join(", ")))
    }
}

/// Ordered list of known sources plus a trailing `unknown` bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SourceVocab(Vec<String>);

impl Default for SourceVocab {
    fn default() -> Self {
        Self(DEFAULT_SOURCES.iter().map(|s| s.to_string()).collect())
    }
}

impl SourceVocab {
    /// A vocabulary from known source names (the `unknown` bucket is implicit and last).
    pub fn new(names: Vec<String>) -> Result<Self, CoreError> {
        validate_names(&names, "source")?;
        if names.iter().any(|n| n == UNKNOWN_SOURCE) {
            return Err(CoreError::InvalidConfig(format!(
                "`{UNKNOWN_SOURCE}` is the implicit bucket and cannot be listed as a source"
            )));
        }
        Ok(Self(names))
    }
    /// Known sources, without the `unknown` bucket.
    pub fn names(&self) -> &[String] {
        &self.0
    }
    /// Width of the one-hot encoding: known sources plus the `unknown` bucket.
    pub fn one_hot_len(&self) -> usize {
        self.0.len() + 1
    }
    /// Index of `name`; `None` means it falls into the `unknown` bucket.
    pub fn lookup(&self, name: &str) -> Option<usize> {
        let name = name.trim();
        self.0.iter().position(|n| n.eq_ignore_ascii_case(name))
    }
    /// Index in the one-hot encoding, with unknown sources in the last slot.
    pub fn index(&self, name: &str) -> usize {
        self.lookup(name).unwrap_or(self.0.len())
    }
    /// Writes the one-hot encoding of `name` into `out` (length [`Self::one_hot_len`]).
    pub fn one_hot_into(&self, name: &str, out: &mut [f32]) {
        debug_assert_eq!(out.len(), self.one_hot_len());
        out.fill(0.0);
        out[self.index(name)] = 1.0;
    }
}

fn validate_names(names: &[String], what: &str) -> Result<(), CoreError> {
    if names.is_empty() {
        return Err(CoreError::InvalidConfig(format!("the {what} vocabulary is empty")));
    }
    for (i, n) in names.iter().enumerate() {
        if n.trim().is_empty() {
            return Err(CoreError::InvalidConfig(format!("{what} #{i} is empty")));
        }
        if names[..i].contains(n) {
            return Err(CoreError::InvalidConfig(format!("{what} `{n}` is listed twice")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_and_refuse_unknown() {
        let v = LabelVocab::default();
        assert_eq!(v.len(), 5);
        assert_eq!(v.index("entrance").unwrap(), 2);
        assert_eq!(v.name(4), Some("obstacle"));
        let err = v.index("stairs").unwrap_err().to_string();
        assert!(err.contains("stairs") && err.contains("tactile_path"), "{err}");
    }

    #[test]
    fn none_comes_last_and_only_when_asked_for() {
        let v = LabelVocab::with_none();
        assert_eq!(v.len(), 6);
        assert_eq!(v.none_index(), Some(5));
        assert_eq!(v.name(5), Some(NONE_LABEL));
        assert_eq!(v.feature_names().count(), 5);
        assert_eq!(LabelVocab::default().none_index(), None);
        assert!(LabelVocab::default().index(NONE_LABEL).is_err());
    }

    #[test]
    fn unknown_sources_share_the_last_bucket() {
        let v = SourceVocab::default();
        assert_eq!(v.one_hot_len(), 4);
        assert_eq!(v.index("osm"), 0);
        assert_eq!(v.index(" USER "), 1);
        assert_eq!(v.index("mapillary"), 3);
        assert_eq!(v.index(""), 3);
        let mut hot = vec![9.0; 4];
        v.one_hot_into("model", &mut hot);
        assert_eq!(hot, vec![0.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn bad_vocabularies_are_refused() {
        assert!(LabelVocab::new(vec![]).is_err());
        assert!(LabelVocab::new(vec!["a".into(), "a".into()]).is_err());
        assert!(SourceVocab::new(vec!["unknown".into()]).is_err());
        assert!(SourceVocab::new(vec![" ".into()]).is_err());
    }

    #[test]
    fn vocab_json_is_a_plain_list() {
        let json = serde_json::to_string(&LabelVocab::default()).unwrap();
        assert_eq!(json, r#"["ramp","elevator","entrance","tactile_path","obstacle"]"#);
    }
}
