//! The one HTTP tile server the tests start on 127.0.0.1 (a real HTTP/1.1 server on a real
//! socket: the clients under test speak to it as to any tile server). Every `GET
//! /{route}/{z}/{x}/{y}.png` is answered by its route:
//!
//! - `ok`: a PNG whose colour encodes the tile's address ([`tile_colour`]);
//! - `grey`: a light grey PNG (a plain base map for the page);
//! - `flaky`: 429 on a tile's first request, then `ok`'s tile;
//! - `broken`: 500; `slow`: `ok`'s tile after 3 s; `corrupt`: 200 with bytes that are no image.
//!
//! It counts requests per path, connections open at once and the user agents it saw
//! ([`Stats`]), and lets any origin read its tiles (CORS), as public tile servers do.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Colour that encodes a tile's address, so tests can tell which tile landed where.
pub fn tile_colour(x: u32, y: u32) -> [u8; 3] {
    [(x % 251) as u8, (y % 251) as u8, 200]
}

/// The `ok` route's tile for `x`, `y` (also what the tests put in MBTiles files).
pub fn tile_png(x: u32, y: u32) -> Vec<u8> {
    png(tile_colour(x, y))
}

fn png(colour: [u8; 3]) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(256, 256, image::Rgb(colour));
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

/// What the server saw.
#[derive(Default)]
pub struct Stats {
    /// Requests per path.
    pub hits: Mutex<HashMap<String, usize>>,
    pub active: AtomicUsize,
    pub max_active: AtomicUsize,
    pub user_agents: Mutex<Vec<String>>,
}

impl Stats {
    /// Requests whose path starts with `prefix`.
    pub fn total(&self, prefix: &str) -> usize {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    }
}

/// Starts the server on a free port: its base URL (`http://127.0.0.1:PORT`) and its stats.
pub fn start() -> (String, Arc<Stats>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stats = Arc::new(Stats::default());
    let s2 = stats.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let stats = s2.clone();
            std::thread::spawn(move || handle(stream, &stats));
        }
    });
    (base, stats)
}

fn handle(mut stream: TcpStream, stats: &Stats) {
    let now = stats.active.fetch_add(1, Ordering::SeqCst) + 1;
    stats.max_active.fetch_max(now, Ordering::SeqCst);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap_or(0);
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some(ua) = h.strip_prefix("user-agent: ").or_else(|| h.strip_prefix("User-Agent: "))
        {
            stats.user_agents.lock().unwrap().push(ua.trim().to_string());
        }
    }
    let n = {
        let mut hits = stats.hits.lock().unwrap();
        let e = hits.entry(path.clone()).or_default();
        *e += 1;
        *e
    };
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (route, x, y) = if parts.len() == 4 {
        let x = parts[2].parse().unwrap_or(0);
        let y = parts[3].trim_end_matches(".png").parse().unwrap_or(0);
        (parts[0], x, y)
    } else {
        ("none", 0, 0)
    };
    let (status, body): (&str, Vec<u8>) = match route {
        "ok" => ("200 OK", png(tile_colour(x, y))),
        "grey" => ("200 OK", png([225, 228, 232])),
        "flaky" if n == 1 => ("429 Too Many Requests", b"slow down".to_vec()),
        "flaky" => ("200 OK", png(tile_colour(x, y))),
        "broken" => ("500 Internal Server Error", b"oops".to_vec()),
        "slow" => {
            std::thread::sleep(Duration::from_secs(3));
            ("200 OK", png(tile_colour(x, y)))
        }
        "corrupt" => ("200 OK", b"\x89PNG\r\n\x1a\n garbage".to_vec()),
        _ => ("404 Not Found", b"no".to_vec()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: image/png\r\nContent-Length: {}\r\nCache-Control: max-age=60\r\nRetry-After: 0\r\nAccess-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
    let _ = stream.flush();
    stats.active.fetch_sub(1, Ordering::SeqCst);
}
