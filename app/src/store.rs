//! The mapper's tags: add, move, edit, delete, filter, and import/export in exactly the
//! pipeline's `tags.csv` schema (model-core's reader and writer), and export as JOSM or
//! osmChange files for an editor (model-core's `osm_edit`). Pure logic: persistence is
//! [`crate::idb`]'s job, the DOM is the UI's.

use model_core::LabelVocab;
use model_core::data::candidates::{MappedFeature, nearest_mapped};
use model_core::data::features::{FeatureTypes, OSM_TAGS_COLUMN, format_osm_tags, parse_osm_tags};
use model_core::data::osm_edit::{
    EditFormat, NewNode, SAME_FEATURE_M, Task, maproulette, node_tags, write,
};
use model_core::data::tags::{
    ParseReport, Rejected, Tag, TagTable, parse_tags_csv, write_tags_csv,
};
use model_core::data::tile::validate_lat_lon;
use serde::{Deserialize, Serialize};

/// The extra column the app keeps the mapper's note in.
pub const NOTE_COLUMN: &str = "note";
/// Source of tags made in the app unless the mapper says otherwise.
pub const DEFAULT_SOURCE: &str = "user";

/// What an import did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImportReport {
    pub added: usize,
    /// Rows whose id was already in the store: replaced by the imported row.
    pub replaced: usize,
    pub rejected: Vec<Rejected>,
}

/// Tags added or replaced one by one, each found by its id ([`TagStore::upserts`]).
pub(crate) struct Upserts<'a> {
    pub(crate) store: &'a mut TagStore,
    /// Where each id is in `store.tags`.
    at: std::collections::HashMap<String, usize>,
}

impl Upserts<'_> {
    /// Adds an imported tag, or replaces the one with its id; a tag whose OSM tags do not
    /// hold a preset of its type is rejected instead (`reject` says where it was).
    pub(crate) fn upsert(
        &mut self,
        t: Tag,
        report: &mut ImportReport,
        reject: impl FnOnce(String) -> Rejected,
    ) {
        if let Err(e) = self.store.checked_column(&t) {
            report.rejected.push(reject(e));
            return;
        }
        match self.at.get(&t.id) {
            Some(&i) => {
                self.store.tags[i] = t;
                report.replaced += 1;
            }
            None => {
                self.at.insert(t.id.clone(), self.store.tags.len());
                self.store.tags.push(t);
                report.added += 1;
            }
        }
    }
}

/// The OSM tags of a tag of type `label`: `osm_tags` when they hold one of its presets, its
/// default preset when empty (model-core's `osm_edit::node_tags`, as `osm export` checks them).
pub fn checked_osm_tags(
    label: &str,
    osm_tags: &[(String, String)],
) -> Result<Vec<(String, String)>, String> {
    let ty = FeatureTypes::builtin().get(label).map_err(|e| e.to_string())?;
    node_tags(ty, osm_tags, None)
}

/// A deleted tag and where it stood in the list (deleting can be undone).
#[derive(Debug, Clone, PartialEq)]
pub struct Deleted {
    pub at: usize,
    pub tag: Tag,
}

/// A file for an OpenStreetMap editor and what it leaves out.
#[derive(Debug, Clone, PartialEq)]
pub struct EditExport {
    pub text: String,
    /// New nodes in it.
    pub nodes: usize,
    /// Tags with source `osm` left out.
    pub from_osm: usize,
    /// `(tag id, OSM id)` of tags left out as features OpenStreetMap already has.
    pub already_mapped: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagStore {
    pub extra_columns: Vec<String>,
    pub tags: Vec<Tag>,
    /// Next number for ids of tags made here (`user-<n>`).
    pub next_id: u64,
}

impl Default for TagStore {
    fn default() -> Self {
        Self {
            extra_columns: vec![NOTE_COLUMN.to_string(), OSM_TAGS_COLUMN.to_string()],
            tags: Vec::new(),
            next_id: 1,
        }
    }
}

/// The most extra columns (note, OSM tags, and what imported files bring) the store keeps.
pub const MAX_EXTRA_COLUMNS: usize = 64;

/// The five feature types, in the pipeline's order.
pub fn labels() -> LabelVocab {
    LabelVocab::default()
}

impl TagStore {
    fn column(&self, name: &str) -> usize {
        self.extra_columns.iter().position(|c| c == name).expect("the store keeps this column")
    }

