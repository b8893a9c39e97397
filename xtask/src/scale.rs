//! Synthetic extracts for the scale benchmark: the bundled extract copied N times side by side
//! (a grid of shifted copies, every id moved by a fixed stride per copy), so an N-copy file has
//! real OSM structure and exactly N times the bundled one's elements and labels.
//!
//! `cargo xtask synth --copies N --out FILE.osm.pbf` writes one; `cargo xtask bench scale`
//! writes 1x, 10x and 100x into the cache and measures on them. The file goes through
//! osmium-tool's OPL text form (Debian `osmium-tool`): `osmium cat -f opl` reads the bundled
//! extract, the copies are written as OPL, `osmium cat` writes the PBF.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Every id of copy `k` is its original plus `k * ID_STRIDE` (the bundled extract's largest
/// id is 6.4e9), so copies never collide and each copy keeps its file order.
pub const ID_STRIDE: i64 = 10_000_000_000;

/// Coordinates in OPL are degrees with 7 decimals: kept as integers of 1e-7 degrees, so a
/// shift never rounds.
fn parse_e7(s: &str) -> Result<i64> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 7 || int.is_empty() {
        bail!("coordinate `{s}` is not degrees with at most 7 decimals");
    }
    let v: i64 = format!("{int}{frac:0<7}").parse().with_context(|| format!("coordinate `{s}`"))?;
    Ok(if neg { -v } else { v })
}

fn write_e7(out: &mut String, v: i64) {
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    let _ = write!(out, "{sign}{}.{:07}", a / 10_000_000, a % 10_000_000);
}

/// `n123`, `w5`, `r7` with the id moved by `offset`.
fn shift_ref(r: &str, offset: i64) -> Result<String> {
    let (kind, id) = r.split_at(1);
    let id: i64 = id.parse().with_context(|| format!("reference `{r}`"))?;
    Ok(format!("{kind}{}", id + offset))
}

/// One OPL line of copy `k`: id and references moved by `offset`, coordinates by `(dx, dy)`
/// (1e-7 degrees).
fn shift_line(line: &str, offset: i64, dx: i64, dy: i64) -> Result<String> {
    let mut out = String::with_capacity(line.len() + 16);
    for (i, tok) in line.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let Some(field) = tok.chars().next() else { continue };
        let rest = &tok[1..];
        match (i, field) {
            (0, _) => out.push_str(&shift_ref(tok, offset)?),
            (_, 'x' | 'y') if !rest.is_empty() => {
                out.push(field);
                write_e7(&mut out, parse_e7(rest)? + if field == 'x' { dx } else { dy });
            }
            (_, 'N') => {
                out.push('N');
                let refs: Result<Vec<String>> = rest
                    .split(',')
                    .filter(|r| !r.is_empty())
                    .map(|r| shift_ref(r, offset))
                    .collect();
                out.push_str(&refs?.join(","));
            }
            (_, 'M') => {
                out.push('M');
                let members: Result<Vec<String>> = rest
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(|m| {
                        let (r, role) = m.split_once('@').unwrap_or((m, ""));
                        Ok(format!("{}@{role}", shift_ref(r, offset)?))
                    })
                    .collect();
                out.push_str(&members?.join(","));
            }
            _ => out.push_str(tok),
        }
    }
    Ok(out)
}

/// Where copy `k` of an extract goes: a grid (as square as it gets) with the source's extent
/// plus a 10 % gap per step, so no two copies touch. Units of 1e-7 degrees.
#[derive(Debug, Clone, Copy)]
pub struct Grid {
    /// The source's bounding box: min lon, min lat, max lon, max lat.
    pub bbox: (i64, i64, i64, i64),
    pub cols: i64,
    pub step: (i64, i64),
}

impl Grid {
    pub fn of(opl: &str, copies: usize) -> Result<Self> {
        anyhow::ensure!(copies >= 1, "copies must be at least 1");
        let (mut x0, mut y0, mut x1, mut y1) = (i64::MAX, i64::MAX, i64::MIN, i64::MIN);
        for line in opl.lines().filter(|l| l.starts_with('n')) {
            for tok in line.split(' ') {
                match tok.split_at_checked(1) {
                    Some(("x", v)) if !v.is_empty() => {
                        let v = parse_e7(v)?;
                        (x0, x1) = (x0.min(v), x1.max(v));
                    }
                    Some(("y", v)) if !v.is_empty() => {
                        let v = parse_e7(v)?;
                        (y0, y1) = (y0.min(v), y1.max(v));
                    }
                    _ => {}
                }
            }
        }
        anyhow::ensure!(x0 <= x1, "the extract has no node with a location");
        Ok(Self {
            bbox: (x0, y0, x1, y1),
            cols: (copies as f64).sqrt().ceil() as i64,
            step: ((x1 - x0) * 11 / 10 + 1, (y1 - y0) * 11 / 10 + 1),
        })
    }

