//! A polite XYZ tile client: names itself in the User-Agent, keeps at most two connections
//! per host, caches every tile on disk for at least seven days (longer when the server's
//! Cache-Control or Expires says so), retries 429, 5xx and timeouts with exponential backoff,
//! and never fetches a tile it already has (so an interrupted run resumes).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use image::RgbaImage;
use model_core::data::tile::TileId;
use serde::{Deserialize, Serialize};

use super::{Origin, TileSource, decode_tile};
use crate::fsutil::write_atomic;

pub const USER_AGENT: &str = concat!(
    "AccessAtlas/",
    env!("CARGO_PKG_VERSION"),
    " (accessibility mapping; +https://github.com/accessatlas)"
);
/// The shortest time a fetched tile is kept (the OSM tile usage policy asks for 7 days).
pub const MIN_CACHE: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, Clone)]
pub struct XyzOptions {
    pub template: String,
    /// Value for `{token}` in the template (read from an environment variable by the caller).
    pub token: Option<String>,
    pub cache_dir: PathBuf,
    pub retries: u32,
    pub backoff: Duration,
    pub timeout: Duration,
}

pub struct XyzClient {
    opts: XyzOptions,
    agent: ureq::Agent,
}

#[derive(Serialize, Deserialize)]
struct Meta {
    url: String,
    /// Unix seconds after which the tile is fetched again.
    expires: u64,
}

/// The HTTP client settings every AccessAtlas download shares: a User-Agent naming the app and
/// the platform's certificate store (so corporate or sandbox CAs installed there are trusted).
pub fn http_config() -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
    ureq::Agent::config_builder().user_agent(USER_AGENT).tls_config(
        ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::PlatformVerifier).build(),
    )
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Refuses templates that point at the OpenStreetMap Foundation's own tile servers.
pub fn check_usage_policy(template: &str) -> Result<()> {
    let host = template
        .split("://")
        .nth(1)
        .unwrap_or(template)
        .split('/')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    if host == "tile.openstreetmap.org" || host.ends_with(".tile.openstreetmap.org") {
        bail!(
            "refusing to collect tiles in bulk from {host}: the OpenStreetMap Tile Usage Policy \
             (https://operations.osmfoundation.org/policies/tiles/) forbids bulk downloading. \
             Use `--tiles render` (offline, from the OSM data itself), your own tile server, \
             or an MBTiles file."
        );
    }
    Ok(())
}

/// Freshness lifetime the server asks for, from `Cache-Control: max-age` or `Expires`.
fn server_lifetime(cache_control: Option<&str>, expires: Option<&str>) -> Option<Duration> {
    if let Some(cc) = cache_control {
        for part in cc.split(',') {
            if let Some(v) = part.trim().strip_prefix("max-age=") {
                return v.trim().parse().ok().map(Duration::from_secs);
            }
        }
    }
    let at = httpdate::parse_http_date(expires?).ok()?;
    at.duration_since(SystemTime::now()).ok()
}

impl XyzClient {
    pub fn new(opts: XyzOptions) -> Result<Self> {
        check_usage_policy(&opts.template)?;
        for p in ["{z}", "{x}", "{y}"] {
            if !opts.template.contains(p) {
                bail!("tile URL template `{}` lacks {p}", opts.template);
            }
        }
        if opts.template.contains("{token}") && opts.token.is_none() {
            bail!("tile URL template has {{token}} but no token is set (see --token-env)");
        }
        let agent = http_config()
            .http_status_as_error(false)
            .max_idle_connections_per_host(2)
            .timeout_global(Some(opts.timeout))
            .build()
            .new_agent();
        Ok(Self { opts, agent })
    }

    pub fn url(&self, t: TileId) -> String {
        let mut u = model_core::data::tile::expand_template(&self.opts.template, t);
        if let Some(tok) = &self.opts.token {
            u = u.replace("{token}", tok);
        }
        u
    }

    fn paths(&self, t: TileId) -> (PathBuf, PathBuf) {
        let d = self.opts.cache_dir.join(t.z.to_string()).join(t.x.to_string());
        (d.join(format!("{}.tile", t.y)), d.join(format!("{}.json", t.y)))
    }

    fn cached(&self, tile: &Path, meta: &Path) -> Option<RgbaImage> {
        let m: Meta = serde_json::from_slice(&std::fs::read(meta).ok()?).ok()?;
        if m.expires <= now() {
            return None;
        }
        decode_tile(&std::fs::read(tile).ok()?).ok()
    }

    fn download(&self, url: &str) -> Result<(Vec<u8>, Duration)> {
        let mut last = String::new();
        for attempt in 0..=self.opts.retries {
            if attempt > 0 {
                std::thread::sleep(self.opts.backoff * 2u32.pow(attempt - 1));
            }
            match self.agent.get(url).call() {
                Ok(mut resp) => {
                    let status = resp.status().as_u16();
                    if status == 200 {
                        let h = resp.headers();
                        let header =
                            |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
                        let life = server_lifetime(
                            header("cache-control").as_deref(),
                            header("expires").as_deref(),
                        );
                        let body = resp
                            .body_mut()
                            .with_config()
                            .limit(16 * 1024 * 1024)
                            .read_to_vec()
                            .with_context(|| format!("reading {url}"))?;
                        return Ok((body, life.unwrap_or(MIN_CACHE).max(MIN_CACHE)));
                    }
                    last = format!("HTTP {status}");
                    if status != 429 && status < 500 {
                        bail!("GET {url}: {last}");
                    }
                }
                Err(e) => last = e.to_string(),
            }
            tracing::debug!("GET {url}: {last} (attempt {})", attempt + 1);
        }
        bail!("GET {url}: {last} after {} attempts", self.opts.retries + 1)
    }
}

impl TileSource for XyzClient {
    fn describe(&self) -> String {
        format!("xyz:{}", self.opts.template)
    }
    fn workers(&self) -> usize {
        2
    }
    fn get(&self, t: TileId) -> Result<(RgbaImage, Origin)> {
        let (tile_path, meta_path) = self.paths(t);
        if let Some(img) = self.cached(&tile_path, &meta_path) {
            return Ok((img, Origin::Cached));
        }
        let url = self.url(t);
        let (bytes, life) = self.download(&url)?;
        let img = decode_tile(&bytes).with_context(|| format!("GET {url}"))?;
        write_atomic(&tile_path, &bytes)?;
        let meta = Meta { url, expires: now() + life.as_secs() };
        write_atomic(&meta_path, &serde_json::to_vec(&meta)?)?;
        Ok((img, Origin::Fetched))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osm_tile_servers_are_refused_with_the_policy() {
        for t in [
            "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
            "https://{s}.tile.openstreetmap.org/{z}/{x}/{y}.png",
            "http://B.TILE.OPENSTREETMAP.ORG/{z}/{x}/{y}.png",
        ] {
            let e = check_usage_policy(t).unwrap_err().to_string();
            assert!(e.contains("Tile Usage Policy") && e.contains("osmfoundation.org"), "{e}");
        }
        assert!(check_usage_policy("http://127.0.0.1:8080/{z}/{x}/{y}.png").is_ok());
    }

    #[test]
    fn lifetimes_are_read_from_headers() {
        assert_eq!(
            server_lifetime(Some("public, max-age=600"), None),
            Some(Duration::from_secs(600))
        );
        let later =
            httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3600 * 24 * 30));
        let l = server_lifetime(None, Some(&later)).unwrap();
        assert!(l > Duration::from_secs(3600 * 24 * 29));
        assert_eq!(server_lifetime(None, Some("garbage")), None);
    }
}