    fn note_index(&self) -> usize {
        self.column(NOTE_COLUMN)
    }

    /// Adds column `name` (empty for every tag) unless the store has it; refused past
    /// [`MAX_EXTRA_COLUMNS`], since each column is a field of every tag (a file naming a new
    /// property in each of its features would otherwise grow the store with the square of
    /// its size).
    pub(crate) fn ensure_column(&mut self, name: &str) -> Result<(), String> {
        if self.extra_columns.iter().any(|c| c == name) {
            return Ok(());
        }
        if self.extra_columns.len() >= MAX_EXTRA_COLUMNS {
            return Err(format!(
                "`{}` would be column {} of the stored tags: at most {MAX_EXTRA_COLUMNS} \
                 besides id, lat, lon, type and source",
                name.chars().take(80).collect::<String>(),
                self.extra_columns.len() + 1
            ));
        }
        self.push_column(name);
        Ok(())
    }

    fn push_column(&mut self, name: &str) {
        self.extra_columns.push(name.to_string());
        for t in &mut self.tags {
            t.extra.push(String::new());
        }
    }

    /// A tag's `osm_tags` column, parsed and checked against its type's presets (empty: the
    /// default preset).
    fn checked_column(&self, t: &Tag) -> Result<Vec<(String, String)>, String> {
        parse_osm_tags(&t.extra[self.column(OSM_TAGS_COLUMN)])
            .and_then(|own| checked_osm_tags(&t.label, &own))
    }

    /// A tag's OSM tags as stored (its type's default preset when it has none).
    pub fn osm_tags(&self, t: &Tag) -> Vec<(String, String)> {
        self.checked_column(t).unwrap_or_default()
    }

    /// A tag as a new OSM node with its OSM tags.
    fn new_node(&self, t: &Tag) -> Result<NewNode, String> {
        let tags = self.checked_column(t).map_err(|e| format!("{}: {e}", t.id))?;
        Ok(NewNode { lat: t.lat, lon: t.lon, tags })
    }

    pub fn get(&self, id: &str) -> Option<&Tag> {
        self.tags.iter().find(|t| t.id == id)
    }