    /// The shift of copy `k`.
    pub fn offset(&self, k: i64) -> (i64, i64) {
        ((k % self.cols) * self.step.0, (k / self.cols) * self.step.1)
    }

    /// The centre of copy `k` as (lat, lon) degrees.
    pub fn centre(&self, k: i64) -> (f64, f64) {
        let (dx, dy) = self.offset(k);
        let (x0, y0, x1, y1) = self.bbox;
        (((y0 + y1) / 2 + dy) as f64 * 1e-7, ((x0 + x1) / 2 + dx) as f64 * 1e-7)
    }
}

/// Writes the OPL of `copies` copies of `opl` (see [`Grid`]). Objects stay in OPL/PBF order:
/// all nodes, then all ways, then all relations, ids ascending.
pub fn copies_opl(opl: &str, copies: usize, out: &mut impl std::io::Write) -> Result<()> {
    let grid = Grid::of(opl, copies)?;
    for kind in ['n', 'w', 'r'] {
        for k in 0..copies as i64 {
            let (dx, dy) = grid.offset(k);
            for (no, line) in opl.lines().enumerate().filter(|(_, l)| l.starts_with(kind)) {
                let shifted = shift_line(line, k * ID_STRIDE, dx, dy)
                    .with_context(|| format!("OPL line {}", no + 1))?;
                out.write_all(shifted.as_bytes())?;
                out.write_all(b"\n")?;
            }
        }
    }
    Ok(())
}

/// Writes `copies` copies of the bundled extract to `out` (PBF), through osmium-tool.
pub fn synth(root: &Path, copies: usize, out: &Path) -> Result<()> {
    crate::ensure_osm_clients()?;
    let src = root.join("assets/osm/helsinki.osm.pbf");
    let opl = crate::output(Command::new("osmium").args(["cat", "-f", "opl"]).arg(&src))?;
    let tmp = out.with_extension("opl");
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
    );
    copies_opl(&opl, copies, &mut w)?;
    std::io::Write::flush(&mut w).with_context(|| format!("writing {}", tmp.display()))?;
    drop(w);
    let r = crate::run(
        Command::new("osmium").args(["cat", "--overwrite", "-f", "pbf", "-o"]).arg(out).arg(&tmp),
    );
    let _ = std::fs::remove_file(&tmp);
    r?;
    eprintln!("{} written: {copies} copies of {}", out.display(), src.display());
    Ok(())
}

/// `cargo xtask synth --copies N --out FILE`.
pub fn synth_task(root: &Path, args: &[String]) -> Result<()> {
    let mut copies = None;
    let mut out = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--copies" => copies = it.next().map(|v| v.parse::<usize>()).transpose()?,
            "--out" => out = it.next().map(PathBuf::from),
            other => bail!("synth: unknown argument `{other}` (--copies N --out FILE)"),
        }
    }
    let (Some(copies), Some(out)) = (copies, out) else {
        bail!("usage: cargo xtask synth --copies N --out FILE.osm.pbf");
    };
    synth(root, copies, &out)
}

/// Wall time and peak resident memory of a finished child process.
pub struct Measured {
    pub seconds: f64,
    pub peak_rss_mb: f64,
    pub stdout: String,
}

/// Runs `cmd` to the end (stdout and stderr to files beside `log`), with its wall time and
/// peak RSS from `wait4`.
pub fn measure(cmd: &mut Command, log: &Path) -> Result<Measured> {
    let out_path = log.with_extension("out");
    let err_path = log.with_extension("err");
    eprintln!("$ {}", format!("{cmd:?}").replace('"', ""));
    let start = std::time::Instant::now();
    let child = cmd
        .stdout(std::fs::File::create(&out_path)?)
        .stderr(std::fs::File::create(&err_path)?)
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let seconds = start.elapsed().as_secs_f64();
    anyhow::ensure!(r == pid, "wait4 on {cmd:?} failed");
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        bail!(
            "{cmd:?} failed (status {status}): {}",
            std::fs::read_to_string(&err_path).unwrap_or_default()
        );
    }
    Ok(Measured { seconds, peak_rss_mb: usage.ru_maxrss as f64 / 1024.0, stdout })
}

