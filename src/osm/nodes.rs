//! Node coordinates by id, compact: PBF files list nodes in id order, so they fill two sorted
//! vectors by appending (24 bytes a node, where a hash map takes 35-60) and are found by
//! binary search. Nodes that arrive out of order (files not sorted by id) go to a small map
//! beside them.

use std::collections::HashMap;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeCoords {
    /// Ascending.
    ids: Vec<i64>,
    /// `(lat, lon)` of `ids[i]`.
    at: Vec<(f64, f64)>,
    /// Nodes that came out of id order.
    late: HashMap<i64, (f64, f64)>,
}

impl NodeCoords {
    pub fn insert(&mut self, id: i64, lat_lon: (f64, f64)) {
        if self.ids.last().is_none_or(|&last| id > last) {
            self.ids.push(id);
            self.at.push(lat_lon);
        } else if let Ok(i) = self.ids.binary_search(&id) {
            self.at[i] = lat_lon;
        } else {
            self.late.insert(id, lat_lon);
        }
    }

    pub fn get(&self, id: &i64) -> Option<&(f64, f64)> {
        match self.ids.binary_search(id) {
            Ok(i) => Some(&self.at[i]),
            Err(_) => self.late.get(id),
        }
    }

    pub fn contains_key(&self, id: &i64) -> bool {
        self.get(id).is_some()
    }

    pub fn len(&self) -> usize {
        self.ids.len() + self.late.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every node's `(lat, lon)`.
    pub fn values(&self) -> impl Iterator<Item = &(f64, f64)> {
        self.at.iter().chain(self.late.values())
    }

    /// Keeps the nodes `keep` says yes to.
    pub fn retain(&mut self, keep: impl Fn(i64) -> bool) {
        let mut j = 0;
        for i in 0..self.ids.len() {
            if keep(self.ids[i]) {
                self.ids[j] = self.ids[i];
                self.at[j] = self.at[i];
                j += 1;
            }
        }
        self.ids.truncate(j);
        self.at.truncate(j);
        self.late.retain(|id, _| keep(*id));
    }

    /// `other`'s nodes after these (the next part of the same file).
    pub fn append(&mut self, other: NodeCoords) {
        if other.ids.first().is_some_and(|&f| self.ids.last().is_none_or(|&l| f > l)) {
            self.ids.extend(other.ids);
            self.at.extend(other.at);
        } else {
            for (id, v) in other.ids.into_iter().zip(other.at) {
                self.insert(id, v);
            }
        }
        for (id, v) in other.late {
            self.insert(id, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_and_out_of_order_nodes_are_all_found() {
        let mut c = NodeCoords::default();
        for id in [1, 5, 9] {
            c.insert(id, (id as f64, 0.0));
        }
        c.insert(3, (3.0, 0.0)); // out of order
        c.insert(5, (5.5, 0.0)); // again: replaced
        assert_eq!(c.len(), 4);
        assert_eq!(c.get(&3), Some(&(3.0, 0.0)));
        assert_eq!(c.get(&5), Some(&(5.5, 0.0)));
        assert_eq!(c.get(&4), None);
        let mut d = NodeCoords::default();
        d.insert(12, (12.0, 0.0));
        d.insert(2, (2.0, 0.0));
        c.append(d);
        assert_eq!(c.len(), 6);
        assert!(c.contains_key(&12) && c.contains_key(&2));
        c.retain(|id| id % 3 != 0);
        assert_eq!(c.len(), 3);
        assert!(!c.contains_key(&3) && !c.contains_key(&9) && !c.contains_key(&12));
        let mut v: Vec<f64> = c.values().map(|p| p.0).collect();
        v.sort_by(f64::total_cmp);
        assert_eq!(v, [1.0, 2.0, 5.5]);
    }
}
