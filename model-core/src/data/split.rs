//! The train/validation/test split: stratified by class, grouped by map cell.
//!
//! Neighbouring tags share most of their tile (a zoom-19 window is ~33 m across, and entrances
//! line façades, bollards stand in rows), so a plain random split puts near-copies of training
//! examples into the test set and inflates accuracy. Every tag is therefore assigned to the
//! zoom-17 tile cell (~300 m at 60° N) that contains it, whole cells go to one split, and cells
//! are assigned greedily so that each class comes as close as the cells allow to the target
//! fractions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::CoreError;
use crate::data::tile::lat_lon_to_tile;
use crate::rng::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitConfig {
    /// Fractions of train, val, test (they must sum to 1).
    pub fractions: [f64; 3],
    pub seed: u64,
    /// Zoom of the grouping cells.
    pub group_zoom: u8,
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self { fractions: [0.70, 0.15, 0.15], seed: 42, group_zoom: 17 }
    }
}

/// The cell a point is grouped by.
pub fn group_of(lat: f64, lon: f64, zoom: u8) -> Result<(u32, u32), CoreError> {
    let t = lat_lon_to_tile(lat, lon, zoom)?;
    Ok((t.x, t.y))
}

/// Assigns each item (`(class index, group)`) to a split. Deterministic for a seed.
pub fn stratified_group_split(
    items: &[(usize, (u32, u32))],
    num_classes: usize,
    cfg: &SplitConfig,
) -> Result<Vec<Split>, CoreError> {
    let parts = stratified_group_parts(items, num_classes, &cfg.fractions, cfg.seed)?;
    Ok(parts.into_iter().map(|p| Split::ALL[p]).collect())
}

/// Deals whole groups to parts of the given `fractions` (they must sum to 1), greedily so that
/// each class comes as close as the groups allow to each part's fraction: the part of each
/// item (an index into `fractions`). Groups go in a seeded random order, largest first.
fn stratified_group_parts(
    items: &[(usize, (u32, u32))],
    num_classes: usize,
    fractions: &[f64],
    seed: u64,
) -> Result<Vec<usize>, CoreError> {
    let sum: f64 = fractions.iter().sum();
    if fractions.is_empty() || (sum - 1.0).abs() > 1e-6 || fractions.iter().any(|f| *f < 0.0) {
        return Err(CoreError::InvalidConfig(format!(
            "split fractions {fractions:?} must sum to 1"
        )));
    }
    // Class counts per group, groups in a seeded random order, then largest first (stable).
    let mut groups: BTreeMap<(u32, u32), Vec<usize>> = BTreeMap::new();
    for (i, &(_, g)) in items.iter().enumerate() {
        groups.entry(g).or_default().push(i);
    }
    let mut order: Vec<Vec<usize>> = groups.into_values().collect();
    Rng::new(seed).shuffle(&mut order);
    order.sort_by_key(|members| std::cmp::Reverse(members.len()));

    let mut totals = vec![0usize; num_classes];
    for &(c, _) in items {
        if c >= num_classes {
            return Err(CoreError::BadBatch(format!("class index {c} >= {num_classes}")));
        }
        totals[c] += 1;
    }
    let mut current = vec![vec![0usize; num_classes]; fractions.len()];
    let mut out = vec![0; items.len()];
    for members in order {
        let mut counts = vec![0usize; num_classes];
        for &i in &members {
            counts[items[i].0] += 1;
        }
        // How much each part still needs of what this group holds, relative to class size.
        let need = |s: usize| -> f64 {
            (0..num_classes)
                .filter(|&c| counts[c] > 0)
                .map(|c| {
                    let target = fractions[s] * totals[c] as f64;
                    counts[c] as f64 * (target - current[s][c] as f64) / totals[c] as f64
                })
                .sum()
        };
        let best = (0..fractions.len())
            .max_by(|&a, &b| need(a).total_cmp(&need(b)).then(b.cmp(&a)))
            .unwrap_or(0);
        for (c, n) in counts.iter().enumerate() {
            current[best][c] += n;
        }
        for &i in &members {
            out[i] = best;
        }
    }
    Ok(out)
}

