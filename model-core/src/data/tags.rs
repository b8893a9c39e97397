//! The `tags.csv` schema: `id,lat,lon,type,source,image` plus any extra columns, carried
//! through untouched. Parsing keeps every valid row and reports every rejected one with its
//! line, field and reason; it never fails on a bad row, only on a file without a usable header.

use serde::{Deserialize, Serialize};

use crate::{CoreError, LabelVocab, data::tile::validate_lat_lon};

/// Columns every tags file has, in this order when written.
pub const REQUIRED_COLUMNS: [&str; 5] = ["id", "lat", "lon", "type", "source"];
/// Optional column: path of the tile image, relative to the data directory.
pub const IMAGE_COLUMN: &str = "image";
/// The optional column naming a row's region (`collect` writes the extract's name): the split
/// is stratified per region, the scaler keeps one area per region, `evaluate` reports each.
pub const REGION_COLUMN: &str = "region";

/// One labelled location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tag {
    pub id: String,
    pub lat: f64,
    pub lon: f64,
    #[serde(rename = "type")]
    pub label: String,
    pub source: String,
    /// Image path relative to the data directory (`images/<id>.png`); empty when not yet made.
    pub image: Option<String>,
    /// Extra column values, in the order of [`TagTable::extra_columns`].
    pub extra: Vec<String>,
}

/// A parsed tags file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TagTable {
    pub extra_columns: Vec<String>,
    pub tags: Vec<Tag>,
}

impl TagTable {
    /// Each row's region ([`REGION_COLUMN`]), `""` for every row of a table without one.
    pub fn regions(&self) -> Vec<&str> {
        let col = self.extra_columns.iter().position(|c| c == REGION_COLUMN);
        self.tags
            .iter()
            .map(|t| col.and_then(|i| t.extra.get(i)).map_or("", |s| s.trim()))
            .collect()
    }

    /// Sets every row's region to `region` where it has none, adding the column if missing.
    pub fn fill_region(&mut self, region: &str) {
        let col = match self.extra_columns.iter().position(|c| c == REGION_COLUMN) {
            Some(i) => i,
            None => {
                self.extra_columns.push(REGION_COLUMN.to_string());
                self.extra_columns.len() - 1
            }
        };
        for t in &mut self.tags {
            t.extra.resize(self.extra_columns.len(), String::new());
            if t.extra[col].trim().is_empty() {
                t.extra[col] = region.to_string();
            }
        }
    }
}

/// A row that was not accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejected {
    /// 1-based line number in the file (the header is line 1).
    pub line: u64,
    /// The offending column, when one is to blame.
    pub field: Option<String>,
    pub reason: String,
    /// The row as read, fields joined by commas.
    pub raw: String,
}

impl Rejected {
    /// A valid row rejected later (its image is missing or corrupt, its tile failed). It has
    /// no line of its own (`line` 0); `reason` starts with the tag's id.
    pub fn for_tag(t: &Tag, field: &str, reason: &str) -> Self {
        Self {
            line: 0,
            field: Some(field.to_string()),
            reason: format!("{}: {reason}", t.id),
            raw: format!("{},{},{},{},{}", t.id, t.lat, t.lon, t.label, t.source),
        }
    }
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(c) => write!(f, "line {}, field `{c}`: {}", self.line, self.reason),
            None => write!(f, "line {}: {}", self.line, self.reason),
        }
    }
}

/// Valid rows and rejected rows of one file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParseReport {
    pub table: TagTable,
    pub rejected: Vec<Rejected>,
    /// The 1-based line of each row of `table.tags`, for errors found later.
    pub lines: Vec<u64>,
}

/// The 1-based line of each byte offset asked for, counted onward from the last one asked
/// (offsets come in file order, so a whole file is counted once). A line end is `\n`, `\r\n`
/// or a lone `\r` (the csv crate's own count is one too low with CRLF ends, which spreadsheet
/// programs write).
#[derive(Debug, Default)]
struct LineCounter {
    /// Bytes before this one are counted ...
    counted_to: usize,
    /// ... and hold this many line ends.
    ends: u64,
}

