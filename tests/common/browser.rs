//! Headless Chromium for the HTML pages: the DOM after parsing, console
//! errors, a screenshot at the width of a common laptop (1366 px) kept in
//! `target/test-artifacts/`, and a layout probe — the page copied with a
//! script that measures what a reader would see (horizontal overflow,
//! chart labels drawn over each other, table cells many lines tall).

use super::Output;
use super::{repo_root, require, run};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The window width every page must fit.
pub const WIDTH: u32 = 1366;

/// `target/test-artifacts/` (or under `CARGO_TARGET_DIR`).
pub fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let d = target.join("test-artifacts");
    fs::create_dir_all(&d).unwrap();
    d
}

/// Runs headless Chromium on `page` with `extra` arguments.
pub fn chromium(page: &Path, extra: &[String]) -> Output {
    require(&["chromium"]);
    // Each run has its own profile: runs in parallel do not share one.
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--enable-logging=stderr",
        "--v=0",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(extra)
    .arg(format!("file://{}", page.display()));
    let o = run(&mut cmd, Duration::from_secs(120));
    assert!(
        o.status.success(),
        "chromium failed on {}: {}",
        page.display(),
        o.stderr
    );
    o
}

/// Console messages and uncaught errors in Chromium's log.
pub fn console_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .map(str::to_string)
        .collect()
}

/// What a reader sees at [`WIDTH`] px.
#[derive(Debug, serde::Deserialize)]
pub struct Layout {
    /// The document's width: more than the window scrolls sideways.
    pub scroll_width: f64,
    /// Pairs of chart labels (`<text>` in one `<svg>`) drawn over each
    /// other, as "a | b".
    pub overlapping_labels: Vec<String>,
    /// The tallest table cell, in px, and its text's start.
    pub tallest_cell: (f64, String),
    /// The height of one line of table text, in px.
    pub line_height: f64,
}

/// What headless Chromium made of a page.
pub struct Rendered {
    /// The DOM after parsing (`--dump-dom`).
    pub dom: String,
    /// Console messages and uncaught errors Chromium logged.
    pub console: Vec<String>,
    /// The layout probe's measurements.
    pub layout: Layout,
}

const PROBE: &str = r#"<script>
(function () {
  var out = {scroll_width: document.documentElement.scrollWidth, overlapping_labels: [], tallest_cell: [0, ""], line_height: 0};
  document.querySelectorAll("svg").forEach(function (svg) {
    var t = Array.prototype.slice.call(svg.querySelectorAll("text")).filter(function (e) { return e.textContent.trim() !== ""; });
    var r = t.map(function (e) { return e.getBoundingClientRect(); });
    for (var i = 0; i < t.length; i++) for (var j = i + 1; j < t.length; j++) {
      var w = Math.min(r[i].right, r[j].right) - Math.max(r[i].left, r[j].left);
      var h = Math.min(r[i].bottom, r[j].bottom) - Math.max(r[i].top, r[j].top);
      if (w > 1 && h > 1) out.overlapping_labels.push(t[i].textContent + " | " + t[j].textContent);
    }
  });
  document.querySelectorAll("td").forEach(function (td) {
    var h = td.getBoundingClientRect().height;
    if (h > out.tallest_cell[0]) out.tallest_cell = [h, td.textContent.slice(0, 60)];
  });
  var probe = document.createElement("td");
  var table = document.createElement("table");
  var row = table.insertRow();
  probe.textContent = "x";
  row.appendChild(probe);
  document.body.appendChild(table);
  out.line_height = probe.getBoundingClientRect().height;
  table.remove();
  document.body.setAttribute("data-layout", JSON.stringify(out));
})();
</script>"#;

/// Renders `page`: DOM and console; a `WIDTH`×2000 screenshot kept as
/// `target/test-artifacts/<name>.png`; and the layout measured on a copy
/// of the page with the probe added (the page itself has no script).
pub fn render(page: &Path, name: &str) -> Rendered {
    let o = chromium(page, &["--dump-dom".to_string()]);
    let window = format!("--window-size={WIDTH},2000");
    let png = artifacts().join(format!("{name}.png"));
    let _ = fs::remove_file(&png);
    let shot = chromium(
        page,
        &[format!("--screenshot={}", png.display()), window.clone()],
    );
    let bytes = fs::read(&png).unwrap_or_else(|e| panic!("no screenshot {}: {e}", png.display()));
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
        "{} is not a real screenshot ({} bytes)",
        png.display(),
        bytes.len()
    );
    let html = fs::read_to_string(page).unwrap();
    let probed = page.with_extension("probe.html");
    fs::write(&probed, html.replace("</body>", &format!("{PROBE}</body>"))).unwrap();
    let p = chromium(&probed, &["--dump-dom".to_string(), window]);
    let _ = fs::remove_file(&probed);
    let attr = p
        .stdout
        .split("data-layout=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("the layout probe did not run on {}", page.display()));
    let json = attr
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    let layout: Layout = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let mut console = console_lines(&o.stderr);
    console.extend(console_lines(&shot.stderr));
    Rendered {
        dom: o.stdout,
        console,
        layout,
    }
}

/// Asserts that the page reads at [`WIDTH`] px: no sideways scrolling, no
/// chart label over another, no table cell taller than `max_lines` lines.
pub fn assert_readable(r: &Rendered, name: &str, max_lines: f64) {
    let l = &r.layout;
    assert!(
        l.scroll_width <= f64::from(WIDTH),
        "{name}: {} px wide at {WIDTH} px",
        l.scroll_width
    );
    assert!(
        l.overlapping_labels.is_empty(),
        "{name}: labels drawn over each other: {:?}",
        l.overlapping_labels
    );
    assert!(l.line_height > 0.0, "{name}: no line height measured");
    assert!(
        l.tallest_cell.0 <= max_lines * l.line_height,
        "{name}: a table cell is {:.0} px tall ({:.1} lines): {:?}",
        l.tallest_cell.0,
        l.tallest_cell.0 / l.line_height,
        l.tallest_cell.1
    );
}
