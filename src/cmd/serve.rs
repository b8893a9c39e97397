//! `accessatlas serve`: the built app, the model bundle and rendered tiles on one origin.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;

use crate::cmd::collect::{BUNDLED_OSM, BUNDLED_OSM_NAME};
use crate::osm::OsmMap;
use crate::serve::{ServeConfig, TileRenderer, serve};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// The built app (`trunk build --release` output).
    #[arg(long, default_value = "dist")]
    pub dist: PathBuf,
    /// The model bundle served at /model/.
    #[arg(long, default_value = "assets/model")]
    pub model: PathBuf,
    /// OSM extract the /tiles/ endpoint renders (default: the bundled Helsinki extract).
    #[arg(long)]
    pub osm: Option<PathBuf>,
}

pub fn run(args: ServeArgs) -> Result<()> {
    let index = args.dist.join("index.html");
    anyhow::ensure!(
        index.is_file(),
        "{} not found: build the app first (`cargo xtask serve` builds and serves it)",
        index.display()
    );
    let manifest = args.model.join(model_core::bundle::BUNDLE_CONFIG_FILE);
    anyhow::ensure!(manifest.is_file(), "model bundle {} not found", manifest.display());
    let map = match &args.osm {
        Some(p) => OsmMap::read(p)?,
        None => OsmMap::from_bytes(BUNDLED_OSM, BUNDLED_OSM_NAME)?,
    };
    let cfg =
        ServeConfig { dist: args.dist, model: args.model, tiles: Arc::new(TileRenderer::new(map)) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve(cfg, args.addr, |a| {
        println!("AccessAtlas is serving on http://{a}/  (Ctrl-C stops)");
    }))
}
