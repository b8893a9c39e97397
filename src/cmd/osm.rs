//! `accessatlas osm export`: the mapper's tags as a file an OpenStreetMap editor opens for
//! review (osmChange or JOSM XML, model-core's `osm_edit`). Nothing is uploaded: the mapper
//! checks every object in JOSM (or another editor) and uploads from there, as OSM's
//! automated-edits code of conduct asks.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use model_core::LabelVocab;
use model_core::data::candidates::nearest_mapped;
use model_core::data::features::{FeatureTypes, OSM_TAGS_COLUMN, parse_osm_tags};
use model_core::data::osm_edit::{EditFormat, NewNode, SAME_FEATURE_M, node_tags, write};
use model_core::data::tags::{Rejected, parse_tags_csv};

use crate::fsutil::write_atomic;
use crate::osm::rules::Rules;
use crate::osm::{OsmMap, mapped_features};

/// The column of a tags CSV that holds a tag's OSM tags, `key=value;key=value`.

#[derive(Subcommand)]
pub enum OsmCommand {
    /// Write the mapper's tags as an osmChange or JOSM file for review in an editor.
    Export(ExportArgs),
    /// Read an extract and count what AccessAtlas keeps of it: elements, labelled features per
    /// type, and the time the read took.
    Stats(StatsArgs),
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// The extract (default: the bundled one).
    #[arg(long)]
    pub osm: Option<PathBuf>,
    /// Print one JSON object instead of lines of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Tags CSV (`id,lat,lon,type,source[,note][,osm_tags]`, as the app exports it).
    #[arg(long)]
    pub tags: PathBuf,
    /// `osc` (osmChange, API 0.6) or `josm` (JOSM XML, `upload='true'`).
    #[arg(long, value_parser = ["osc", "josm"])]
    pub format: String,
    /// Output file (default: the CSV's name with `.osc` or `.osm`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The extract whose features count as already mapped (default: the bundled one).
    #[arg(long)]
    pub osm: Option<PathBuf>,
    /// Copy each tag's note into a `note=` tag.
    #[arg(long)]
    pub with_notes: bool,
}

pub fn run(cmd: OsmCommand) -> Result<()> {
    match cmd {
        OsmCommand::Stats(a) => stats(&a),
        OsmCommand::Export(a) => {
            let s = export(&a)?;
            for line in &s.already_mapped {
                println!("already mapped: {line}");
            }
            for line in &s.skipped {
                println!("skipped: {line}");
            }
            println!(
                "{} node(s) written to {}; {} already mapped, {} skipped, {} row(s) rejected",
                s.written,
                s.out.display(),
                s.already_mapped.len(),
                s.skipped.len(),
                s.rejected.len()
            );
            Ok(())
        }
    }
}

fn stats(args: &StatsArgs) -> Result<()> {
    let start = std::time::Instant::now();
    let (map, origin) = OsmMap::open(args.osm.as_deref())?;
    let seconds = start.elapsed().as_secs_f64();
    let rules = Rules::default_rules(&LabelVocab::default())?;
    let mut per_type = std::collections::BTreeMap::<String, usize>::new();
    for f in mapped_features(&map, &rules) {
        *per_type.entry(f.label).or_default() += 1;
    }
    let (nodes, ways, multipolygons) = (map.coords.len(), map.ways.len(), map.multipolygons.len());
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "extract": origin, "seconds": seconds, "nodes": nodes, "ways": ways,
                "multipolygons": multipolygons, "features": per_type,
            })
        );
    } else {
        println!("{origin}: read in {seconds:.2} s");
        println!("{nodes} nodes, {ways} ways, {multipolygons} multipolygons");
        for (t, n) in &per_type {
            println!("{t:<14} {n:>7}");
        }
    }
    Ok(())
}

/// What an export did.
#[derive(Debug)]
pub struct Exported {
    pub out: PathBuf,
    pub written: usize,
    /// `<tag id> at <lat>, <lon>: node/ID (<distance> m)`.
    pub already_mapped: Vec<String>,
    /// Tags that are not the mapper's own (source `osm`).
    pub skipped: Vec<String>,
    pub rejected: Vec<Rejected>,
}

pub fn export(args: &ExportArgs) -> Result<Exported> {
    let types = FeatureTypes::builtin();
    let labels = LabelVocab::default();
    let csv = args.tags.display().to_string();
    let bytes = std::fs::read(&args.tags).with_context(|| format!("reading {csv}"))?;
    let report = parse_tags_csv(&bytes, &labels).with_context(|| csv.clone())?;
    let column = |name: &str| report.table.extra_columns.iter().position(|c| c == name);
    let (osm_col, note_col) = (column(OSM_TAGS_COLUMN), column("note"));
    let mut rejected = report.rejected;

    // What the extract already has, by type.
    let (map, _) = OsmMap::open(args.osm.as_deref())?;
    let mapped = mapped_features(&map, &Rules::default_rules(&labels)?);

    let (mut nodes, mut already_mapped, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    for (t, &line) in report.table.tags.iter().zip(&report.lines) {
        let reject = |field: &str, reason: String| Rejected {
            line,
            field: Some(field.to_string()),
            reason,
            raw: format!("{},{},{},{},{}", t.id, t.lat, t.lon, t.label, t.source),
        };
        if t.source == "osm" {
            skipped.push(format!("{}: source `osm`, it came from OpenStreetMap", t.id));
            continue;
        }
        let own = osm_col.map_or("", |i| t.extra[i].as_str());
        let own = match parse_osm_tags(own) {
            Ok(tags) => tags,
            Err(e) => {
                rejected.push(reject(OSM_TAGS_COLUMN, e));
                continue;
            }
        };
        let note = note_col.filter(|_| args.with_notes).map(|i| t.extra[i].as_str());
        let tags = match node_tags(types.get(&t.label)?, &own, note) {
            Ok(tags) => tags,
            Err(e) => {
                rejected.push(reject(OSM_TAGS_COLUMN, e));
                continue;
            }
        };
        if let Some((m, d)) = nearest_mapped(&mapped, &t.label, t.lat, t.lon, SAME_FEATURE_M) {
            already_mapped
                .push(format!("{} at {:.6}, {:.6}: {} ({d:.1} m)", t.id, t.lat, t.lon, m.id));
            continue;
        }
        nodes.push(NewNode { lat: t.lat, lon: t.lon, tags });
    }
    for r in &rejected {
        eprintln!("{csv}: {r}");
    }
    if nodes.is_empty() {
        bail!(
            "{csv}: nothing to export ({} already mapped, {} skipped, {} rejected)",
            already_mapped.len(),
            skipped.len(),
            rejected.len()
        );
    }
    let format = if args.format == "osc" { EditFormat::OsmChange } else { EditFormat::Josm };
    let out = args.out.clone().unwrap_or_else(|| args.tags.with_extension(format.extension()));
    let generator = concat!("AccessAtlas ", env!("CARGO_PKG_VERSION"));
    write_atomic(&out, write(&nodes, format, generator).as_bytes())?;
    Ok(Exported { out, written: nodes.len(), already_mapped, skipped, rejected })
}