/// [`stratified_group_split`] within each region (`regions[i]` names item `i`'s), so every
/// region is split in the target fractions of each of its classes, not only the whole. A map
/// cell that holds items of two regions (overlapping extracts) goes with the region of its
/// first item, so no cell is ever split.
pub fn stratified_group_split_by_region(
    items: &[(usize, (u32, u32))],
    regions: &[&str],
    num_classes: usize,
    cfg: &SplitConfig,
) -> Result<Vec<Split>, CoreError> {
    within_each_region(items, regions, Split::Train, |part| {
        stratified_group_split(part, num_classes, cfg)
    })
}

/// `assign` run on each region's items alone (`regions[i]` names item `i`'s; a cell goes with
/// the region of its first item), its answers put back in the items' order.
fn within_each_region<T: Copy>(
    items: &[(usize, (u32, u32))],
    regions: &[&str],
    fill: T,
    assign: impl Fn(&[(usize, (u32, u32))]) -> Result<Vec<T>, CoreError>,
) -> Result<Vec<T>, CoreError> {
    if regions.len() != items.len() {
        return Err(CoreError::BadBatch(format!(
            "{} regions for {} items",
            regions.len(),
            items.len()
        )));
    }
    let mut cell_region: BTreeMap<(u32, u32), &str> = BTreeMap::new();
    let mut names: Vec<&str> = Vec::new();
    for (&(_, g), &r) in items.iter().zip(regions) {
        let r = *cell_region.entry(g).or_insert(r);
        if !names.contains(&r) {
            names.push(r);
        }
    }
    let mut out = vec![fill; items.len()];
    for name in names {
        let idx: Vec<usize> =
            (0..items.len()).filter(|&i| cell_region[&items[i].1] == name).collect();
        let part: Vec<(usize, (u32, u32))> = idx.iter().map(|&i| items[i]).collect();
        for (&i, s) in idx.iter().zip(assign(&part)?) {
            out[i] = s;
        }
    }
    Ok(out)
}

/// One fold of a `folds`-fold cross-validation (`fold` counts from 0): each region's cells are
/// dealt to `folds` equal parts, stratified by class as the split is (the same parts for every
/// `fold`, for a seed); part `fold` is the test split, and the other parts are split into
/// training and validation in `cfg`'s ratio of the two. Over all folds every item is tested
/// exactly once, each time by a model that saw nothing of its cell.
pub fn fold_split_by_region(
    items: &[(usize, (u32, u32))],
    regions: &[&str],
    num_classes: usize,
    cfg: &SplitConfig,
    folds: usize,
    fold: usize,
) -> Result<Vec<Split>, CoreError> {
    if folds < 2 || fold >= folds {
        return Err(CoreError::InvalidConfig(format!(
            "fold {} of {folds}: there must be 2 folds or more, and the fold one of them",
            fold + 1
        )));
    }
    let [train, val, _] = cfg.fractions;
    if train + val <= 0.0 {
        return Err(CoreError::InvalidConfig(format!(
            "split fractions {:?} leave nothing to train on",
            cfg.fractions
        )));
    }
    let equal = vec![1.0 / folds as f64; folds];
    let parts = within_each_region(items, regions, 0, |part| {
        stratified_group_parts(part, num_classes, &equal, cfg.seed)
    })?;
    let rest: Vec<usize> = (0..items.len()).filter(|&i| parts[i] != fold).collect();
    let rest_items: Vec<(usize, (u32, u32))> = rest.iter().map(|&i| items[i]).collect();
    let rest_regions: Vec<&str> = rest.iter().map(|&i| regions[i]).collect();
    let ratio =
        SplitConfig { fractions: [train / (train + val), val / (train + val), 0.0], ..cfg.clone() };
    let mut out = vec![Split::Test; items.len()];
    let got = stratified_group_split_by_region(&rest_items, &rest_regions, num_classes, &ratio)?;
    for (&i, s) in rest.iter().zip(got) {
        out[i] = s;
    }
    Ok(out)
}

