//! Reading keeps only the tags something reads (plus every tag of a feature): on the bundled
//! extract that changes nothing anyone sees. Same labels with the same tags, same candidates,
//! same background points, same tiles, byte for byte, as a read that keeps every tag; and the
//! map holds far fewer tags. (Debug builds also check every tag read against the key lists.)

use accessatlas::osm::rules::Rules;
use accessatlas::osm::{BUNDLED_OSM, KeepTags, OsmMap, geometry_in, labelled_features};
use accessatlas::render::Renderer;
use model_core::LabelVocab;
use model_core::data::background::background_points;
use model_core::data::candidates::candidates;
use model_core::data::tile::{BBox, TileId, lat_lon_to_tile};

fn tag_count(m: &OsmMap) -> usize {
    m.tagged_nodes.iter().map(|n| n.tags.len()).sum::<usize>()
        + m.ways.iter().map(|w| w.tags.len()).sum::<usize>()
        + m.multipolygons.iter().map(|r| r.tags.len()).sum::<usize>()
}

#[test]
fn keeping_only_read_tags_changes_nothing_on_the_bundled_extract() {
    let full =
        OsmMap::from_bytes_keeping(BUNDLED_OSM, "full", &KeepTags::everything().unwrap()).unwrap();
    let kept = OsmMap::from_bytes(BUNDLED_OSM, "kept").unwrap();
    let (a, b) = (tag_count(&full), tag_count(&kept));
    assert!(b * 2 < a, "kept {b} of {a} tags: the filter does not filter");

    let rules = Rules::default_rules(&LabelVocab::default()).unwrap();
    let (fa, fb) = (labelled_features(&full, &rules), labelled_features(&kept, &rules));
    assert!(fa.len() > 500);
    assert_eq!(fa, fb, "labels, positions and OSM tags of features");

    let (ga, gb) = (geometry_in(&full, &BBox::WORLD), geometry_in(&kept, &BBox::WORLD));
    let (ca, cb) = (candidates(&ga), candidates(&gb));
    assert!(ca.len() > 1000);
    assert_eq!(ca, cb, "candidates");
    let avoid: Vec<(f64, f64)> = fa.iter().map(|l| (l.lat, l.lon)).collect();
    let (ba, bb) = (
        background_points(&ga, &avoid, 700, 42, |_, _| true),
        background_points(&gb, &avoid, 700, 42, |_, _| true),
    );
    assert_eq!(ba.len(), 700);
    assert_eq!(ba, bb, "background points");

    // Tiles: every one at zoom 16, and a spread of the zoom-19 ones.
    let (lo, hi) = (
        lat_lon_to_tile(60.1790, 24.9352, 19).unwrap(),
        lat_lon_to_tile(60.1642, 24.9534, 19).unwrap(),
    );
    let mut tiles: Vec<TileId> = Vec::new();
    for y in (lo.y..=hi.y).step_by(5) {
        for x in (lo.x..=hi.x).step_by(5) {
            tiles.push(TileId { z: 19, x, y });
        }
    }
    let (lo16, hi16) = (TileId { z: 16, x: lo.x >> 3, y: lo.y >> 3 }, (hi.x >> 3, hi.y >> 3));
    for y in lo16.y..=hi16.1 {
        for x in lo16.x..=hi16.0 {
            tiles.push(TileId { z: 16, x, y });
        }
    }
    assert!(tiles.len() > 50, "{}", tiles.len());
    for z in [16, 19] {
        let (ra, rb) = (Renderer::new(&full, z).unwrap(), Renderer::new(&kept, z).unwrap());
        for &t in tiles.iter().filter(|t| t.z == z) {
            assert!(ra.render_tile(t) == rb.render_tile(t), "tile {}/{}/{}", t.z, t.x, t.y);
        }
    }
}
