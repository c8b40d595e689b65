//! JSON output for people and machines alike: objects are indented as by
//! `serde_json`'s pretty printer, but each element of an array is written on
//! one line (`{"digest": "sha256:…", "size": 123}`), so that a report of
//! 300,000 garbage blobs is 300,000 greppable lines, not 1.2 million, and is
//! written in a fraction of the time.

use serde::Serialize;
use std::io::{self, Write};

/// A [`serde_json::ser::Formatter`]: pretty (two-space indents) outside
/// arrays, one line with `", "` and `": "` separators inside them.
#[derive(Debug, Default)]
pub struct LineFormatter {
    /// Depth of the containers currently open.
    depth: usize,
    /// The depth from which output stays on one line (the first container
    /// opened inside an array), if any.
    inline_from: Option<usize>,
    /// For each open container: whether it is an array.
    arrays: Vec<bool>,
    /// Whether the innermost container got a value (a closing bracket then
    /// goes on its own line).
    has_value: bool,
}

impl LineFormatter {
    /// A formatter for one element of an array on its own: everything on
    /// one line, exactly as [`LineFormatter`] writes each array element
    /// (so that elements can be formatted apart, on several threads, and
    /// joined with `",\n"` and the indent of their depth).
    pub fn one_line() -> Self {
        LineFormatter {
            inline_from: Some(0),
            ..Default::default()
        }
    }

    fn inline(&self) -> bool {
        self.inline_from.is_some_and(|d| self.depth >= d)
    }

    fn indent<W: ?Sized + Write>(&self, w: &mut W, depth: usize) -> io::Result<()> {
        for _ in 0..depth {
            w.write_all(b"  ")?;
        }
        Ok(())
    }

    fn open<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        bracket: &[u8],
        array: bool,
    ) -> io::Result<()> {
        if self.inline_from.is_none() && self.arrays.last() == Some(&true) {
            self.inline_from = Some(self.depth + 1);
        }
        self.depth += 1;
        self.arrays.push(array);
        self.has_value = false;
        w.write_all(bracket)
    }

    fn close<W: ?Sized + Write>(&mut self, w: &mut W, bracket: &[u8]) -> io::Result<()> {
        let inline = self.inline();
        self.depth -= 1;
        self.arrays.pop();
        if self.inline_from.is_some_and(|d| self.depth < d) {
            self.inline_from = None;
        }
        if !inline && self.has_value {
            w.write_all(b"\n")?;
            self.indent(w, self.depth)?;
        }
        w.write_all(bracket)
    }

    fn item<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if self.inline() {
            if !first {
                w.write_all(b", ")?;
            }
            return Ok(());
        }
        w.write_all(if first { b"\n" } else { b",\n" })?;
        self.indent(w, self.depth)
    }
}

impl serde_json::ser::Formatter for LineFormatter {
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.open(w, b"[", true)
    }

    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.item(w, first)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.open(w, b"{", false)
    }

    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.item(w, first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

/// Writes `v` to `w` as JSON with [`LineFormatter`] (no trailing newline).
pub fn to_writer_lines<W: Write, T: ?Sized + Serialize>(w: W, v: &T) -> serde_json::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(w, LineFormatter::default());
    v.serialize(&mut ser)
}

/// Appends `v` to `out` on one line, as an array element (see
/// [`LineFormatter::one_line`]).
pub fn append_one_line<T: ?Sized + Serialize>(out: &mut Vec<u8>, v: &T) -> serde_json::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(out, LineFormatter::one_line());
    v.serialize(&mut ser)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lines(v: &serde_json::Value) -> String {
        let mut out = Vec::new();
        to_writer_lines(&mut out, v).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn objects_are_indented_and_array_elements_are_one_line_each() {
        let v = json!({
            "summary": {"blobs": 2, "nested": {"x": [1, 2]}},
            "garbage_blobs": [
                {"digest": "sha256:aa", "size": 1},
                {"digest": "sha256:bb", "size": 2, "deep": {"a": [[], {}]}}
            ],
            "empty": [],
            "none": {},
            "scalars": [1, "two", null]
        });
        let text = lines(&v);
        let expected = r#"{
  "empty": [],
  "garbage_blobs": [
    {"digest": "sha256:aa", "size": 1},
    {"deep": {"a": [[], {}]}, "digest": "sha256:bb", "size": 2}
  ],
  "none": {},
  "scalars": [
    1,
    "two",
    null
  ],
  "summary": {
    "blobs": 2,
    "nested": {
      "x": [
        1,
        2
      ]
    }
  }
}"#;
        assert_eq!(text, expected);
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn one_line_elements_are_what_an_array_holds() {
        let elements = [
            json!({"digest": "sha256:aa", "tags": [], "at": {}, "deep": {"a": [[], {"b": [1]}]}}),
            json!([3, {"c": null}]),
            json!("x"),
        ];
        let mut joined = b"[".to_vec();
        for (i, e) in elements.iter().enumerate() {
            joined.extend_from_slice(if i == 0 { b"\n  " } else { b",\n  " });
            append_one_line(&mut joined, e).unwrap();
        }
        joined.extend_from_slice(b"\n]");
        assert_eq!(
            String::from_utf8(joined).unwrap(),
            lines(&serde_json::Value::Array(elements.to_vec()))
        );
    }

    #[test]
    fn a_top_level_array_puts_each_element_on_a_line() {
        let v = json!([{"a": [1, {"b": 2}]}, [3, 4]]);
        let text = lines(&v);
        assert_eq!(text, "[\n  {\"a\": [1, {\"b\": 2}]},\n  [3, 4]\n]");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap(), v);
    }
}