    pub fn note<'a>(&self, t: &'a Tag) -> &'a str {
        t.extra.get(self.note_index()).map_or("", String::as_str)
    }

    fn fresh_id(&mut self) -> String {
        loop {
            let id = format!("user-{}", self.next_id);
            self.next_id += 1;
            if self.get(&id).is_none() {
                return id;
            }
        }
    }

    fn check(lat: f64, lon: f64, label: &str) -> Result<(), String> {
        validate_lat_lon(lat, lon).map_err(|e| e.to_string())?;
        labels().index(label).map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Adds a tag and returns its id. `osm_tags` must hold one of its type's presets (empty:
    /// the default preset); they are stored in full.
    pub fn add(
        &mut self,
        lat: f64,
        lon: f64,
        label: &str,
        source: &str,
        note: &str,
        osm_tags: &[(String, String)],
    ) -> Result<String, String> {
        Self::check(lat, lon, label)?;
        let osm_tags = format_osm_tags(&checked_osm_tags(label, osm_tags)?);
        let id = self.fresh_id();
        let mut extra = vec![String::new(); self.extra_columns.len()];
        extra[self.note_index()] = note.to_string();
        extra[self.column(OSM_TAGS_COLUMN)] = osm_tags;
        let source = if source.trim().is_empty() { DEFAULT_SOURCE } else { source.trim() };
        self.tags.push(Tag {
            id: id.clone(),
            lat,
            lon,
            label: label.to_string(),
            source: source.to_string(),
            image: None,
            extra,
        });
        Ok(id)
    }

    /// Changes a tag's type, source, note and OSM tags (checked as [`Self::add`] does).
    pub fn edit(
        &mut self,
        id: &str,
        label: &str,
        source: &str,
        note: &str,
        osm_tags: &[(String, String)],
    ) -> Result<(), String> {
        labels().index(label).map_err(|e| e.to_string())?;
        let osm_tags = format_osm_tags(&checked_osm_tags(label, osm_tags)?);
        let (n, o) = (self.note_index(), self.column(OSM_TAGS_COLUMN));
        let t = self.tags.iter_mut().find(|t| t.id == id).ok_or(format!("no tag `{id}`"))?;
        t.label = label.to_string();
        t.source = if source.trim().is_empty() { DEFAULT_SOURCE } else { source.trim() }.into();
        t.extra[n] = note.to_string();
        t.extra[o] = osm_tags;
        Ok(())
    }

    /// Moves a tag. Its image (made by `collect` for the old place) no longer applies.
    pub fn move_to(&mut self, id: &str, lat: f64, lon: f64) -> Result<(), String> {
        validate_lat_lon(lat, lon).map_err(|e| e.to_string())?;
        let t = self.tags.iter_mut().find(|t| t.id == id).ok_or(format!("no tag `{id}`"))?;
        t.lat = lat;
        t.lon = lon;
        t.image = None;
        Ok(())
    }

    /// Removes tag `id`; what it removed, for [`TagStore::restore`].
    pub fn delete(&mut self, id: &str) -> Option<Deleted> {
        let at = self.tags.iter().position(|t| t.id == id)?;
        Some(Deleted { at, tag: self.tags.remove(at) })
    }

    /// Puts a deleted tag back where it was (with its id, note and everything). `false` when a
    /// tag with its id exists again (an import brought it back): nothing changes then.
    pub fn restore(&mut self, d: Deleted) -> bool {
        if self.get(&d.tag.id).is_some() {
            return false;
        }
        self.tags.insert(d.at.min(self.tags.len()), d.tag);
        true
    }

    /// Tags of one type (all when `label` is `None`), in insertion order.
    /// The first `n` tags of type `label` (all types: `None`), and how many there are.
    pub fn filtered_first(&self, label: Option<&str>, n: usize) -> (Vec<Tag>, usize) {
        let mut of_type = self.tags.iter().filter(|t| label.is_none_or(|l| t.label == l));
        let first: Vec<Tag> = of_type.by_ref().take(n).cloned().collect();
        let total = first.len() + of_type.count();
        (first, total)
    }

    pub fn filtered(&self, label: Option<&str>) -> Vec<Tag> {
        self.tags.iter().filter(|t| label.is_none_or(|l| t.label == l)).cloned().collect()
    }

    /// Imports a `tags.csv`: valid rows are added (or replace the tag with the same id),
    /// rejected rows are reported with line, field and reason. Extra columns are kept.
    pub fn import_csv(&mut self, bytes: &[u8]) -> Result<ImportReport, String> {
        self.import_parsed(parse_tags_csv(bytes, &labels()).map_err(|e| e.to_string())?)
    }

    /// Imports the rows of a `tags.csv` read already (the page reads a large file in chunks,
    /// [`model_core::data::tags::TagsCsvReader`]), as [`Self::import_csv`] does.
    pub fn import_parsed(&mut self, parsed: ParseReport) -> Result<ImportReport, String> {
        let mut report = ImportReport { rejected: parsed.rejected, ..Default::default() };
        for c in &parsed.table.extra_columns {
            self.ensure_column(c).map_err(|e| format!("line 1 (the header): {e}"))?;
        }
        let at: Vec<usize> = parsed
            .table
            .extra_columns
            .iter()
            .map(|c| self.extra_columns.iter().position(|x| x == c).expect("added above"))
            .collect();
        let mut upserts = self.upserts();
        for (t, line) in parsed.table.tags.into_iter().zip(parsed.lines) {
            let mut extra = vec![String::new(); upserts.store.extra_columns.len()];
            let raw = format!("{},{},{},{},{}", t.id, t.lat, t.lon, t.label, t.source);
            for (&i, v) in at.iter().zip(t.extra) {
                extra[i] = v;
            }
            upserts.upsert(Tag { extra, ..t }, &mut report, |reason| Rejected {
                line,
                field: Some(OSM_TAGS_COLUMN.into()),
                reason,
                raw,
            });
        }
        Ok(report)
    }

    /// Adds or replaces many tags by id, finding each id in a map rather than by a walk over
    /// the store (an import of 100,000 rows into 100,000 tags made 10^10 comparisons).
    pub(crate) fn upserts(&mut self) -> Upserts<'_> {
        let at = self.tags.iter().enumerate().map(|(i, t)| (t.id.clone(), i)).collect();
        Upserts { store: self, at }
    }

    /// The store as a pipeline `tags.csv` (note and other extra columns after `image`).
    pub fn to_csv(&self) -> Vec<u8> {
        write_tags_csv(&TagTable {
            extra_columns: self.extra_columns.clone(),
            tags: self.tags.clone(),
        })
    }

    /// The tags as a file an OpenStreetMap editor opens for review (JOSM XML or osmChange;
    /// model-core's `osm_edit`, as `accessatlas osm export` writes): one new node per tag with
    /// its OSM tags. The mapper's notes stay out (they are private unless
    /// `accessatlas osm export --with-notes` puts them in). Nothing uploads.
    /// Tags with source `osm` came from OpenStreetMap and are left out (as the CLI does), and
    /// so is a tag within [`SAME_FEATURE_M`] of a feature of its type in `mapped` (what the
    /// extract already has there: the same object).
    pub fn to_osm_edit(
        &self,
        format: EditFormat,
        mapped: &[MappedFeature],
    ) -> Result<EditExport, String> {
        let own: Vec<&Tag> = self.own().collect();
        let from_osm = self.tags.len() - own.len();
        let mut already_mapped = Vec::new();
        let mut nodes = Vec::new();
        for t in own {
            if let Some((m, _)) = nearest_mapped(mapped, &t.label, t.lat, t.lon, SAME_FEATURE_M) {
                already_mapped.push((t.id.clone(), m.id.clone()));
                continue;
            }
            nodes.push(self.new_node(t)?);
        }
        let text = write(&nodes, format, concat!("AccessAtlas ", env!("CARGO_PKG_VERSION")));
        Ok(EditExport { text, nodes: nodes.len(), from_osm, already_mapped })
    }

    /// The mapper's own tags: not those with source `osm`, which came from OpenStreetMap.
    fn own(&self) -> impl Iterator<Item = &Tag> {
        self.tags.iter().filter(|t| !t.source.eq_ignore_ascii_case("osm"))
    }

    /// `(min_lon, min_lat, max_lon, max_lat)` around the mapper's own tags (not source `osm`),
    /// grown by about 20 m and rounded outward to 1e-4 degrees (so moving a tag a little does
    /// not change it): where to ask what OpenStreetMap already has before an export.
    pub fn own_bbox(&self) -> Option<(f64, f64, f64, f64)> {
        let b = self.own().fold(None, |b: Option<(f64, f64, f64, f64)>, t| {
            Some(match b {
                None => (t.lon, t.lat, t.lon, t.lat),
                Some((a, b, c, d)) => (a.min(t.lon), b.min(t.lat), c.max(t.lon), d.max(t.lat)),
            })
        })?;
        let grid = 1e4;
        Some((
            ((b.0 - 2e-4) * grid).floor() / grid,
            ((b.1 - 2e-4) * grid).floor() / grid,
            ((b.2 + 2e-4) * grid).ceil() / grid,
            ((b.3 + 2e-4) * grid).ceil() / grid,
        ))
    }

    /// The mapper's own tags (not source `osm`) as a MapRoulette challenge (model-core's
    /// `osm_edit::maproulette`, as `accessatlas suggest --format maproulette` writes): one task
    /// per tag, its OSM tags as the point's properties, so other mappers can
    /// check each place before it reaches OpenStreetMap. Notes stay out.
    pub fn to_maproulette(&self) -> Result<String, String> {
        let tasks = self
            .own()
            .map(|t| {
                Ok(Task {
                    node: self.new_node(t)?,
                    info: vec![("accessatlas:type".into(), t.label.clone().into())],
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(maproulette(&tasks))
    }

    /// Serialised form for IndexedDB.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("store serialises")
    }

    /// Reads what [`Self::to_json`] wrote; a record from a broken write is an error, not a
    /// silently empty store. A store from before OSM tags were kept gets the column, empty
    /// (its tags' default presets).
    pub fn from_json(text: &str) -> Result<Self, String> {
        let mut s: Self = serde_json::from_str(text).map_err(|e| format!("stored tags: {e}"))?;
        if !s.extra_columns.iter().any(|c| c == NOTE_COLUMN)
            || s.tags.iter().any(|t| t.extra.len() != s.extra_columns.len())
        {
            return Err("stored tags: columns do not match".into());
        }
        // What the browser already keeps always loads, the cap or not.
        if !s.extra_columns.iter().any(|c| c == OSM_TAGS_COLUMN) {
            s.push_column(OSM_TAGS_COLUMN);
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_tags_become_maproulette_tasks() {
        let mut s = TagStore::default();
        s.add(60.17, 24.94, "ramp", "", "private note", &[]).unwrap();
        s.add(60.19, 24.96, "obstacle", "osm", "", &[]).unwrap();
        let text = s.to_maproulette().unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "the tag from OSM stays out: {text}");
        let v: serde_json::Value =
            serde_json::from_str(lines[0].strip_prefix('\u{1e}').unwrap()).unwrap();
        let p = &v["features"][0]["properties"];
        assert_eq!((p["barrier"].as_str(), p["kerb"].as_str()), (Some("kerb"), Some("lowered")));
        assert_eq!(p["accessatlas:type"], "ramp");
        assert!(!text.contains("private note"));
    }

    #[test]
    fn tags_become_new_nodes_for_josm_and_osmchange() {
        let mut s = TagStore::default();
        s.add(60.17, 24.94, "ramp", "", "private note", &[]).unwrap();
        s.add(60.18, 24.95, "entrance", "", "", &[]).unwrap();
        s.add(60.19, 24.96, "obstacle", "osm", "", &[]).unwrap();
        let e = s.to_osm_edit(EditFormat::Josm, &[]).unwrap();
        let josm = e.text;
        assert_eq!(e.from_osm, 1, "the tag that came from OSM stays out");
        assert!(josm.contains("upload=\"true\""), "{josm}");
        assert!(josm.contains("<node id=\"-1\" action=\"modify\""), "{josm}");
        assert!(josm.contains("lat=\"60.1700000\" lon=\"24.9400000\""), "{josm}");
        assert!(josm.contains("<tag k=\"barrier\" v=\"kerb\"/>"), "{josm}");
        assert!(josm.contains("<tag k=\"kerb\" v=\"lowered\"/>"), "{josm}");
        assert!(josm.contains("<node id=\"-2\"") && josm.contains("v=\"yes\""), "{josm}");
        assert!(!josm.contains("private note"), "notes stay out");
        let osc = s.to_osm_edit(EditFormat::OsmChange, &[]).unwrap().text;
        assert!(osc.contains("<osmChange") && osc.contains("<create>"), "{osc}");
        assert_eq!(osc.matches("<node ").count(), 2);
        assert!(!osc.contains("bollard"));
        let empty = TagStore::default().to_osm_edit(EditFormat::Josm, &[]).unwrap().text;
        assert_eq!(empty.matches("<node").count(), 0);
    }

    #[test]
    fn a_tag_on_a_feature_osm_has_is_left_out_and_named() {
        let mut s = TagStore::default();
        let on_top = s.add(60.17, 24.94, "ramp", "", "", &[]).unwrap();
        s.add(60.17, 24.94, "entrance", "", "", &[]).unwrap(); // same place, another type
        s.add(60.171, 24.94, "ramp", "", "", &[]).unwrap(); // 111 m away
        let mapped = [MappedFeature {
            id: "node/42".into(),
            label: "ramp".into(),
            lat: 60.170_02,
            lon: 24.94,
            line: Vec::new(),
        }];
        let e = s.to_osm_edit(EditFormat::OsmChange, &mapped).unwrap();
        assert_eq!(e.already_mapped, [(on_top, "node/42".to_string())]);
        assert_eq!((e.nodes, e.text.matches("<node ").count()), (2, 2));
        assert!(!e.text.contains("lat=\"60.1700000\" lon=\"24.9400000\"><tag k=\"barrier\""));
        // Nothing known there: everything goes out.
        assert_eq!(s.to_osm_edit(EditFormat::OsmChange, &[]).unwrap().nodes, 3);
        // The area asked about holds every own tag, rounded outward.
        let b = s.own_bbox().unwrap();
        assert!(b.0 < 24.94 && b.1 < 60.17 && b.2 > 24.94 && b.3 > 60.171, "{b:?}");
        assert_eq!(TagStore::default().own_bbox(), None);
    }

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse_osm_tags(text).unwrap()
    }

    #[test]
    fn osm_tags_are_stored_checked_exported_and_round_trip() {
        let mut s = TagStore::default();
        let a = s
            .add(60.17, 24.94, "entrance", "", "", &pairs("entrance=main;wheelchair=limited"))
            .unwrap();
        let b = s.add(60.18, 24.95, "ramp", "", "", &[]).unwrap();
        // Stored in full; none given means the type's default preset.
        assert_eq!(
            format_osm_tags(&s.osm_tags(s.get(&a).unwrap())),
            "entrance=main;wheelchair=limited"
        );
        assert_eq!(format_osm_tags(&s.osm_tags(s.get(&b).unwrap())), "barrier=kerb;kerb=lowered");
        // Tags that hold no preset of the type are refused, naming the presets.
        let e = s.add(60.1, 24.9, "ramp", "", "", &pairs("highway=elevator")).unwrap_err();
        assert!(e.contains("no preset of `ramp`") && e.contains("lowered kerb"), "{e}");
        let e = s.edit(&b, "ramp", "", "", &pairs("kerb=flush")).unwrap_err();
        assert!(e.contains("no preset"), "{e}");
        s.edit(&b, "ramp", "", "", &pairs("barrier=kerb;kerb=flush;tactile_paving=yes")).unwrap();
        // The editor files carry them.
        let osc = s.to_osm_edit(EditFormat::OsmChange, &[]).unwrap().text;
        for tag in [
            "k=\"entrance\" v=\"main\"",
            "k=\"wheelchair\" v=\"limited\"",
            "k=\"kerb\" v=\"flush\"",
            "k=\"tactile_paving\" v=\"yes\"",
        ] {
            assert!(osc.contains(tag), "{tag} in {osc}");
        }
        assert!(!osc.contains("lowered"), "{osc}");
        assert!(s.to_maproulette().unwrap().contains("\"kerb\":\"flush\""));
        // CSV: an `osm_tags` column the pipeline's reader keeps and `osm export` reads.
        let csv = String::from_utf8(s.to_csv()).unwrap();
        assert!(csv.starts_with("id,lat,lon,type,source,image,note,osm_tags\n"), "{csv}");
        let mut t = TagStore::default();
        assert_eq!(t.import_csv(csv.as_bytes()).unwrap().added, 2);
        assert_eq!(t.tags, s.tags);
        // IndexedDB's JSON, and a store saved before the column existed.
        assert_eq!(TagStore::from_json(&s.to_json()).unwrap(), s);
        let old = r#"{"extra_columns":["note"],"tags":[{"id":"user-1","lat":60.1,"lon":24.9,"type":"ramp","source":"user","image":null,"extra":["n"]}],"next_id":2}"#;
        let old = TagStore::from_json(old).unwrap();
        assert_eq!(old.extra_columns, ["note", "osm_tags"]);
        assert_eq!(format_osm_tags(&old.osm_tags(&old.tags[0])), "barrier=kerb;kerb=lowered");
        // CSV rows with bad OSM tags are rejected with their line; the rest are kept; rows
        // without the column (files from before it) take the default preset.
        let bad = "id,lat,lon,type,source,osm_tags\n\
            a,60.1,24.9,ramp,user,barrier=kerb;kerb=flush\n\
            b,60.1,24.9,ramp,user,highway=elevator\n\
            c,60.1,24.9,obstacle,user,barrier=bollard;barrier=gate\n\
            d,60.1,24.9,obstacle,user,\n";
        let mut u = TagStore::default();
        let r = u.import_csv(bad.as_bytes()).unwrap();
        assert_eq!(r.added, 2);
        let got: Vec<_> = r.rejected.iter().map(|r| (r.line, r.field.clone().unwrap())).collect();
        assert_eq!(got, [(3, "osm_tags".to_string()), (4, "osm_tags".to_string())]);
        assert!(r.rejected[1].reason.contains("twice"), "{}", r.rejected[1].reason);
        assert_eq!(format_osm_tags(&u.osm_tags(u.get("d").unwrap())), "barrier=bollard");
    }

    #[test]
    fn add_edit_move_delete_filter() {
        let mut s = TagStore::default();
        let a = s.add(60.17, 24.94, "ramp", "", "by the door", &[]).unwrap();
        let b = s.add(60.18, 24.95, "elevator", "survey", "", &[]).unwrap();
        assert_ne!(a, b);
        assert_eq!(s.get(&a).unwrap().source, "user");
        assert_eq!(s.note(s.get(&a).unwrap()), "by the door");
        assert!(s.add(91.0, 24.0, "ramp", "user", "", &[]).unwrap_err().contains("latitude"));
        assert!(s.add(60.0, 24.0, "stairs", "user", "", &[]).unwrap_err().contains("stairs"));
        s.edit(&a, "entrance", "osm", "moved?", &[]).unwrap();
        assert_eq!(s.get(&a).unwrap().label, "entrance");
        s.move_to(&a, 60.171, 24.941).unwrap();
        assert_eq!(s.get(&a).unwrap().lat, 60.171);
        assert_eq!(s.filtered(Some("elevator")).len(), 1);
        assert_eq!(s.filtered(None).len(), 2);
        let gone = s.delete(&b).unwrap();
        assert!(s.delete(&b).is_none());
        assert_eq!(s.tags.len(), 1);
        // Undo: back in its place, with everything it had.
        let mut undone = s.clone();
        assert!(undone.restore(gone.clone()));
        assert_eq!(undone.tags.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), [&a, &b]);
        assert_eq!(undone.get(&b).unwrap().source, "survey");
        assert!(!undone.restore(gone), "already back: nothing changes");
        assert_eq!(undone.tags.len(), 2);
        let back = TagStore::from_json(&s.to_json()).unwrap();
        assert_eq!(back, s);
        assert!(TagStore::from_json("{").is_err());
    }

    #[test]
    fn csv_round_trips_through_the_pipeline_reader() {
        let mut s = TagStore::default();
        s.add(60.17, 24.94, "ramp", "user", "note, with comma", &[]).unwrap();
        s.add(60.18, 24.95, "obstacle", "osm", "", &[]).unwrap();
        let csv = s.to_csv();
        let parsed = parse_tags_csv(&csv, &labels()).unwrap();
        assert!(parsed.rejected.is_empty());
        assert_eq!(parsed.table.tags, s.tags);
        let mut t = TagStore::default();
        let r = t.import_csv(&csv).unwrap();
        assert_eq!((r.added, r.replaced, r.rejected.len()), (2, 0, 0));
        assert_eq!(t.tags, s.tags);
        // Importing again replaces rather than duplicates.
        let r = t.import_csv(&csv).unwrap();
        assert_eq!((r.added, r.replaced), (0, 2));
    }

    #[test]
    fn malformed_import_keeps_valid_rows_and_reports_the_rest() {
        let csv = b"id,lat,lon,type,source,colour\n\
            a,60.1,24.9,ramp,user,red\n\
            b,abc,24.9,ramp,user,blue\n\
            c,60.1,24.9,stairs,user,green\n\
            d,60.2,25.0,elevator,osm,\n";
        let mut s = TagStore::default();
        let r = s.import_csv(csv).unwrap();
        assert_eq!(r.added, 2);
        assert_eq!(r.rejected.len(), 2);
        assert_eq!(r.rejected[0].line, 3);
        assert_eq!(r.rejected[0].field.as_deref(), Some("lat"));
        assert_eq!(r.rejected[1].field.as_deref(), Some("type"));
        assert_eq!(s.extra_columns, vec!["note", "osm_tags", "colour"]);
        assert_eq!(s.get("a").unwrap().extra, vec!["", "", "red"]);
        assert!(s.import_csv(b"nothing,useful\n1,2\n").is_err());
    }

    /// 100,000 rows in, then the same file again over them: each id found by its entry, so
    /// the second import replaces every tag (and does not take the square of the rows);
    /// the list's first rows and the count of each type come without copying every tag.
    #[test]
    fn a_large_import_adds_then_replaces_every_row() {
        let mut csv = String::from("id,lat,lon,type,source\n");
        for i in 0..100_000 {
            let label = if i % 4 == 0 { "ramp" } else { "entrance" };
            csv += &format!("t{i},{},{},{label},user\n", 60.1 + (i % 300) as f64 * 1e-4, 24.9);
        }
        let mut s = TagStore::default();
        s.add(60.17, 24.94, "ramp", "user", "mine", &[]).unwrap();
        let r = s.import_csv(csv.as_bytes()).unwrap();
        assert_eq!((r.added, r.replaced, r.rejected.len()), (100_000, 0, 0));
        let r = s.import_csv(csv.as_bytes()).unwrap();
        assert_eq!((r.added, r.replaced, r.rejected.len()), (0, 100_000, 0));
        assert_eq!(s.tags.len(), 100_001);
        assert_eq!(s.note(&s.tags[0]), "mine", "the tag made before kept");
        let (first, of_type) = s.filtered_first(Some("ramp"), 200);
        assert_eq!((first.len(), of_type), (200, 25_001));
        assert_eq!(first[1].id, "t0");
        assert_eq!(s.filtered_first(None, 200).1, 100_001);
    }
}
