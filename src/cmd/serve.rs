//! `accessatlas serve`: the built app, the model bundle, rendered tiles and the prediction API
//! on one origin.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use crate::api::{Api, ApiConfig};
use crate::osm::OsmMap;
use crate::serve::{ServeConfig, TileLimits, serve};
use crate::tiles::ServedTiles;
use crate::tiles::mbtiles::MbTiles;
use crate::tiles::rendered::TileRenderer;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Port to listen on (overrides the port of --addr).
    #[arg(long)]
    pub port: Option<u16>,
    /// The built app (`trunk build --release` output). Without it, the API, model and tiles
    /// are still served.
    #[arg(long, default_value = "dist")]
    pub dist: PathBuf,
    /// The model: an exported bundle (served at /model/ for the app) or a training run.
    #[arg(long, default_value = "assets/model")]
    pub model: PathBuf,
    /// OSM extract the /tiles/ endpoint renders (default: the bundled Helsinki extract).
    #[arg(long)]
    pub osm: Option<PathBuf>,
    /// Serve /tiles/ from this pre-rendered MBTiles file (`accessatlas tiles render`) instead
    /// of drawing them: no extract is read unless --osm is given too (the API's features and
    /// suggestions then come from it).
    #[arg(long)]
    pub tiles: Option<PathBuf>,
    /// Do not serve the prediction API under /api/.
    #[arg(long)]
    pub no_api: bool,
    /// API: largest request body in bytes.
    #[arg(long, default_value_t = ApiConfig::default().max_body_bytes)]
    pub max_body_bytes: usize,
    /// API: largest image in pixels (width x height).
    #[arg(long, default_value_t = ApiConfig::default().max_pixels)]
    pub max_pixels: u64,
    /// API: requests handled at once (more get 503 and Retry-After).
    #[arg(long, default_value_t = ApiConfig::default().max_concurrent, value_parser = at_least_one)]
    pub max_concurrent: usize,
    /// API: largest batch the model runs (requests that queue while it is busy go together).
    #[arg(long, default_value_t = ApiConfig::default().max_batch, value_parser = at_least_one)]
    pub max_batch: usize,
    /// API: largest area a `bbox` may cover, in km².
    #[arg(long, default_value_t = ApiConfig::default().max_area_km2)]
    pub max_area_km2: f64,
    /// API: seconds to receive a body, and again to answer it.
    #[arg(long, default_value_t = 30)]
    pub timeout_s: u64,
}

/// A count that must be positive: 0 would refuse every request (or underflow), so it is
/// refused at start with the reason.
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("not a whole number: {e}")),
    }
}

pub fn run(args: ServeArgs) -> Result<()> {
    let mut addr = args.addr;
    if let Some(p) = args.port {
        addr.set_port(p);
    }
    let dist = if args.dist.join("index.html").is_file() {
        Some(args.dist.clone())
    } else {
        tracing::warn!(
            "{} has no index.html: serving the API, model and tiles only (`cargo xtask serve` builds the app)",
            args.dist.display()
        );
        None
    };
    // Tiles from a file hold no extract; the API's features and suggestions need one.
    let (tiles, renderer): (Arc<dyn ServedTiles>, Option<Arc<TileRenderer>>) = match &args.tiles {
        Some(file) => {
            let mb = MbTiles::open(file)?;
            anyhow::ensure!(
                mb.format() == "png",
                "{}: serve --tiles needs PNG tiles, this file holds {}",
                file.display(),
                mb.format()
            );
            let renderer = match &args.osm {
                Some(p) => Some(Arc::new(TileRenderer::new(OsmMap::read(p)?))),
                None => None,
            };
            (Arc::new(mb), renderer)
        }
        None => {
            let (map, _) = OsmMap::open(args.osm.as_deref())?;
            let r = Arc::new(TileRenderer::new(map));
            (r.clone(), Some(r))
        }
    };
    let api = if args.no_api {
        None
    } else {
        let cfg = ApiConfig {
            max_body_bytes: args.max_body_bytes,
            max_pixels: args.max_pixels,
            read_timeout: Duration::from_secs(args.timeout_s),
            predict_timeout: Duration::from_secs(args.timeout_s),
            max_concurrent: args.max_concurrent,
            max_batch: args.max_batch,
            max_area_km2: args.max_area_km2,
        };
        let api = Api::serving(&args.model, renderer, cfg)?;
        Some(Arc::new(api))
    };
    let has_api = api.is_some();
    let cfg =
        ServeConfig { dist, model: args.model, tiles, api, tile_limits: TileLimits::default() };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve(cfg, addr, |a| {
        println!("AccessAtlas is serving on http://{a}/  (Ctrl-C stops)");
        if has_api {
            println!(
                "Prediction API: http://{a}/api/predict  (description: http://{a}/api/openapi.json)"
            );
        }
    }))
}
