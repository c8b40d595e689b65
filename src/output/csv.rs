//! CSV tables (RFC 4180, through the `csv` crate): one header line, then one
//! record per row. A row is any flat `Serialize` struct; every row of a table
//! must have the same fields (no `skip_serializing_if`: an absent value is an
//! `Option` and becomes an empty cell).

use serde::Serialize;
use std::io::Write;

/// Writes `rows` as CSV with a header line taken from the row type's field
/// names. serde knows no field names without a row, so a table with no rows
/// is written as `empty_header` alone (the same names, given by the caller).
pub fn write_rows<T: Serialize>(
    w: &mut dyn Write,
    empty_header: &[&str],
    rows: impl IntoIterator<Item = T>,
) -> Result<(), csv::Error> {
    let mut out = csv::Writer::from_writer(w);
    let mut any = false;
    for r in rows {
        out.serialize(r)?;
        any = true;
    }
    if !any {
        out.write_record(empty_header)?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Row<'a> {
        name: &'a str,
        size: u64,
        note: Option<&'a str>,
    }

    #[test]
    fn rows_are_quoted_and_options_are_empty_cells() {
        let mut out = Vec::new();
        write_rows(
            &mut out,
            &["name", "size", "note"],
            [
                Row {
                    name: "a,b",
                    size: 1,
                    note: None,
                },
                Row {
                    name: "c\"d",
                    size: 2,
                    note: Some("x\ny"),
                },
            ],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "name,size,note\n\"a,b\",1,\n\"c\"\"d\",2,\"x\ny\"\n"
        );
    }

    #[test]
    fn an_empty_table_is_its_header() {
        let mut out = Vec::new();
        write_rows::<Row>(&mut out, &["name", "size", "note"], []).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "name,size,note\n");
    }
}