/// `GET path` on 127.0.0.1:port: the status code and the body's length.
fn http_get(port: u16, path: &str) -> Result<(u16, usize)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(600)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf[..buf.len().min(64)]).to_string();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no HTTP status in `{text}`"))?;
    Ok((code, buf.len()))
}

/// The slippy-map tile holding (lat, lon) at `z`.
fn tile_at(lat: f64, lon: f64, z: u8) -> (u32, u32) {
    let n = f64::from(1u32 << z);
    let x = (lon + 180.0) / 360.0 * n;
    let y = (1.0 - lat.to_radians().tan().asinh() / std::f64::consts::PI) / 2.0 * n;
    (x as u32, y as u32)
}

/// A free port on 127.0.0.1.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `VmHWM` (peak resident set) of a running process, in MB.
fn peak_rss_mb(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM")?;
    Ok(kb / 1024.0)
}

struct ServeRun {
    startup_s: f64,
    first_tile_ms: f64,
    tile_p50_ms: f64,
    peak_rss_mb: f64,
}

/// `accessatlas serve --osm FILE`: seconds until it answers, the first tile (builds the zoom's
/// renderer), the median of `tiles` more at zoom 19 spread over the copies, peak RSS.
fn serve_run(
    exe: &Path,
    root: &Path,
    source: &[&std::ffi::OsStr],
    grid: &Grid,
    copies: usize,
) -> Result<ServeRun> {
    let port = free_port()?;
    let start = std::time::Instant::now();
    let mut child = Command::new(exe)
        .arg("serve")
        .args(source)
        .arg("--model")
        .arg(root.join("assets/model"))
        .args(["--dist", "/nonexistent-accessatlas-dist", "--port", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let result = (|| -> Result<ServeRun> {
        loop {
            if let Some(s) = child.try_wait()? {
                bail!("serve exited with {s}");
            }
            if matches!(http_get(port, "/tiles/style"), Ok((200, _))) {
                break;
            }
            anyhow::ensure!(start.elapsed().as_secs() < 1800, "serve did not start in 30 min");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let startup_s = start.elapsed().as_secs_f64();
        let get_tile = |lat: f64, lon: f64| -> Result<f64> {
            let (x, y) = tile_at(lat, lon, 19);
            let t = std::time::Instant::now();
            let (code, _) = http_get(port, &format!("/tiles/19/{x}/{y}.png"))?;
            anyhow::ensure!(code == 200, "tile 19/{x}/{y}: HTTP {code}");
            Ok(t.elapsed().as_secs_f64() * 1e3)
        };
        let (lat, lon) = grid.centre(0);
        let first_tile_ms = get_tile(lat, lon)?;
        // 40 tiles, never the same one, spread over the copies.
        let mut times = Vec::new();
        for i in 0..40i64 {
            let k = (i * 7919) % copies as i64;
            let (lat, lon) = grid.centre(k);
            let (sx, sy) = (grid.step.0 as f64 * 1e-7 / 4.0, grid.step.1 as f64 * 1e-7 / 4.0);
            let (fx, fy) = ((i % 5) as f64 / 5.0 - 0.4, ((i / 5) % 8) as f64 / 8.0 - 0.4);
            times.push(get_tile(lat + fy * sy, lon + fx * sx)?);
        }
        times.sort_by(f64::total_cmp);
        Ok(ServeRun {
            startup_s,
            first_tile_ms,
            tile_p50_ms: times[times.len() / 2],
            peak_rss_mb: peak_rss_mb(child.id())?,
        })
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// `osmium fileinfo -e -j FILE`: wall seconds and the element counts.
fn osmium_fileinfo(pbf: &Path) -> Result<(f64, u64)> {
    let t = std::time::Instant::now();
    let json = crate::output(Command::new("osmium").args(["fileinfo", "-e", "-j"]).arg(pbf))?;
    let s = t.elapsed().as_secs_f64();
    let v: serde_json::Value = serde_json::from_str(&json)?;
    let c = &v["data"]["count"];
    let n = |k: &str| c[k].as_u64().unwrap_or(0);
    Ok((s, n("nodes") + n("ways") + n("relations")))
}

/// Rows of `tags.csv` in `data` per type.
fn labels_per_type(data: &Path) -> Result<std::collections::BTreeMap<String, usize>> {
    let text = std::fs::read_to_string(data.join("tags.csv"))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().context("empty tags.csv")?.split(',').collect();
    let col = header.iter().position(|h| *h == "type").context("no type column")?;
    let mut out = std::collections::BTreeMap::new();
    for l in lines {
        if let Some(t) = l.split(',').nth(col) {
            *out.entry(t.to_string()).or_default() += 1;
        }
    }
    Ok(out)
}

struct SizeRow {
    copies: usize,
    pbf_mb: f64,
    elements: u64,
    osmium_s: f64,
    pyosmium_s: f64,
    read_s: f64,
    collect: Measured,
    labels: usize,
    tiles: usize,
    serve: ServeRun,
    render: Measured,
    rendered: usize,
    serve_file: ServeRun,
}

/// `cargo xtask bench scale [--sizes 1,10,100]`.
pub fn scale_section(root: &Path, sizes: &[usize]) -> Result<String> {
    crate::ensure_osm_clients()?;
    let exe = crate::accessatlas_exe(root)?;
    let python = crate::venv("venv-bench", &["osmium==4.3.2"])?;
    let dir = crate::cache_dir().join("scale");
    std::fs::create_dir_all(&dir)?;
    let src = root.join("assets/osm/helsinki.osm.pbf");
    let opl = crate::output(Command::new("osmium").args(["cat", "-f", "opl"]).arg(&src))?;
    let mut rows: Vec<SizeRow> = Vec::new();
    for &copies in sizes {
        let pbf = dir.join(format!("helsinki-x{copies}.osm.pbf"));
        if !pbf.exists() {
            synth(root, copies, &pbf)?;
        }
        let grid = Grid::of(&opl, copies)?;
        let (osmium_s, elements) = osmium_fileinfo(&pbf)?;
        let py = crate::output(
            Command::new(&python)
                .arg(root.join("benches/reference/pbf_read_pyosmium.py"))
                .arg(&pbf)
                .arg("1"),
        )?;
        let py: serde_json::Value = serde_json::from_str(py.trim())?;
        let read =
            crate::output(Command::new(&exe).args(["osm", "stats", "--json", "--osm"]).arg(&pbf))?;
        let read: serde_json::Value = serde_json::from_str(read.trim())
            .with_context(|| format!("`osm stats` printed `{read}`"))?;
        let data = dir.join(format!("data-x{copies}"));
        let _ = std::fs::remove_dir_all(&data);
        let collect = measure(
            Command::new(&exe).arg("collect").arg("--osm").arg(&pbf).arg("--data").arg(&data),
            &dir.join(format!("collect-x{copies}.log")),
        )?;
        let per_type = labels_per_type(&data)?;
        let labels: usize = per_type.iter().filter(|(t, _)| *t != "none").map(|(_, n)| n).sum();
        let tiles = collect
            .stdout
            .split("tiles: ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
            .context("collect printed no tile count")?;
        let _ = std::fs::remove_dir_all(&data);
        let serve = serve_run(&exe, root, &["--osm".as_ref(), pbf.as_os_str()], &grid, copies)?;
        let mbtiles = dir.join(format!("helsinki-x{copies}.mbtiles"));
        let render = measure(
            Command::new(&exe)
                .args(["tiles", "render", "--zoom", "19", "--osm"])
                .arg(&pbf)
                .arg("--out")
                .arg(&mbtiles),
            &dir.join(format!("render-x{copies}.log")),
        )?;
        let rendered = render
            .stdout
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .context("tiles render printed no count")?;
        let serve_file =
            serve_run(&exe, root, &["--tiles".as_ref(), mbtiles.as_os_str()], &grid, copies)?;
        let _ = std::fs::remove_file(&mbtiles);
        rows.push(SizeRow {
            copies,
            pbf_mb: std::fs::metadata(&pbf)?.len() as f64 / 1e6,
            elements,
            osmium_s,
            pyosmium_s: py["seconds"].as_f64().unwrap_or(f64::NAN),
            read_s: read["seconds"].as_f64().unwrap_or(f64::NAN),
            collect,
            labels,
            tiles,
            serve,
            render,
            rendered,
            serve_file,
        });
    }
    let base = &rows[0];
    for r in &rows {
        let want = base.labels * r.copies / base.copies;
        anyhow::ensure!(
            r.labels == want,
            "{}x: collect labelled {} features, expected {want} ({}x the {}x file's)",
            r.copies,
            r.labels,
            r.copies / base.copies,
            base.copies
        );
    }
    let growth = |v: f64, b: f64| format!("{:.1}x", v / b);
    let mut table = Vec::new();
    for r in &rows {
        let c = &r.collect;
        table.push(format!(
            "| {}x | {:.1} MB | {} | {:.2} s | {:.2} s | {:.2} s ({:.1}x osmium) | {:.1} s ({}) | {:.0} MB ({}) | {} labels, {} tiles, {:.0} tiles/s | {:.2} s | {:.0} / {:.0} ms | {:.0} MB ({}) |",
            r.copies,
            r.pbf_mb,
            r.elements,
            r.osmium_s,
            r.pyosmium_s,
            r.read_s,
            r.read_s / r.osmium_s,
            c.seconds,
            growth(c.seconds, base.collect.seconds),
            c.peak_rss_mb,
            growth(c.peak_rss_mb, base.collect.peak_rss_mb),
            r.labels,
            r.tiles,
            r.tiles as f64 / c.seconds,
            r.serve.startup_s,
            r.serve.first_tile_ms,
            r.serve.tile_p50_ms,
            r.serve.peak_rss_mb,
            growth(r.serve.peak_rss_mb, base.serve.peak_rss_mb),
        ));
    }
    let mut files = Vec::new();
    for r in &rows {
        files.push(format!(
            "| {}x | {} tiles in {:.1} s ({:.0} tiles/s), peak RSS {:.0} MB | {:.2} s | {:.1} / {:.1} ms | {:.0} MB ({}) |",
            r.copies,
            r.rendered,
            r.render.seconds,
            r.rendered as f64 / r.render.seconds,
            r.render.peak_rss_mb,
            r.serve_file.startup_s,
            r.serve_file.first_tile_ms,
            r.serve_file.tile_p50_ms,
            r.serve_file.peak_rss_mb,
            growth(r.serve_file.peak_rss_mb, base.serve_file.peak_rss_mb),
        ));
    }
    let top = rows.last().expect("at least one size");
    let per_m = |v: f64| v / (top.elements as f64 / 1e6);
    let per_million = format!(
        "Per million elements at {}x: `collect` {:.1} s and {:.0} MB of peak memory, `tiles render` \
{:.1} s; `serve` (drawing on request) {:.0} MB.",
        top.copies,
        per_m(top.collect.seconds),
        per_m(top.collect.peak_rss_mb),
        per_m(top.render.seconds),
        per_m(top.serve.peak_rss_mb),
    );
    // Peak memory as a constant plus a part per copy, through the smallest and largest sizes.
    let base_rss = rows[0].collect.peak_rss_mb;
    let per_copy =
        (top.collect.peak_rss_mb - base_rss) / (top.copies - rows[0].copies).max(1) as f64;
    let constant = base_rss - per_copy * rows[0].copies as f64;
    let per_million = format!(
        "{per_million} `collect`'s peak memory is about {constant:.0} MB of constant part (the \
program, one batch of tiles and images) plus {per_copy:.1} MB per copy of the bundled \
extract ({:.0} MB per million elements).",
        per_copy / (rows[0].elements as f64 / rows[0].copies as f64 / 1e6),
    );
    Ok(format!(
        "## Scale\n\n\
`cargo xtask bench scale`. Synthetic extracts: the bundled one copied N times side by side\n\
with fresh ids (`cargo xtask synth --copies N --out FILE`), so labels grow exactly N-fold\n\
(checked). References: osmium-tool's `osmium fileinfo -e` (reads every element) and pyosmium\n\
reading what AccessAtlas keeps; `accessatlas osm stats` is our read alone. `collect` runs with\n\
its defaults (renders every tile at zoom 19, writes the images); `serve` is measured from start\n\
to its first answer, then one tile at zoom 19 (builds that zoom's renderer) and the median of\n\
40 more, spread over the copies. Peak memory is the process's peak resident set; growth is\n\
against the smallest size.\n\n\
| size | PBF | elements | osmium fileinfo -e | pyosmium | our read | collect | collect peak RSS | collect output | serve start | serve first / p50 tile | serve peak RSS |\n\
|---|---|---|---|---|---|---|---|---|---|---|---|\n\
{}\n\n\
{per_million}\n\n\
Render once, serve statically: `accessatlas tiles render --zoom 19 --osm FILE --out F.mbtiles`\n\
draws the whole extract, then `accessatlas serve --tiles F.mbtiles` serves it without reading\n\
the extract (same tile requests as above).\n\n\
| size | tiles render | serve --tiles start | first / p50 tile | serve --tiles peak RSS |\n\
|---|---|---|---|---|\n\
{}\n",
        table.join("\n"),
        files.join("\n"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPL: &str = "\
n1 v1 dV c0 t2014-12-10T20:57:11Z i0 u T x24.9000000 y60.1000000
n2 v1 dV c0 t2014-12-10T20:57:11Z i0 u Tbarrier=kerb,kerb=lowered x24.9100000 y60.1050000
n3 v1 dV c0 t2014-12-10T20:57:11Z i0 u T x-0.0000001 y60.1000000
w10 v1 dV c0 t2014-12-10T20:57:11Z i0 u Thighway=footway,name=A%20%B Nn1,n2
r20 v1 dV c0 t2014-12-10T20:57:11Z i0 u Ttype=multipolygon Mw10@outer,n2@,r21@sub
";

    #[test]
    fn coordinates_round_trip_exactly() {
        for s in ["24.9370245", "60.164349", "-0.0000001", "-12.5", "0.0000000"] {
            let mut out = String::new();
            write_e7(&mut out, parse_e7(s).unwrap());
            assert_eq!(out.parse::<f64>().unwrap(), s.parse::<f64>().unwrap(), "{s} -> {out}");
        }
        assert!(parse_e7("1.123456789").is_err());
    }

    #[test]
    fn copies_move_ids_references_and_coordinates_and_keep_the_order() {
        let mut out = Vec::new();
        copies_opl(OPL, 2, &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 10);
        // Nodes of both copies, then ways, then relations.
        let kinds: String = lines.iter().map(|l| &l[..1]).collect();
        assert_eq!(kinds, "nnnnnnwwrr");
        // Copy 0 is the original.
        assert_eq!(lines[0], OPL.lines().next().unwrap());
        assert_eq!(lines[6], OPL.lines().nth(3).unwrap());
        // Copy 1: ids + stride, shifted east by 1.1x the extent (24.9-0.0000001 wide: the
        // negative node makes it wide) and not north (2 copies: 2 columns).
        let n2 = lines[4];
        assert!(n2.starts_with("n10000000002 "), "{n2}");
        assert!(n2.contains(" Tbarrier=kerb,kerb=lowered "), "{n2}");
        let x: f64 = n2.split(" x").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
        let width = 24.91 + 0.0000001;
        assert!((x - (24.91 + width * 1.1)).abs() < 1e-6, "{x}");
        assert!(n2.ends_with(" y60.1050000"), "{n2}");
        assert_eq!(
            lines[7],
            "w10000000010 v1 dV c0 t2014-12-10T20:57:11Z i0 u Thighway=footway,name=A%20%B \
             Nn10000000001,n10000000002"
        );
        assert!(lines[9].ends_with(" Mw10000000010@outer,n10000000002@,r10000000021@sub"));
    }

    /// The real extract through osmium-tool: three copies hold three times every element,
    /// with no id shared (osmium counts ids, so a collision would show as a lower maxid spread).
    #[test]
    fn three_copies_hold_three_times_every_element() {
        let root = crate::project_root();
        let dir = std::env::temp_dir().join(format!("accessatlas-synth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let count = |p: &Path| -> serde_json::Value {
            let out = Command::new("osmium").args(["fileinfo", "-e", "-j"]).arg(p).output();
            let out = out.expect("osmium-tool is installed (cargo xtask test installs it)");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["data"].clone()
        };
        let out = dir.join("x3.osm.pbf");
        synth(&root, 3, &out).unwrap();
        let one = count(&root.join("assets/osm/helsinki.osm.pbf"));
        let three = count(&out);
        for kind in ["nodes", "ways", "relations"] {
            let (a, b) =
                (one["count"][kind].as_u64().unwrap(), three["count"][kind].as_u64().unwrap());
            assert_eq!(b, 3 * a, "{kind}");
            let max = three["maxid"][kind].as_i64().unwrap();
            assert_eq!(max, one["maxid"][kind].as_i64().unwrap() + 2 * ID_STRIDE, "{kind}");
        }
        assert_eq!(three["objects_ordered"], true);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
