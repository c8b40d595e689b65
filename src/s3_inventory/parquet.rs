//! Data files in Apache Parquet, read with the arrow-rs `parquet` crate's
//! row API, projected to the columns that matter. The columns are found in
//! each file's own schema (AWS writes `key`, `size`, `last_modified_date`,
//! with `is_latest`, `is_delete_marker` in versioned inventories).
//!
//! The crate panics on some damaged files (out-of-range offsets, lengths
//! or indexes in the footer or the pages) where it should return an error:
//! the calls into it that read the file are [`guarded`], and such a panic
//! is this module's error naming the file. Its message is still printed by
//! the process's panic hook, which is left alone (setting it is global,
//! and other threads may be reading other files).

use super::manifest::column_name;
use super::Rows;
use crate::{Error, Result};
use parquet::file::reader::{ChunkReader, FileReader, SerializedFileReader};
use parquet::record::Field;
use parquet::schema::types::Type;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

thread_local! {
    /// True on a thread while it runs a call [`guarded`] catches panics of.
    static GUARDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs (once) a panic hook that stays silent for the panics
/// [`guarded`] catches and turns into errors naming the file (the error is
/// the message); every other panic is reported by the hook that was there.
pub fn quiet_caught_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !GUARDED.with(|g| g.get()) {
                prev(info);
            }
        }));
    });
}

/// Runs `f`, a call into the `parquet` crate; a panic in it is returned as
/// its message.
///
/// Unwind safety: after a panic, what `f` touched (the reader, the row
/// iterator) is dropped unused, since the error ends the read.
fn guarded<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    let was = GUARDED.with(|g| g.replace(true));
    let r = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(was));
    r.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the parquet crate panicked".into())
            .trim()
            .to_string()
    })
}

/// Reads one Parquet data file (anything the crate reads: a `File`, or
/// `bytes::Bytes` fetched whole) into `rows`; `file` is what errors call it
/// (they add the row).
pub fn read<R: ChunkReader + 'static>(input: R, rows: &mut Rows<'_>, file: &str) -> Result<()> {
    let bad = |message: String| Error::parse(file, message);
    let unreadable = |message: String| bad(format!("not a readable Parquet file: {message}"));
    let reader = guarded(|| SerializedFileReader::new(input))
        .map_err(unreadable)?
        .map_err(|e| unreadable(e.to_string()))?;
    let root = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .root_schema();
    let wanted = [
        "key",
        "size",
        "lastmodifieddate",
        "islatest",
        "isdeletemarker",
    ];
    let fields: Vec<Arc<Type>> = root
        .get_fields()
        .iter()
        .filter(|f| wanted.contains(&column_name(f.name()).as_str()))
        .cloned()
        .collect();
    let names: Vec<String> = fields.iter().map(|f| column_name(f.name())).collect();
    for need in ["key", "size", "lastmodifieddate"] {
        if !names.iter().any(|n| n == need) {
            let all: Vec<&str> = root.get_fields().iter().map(|f| f.name()).collect();
            return Err(bad(format!(
                "the file's schema has no {need} column (it has {all:?})"
            )));
        }
    }
    let projection = guarded(|| {
        Type::group_type_builder(root.name())
            .with_fields(fields)
            .build()
    })
    .map_err(unreadable)?
    .map_err(|e| bad(format!("projecting the schema: {e}")))?;
    let mut iter = guarded(|| reader.get_row_iter(Some(projection)))
        .map_err(unreadable)?
        .map_err(|e| bad(format!("reading rows: {e}")))?;
    // Pages are decoded as rows are asked for: each step is guarded.
    for n in 0usize.. {
        let next = guarded(|| iter.next()).map_err(|message| {
            bad(format!(
                "row {}: not a readable Parquet file: {message}",
                n + 1
            ))
        })?;
        let Some(row) = next else { break };
        let row = row.map_err(|e| bad(format!("row {}: {e}", n + 1)))?;
        let (mut key, mut size, mut modified) = (None, None, None);
        let mut skip = false;
        for (name, field) in row.get_column_iter() {
            match (column_name(name).as_str(), field) {
                ("key", Field::Str(s)) => key = Some(s.clone()),
                ("key", Field::Bytes(b)) => {
                    key = Some(
                        String::from_utf8(b.data().to_vec())
                            .map_err(|_| bad(format!("row {}: key is not UTF-8", n + 1)))?,
                    )
                }
                ("size", Field::Long(v)) => size = u64::try_from(*v).ok(),
                ("size", Field::Int(v)) => size = u64::try_from(*v).ok(),
                ("size", Field::ULong(v)) => size = Some(*v),
                ("lastmodifieddate", Field::TimestampMillis(v)) => modified = Some(*v),
                ("lastmodifieddate", Field::TimestampMicros(v)) => modified = Some(v / 1000),
                ("lastmodifieddate", Field::Long(v)) => modified = Some(*v),
                ("lastmodifieddate", Field::Str(s)) => modified = super::csv::parse_time(s),
                ("islatest", Field::Bool(false)) | ("isdeletemarker", Field::Bool(true)) => {
                    skip = true
                }
                _ => {}
            }
        }
        if skip {
            continue;
        }
        let key = key.ok_or_else(|| bad(format!("row {}: no key", n + 1)))?;
        if !rows.wants(&key) {
            continue;
        }
        let size = size.ok_or_else(|| bad(format!("row {}: {key}: no size", n + 1)))?;
        if modified.is_none() {
            return Err(bad(format!("row {}: {key}: no last_modified_date", n + 1)));
        }
        rows.push(&key, size, modified);
    }
    Ok(())
}

