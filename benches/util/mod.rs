//! What every benchmark binary shares: its command-line options and percentiles.
#![allow(dead_code)]

/// The value after `name` on the command line, or `default` (absent or unparsable).
pub fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `p` quantile (0-1) of `v`, nearest rank.
pub fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

/// `accessatlas serve` (the binary under benchmark) on 127.0.0.1, killed on drop.
pub struct Server {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
}

impl Server {
    /// Starts `accessatlas serve` with the shipped bundle, no app, and `extra` arguments;
    /// returns once it printed its address.
    pub fn start(extra: &[&str]) -> Server {
        use std::io::BufRead;
        let root = env!("CARGO_MANIFEST_DIR");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_accessatlas"))
            .args(["serve", "--addr", "127.0.0.1:0", "--dist", "/nonexistent", "--model"])
            .arg(format!("{root}/assets/model"))
            .args(extra)
            .env("ACCESSATLAS_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting accessatlas serve");
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().expect("serve printed nothing").unwrap();
        let base = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .expect("an address")
            .trim_end_matches('/')
            .to_string();
        std::thread::spawn(move || lines.for_each(drop));
        Server { child, base }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A line of `/proc/PID/status` (`VmHWM`: peak resident set; `VmRSS`: now), MB.
pub fn proc_mb(pid: u32, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// A multipart `POST /api/predict` body: `png` at `lat`, `lon`, source `osm`.
pub fn multipart(png: &[u8], lat: f64, lon: f64) -> (String, Vec<u8>) {
    use std::io::Write;
    let b = "accessatlas-bench-boundary";
    let mut body = Vec::new();
    write!(body, "--{b}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"t.png\"\r\nContent-Type: image/png\r\n\r\n").unwrap();
    body.extend_from_slice(png);
    for (k, v) in [("lat", lat.to_string()), ("lon", lon.to_string()), ("source", "osm".into())] {
        write!(body, "\r\n--{b}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}")
            .unwrap();
    }
    write!(body, "\r\n--{b}--\r\n").unwrap();
    (format!("multipart/form-data; boundary={b}"), body)
}

/// Multipart bodies of 16 distinct real tiles of the bundled extract at zoom 19 (rendered),
/// each with its place.
pub fn predict_bodies() -> Vec<(String, Vec<u8>)> {
    use accessatlas::osm::{BUNDLED_OSM, BUNDLED_OSM_NAME, OsmMap};
    let map = OsmMap::from_bytes(BUNDLED_OSM, BUNDLED_OSM_NAME).unwrap();
    let r = accessatlas::render::Renderer::new(&map, 19).unwrap();
    (0..16)
        .map(|i| {
            let (lat, lon) = (60.1680 + 0.0003 * f64::from(i), 24.9360 + 0.0004 * f64::from(i));
            let t = model_core::data::tile::lat_lon_to_tile(lat, lon, 19).unwrap();
            let img = image::DynamicImage::ImageRgba8(r.render_tile(t)).to_rgb8();
            let mut png = Vec::new();
            img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
            multipart(&png, lat, lon)
        })
        .collect()
}
