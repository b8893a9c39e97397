//! "Learn this area": the examples a fine-tune on one view of the map trains on. The features
//! the map already has there are labels (and the mapper's own tags, which win where both name
//! the same place); the view's suggestion candidates that lie away from every one of them are
//! its "no feature here" examples, as in native training ([`crate::data::background`]).
//!
//! Pure and deterministic: the page hands in what the server reported for the view, and the
//! same view gives the same examples everywhere. Each type is capped and picked spread over
//! the view (in order of position, evenly spaced), so one busy street does not fill the set
//! and the fine-tune stays within the page's time budget. A type with fewer than
//! [`MIN_TAGS_PER_CLASS`] examples is left out and named, not refused: the model keeps what it
//! knows of it.

use crate::data::background::MIN_DISTANCE_M;
use crate::data::candidates::{ALREADY_MAPPED_M, MappedFeature};
use crate::data::features::FeatureTypes;

use crate::data::tile::distance_m;
use crate::data::vocab::{LabelVocab, NONE_LABEL};
use crate::error::CoreError;
use crate::train::finetune::MIN_TAGS_PER_CLASS;

/// The most places "learn this area" takes by default: this project's goal for adapting to a
/// new area is "at most 200 tags of the new region", and native adaptation takes as many rows
/// (`cargo xtask reference adapt`).
pub const ADAPT_BUDGET: usize = 200;

/// At most this many examples of each feature type, and of "no feature here".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AreaLimits {
    pub per_type: usize,
    pub background: usize,
}

impl Default for AreaLimits {
    /// Five types of 30 and 50 background places: [`ADAPT_BUDGET`] in all. The busiest view of
    /// the bundled data is learned well within a minute on the CPU (BENCHMARKS.md).
    fn default() -> Self {
        Self { per_type: 30, background: 50 }
    }
}

/// A labelled place: a mapper's tag, a feature of the map, or a background point.
#[derive(Debug, Clone, PartialEq)]
pub struct AreaPoint {
    pub id: String,
    pub lat: f64,
    pub lon: f64,
    pub label: String,
    /// The metadata branch's source: a tag's own, [`MAP_SOURCE`] for the map's places.
    pub source: String,
}

/// The source of the map's features and background points, as in `collect`'s rows.
pub const MAP_SOURCE: &str = "osm";

/// How many of one type the view had and how many were taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeCount {
    pub label: String,
    pub available: usize,
    pub used: usize,
}

/// The examples, and what was left out and why (for the page to say).
#[derive(Debug, Clone, PartialEq)]
pub struct AreaPlan {
    /// Feature types first (by the vocabulary's order), then the background points.
    pub examples: Vec<AreaPoint>,
    /// Per feature type of the vocabulary that the view has (`none` included, last).
    pub counts: Vec<TypeCount>,
    /// Types the view has too few of to learn (named with their count).
    pub left_out: Vec<String>,
}

impl AreaPlan {
    /// One line for people: what the fine-tune learns from.
    pub fn describe(&self) -> String {
        let used: Vec<String> = self
            .counts
            .iter()
            .filter(|c| c.used > 0)
            .map(|c| {
                let name = short_name(&c.label);
                if c.used < c.available {
                    format!("{name} {} (of {})", c.used, c.available)
                } else {
                    format!("{name} {}", c.used)
                }
            })
            .collect();
        let mut s = format!("{} places: {}", self.examples.len(), used.join(", "));
        if !self.left_out.is_empty() {
            s.push_str(&format!("; left out: {}", self.left_out.join(", ")));
        }
        s
    }
}

/// A class as the plan's line names it: the table's display name, "no feature" for `none`.
fn short_name(label: &str) -> String {
    if label == NONE_LABEL { "no feature".into() } else { FeatureTypes::builtin().display(label) }
}

/// At most `n` of `items`, in order of position, evenly spaced.
fn spread(mut items: Vec<AreaPoint>, n: usize) -> Vec<AreaPoint> {
    items.sort_by(|a, b| {
        a.lat.total_cmp(&b.lat).then(a.lon.total_cmp(&b.lon)).then(a.id.cmp(&b.id))
    });
    if items.len() <= n {
        return items;
    }
    let len = items.len();
    (0..n).map(|i| items[i * len / n].clone()).collect()
}

