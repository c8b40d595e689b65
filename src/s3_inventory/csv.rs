//! Data files in CSV (gzip): no header line, the columns the manifest's
//! `fileSchema` names, keys URL-encoded.

use super::manifest::column_name;
use super::Rows;
use crate::{Error, Result};
use std::io::Read;

/// Where the columns that matter are in each row.
#[derive(Debug, Clone, Copy)]
pub struct Columns {
    key: usize,
    size: usize,
    modified: usize,
    is_latest: Option<usize>,
    is_delete_marker: Option<usize>,
}

impl Columns {
    /// Finds them in `fileSchema`'s column names; `manifest` is what
    /// errors call the manifest that gives them.
    pub fn find(schema: &[String], manifest: &str) -> Result<Columns> {
        let names: Vec<String> = schema.iter().map(|c| column_name(c)).collect();
        let at = |n: &str| names.iter().position(|c| c == n);
        let need = |n: &str| {
            at(n).ok_or_else(|| {
                Error::parse(manifest, format!("fileSchema {schema:?} has no {n} column"))
            })
        };
        Ok(Columns {
            key: need("key")?,
            size: need("size")?,
            modified: need("lastmodifieddate")?,
            is_latest: at("islatest"),
            is_delete_marker: at("isdeletemarker"),
        })
    }
}

/// Decodes an inventory key: URL-encoded, `+` for a space. `None` when
/// the decoded bytes are not UTF-8.
pub fn decode_key(raw: &[u8]) -> Option<String> {
    let plus: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    let bytes: Vec<u8> = percent_encoding::percent_decode(&plus).collect();
    String::from_utf8(bytes).ok()
}

/// An RFC 3339 time (`2024-05-01T12:00:00.000Z`) as milliseconds since 1970.
pub fn parse_time(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Reads one gzip-compressed CSV data file into `rows`; `file` is what
/// errors call it (they add the row).
pub fn read(input: impl Read, cols: Columns, rows: &mut Rows<'_>, file: &str) -> Result<()> {
    let bad = |message: String| Error::parse(file, message);
    let gz = flate2::read::MultiGzDecoder::new(input);
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(false)
        .from_reader(gz);
    let mut rec = csv::ByteRecord::new();
    let mut line = 0u64;
    while r
        .read_byte_record(&mut rec)
        .map_err(|e| bad(format!("row {}: {e}", line + 1)))?
    {
        line += 1;
        let field = |i: usize| -> Result<&[u8]> {
            rec.get(i).ok_or_else(|| {
                bad(format!(
                    "row {line} has {} columns, fewer than the schema's",
                    rec.len()
                ))
            })
        };
        let flag = |i: Option<usize>| -> Result<Option<bool>> {
            Ok(match i {
                Some(i) => Some(field(i)?.eq_ignore_ascii_case(b"true")),
                None => None,
            })
        };
        if flag(cols.is_latest)? == Some(false) || flag(cols.is_delete_marker)? == Some(true) {
            continue;
        }
        let raw = field(cols.key)?;
        let key = decode_key(raw).ok_or_else(|| {
            bad(format!(
                "row {line}: key {:?} is not UTF-8 once decoded",
                String::from_utf8_lossy(raw)
            ))
        })?;
        if !rows.wants(&key) {
            continue;
        }
        let size = std::str::from_utf8(field(cols.size)?)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                bad(format!(
                    "row {line}: Size {:?} is not a number",
                    String::from_utf8_lossy(field(cols.size).unwrap_or_default())
                ))
            })?;
        let modified = std::str::from_utf8(field(cols.modified)?)
            .ok()
            .and_then(parse_time);
        if modified.is_none() {
            return Err(bad(format!(
                "row {line}: LastModifiedDate {:?} is not an RFC 3339 time",
                String::from_utf8_lossy(field(cols.modified)?)
            )));
        }
        rows.push(&key, size, modified);
    }
    Ok(())
}