/// Warnings about classes too small to appear in every split.
pub fn small_class_warnings(labels: &[String], items: &[(usize, (u32, u32))]) -> Vec<String> {
    let mut warnings = Vec::new();
    for (c, name) in labels.iter().enumerate() {
        let n = items.iter().filter(|(k, _)| *k == c).count();
        let mut cells: Vec<_> = items.iter().filter(|(k, _)| *k == c).map(|(_, g)| *g).collect();
        cells.sort();
        cells.dedup();
        if n == 0 {
            warnings.push(format!("class `{name}` has no examples: it stays in the vocabulary, the model never sees it"));
        } else if cells.len() < 3 {
            warnings.push(format!(
                "class `{name}` has {n} examples in {} map cell(s): too few to appear in train, val and test",
                cells.len()
            ));
        }
    }
    warnings
}

/// `n_samples / (n_classes * n_class)` over the training labels, as scikit-learn's
/// "balanced" weights; `n_classes` counts the classes present. Absent classes get 0.
pub fn class_weights(train_labels: &[usize], num_classes: usize) -> Vec<f32> {
    let mut counts = vec![0usize; num_classes];
    for &c in train_labels {
        counts[c] += 1;
    }
    let present = counts.iter().filter(|&&n| n > 0).count().max(1);
    let n = train_labels.len() as f64;
    counts
        .iter()
        .map(|&k| if k == 0 { 0.0 } else { (n / (present as f64 * k as f64)) as f32 })
        .collect()
}

