//! Node coordinates by id, compact: PBF files list nodes in id order, so they fill two sorted
//! vectors by appending and are found by binary search; a coordinate is kept as the file
//! stores it, an integer of 1e-7 degrees, and turned back into exactly the `f64` the PBF
//! reader gives (16 bytes a node, where a hash map of `f64` pairs takes 35-60). Nodes that
//! arrive out of order (files not sorted by id), and coordinates that are not whole 1e-7
//! degrees, go to a small map beside them.

use std::collections::HashMap;

/// In `at`: the node's coordinates are in `late`.
const IN_LATE: (i32, i32) = (i32::MIN, i32::MIN);

#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeCoords {
    /// Ascending.
    ids: Vec<i64>,
    /// `(lat, lon)` of `ids[i]` in 1e-7 degrees, or [`IN_LATE`].
    at: Vec<(i32, i32)>,
    /// Nodes that came out of id order or whose coordinates are not whole 1e-7 degrees.
    late: HashMap<i64, (f64, f64)>,
}

/// Degrees as the PBF reader computes them from 1e-7 degrees (`1e-9 * nanodegrees`).
fn degrees(v: i32) -> f64 {
    1e-9 * (i64::from(v) * 100) as f64
}

/// `deg` in 1e-7 degrees when [`degrees`] gives it back bit for bit.
fn compact(deg: f64) -> Option<i32> {
    let v = (deg * 1e7).round();
    if !(v > f64::from(i32::MIN) && v <= f64::from(i32::MAX)) {
        return None;
    }
    let v = v as i32;
    (degrees(v).to_bits() == deg.to_bits()).then_some(v)
}

impl NodeCoords {
    pub fn insert(&mut self, id: i64, (lat, lon): (f64, f64)) {
        let packed = compact(lat).zip(compact(lon));
        let slot = if self.ids.last().is_none_or(|&last| id > last) {
            self.ids.push(id);
            self.at.push(IN_LATE);
            Some(self.ids.len() - 1)
        } else {
            self.ids.binary_search(&id).ok()
        };
        match (slot, packed) {
            (Some(i), Some(p)) => {
                self.at[i] = p;
                if !self.late.is_empty() {
                    self.late.remove(&id);
                }
            }
            (Some(i), None) => {
                self.at[i] = IN_LATE;
                self.late.insert(id, (lat, lon));
            }
            (None, _) => {
                self.late.insert(id, (lat, lon));
            }
        }
    }

    pub fn get(&self, id: &i64) -> Option<(f64, f64)> {
        match self.ids.binary_search(id) {
            Ok(i) if self.at[i] != IN_LATE => Some((degrees(self.at[i].0), degrees(self.at[i].1))),
            _ => self.late.get(id).copied(),
        }
    }

    pub fn contains_key(&self, id: &i64) -> bool {
        self.get(id).is_some()
    }

    pub fn len(&self) -> usize {
        self.ids.len() + self.late.keys().filter(|id| self.ids.binary_search(id).is_err()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every node's `(lat, lon)`.
    pub fn values(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        let sorted = self.ids.iter().zip(&self.at).map(|(id, &c)| {
            if c == IN_LATE { self.late[id] } else { (degrees(c.0), degrees(c.1)) }
        });
        let others =
            self.late.iter().filter(|(id, _)| self.ids.binary_search(id).is_err()).map(|(_, &v)| v);
        sorted.chain(others)
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
            // Markers moved with `at`; their coordinates and the out-of-order nodes follow.
            self.late.extend(other.late);
        } else {
            for id in other.ids.iter() {
                if let Some(v) = other.get(id) {
                    self.insert(*id, v);
                }
            }
            for (id, v) in other.late {
                if other.ids.binary_search(&id).is_err() {
                    self.insert(id, v);
                }
            }
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
        assert_eq!(c.get(&3), Some((3.0, 0.0)));
        assert_eq!(c.get(&5), Some((5.5, 0.0)));
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

    #[test]
    fn coordinates_come_back_bit_for_bit() {
        // As the PBF reader computes them, and values no 1e-7 grid holds.
        let read = |nano: i64| 1e-9 * nano as f64;
        let mut c = NodeCoords::default();
        let cases = [
            (1, (read(60_164_512_300), read(24_936_000_100))),
            (2, (read(-89_876_543_200), read(-179_999_999_900))),
            (3, (60.123_456_789_1, 24.0)),
            (4, (f64::MIN_POSITIVE, -0.0)),
        ];
        for (id, v) in cases {
            c.insert(id, v);
        }
        for (id, (lat, lon)) in cases {
            let got = c.get(&id).unwrap();
            assert_eq!((got.0.to_bits(), got.1.to_bits()), (lat.to_bits(), lon.to_bits()), "{id}");
        }
        // Only the ones off the grid take the map's room.
        assert_eq!(c.late.len(), 2);
        assert_eq!(c.len(), 4);
        // Replaced by an on-grid value: back in the arrays.
        c.insert(3, cases[0].1);
        assert_eq!(c.late.len(), 1);
        assert_eq!(c.get(&3), Some(cases[0].1));
        assert_eq!(c.values().count(), 4);
    }
}
