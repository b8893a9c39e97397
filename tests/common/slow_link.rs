//! A slow connection between the browser and a server, for everything the page fetches: a
//! TCP proxy on 127.0.0.1 that delays each request by the link's latency and shares one
//! download rate among all its connections. Chromium's own network emulation slows only the
//! page's fetches, not its workers' (the model worker downloads the model itself), so the
//! phone on a slow connection (#33) goes through this instead. Bounded: it serves only
//! 127.0.0.1 and its threads end with their connections.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A link's speed: what the browser on the other side sees.
#[derive(Clone, Copy, Debug)]
pub struct SlowLink {
    /// Bytes per second from the server to the browser, shared by every connection.
    pub down_bytes_per_s: f64,
    /// Added before each request reaches the server (a round trip's delay).
    pub latency: Duration,
}

/// Lighthouse's mobile throttling ("slow 4G"): 1.6 Mbit/s down, 150 ms round trip.
pub const SLOW_4G: SlowLink =
    SlowLink { down_bytes_per_s: 200_000.0, latency: Duration::from_millis(150) };

impl SlowLink {
    /// Words for reports: "1.6 Mbit/s, 150 ms".
    pub fn words(&self) -> String {
        format!("{:.1} Mbit/s, {} ms", self.down_bytes_per_s * 8.0 / 1e6, self.latency.as_millis())
    }
}

/// Starts the proxy in front of `upstream` (`http://127.0.0.1:PORT`, a trailing `/` allowed):
/// its own base URL in the same form, on a free port. It lives as long as the process.
pub fn start(upstream: &str, link: SlowLink) -> String {
    let to = upstream.trim_start_matches("http://").trim_end_matches('/').to_string();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // When the shared link is next free to send.
    let free_at = Arc::new(Mutex::new(Instant::now()));
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(&to) else { continue };
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let free_at = free_at.clone();
            std::thread::spawn(move || pump(client, server, |_| std::thread::sleep(link.latency)));
            std::thread::spawn(move || {
                pump(s2, c2, |n| {
                    let send_at = {
                        let mut free = free_at.lock().unwrap();
                        let start = (*free).max(Instant::now());
                        *free = start + Duration::from_secs_f64(n as f64 / link.down_bytes_per_s);
                        *free
                    };
                    std::thread::sleep(send_at.saturating_duration_since(Instant::now()));
                })
            });
        }
    });
    format!("http://{addr}")
}

/// Copies `from` to `to` until either side closes, calling `wait(bytes)` before each chunk.
fn pump(mut from: TcpStream, mut to: TcpStream, wait: impl Fn(usize)) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                wait(n);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
