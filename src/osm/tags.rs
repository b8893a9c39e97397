//! An element's tags, compact: every key and value is an interned, shared string, and so is
//! every whole set of tags, so the hundred thousand ways tagged just `highway=footway` in a
//! country extract share one list (16 bytes each: a pointer and a length), and a clone (a
//! labelled feature keeps its element's tags) copies a pointer.

use std::collections::HashSet;
use std::sync::Arc;

/// One interned string.
pub type Str = Arc<str>;

/// An element's tags in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tags(Arc<[(Str, Str)]>);

impl Default for Tags {
    fn default() -> Self {
        Self(Arc::from(Vec::new()))
    }
}

impl Tags {
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| &**k == key).map(|(_, v)| &**v)
    }

    pub fn iter(&self) -> <&Self as IntoIterator>::IntoIter {
        self.into_iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// These tags plus `key=value` at the end.
    pub fn with(&self, key: &str, value: &str) -> Self {
        self.0
            .iter()
            .cloned()
            .chain([(Str::from(key), Str::from(value))])
            .collect::<Vec<_>>()
            .into()
    }

    /// The tags `keep` says yes to (sharing their strings).
    pub fn filtered(&self, keep: impl Fn(&str, &str) -> bool) -> Self {
        self.0.iter().filter(|(k, v)| keep(k, v)).cloned().collect::<Vec<_>>().into()
    }

    /// As owned pairs (what model-core's geometry holds).
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        self.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }
}

impl<'a> IntoIterator for &'a Tags {
    type Item = (&'a str, &'a str);
    type IntoIter =
        std::iter::Map<std::slice::Iter<'a, (Str, Str)>, fn(&'a (Str, Str)) -> (&'a str, &'a str)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }
}

impl From<Vec<(Str, Str)>> for Tags {
    fn from(v: Vec<(Str, Str)>) -> Self {
        Self(Arc::from(v))
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for Tags {
    /// Tags from pairs, each string its own (readers intern through [`Interner`]).
    fn from_iter<I: IntoIterator<Item = (K, V)>>(it: I) -> Self {
        it.into_iter()
            .map(|(k, v)| (Str::from(k.as_ref()), Str::from(v.as_ref())))
            .collect::<Vec<_>>()
            .into()
    }
}

/// Hands out one shared copy of each distinct string and of each distinct set of tags.
#[derive(Debug, Default)]
pub struct Interner {
    strings: HashSet<Str>,
    sets: HashSet<Arc<[(Str, Str)]>>,
}

impl Interner {
    pub fn get(&mut self, s: &str) -> Str {
        if let Some(found) = self.strings.get(s) {
            return found.clone();
        }
        let new = Str::from(s);
        self.strings.insert(new.clone());
        new
    }

    /// `pairs` as tags, their strings and the set interned.
    pub fn tags<'a>(&mut self, pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Tags {
        let pairs: Vec<(Str, Str)> = pairs.map(|(k, v)| (self.get(k), self.get(v))).collect();
        if let Some(found) = self.sets.get(pairs.as_slice()) {
            return Tags(found.clone());
        }
        let new: Arc<[(Str, Str)]> = Arc::from(pairs);
        self.sets.insert(new.clone());
        Tags(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interned_tags_share_their_strings_and_read_like_pairs() {
        let mut i = Interner::default();
        let a = i.tags([("highway", "footway"), ("surface", "asphalt")].into_iter());
        let b = i.tags([("highway", "footway")].into_iter());
        assert_eq!(a.get("highway"), Some("footway"));
        assert_eq!(a.get("name"), None);
        assert!(Arc::ptr_eq(&a.0[0].1, &b.0[0].1), "one copy of `footway`");
        let c = i.tags([("highway", "footway")].into_iter());
        assert!(Arc::ptr_eq(&b.0, &c.0), "one copy of the set");
        assert_eq!(a.len(), 2);
        assert_eq!(a.with("building", "yes").get("building"), Some("yes"));
        assert_eq!(
            a.filtered(|k, _| k == "surface").to_pairs(),
            [("surface".into(), "asphalt".into())]
        );
        assert_eq!(
            a,
            [("highway", "footway"), ("surface", "asphalt")].into_iter().collect::<Tags>()
        );
    }
}