impl LineCounter {
    fn line_at(&mut self, bytes: &[u8], offset: u64) -> u64 {
        // A record's position is where the reader started looking for it, before the blank
        // lines it skipped: the record itself starts after them.
        let mut end = (offset as usize).min(bytes.len());
        while matches!(bytes.get(end), Some(b'\r' | b'\n')) {
            end += 1;
        }
        if end < self.counted_to {
            *self = Self::default(); // asked out of order: count again from the start
        }
        self.ends += bytes[self.counted_to..end]
            .iter()
            .enumerate()
            .filter(|&(i, &b)| {
                b == b'\n' || (b == b'\r' && bytes.get(self.counted_to + i + 1) != Some(&b'\n'))
            })
            .count() as u64;
        self.counted_to = end;
        1 + self.ends
    }
}

/// Reads a tags CSV a number of rows at a time, for a caller that must not hold the thread
/// for a whole large file (the page's import gives the browser a turn between chunks).
/// [`parse_tags_csv`] reads it in one go. Accepts a UTF-8 BOM, CRLF line ends, quoted fields
/// with commas and line ends. The header must name at least the required columns (any
/// order). Only a missing or unusable header is an error; bad rows go to
/// [`ParseReport::rejected`].
pub struct TagsCsvReader<'a> {
    bytes: &'a [u8],
    labels: &'a LabelVocab,
    rdr: csv::Reader<&'a [u8]>,
    header_len: usize,
    /// Columns of id, lat, lon, type, source.
    idx: [usize; 5],
    image_idx: Option<usize>,
    extra_idx: Vec<usize>,
    seen: std::collections::HashSet<String>,
    lines: LineCounter,
    record: csv::StringRecord,
    done: bool,
    report: ParseReport,
}