/// Test helper and generator: a gzip CSV data file of `rows` (key, size,
/// time), with the columns `Bucket, Key, Size, LastModifiedDate, ETag`.
pub fn write_gz(bucket: &str, rows: &[(String, u64, String)]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    {
        let mut w = csv::WriterBuilder::new()
            .quote_style(csv::QuoteStyle::Always)
            .from_writer(&mut gz);
        for (k, size, t) in rows {
            let enc: String =
                percent_encoding::utf8_percent_encode(k, super::KEY_ENCODE).to_string();
            w.write_record([bucket, &enc, &size.to_string(), t, "etag"])
                .expect("writing to memory");
        }
        w.flush().expect("writing to memory");
    }
    gz.flush().expect("writing to memory");
    gz.finish().expect("writing to memory")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3_inventory::index::Part;

    fn schema(s: &str) -> Vec<String> {
        s.split(',').map(|c| c.trim().to_string()).collect()
    }

    #[test]
    fn reads_gzip_csv_with_encoded_keys_under_the_root() {
        let data = write_gz(
            "reg",
            &[
                (
                    "root/docker/registry/v2/repositories/a b/x".into(),
                    3,
                    "2024-05-01T12:00:00.000Z".into(),
                ),
                (
                    "root/docker/registry/v2/blobs/sha256/ab/ab/data".into(),
                    7,
                    "2024-05-01T12:00:01Z".into(),
                ),
                (
                    "other/docker/registry/v2/blobs/x".into(),
                    1,
                    "2024-05-01T12:00:00Z".into(),
                ),
            ],
        );
        let raw = String::from_utf8_lossy(&{
            let mut s = Vec::new();
            flate2::read::GzDecoder::new(&data[..])
                .read_to_end(&mut s)
                .unwrap();
            s
        })
        .to_string();
        assert!(raw.contains("a%20b") || raw.contains("a+b"), "{raw}");
        let cols =
            Columns::find(&schema("Bucket, Key, Size, LastModifiedDate, ETag"), "m").unwrap();
        let mut part = Part::default();
        let mut rows = Rows::new("root/docker/registry/v2/", &mut part);
        read(&data[..], cols, &mut rows, "a.csv.gz").unwrap();
        let ix = part.finish();
        let all: Vec<crate::storage::Entry> = ix.entries("").collect();
        assert_eq!(ix.len(), 2);
        assert_eq!(all[0].key, "blobs/sha256/ab/ab/data");
        assert_eq!(all[1].key, "repositories/a b/x");
        assert_eq!(all[0].size.unwrap(), 7);
        assert_eq!(decode_key(b"a+b%2Bc%2Fd").unwrap(), "a b+c/d");
    }

    #[test]
    fn versioned_rows_and_errors() {
        let cols = Columns::find(
            &schema("Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate"),
            "m",
        )
        .unwrap();
        let text = "\"b\",\"r/k1\",\"v1\",\"true\",\"false\",\"4\",\"2024-05-01T12:00:00.000Z\"\n\
                    \"b\",\"r/k1\",\"v0\",\"false\",\"false\",\"9\",\"2024-04-01T12:00:00.000Z\"\n\
                    \"b\",\"r/k2\",\"v2\",\"true\",\"true\",\"\",\"2024-05-01T12:00:00.000Z\"\n";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, text.as_bytes()).unwrap();
        let data = gz.finish().unwrap();
        let mut part = Part::default();
        read(&data[..], cols, &mut Rows::new("r/", &mut part), "v.csv.gz").unwrap();
        let ix = part.finish();
        let all: Vec<crate::storage::Entry> = ix.entries("").collect();
        assert_eq!(ix.len(), 1);
        assert_eq!(all[0].size.unwrap(), 4);
        let e = Columns::find(&schema("Bucket, Size, LastModifiedDate"), "m.json").unwrap_err();
        assert!(e.to_string().starts_with("m.json: "), "{e}");
        assert!(e.to_string().contains("no key column"), "{e}");
        let mut part = Part::default();
        let e = read(
            &b"not gzip at all"[..],
            cols,
            &mut Rows::new("r/", &mut part),
            "data/x.csv.gz",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("data/x.csv.gz: row 1: "), "{e}");
    }
}