/// The examples of a view: `own` (the mapper's tags in it), `mapped` (what the map has there,
/// `/api/features`) and `candidates` (`/api/candidates`' points), under `limits`.
///
/// Errors when fewer than two classes (background included) have enough examples: nothing to
/// learn from.
pub fn area_examples(
    own: &[AreaPoint],
    mapped: &[MappedFeature],
    candidates: &[(f64, f64)],
    labels: &LabelVocab,
    limits: AreaLimits,
) -> Result<AreaPlan, CoreError> {
    let mut examples = Vec::new();
    let mut counts = Vec::new();
    let mut left_out = Vec::new();
    let mut classes = 0;
    // One class: learned when `picked` has enough places, else left out and named.
    let mut take = |label: &str, available: usize, picked: Vec<AreaPoint>| {
        let used = if picked.len() < MIN_TAGS_PER_CLASS {
            let name = short_name(label);
            left_out.push(format!("{name} ({available}, needs {MIN_TAGS_PER_CLASS})"));
            0
        } else {
            classes += 1;
            let n = picked.len();
            examples.extend(picked);
            n
        };
        counts.push(TypeCount { label: label.to_string(), available, used });
    };
    for label in labels.names().iter().filter(|l| l.as_str() != NONE_LABEL) {
        let mine: Vec<AreaPoint> = own.iter().filter(|p| &p.label == label).cloned().collect();
        // A mapped feature the mapper tagged too (near any of its geometry) counts once: the
        // tag wins.
        let theirs: Vec<AreaPoint> = mapped
            .iter()
            .filter(|m| &m.label == label)
            .filter(|m| !mine.iter().any(|p| m.distance_m(p.lat, p.lon) <= ALREADY_MAPPED_M))
            .map(|m| AreaPoint {
                id: m.id.clone(),
                lat: m.lat,
                lon: m.lon,
                label: label.clone(),
                source: MAP_SOURCE.into(),
            })
            .collect();
        let available = mine.len() + theirs.len();
        if available == 0 {
            continue;
        }
        let room = limits.per_type.saturating_sub(mine.len());
        let mut picked = spread(mine, limits.per_type);
        picked.extend(spread(theirs, room));
        take(label, available, picked);
    }
    if labels.none_index().is_some() {
        // Away from every mapped feature (its whole line) and every tag of any type.
        let clear = |lat: f64, lon: f64| {
            mapped.iter().all(|m| m.distance_m(lat, lon) >= MIN_DISTANCE_M)
                && own.iter().all(|p| distance_m(p.lat, p.lon, lat, lon) >= MIN_DISTANCE_M)
        };
        let mut background: Vec<AreaPoint> = Vec::new();
        for &(lat, lon) in candidates {
            // Candidates a few metres apart are one place.
            if clear(lat, lon)
                && !background.iter().any(|b| distance_m(b.lat, b.lon, lat, lon) < MIN_DISTANCE_M)
            {
                background.push(AreaPoint {
                    id: format!("none/{}", background.len() + 1),
                    lat,
                    lon,
                    label: NONE_LABEL.into(),
                    source: MAP_SOURCE.into(),
                });
            }
        }
        if !background.is_empty() {
            let available = background.len();
            take(NONE_LABEL, available, spread(background, limits.background));
        }
    }
    if classes < 2 {
        let had = if examples.is_empty() && left_out.is_empty() {
            "it has no mapped feature".to_string()
        } else {
            let mut found: Vec<String> = counts
                .iter()
                .map(|c| format!("{} {}", short_name(&c.label), c.available))
                .collect();
            if found.is_empty() {
                found.push("nothing".into());
            }
            format!("it has {}", found.join(", "))
        };
        return Err(CoreError::NotEnoughTags(format!(
            "this view has too little to learn from ({had}): learning needs at least two kinds \
             (feature types or \"no feature here\"), {MIN_TAGS_PER_CLASS} places each; zoom out \
             or tag some places first"
        )));
    }
    Ok(AreaPlan { examples, counts, left_out })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// About one metre of latitude, in degrees.
    const M: f64 = 1.0 / 111_195.0;

    fn labels() -> LabelVocab {
        LabelVocab::new(
            ["none", "ramp", "elevator", "entrance", "tactile_path", "obstacle"]
                .map(String::from)
                .to_vec(),
        )
        .unwrap()
    }

    fn feature(id: usize, label: &str, north_m: f64) -> MappedFeature {
        MappedFeature {
            id: format!("node/{id}"),
            label: label.into(),
            lat: 60.17 + north_m * M,
            lon: 24.94,
            line: Vec::new(),
        }
    }

    #[test]
    fn features_are_labels_and_clear_candidates_are_background() {
        // 5 entrances 50 m apart, 4 obstacles, 2 ramps (too few), a bollard row as a line.
        let mut mapped: Vec<MappedFeature> =
            (0..5).map(|i| feature(i, "entrance", 50.0 * i as f64)).collect();
        mapped.extend((0..4).map(|i| feature(10 + i, "obstacle", 25.0 + 50.0 * i as f64)));
        mapped.extend((0..2).map(|i| feature(20 + i, "ramp", 1000.0 + 50.0 * i as f64)));
        let mut row = feature(30, "obstacle", 2000.0);
        row.line = vec![[60.17 + 2000.0 * M, 24.94], [60.17 + 2100.0 * M, 24.94]];
        mapped.push(row);
        // Candidates: on an entrance (not background), beside the line's far end (not
        // background), two 3 m apart (one place), and four clear ones.
        let candidates = vec![
            (60.17, 24.94),
            (60.17 + 2098.0 * M, 24.94),
            (60.17 + 3000.0 * M, 24.94),
            (60.17 + 3003.0 * M, 24.94),
            (60.17 + 4000.0 * M, 24.94),
            (60.17 + 5000.0 * M, 24.94),
            (60.17 + 6000.0 * M, 24.94),
        ];
        let plan =
            area_examples(&[], &mapped, &candidates, &labels(), AreaLimits::default()).unwrap();
        let count = |l: &str| plan.examples.iter().filter(|e| e.label == l).count();
        assert_eq!((count("entrance"), count("obstacle"), count("ramp")), (5, 5, 0));
        assert_eq!(count("none"), 4, "{:?}", plan.examples);
        assert!(plan.left_out.iter().any(|l| l.starts_with("ramp (2")), "{:?}", plan.left_out);
        assert!(plan.describe().contains("no feature 4"), "{}", plan.describe());
        let bg: Vec<f64> = plan
            .examples
            .iter()
            .filter(|e| e.label == "none")
            .map(|e| ((e.lat - 60.17) / M).round())
            .collect();
        assert_eq!(bg, [3000.0, 4000.0, 5000.0, 6000.0]);
    }

    #[test]
    fn caps_spread_over_the_view_and_own_tags_win() {
        let mapped: Vec<MappedFeature> =
            (0..100).map(|i| feature(i, "entrance", 10.0 * i as f64)).collect();
        // The mapper tagged the first feature again, and two more entrances.
        let own: Vec<AreaPoint> = [0.0, 2000.0, 2100.0]
            .iter()
            .enumerate()
            .map(|(i, &n)| AreaPoint {
                id: format!("t{i}"),
                lat: 60.17 + n * M,
                lon: 24.94,
                label: "entrance".into(),
                source: "user".into(),
            })
            .collect();
        let candidates: Vec<(f64, f64)> =
            (0..50).map(|i| (60.17 + (5000.0 + 20.0 * i as f64) * M, 24.94)).collect();
        let limits = AreaLimits { per_type: 10, background: 5 };
        let plan = area_examples(&own, &mapped, &candidates, &labels(), limits).unwrap();
        let entrances: Vec<&AreaPoint> =
            plan.examples.iter().filter(|e| e.label == "entrance").collect();
        assert_eq!(entrances.len(), 10);
        assert_eq!(entrances.iter().filter(|e| e.id.starts_with('t')).count(), 3);
        assert!(!entrances.iter().any(|e| e.id == "node/0"), "the tag replaces the feature");
        // Seven of the other 99, spread from one end of the street to the other.
        let north: Vec<f64> = entrances
            .iter()
            .filter(|e| e.id.starts_with("node/"))
            .map(|e| ((e.lat - 60.17) / M).round())
            .collect();
        assert_eq!(north.len(), 7);
        assert!(north[0] < 100.0 && *north.last().unwrap() > 800.0, "{north:?}");
        assert_eq!(
            plan.counts[0],
            TypeCount { label: "entrance".into(), available: 102, used: 10 }
        );
        assert_eq!(plan.examples.iter().filter(|e| e.label == "none").count(), 5);
        // The same view gives the same examples.
        assert_eq!(area_examples(&own, &mapped, &candidates, &labels(), limits).unwrap(), plan);
    }

    /// A view with plenty of every type and of background places gives at most the budget.
    #[test]
    fn the_default_limits_take_at_most_the_budget() {
        let types = ["ramp", "elevator", "entrance", "tactile_path", "obstacle"];
        let mapped: Vec<MappedFeature> =
            (0..500).map(|i| feature(i, types[i % types.len()], 20.0 * i as f64)).collect();
        let candidates: Vec<(f64, f64)> =
            (0..500).map(|i| (60.17 + (20_000.0 + 20.0 * i as f64) * M, 24.94)).collect();
        let plan =
            area_examples(&[], &mapped, &candidates, &labels(), AreaLimits::default()).unwrap();
        assert_eq!(plan.examples.len(), ADAPT_BUDGET);
        assert!(plan.counts.iter().all(|c| c.used < c.available), "{:?}", plan.counts);
    }

    #[test]
    fn a_view_with_one_kind_is_refused_with_what_it_has() {
        let mapped: Vec<MappedFeature> =
            (0..6).map(|i| feature(i, "entrance", 50.0 * i as f64)).collect();
        let e = area_examples(&[], &mapped, &[], &labels(), AreaLimits::default()).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("entrance 6") && text.contains("two kinds"), "{text}");
        let e = area_examples(&[], &[], &[], &labels(), AreaLimits::default()).unwrap_err();
        assert!(e.to_string().contains("no mapped feature"), "{e}");
    }
}