/// Test helper and generator: a Parquet data file (Snappy) of `rows` (key,
/// size, milliseconds), with AWS's column names; without `size` when
/// `with_size` is false (a bad schema).
pub fn write(bucket: &str, rows: &[(String, u64, i64)], with_size: bool) -> Vec<u8> {
    use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    let schema = format!(
        "message s3_inventory {{ required binary bucket (STRING); required binary key (STRING); {} \
         optional int64 last_modified_date (TIMESTAMP(MILLIS,true)); optional binary e_tag (STRING); }}",
        if with_size { "optional int64 size;" } else { "" }
    );
    let schema = Arc::new(parquet::schema::parser::parse_message_type(&schema).expect("schema"));
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(parquet::basic::Compression::SNAPPY)
            .build(),
    );
    let mut out = Vec::new();
    let mut w = SerializedFileWriter::new(&mut out, schema, props).expect("writer");
    for chunk in rows.chunks(1000) {
        let mut rg = w.next_row_group().expect("row group");
        let ones = vec![1i16; chunk.len()];
        let mut col = 0;
        while let Some(mut c) = rg.next_column().expect("column") {
            let name = if with_size {
                ["bucket", "key", "size", "last_modified_date", "e_tag"][col]
            } else {
                ["bucket", "key", "last_modified_date", "e_tag"][col]
            };
            match name {
                "bucket" | "key" | "e_tag" => {
                    let v: Vec<ByteArray> = chunk
                        .iter()
                        .map(|(k, _, _)| match name {
                            "bucket" => ByteArray::from(bucket),
                            "key" => ByteArray::from(k.as_str()),
                            _ => ByteArray::from("etag"),
                        })
                        .collect();
                    let def = (name == "e_tag").then_some(&ones[..]);
                    c.typed::<ByteArrayType>()
                        .write_batch(&v, def, None)
                        .expect("write");
                }
                _ => {
                    let v: Vec<i64> = chunk
                        .iter()
                        .map(|(_, s, t)| if name == "size" { *s as i64 } else { *t })
                        .collect();
                    c.typed::<Int64Type>()
                        .write_batch(&v, Some(&ones), None)
                        .expect("write");
                }
            }
            c.close().expect("close column");
            col += 1;
        }
        rg.close().expect("close row group");
    }
    w.close().expect("close file");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3_inventory::index::Part;

    #[test]
    fn reads_parquet_rows_under_the_root() {
        let rows = vec![
            (
                "r/docker/registry/v2/blobs/sha256/ab/ab/data".to_string(),
                5,
                1_700_000_000_000,
            ),
            (
                "r/docker/registry/v2/repositories/x/_layers/sha256/ab/link".to_string(),
                71,
                1_700_000_001_000,
            ),
            ("elsewhere".to_string(), 1, 0),
        ];
        let data = bytes::Bytes::from(write("b", &rows, true));
        let mut part = Part::default();
        read(
            data,
            &mut Rows::new("r/docker/registry/v2/", &mut part),
            "a.parquet",
        )
        .unwrap();
        let ix = part.finish();
        let all: Vec<crate::storage::Entry> = ix.entries("").collect();
        assert_eq!(ix.len(), 2);
        assert_eq!(all[1].key, "repositories/x/_layers/sha256/ab/link");
        assert_eq!(all[1].size.unwrap(), 71);
        assert_eq!(
            all[0].modified,
            Some(super::super::index::ms_time(1_700_000_000_000))
        );
    }

    #[test]
    fn a_schema_without_size_and_a_corrupt_file_are_errors() {
        let rows = vec![("k".to_string(), 5, 1)];
        let data = bytes::Bytes::from(write("b", &rows, false));
        let mut part = Part::default();
        let e = read(data, &mut Rows::new("", &mut part), "x.parquet")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.parquet: "), "{e}");
        assert!(e.contains("no size column"), "{e}");
        let mut bad = write("b", &rows, true);
        bad.truncate(bad.len() / 2);
        let e = read(
            bytes::Bytes::from(bad),
            &mut Rows::new("", &mut part),
            "y.parquet",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("y.parquet: not a readable Parquet file"),
            "{e}"
        );
    }
}
