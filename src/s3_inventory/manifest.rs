//! An S3 Inventory report's `manifest.json`: when it was made, of which
//! bucket, in which format, and the data files that hold its rows.

use crate::{Error, Result};
use serde::Deserialize;
use std::time::{Duration, SystemTime};

/// The format of the data files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Gzip-compressed CSV, no header line; the columns are `fileSchema`.
    Csv,
    /// Apache Parquet; the columns are the file's own schema.
    Parquet,
}

/// One data file named by the manifest.
#[derive(Debug, Clone, Deserialize)]
pub struct DataFile {
    /// Its key in the destination bucket.
    pub key: String,
    /// Its size in bytes, as the manifest gives it.
    #[serde(default)]
    pub size: Option<u64>,
    /// Its MD5, as hex (not checked: the size and the decoder's own checks
    /// catch a truncated or damaged file).
    #[serde(rename = "MD5checksum", default)]
    pub md5: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    source_bucket: Option<String>,
    #[serde(default)]
    destination_bucket: Option<String>,
    creation_timestamp: serde_json::Value,
    file_format: String,
    #[serde(default)]
    file_schema: Option<String>,
    files: Vec<DataFile>,
}

/// A parsed `manifest.json`.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The bucket the inventory lists.
    pub source_bucket: Option<String>,
    /// The bucket holding the data files (the name, from its ARN).
    pub destination_bucket: Option<String>,
    /// When the inventory was taken: every row describes the bucket as it
    /// was at most this late.
    pub created: SystemTime,
    /// The data files' format.
    pub format: FileFormat,
    /// CSV: the column names, in order. Parquet: the text given, unused (the
    /// files' own schemas are read).
    pub schema: Vec<String>,
    /// The data files.
    pub files: Vec<DataFile>,
}

/// A column name reduced for matching: `LastModifiedDate`,
/// `last_modified_date` and ` lastModifiedDate` are the same column.
pub fn column_name(s: &str) -> String {
    s.trim()
        .chars()
        .filter(|c| *c != '_' && *c != ' ')
        .flat_map(char::to_lowercase)
        .collect()
}

impl Manifest {
    /// Parses `manifest.json`; `name` is what errors call it.
    pub fn parse(bytes: &[u8], name: &str) -> Result<Manifest> {
        let bad = |message: String| Error::parse(name, message);
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        let raw: Raw = serde_path_to_error::deserialize(de)
            .map_err(|e| bad(format!("not an S3 Inventory manifest.json: {e}")))?;
        let created = match &raw.creation_timestamp {
            serde_json::Value::String(s) => s.trim().parse::<u64>().ok(),
            serde_json::Value::Number(n) => n.as_u64(),
            _ => None,
        }
        .ok_or_else(|| {
            bad(format!(
                "creationTimestamp {} is not milliseconds since 1970",
                raw.creation_timestamp
            ))
        })?;
        let created = SystemTime::UNIX_EPOCH + Duration::from_millis(created);
        let format =
            match raw.file_format.to_ascii_uppercase().as_str() {
                "CSV" => FileFormat::Csv,
                "PARQUET" => FileFormat::Parquet,
                "ORC" => return Err(bad(
                    "fileFormat ORC is not supported; configure the inventory as CSV or Parquet"
                        .into(),
                )),
                other => {
                    return Err(bad(format!(
                        "unknown fileFormat {other:?} (CSV or Parquet)"
                    )))
                }
            };
        let schema: Vec<String> = match (&raw.file_schema, format) {
            (Some(s), FileFormat::Csv) => s.split(',').map(|c| c.trim().to_string()).collect(),
            (None, FileFormat::Csv) => {
                return Err(bad("a CSV inventory without fileSchema".into()))
            }
            _ => Vec::new(),
        };
        if format == FileFormat::Csv {
            let names: Vec<String> = schema.iter().map(|c| column_name(c)).collect();
            for want in ["key", "size", "lastmodifieddate"] {
                if !names.iter().any(|n| n == want) {
                    return Err(bad(format!(
                        "fileSchema {:?} has no {want} column (the inventory must \
                         include Size and LastModifiedDate)",
                        raw.file_schema.as_deref().unwrap_or_default()
                    )));
                }
            }
        }
        if raw.files.is_empty() {
            return Err(bad("the manifest names no data files".into()));
        }
        let bucket_of = |arn: &str| arn.rsplit(":::").next().unwrap_or(arn).to_string();
        Ok(Manifest {
            source_bucket: raw.source_bucket,
            destination_bucket: raw.destination_bucket.as_deref().map(bucket_of),
            created,
            format,
            schema,
            files: raw.files,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_aws_writes() {
        let m = Manifest::parse(
            br#"{"sourceBucket":"reg","destinationBucket":"arn:aws:s3:::inv",
                "version":"2016-11-30","creationTimestamp":"1514944800000",
                "fileFormat":"CSV","fileSchema":"Bucket, Key, Size, LastModifiedDate, ETag",
                "files":[{"key":"inv/reg/cfg/data/a.csv.gz","size":12,"MD5checksum":"00"}]}"#,
            "m",
        )
        .unwrap();
        assert_eq!(m.destination_bucket.as_deref(), Some("inv"));
        assert_eq!(m.format, FileFormat::Csv);
        assert_eq!(m.schema[1], "Key");
        assert_eq!(
            m.created,
            SystemTime::UNIX_EPOCH + Duration::from_millis(1514944800000)
        );
    }

    #[test]
    fn refuses_orc_and_schemas_without_the_needed_columns() {
        let orc = br#"{"creationTimestamp":"1","fileFormat":"ORC","files":[{"key":"a"}]}"#;
        let e = Manifest::parse(orc, "m").unwrap_err().to_string();
        assert!(e.contains("ORC is not supported"), "{e}");
        let bad = br#"{"creationTimestamp":"1","fileFormat":"CSV","fileSchema":"Bucket, Key, ETag","files":[{"key":"a"}]}"#;
        let e = format!("{:#}", Manifest::parse(bad, "m").unwrap_err());
        assert!(e.contains("no size column"), "{e}");
        let e = format!("{:#}", Manifest::parse(b"{", "m.json").unwrap_err());
        assert!(
            e.contains("m.json: not an S3 Inventory manifest.json"),
            "{e}"
        );
    }
}