impl<'a> TagsCsvReader<'a> {
    /// Reads the header.
    pub fn new(bytes: &'a [u8], labels: &'a LabelVocab) -> Result<Self, CoreError> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let mut rdr = csv::ReaderBuilder::new().flexible(true).has_headers(true).from_reader(bytes);
        let header: Vec<String> = rdr
            .headers()
            .map_err(|e| CoreError::InvalidConfig(format!("header: {e}")))?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        if header.iter().all(|h| h.is_empty()) {
            return Err(CoreError::InvalidConfig("the file is empty (no header line)".into()));
        }
        let col = |name: &str| header.iter().position(|h| h == name);
        let mut idx = [0usize; 5];
        for (i, name) in REQUIRED_COLUMNS.iter().enumerate() {
            idx[i] = col(name).ok_or_else(|| {
                CoreError::InvalidConfig(format!(
                    "header lacks the `{name}` column (found: {})",
                    header.join(",")
                ))
            })?;
        }
        let image_idx = col(IMAGE_COLUMN);
        let extra_idx: Vec<usize> =
            (0..header.len()).filter(|i| !idx.contains(i) && Some(*i) != image_idx).collect();
        let mut report = ParseReport::default();
        report.table.extra_columns = extra_idx.iter().map(|&i| header[i].clone()).collect();
        Ok(Self {
            bytes,
            labels,
            rdr,
            header_len: header.len(),
            idx,
            image_idx,
            extra_idx,
            seen: Default::default(),
            lines: LineCounter::default(),
            record: csv::StringRecord::new(),
            done: false,
            report,
        })
    }

    /// The file's extra columns (every column but the required ones and `image`).
    pub fn extra_columns(&self) -> &[String] {
        &self.report.table.extra_columns
    }

    /// Reads up to `rows` more rows (accepted or rejected); false once the file is read.
    pub fn read(&mut self, rows: usize) -> bool {
        for _ in 0..rows {
            if self.done {
                break;
            }
            match self.rdr.read_record(&mut self.record) {
                Ok(true) => self.take_record(),
                Ok(false) => self.done = true,
                Err(e) => {
                    let line =
                        e.position().map(|p| self.lines.line_at(self.bytes, p.byte())).unwrap_or(0);
                    self.report.rejected.push(Rejected {
                        line,
                        field: None,
                        reason: format!("unreadable row: {e}"),
                        raw: String::new(),
                    });
                    // An I/O error would repeat forever; a reader over bytes has none, but
                    // stop rather than spin if one ever came.
                    if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                        self.done = true;
                    }
                }
            }
        }
        !self.done
    }

    /// How far into the file the reader is, 0 to 1.
    pub fn fraction_read(&self) -> f64 {
        if self.done || self.bytes.is_empty() {
            return 1.0;
        }
        self.rdr.position().byte() as f64 / self.bytes.len() as f64
    }

    /// The rows read so far, accepted and rejected.
    pub fn into_report(self) -> ParseReport {
        self.report
    }

    fn take_record(&mut self) {
        let rec = &self.record;
        let line = rec.position().map(|p| self.lines.line_at(self.bytes, p.byte())).unwrap_or(0);
        if rec.iter().all(|f| f.trim().is_empty()) {
            return; // blank line
        }
        let raw = rec.iter().collect::<Vec<_>>().join(",");
        let reject = |field: Option<&str>, reason: String| Rejected {
            line,
            field: field.map(str::to_string),
            reason,
            raw: raw.clone(),
        };
        let report = &mut self.report;
        if rec.len() != self.header_len {
            report.rejected.push(reject(
                None,
                format!("{} fields, the header has {}", rec.len(), self.header_len),
            ));
            return;
        }
        let get = |i: usize| rec.get(i).unwrap_or("").trim();
        let idx = self.idx;
        let id = get(idx[0]);
        if id.is_empty() {
            report.rejected.push(reject(Some("id"), "empty".into()));
            return;
        }
        let lat = match parse_coord(get(idx[1])) {
            Ok(v) => v,
            Err(e) => {
                report.rejected.push(reject(Some("lat"), e));
                return;
            }
        };
        let lon = match parse_coord(get(idx[2])) {
            Ok(v) => v,
            Err(e) => {
                report.rejected.push(reject(Some("lon"), e));
                return;
            }
        };
        if let Err(e) = validate_lat_lon(lat, lon) {
            let field = if matches!(e, CoreError::LatitudeOutOfRange(_)) { "lat" } else { "lon" };
            report.rejected.push(reject(Some(field), e.to_string()));
            return;
        }
        let label = get(idx[3]);
        if let Err(e) = self.labels.index(label) {
            report.rejected.push(reject(Some("type"), e.to_string()));
            return;
        }
        let source = get(idx[4]);
        if source.is_empty() {
            report.rejected.push(reject(Some("source"), "empty".into()));
            return;
        }
        if !self.seen.insert(id.to_string()) {
            report.rejected.push(reject(Some("id"), format!("duplicate id `{id}`")));
            return;
        }
        let image = self.image_idx.map(get).filter(|s| !s.is_empty()).map(str::to_string);
        report.lines.push(line);
        report.table.tags.push(Tag {
            id: id.to_string(),
            lat,
            lon,
            label: label.to_string(),
            source: source.to_string(),
            image,
            extra: self.extra_idx.iter().map(|&i| rec.get(i).unwrap_or("").to_string()).collect(),
        });
    }
}

/// Parses a whole tags CSV (see [`TagsCsvReader`] for what it accepts).
pub fn parse_tags_csv(bytes: &[u8], labels: &LabelVocab) -> Result<ParseReport, CoreError> {
    let mut reader = TagsCsvReader::new(bytes, labels)?;
    while reader.read(usize::MAX) {}
    Ok(reader.into_report())
}

fn parse_coord(s: &str) -> Result<f64, String> {
    if s.is_empty() {
        return Err("empty".into());
    }
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if !v.is_finite() {
        return Err(format!("`{s}` is not a finite number"));
    }
    Ok(v)
}

/// Writes a tags table as CSV: required columns, `image`, then the extra columns.
pub fn write_tags_csv(table: &TagTable) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<&str> = REQUIRED_COLUMNS.to_vec();
    header.push(IMAGE_COLUMN);
    header.extend(table.extra_columns.iter().map(String::as_str));
    w.write_record(&header).expect("writing to memory");
    for t in &table.tags {
        let mut row = vec![
            t.id.clone(),
            format_coord(t.lat),
            format_coord(t.lon),
            t.label.clone(),
            t.source.clone(),
            t.image.clone().unwrap_or_default(),
        ];
        row.extend(t.extra.iter().cloned());
        w.write_record(&row).expect("writing to memory");
    }
    w.into_inner().expect("flushing to memory")
}

