//! Data-stage benchmark (run by `cargo xtask bench`, never as a test): reading the bundled
//! OSM extract, and rendering map tiles. Prints one JSON object per measurement.
//!
//! `cargo bench --bench data_stage -- [--repeat N]`

mod util;
use util::arg;

use std::time::Instant;

use accessatlas::osm::BUNDLED_OSM;
use accessatlas::osm::{KeepTags, OsmMap};
use accessatlas::render::Renderer;
use model_core::data::tile::{TileId, lat_lon_to_tile};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let repeat: usize = arg("--repeat", 5);

    // Every tag of every way and tagged node kept, as the reference keeps them (the product
    // keeps only what its rules and renderer read, which is less work).
    let everything = KeepTags::everything().expect("keep everything");
    let mut times = Vec::new();
    let mut elements = 0;
    for _ in 0..repeat {
        let t = Instant::now();
        let map = OsmMap::from_bytes_keeping(BUNDLED_OSM, "bundled", &everything)
            .expect("bundled extract reads");
        times.push(t.elapsed().as_secs_f64());
        elements = map.coords.len() + map.ways.len() + map.multipolygons.len();
    }
    let s = median(times);
    println!(
        "{{\"bench\":\"pbf_read\",\"elements\":{elements},\"bytes\":{},\"seconds\":{s:.6},\"elements_per_s\":{:.0}}}",
        BUNDLED_OSM.len(),
        elements as f64 / s
    );

    let map = OsmMap::from_bytes(BUNDLED_OSM, "bundled").expect("bundled extract reads");
    let renderer = Renderer::new(&map, 19).expect("zoom 19");
    // A block of 8x8 tiles in the middle of the extract.
    let c = lat_lon_to_tile(60.1705, 24.9440, 19).expect("valid point");
    let tiles: Vec<TileId> = (0..8)
        .flat_map(|dy| (0..8).map(move |dx| TileId { z: 19, x: c.x + dx - 4, y: c.y + dy - 4 }))
        .collect();
    let mut times = Vec::new();
    for _ in 0..repeat {
        let t = Instant::now();
        for &tile in &tiles {
            std::hint::black_box(renderer.render_tile(tile));
        }
        times.push(t.elapsed().as_secs_f64());
    }
    let s = median(times);
    println!(
        "{{\"bench\":\"render_tiles\",\"tiles\":{},\"seconds\":{s:.6},\"tiles_per_s\":{:.1}}}",
        tiles.len(),
        tiles.len() as f64 / s
    );
}