/// A sample of at most `n` of the items `(id, class name)` in which each class keeps its share
/// (largest remainder; ties to the class whose name sorts first), and within a class the items
/// come in the order of their ids' hash (FNV-1a): the same items for the same rows, whatever
/// their order in the file. The indices, by class name, then hash; all of them, in their own
/// order, when there are `n` or fewer. (`cargo xtask reference adapt` draws its rows so too.)
pub fn stratified_sample(items: &[(&str, &str)], n: usize) -> Vec<usize> {
    if items.len() <= n {
        return (0..items.len()).collect();
    }
    let hash = |s: &str| {
        s.bytes().fold(0xcbf2_9ce4_8422_2325_u64 ^ 42, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
    };
    let mut by_class: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, (_, c)) in items.iter().enumerate() {
        by_class.entry(c).or_default().push(i);
    }
    let total = items.len() as f64;
    let mut quota: Vec<(&str, usize, f64)> = by_class
        .iter()
        .map(|(&c, v)| {
            let exact = v.len() as f64 * n as f64 / total;
            (c, exact.floor() as usize, exact - exact.floor())
        })
        .collect();
    let mut left = n - quota.iter().map(|q| q.1).sum::<usize>();
    let mut order: Vec<usize> = (0..quota.len()).collect();
    order.sort_by(|&a, &b| quota[b].2.total_cmp(&quota[a].2));
    for i in order {
        if left == 0 {
            break;
        }
        quota[i].1 += 1;
        left -= 1;
    }
    let mut out = Vec::with_capacity(n);
    for (c, k, _) in quota {
        let mut v = by_class.remove(c).unwrap_or_default();
        v.sort_by_key(|&i| hash(items[i].0));
        out.extend(v.into_iter().take(k));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample has exactly `n` items when there are more, keeps each class's share, draws
    /// no item twice, and takes the same items whatever their order; with `n` items or fewer it
    /// is all of them.
    #[test]
    fn a_stratified_sample_keeps_each_class_share() {
        // 600 of `a`, 300 of `b`, 100 of `c`.
        let ids: Vec<String> = (0..1000).map(|i| format!("node/{i}")).collect();
        let class = |i: usize| {
            if i < 600 {
                "a"
            } else if i < 900 {
                "b"
            } else {
                "c"
            }
        };
        let items: Vec<(&str, &str)> =
            ids.iter().enumerate().map(|(i, id)| (id.as_str(), class(i))).collect();
        let s = stratified_sample(&items, 100);
        assert_eq!(s.len(), 100);
        let per = |s: &[usize], c: &str| s.iter().filter(|&&i| items[i].1 == c).count();
        assert_eq!((per(&s, "a"), per(&s, "b"), per(&s, "c")), (60, 30, 10));
        let mut d = s.clone();
        d.sort_unstable();
        d.dedup();
        assert_eq!(d.len(), 100);
        // The same rows in another order: the same ids drawn, in the same order.
        let reversed: Vec<(&str, &str)> = items.iter().rev().copied().collect();
        let again: Vec<&str> =
            stratified_sample(&reversed, 100).iter().map(|&i| reversed[i].0).collect();
        assert_eq!(again, s.iter().map(|&i| items[i].0).collect::<Vec<_>>());
        // 3 of classes (a, a, b, c): shares 1.5, 0.75, 0.75 -> 1, 1, 1 (larger remainders first).
        let few = [("1", "a"), ("2", "a"), ("3", "b"), ("4", "c")];
        let s = stratified_sample(&few, 3);
        let per = |c: &str| s.iter().filter(|&&i| few[i].1 == c).count();
        assert_eq!((per("a"), per("b"), per("c")), (1, 1, 1));
        assert_eq!(stratified_sample(&few, 4), [0, 1, 2, 3]);
        assert_eq!(stratified_sample(&few, 9), [0, 1, 2, 3]);
    }

    /// Clustered synthetic data: 5 classes, points in rows inside 60 cells.
    fn clustered() -> Vec<(usize, (u32, u32))> {
        let mut r = Rng::new(9);
        let mut items = Vec::new();
        for cell in 0..60u32 {
            let class = (cell % 5) as usize;
            let n = 3 + r.below(8);
            for k in 0..n {
                let c = if k % 4 == 3 { (class + 1) % 5 } else { class };
                items.push((c, (cell, cell / 7)));
            }
        }
        items
    }

    #[test]
    fn groups_never_span_splits_and_classes_are_near_70_15_15() {
        let items = clustered();
        let splits = stratified_group_split(&items, 5, &SplitConfig::default()).unwrap();
        let mut where_: BTreeMap<(u32, u32), Split> = BTreeMap::new();
        for (i, &(_, g)) in items.iter().enumerate() {
            let s = *where_.entry(g).or_insert(splits[i]);
            assert_eq!(s, splits[i], "group {g:?} spans two splits");
        }
        let n = items.len() as f64;
        let frac = |s: Split| splits.iter().filter(|&&x| x == s).count() as f64 / n;
        assert!((frac(Split::Train) - 0.70).abs() < 0.05, "{}", frac(Split::Train));
        assert!((frac(Split::Val) - 0.15).abs() < 0.05);
        assert!((frac(Split::Test) - 0.15).abs() < 0.05);
        for c in 0..5 {
            let total = items.iter().filter(|x| x.0 == c).count() as f64;
            let train =
                items.iter().zip(&splits).filter(|(x, s)| x.0 == c && **s == Split::Train).count()
                    as f64;
            assert!((train / total - 0.70).abs() < 0.15, "class {c}: {}", train / total);
        }
    }

    #[test]
    fn split_is_deterministic_for_a_seed_and_changes_with_it() {
        let items = clustered();
        let a = stratified_group_split(&items, 5, &SplitConfig::default()).unwrap();
        let b = stratified_group_split(&items, 5, &SplitConfig::default()).unwrap();
        assert_eq!(a, b);
        let c =
            stratified_group_split(&items, 5, &SplitConfig { seed: 7, ..SplitConfig::default() })
                .unwrap();
        assert_ne!(a, c);
    }

    type Item = (usize, (u32, u32));

    /// [`clustered`] as a big region (`helsinki`) and 80 of its items moved apart as a small
    /// one (`andorra`): the big region's items, all items, and each item's region.
    fn two_regions() -> (Vec<Item>, Vec<Item>, Vec<&'static str>) {
        let big = clustered();
        let small: Vec<(usize, (u32, u32))> =
            clustered().into_iter().take(80).map(|(c, (x, y))| (c, (x + 1000, y))).collect();
        let mut items = big.clone();
        items.extend(&small);
        let mut regions = vec!["helsinki"; big.len()];
        regions.extend(vec!["andorra"; small.len()]);
        (big, items, regions)
    }

    /// Two regions of different sizes: each is split near 70/15/15 on its own (the whole
    /// could be, with the small region all in training), no cell spans two splits, and a cell
    /// shared by both regions stays whole.
    #[test]
    fn each_region_is_split_on_its_own_and_no_cell_is_split() {
        let (big, mut items, mut regions) = two_regions();
        // One cell of the big region also holds an item labelled with the small region.
        items.push((0, big[0].1));
        regions.push("andorra");
        let splits =
            stratified_group_split_by_region(&items, &regions, 5, &SplitConfig::default()).unwrap();
        let mut where_: BTreeMap<(u32, u32), Split> = BTreeMap::new();
        for (i, &(_, g)) in items.iter().enumerate() {
            let s = *where_.entry(g).or_insert(splits[i]);
            assert_eq!(s, splits[i], "group {g:?} spans two splits");
        }
        let share = |r: &str, s: Split| {
            let n = regions.iter().filter(|x| **x == r).count() as f64;
            let k = (0..items.len()).filter(|&i| regions[i] == r && splits[i] == s).count();
            k as f64 / n
        };
        for r in ["helsinki", "andorra"] {
            assert!(
                (share(r, Split::Train) - 0.70).abs() < 0.12,
                "{r}: {}",
                share(r, Split::Train)
            );
            assert!(share(r, Split::Test) > 0.05, "{r} has test rows");
        }
        assert!(
            stratified_group_split_by_region(&items, &regions[1..], 5, &SplitConfig::default())
                .is_err()
        );
    }

    /// Over the folds every item is tested exactly once; no cell is split in any fold; each
    /// region's fold holds near its share of each region; the rest is split 70:15.
    #[test]
    fn every_item_is_tested_in_exactly_one_fold() {
        let (_, items, regions) = two_regions();
        let cfg = SplitConfig::default();
        let mut tested = vec![0usize; items.len()];
        for fold in 0..4 {
            let splits = fold_split_by_region(&items, &regions, 5, &cfg, 4, fold).unwrap();
            assert_eq!(splits, fold_split_by_region(&items, &regions, 5, &cfg, 4, fold).unwrap());
            let mut where_: BTreeMap<(u32, u32), Split> = BTreeMap::new();
            for (i, &(_, g)) in items.iter().enumerate() {
                let s = *where_.entry(g).or_insert(splits[i]);
                assert_eq!(s, splits[i], "fold {fold}: group {g:?} spans two splits");
                tested[i] += usize::from(splits[i] == Split::Test);
            }
            for r in ["helsinki", "andorra"] {
                let of = |s: Split| {
                    (0..items.len()).filter(|&i| regions[i] == r && splits[i] == s).count() as f64
                };
                let n = of(Split::Train) + of(Split::Val) + of(Split::Test);
                assert!((of(Split::Test) / n - 0.25).abs() < 0.1, "{r} fold {fold}");
                let train_share = of(Split::Train) / (of(Split::Train) + of(Split::Val));
                assert!((train_share - 0.70 / 0.85).abs() < 0.1, "{r} fold {fold}: {train_share}");
            }
        }
        assert!(tested.iter().all(|&t| t == 1), "{tested:?}");
        assert!(fold_split_by_region(&items, &regions, 5, &cfg, 4, 4).is_err());
        assert!(fold_split_by_region(&items, &regions, 5, &cfg, 1, 0).is_err());
    }

    #[test]
    fn class_weights_follow_the_formula() {
        // 6 samples, classes present {0: 3, 1: 2, 2: 1}, class 3 absent
        let w = class_weights(&[0, 0, 0, 1, 1, 2], 4);
        assert!((w[0] - 6.0 / (3.0 * 3.0)).abs() < 1e-6);
        assert!((w[1] - 6.0 / (3.0 * 2.0)).abs() < 1e-6);
        assert!((w[2] - 6.0 / (3.0 * 1.0)).abs() < 1e-6);
        assert_eq!(w[3], 0.0);
    }

    #[test]
    fn tiny_and_empty_classes_are_warned_about() {
        let labels: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let items = vec![(0, (1, 1)), (0, (2, 2)), (0, (3, 3)), (1, (1, 1))];
        let w = small_class_warnings(&labels, &items);
        assert_eq!(w.len(), 2);
        assert!(w[0].contains("`b`") && w[1].contains("`c`"));
    }

    #[test]
    fn groups_are_zoom_17_cells() {
        let a = group_of(60.17000, 24.94500, 17).unwrap();
        let b = group_of(60.17001, 24.94501, 17).unwrap();
        assert_eq!(a, b);
        assert!(
            stratified_group_split(
                &[(0, a)],
                1,
                &SplitConfig { fractions: [0.5, 0.5, 0.5], ..Default::default() }
            )
            .is_err()
        );
    }
}