/// Shortest text that reads back to the same f64.
fn format_coord(v: f64) -> String {
    format!("{v}")
}

/// Writes rejected rows as CSV: `line,field,reason,raw`.
pub fn write_rejected_csv(rejected: &[Rejected]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["line", "field", "reason", "raw"]).expect("writing to memory");
    for r in rejected {
        w.write_record([
            r.line.to_string(),
            r.field.clone().unwrap_or_default(),
            r.reason.clone(),
            r.raw.clone(),
        ])
        .expect("writing to memory");
    }
    w.into_inner().expect("flushing to memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> ParseReport {
        parse_tags_csv(s.as_bytes(), &LabelVocab::default()).unwrap()
    }

    #[test]
    fn valid_rows_with_bom_crlf_quotes_and_extra_columns() {
        let r = parse(
            "\u{feff}id,lat,lon,type,source,note\r\n\
             a,60.17,24.94,ramp,user,\"kerb, lowered\"\r\n\
             b,60.18,24.95,elevator,osm,\r\n",
        );
        assert!(r.rejected.is_empty(), "{:?}", r.rejected);
        assert_eq!(r.table.extra_columns, vec!["note"]);
        assert_eq!(r.table.tags.len(), 2);
        assert_eq!(r.table.tags[0].extra, vec!["kerb, lowered"]);
        assert_eq!(r.table.tags[0].image, None);
        // round trip
        let back = parse_tags_csv(&write_tags_csv(&r.table), &LabelVocab::default()).unwrap();
        assert_eq!(back.table, r.table);
    }

    /// A table without a region column gets one; rows that name their region keep it.
    #[test]
    fn regions_are_read_and_filled() {
        let mut r = parse("id,lat,lon,type,source\na,60.1,24.9,ramp,user\n").table;
        assert_eq!(r.regions(), [""]);
        r.fill_region("helsinki");
        assert_eq!(r.extra_columns, [REGION_COLUMN]);
        assert_eq!(r.regions(), ["helsinki"]);
        let mut two = parse(
            "id,lat,lon,type,source,region\na,60.1,24.9,ramp,user,espoo\nb,60.2,24.9,ramp,user,\n",
        )
        .table;
        two.fill_region("helsinki");
        assert_eq!(two.regions(), ["espoo", "helsinki"]);
        let back = parse(std::str::from_utf8(&write_tags_csv(&two)).unwrap()).table;
        assert_eq!(back.regions(), ["espoo", "helsinki"]);
    }

    /// Line numbers count the file's own lines whatever its line ends: LF, CRLF (what
    /// spreadsheet programs write, RFC 4180's own) or a lone CR, with a BOM, a blank line and
    /// a quoted field that spans two lines before the bad row.
    #[test]
    fn line_numbers_are_right_with_every_line_end() {
        let lf = "id,lat,lon,type,source,note\n\
                  ok1,60.1,24.9,ramp,user,\"two\nlines\"\n\
                  \n\
                  bad,abc,24.9,ramp,user,\n\
                  ok2,60.1,24.9,ramp,user,\n";
        for (name, text) in [
            ("LF", lf.to_string()),
            ("CRLF", lf.replace('\n', "\r\n")),
            ("CR", lf.replace('\n', "\r")),
            ("BOM + CRLF", format!("\u{feff}{}", lf.replace('\n', "\r\n"))),
        ] {
            let r = parse_tags_csv(text.as_bytes(), &LabelVocab::default()).unwrap();
            let got: Vec<(u64, Option<&str>)> =
                r.rejected.iter().map(|x| (x.line, x.field.as_deref())).collect();
            assert_eq!(got, vec![(5, Some("lat"))], "{name}");
            assert_eq!(r.lines, vec![2, 6], "{name}");
        }
    }

    #[test]
    fn each_bad_row_is_rejected_with_line_and_field_and_the_rest_kept() {
        let r = parse(
            "id,lat,lon,type,source\n\
             ok1,60.1,24.9,ramp,user\n\
             short,60.1,24.9,ramp\n\
             nan,NaN,24.9,ramp,user\n\
             text,abc,24.9,ramp,user\n\
             far,95,24.9,ramp,user\n\
             west,60.1,-190,ramp,user\n\
             what,60.1,24.9,stairs,user\n\
             nosrc,60.1,24.9,ramp,\n\
             ok1,60.2,24.9,ramp,user\n\
             ok2,60.1,24.9,obstacle,osm\n",
        );
        assert_eq!(r.table.tags.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["ok1", "ok2"]);
        let got: Vec<(u64, Option<&str>)> =
            r.rejected.iter().map(|x| (x.line, x.field.as_deref())).collect();
        assert_eq!(
            got,
            vec![
                (3, None),
                (4, Some("lat")),
                (5, Some("lat")),
                (6, Some("lat")),
                (7, Some("lon")),
                (8, Some("type")),
                (9, Some("source")),
                (10, Some("id")),
            ]
        );
        assert!(r.rejected[5].reason.contains("stairs"));
        let csv = String::from_utf8(write_rejected_csv(&r.rejected)).unwrap();
        assert!(csv.starts_with("line,field,reason,raw\n3,,"));
    }

    #[test]
    fn empty_file_and_missing_columns_are_errors() {
        let v = LabelVocab::default();
        assert!(parse_tags_csv(b"", &v).is_err());
        let e = parse_tags_csv(b"id,lat,lon,type\n", &v).unwrap_err().to_string();
        assert!(e.contains("source"), "{e}");
        assert!(parse("id,lat,lon,type,source\n").table.tags.is_empty());
    }

    /// Read a few rows at a time (as the page imports), a file gives what it gives read in one
    /// go: the same rows, rejections and line numbers, whatever the chunk, with every line end.
    #[test]
    fn a_file_read_in_chunks_reads_as_in_one_go() {
        let lf = "id,lat,lon,type,source,note\n\
                  ok1,60.1,24.9,ramp,user,\"two\nlines\"\n\
                  \n\
                  bad,abc,24.9,ramp,user,\n\
                  short,60.1\n\
                  ok2,60.1,24.9,ramp,user,\n\
                  ok1,60.1,24.9,ramp,user,again\n\
                  ok3,60.2,24.8,entrance,osm,\"a, b\"\n";
        let v = LabelVocab::default();
        for text in [lf.to_string(), lf.replace('\n', "\r\n"), lf.replace('\n', "\r")] {
            let whole = parse_tags_csv(text.as_bytes(), &v).unwrap();
            assert_eq!(whole.table.tags.len(), 3);
            assert_eq!(whole.rejected.len(), 3);
            for chunk in [1, 2, 3, 100] {
                let mut r = TagsCsvReader::new(text.as_bytes(), &v).unwrap();
                assert_eq!(r.extra_columns(), ["note"]);
                let mut calls = 0;
                let mut last = 0.0;
                while r.read(chunk) {
                    calls += 1;
                    assert!(r.fraction_read() >= last && r.fraction_read() <= 1.0);
                    last = r.fraction_read();
                }
                assert_eq!(r.fraction_read(), 1.0);
                // Six records (the blank line is none): one call for each `chunk` of them.
                assert!(calls >= 6 / chunk, "{chunk} rows a call, {calls} calls");
                assert_eq!(r.into_report(), whole, "chunks of {chunk}");
            }
        }
    }

    /// The line of each row is counted onward from the row before, not from the file's start
    /// (which made a 100,000-row file take minutes): the last row of a large file still gets
    /// its own line.
    #[test]
    fn a_large_file_keeps_its_line_numbers() {
        let mut text = String::from("id,lat,lon,type,source\r\n");
        for i in 0..100_000 {
            text += &format!("t{i},60.1,24.9,ramp,user\r\n");
        }
        text += "bad,x,24.9,ramp,user\r\n";
        let r = parse_tags_csv(text.as_bytes(), &LabelVocab::default()).unwrap();
        assert_eq!(r.table.tags.len(), 100_000);
        assert_eq!(r.lines[99_999], 100_001);
        assert_eq!(r.rejected[0].line, 100_002);
    }
}
