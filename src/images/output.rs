//! `images` output: a table for people (human sizes, relative ages,
//! optionally a tree of index children and referrers under their parent),
//! CSV (one line per row, tags joined by spaces) and the JSON document.

use super::{rfc3339, Flag, Images, Row};
use crate::report::human_bytes;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Write;
use std::time::SystemTime;

/// "3 days ago", "5 hours ago", "just now"; "-" for unknown.
pub fn ago(t: Option<SystemTime>, now: SystemTime) -> String {
    let Some(t) = t else { return "-".into() };
    let Ok(d) = now.duration_since(t) else {
        return "in the future".into();
    };
    let s = d.as_secs();
    let (n, unit) = match s {
        0..=59 => return "just now".into(),
        60..=3599 => (s / 60, "minute"),
        3600..=86_399 => (s / 3600, "hour"),
        86_400..=2_678_399 => (s / 86_400, "day"),
        2_678_400..=31_535_999 => (s / 2_592_000, "month"),
        _ => (s / 31_536_000, "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

fn kind(r: &Row) -> &'static str {
    match r.kind {
        super::RowKind::Image => "image",
        super::RowKind::Index => "index",
        super::RowKind::Artifact => "artifact",
        super::RowKind::Referrer => "referrer",
        super::RowKind::Unknown => "unknown",
    }
}

fn short(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    &hex[..hex.len().min(12)]
}

/// The rows in display order: with `tree`, an index's children and a
/// subject's referrers (when shown) follow their parent, with their depth.
fn ordered(rows: &[Row], tree: bool) -> Vec<(usize, &Row)> {
    if !tree {
        return rows.iter().map(|r| (0, r)).collect();
    }
    let at: HashMap<(&str, &str), usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| ((r.repository.as_str(), r.digest.as_str()), i))
        .collect();
    let mut under: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut has_parent = HashSet::new();
    for (i, r) in rows.iter().enumerate() {
        for c in &r.children {
            if let Some(&ci) = at.get(&(r.repository.as_str(), c.as_str())) {
                if ci != i && has_parent.insert(ci) {
                    under.entry(i).or_default().push(ci);
                }
            }
        }
    }
    for (i, r) in rows.iter().enumerate() {
        if let Some(s) = &r.subject {
            if let Some(&si) = at.get(&(r.repository.as_str(), s.as_str())) {
                if si != i && has_parent.insert(i) {
                    under.entry(si).or_default().push(i);
                }
            }
        }
    }
    let mut out = Vec::with_capacity(rows.len());
    let mut placed = HashSet::new();
    fn place<'a>(
        i: usize,
        depth: usize,
        rows: &'a [Row],
        under: &HashMap<usize, Vec<usize>>,
        placed: &mut HashSet<usize>,
        out: &mut Vec<(usize, &'a Row)>,
    ) {
        if !placed.insert(i) {
            return;
        }
        out.push((depth, &rows[i]));
        for &c in under.get(&i).map(Vec::as_slice).unwrap_or_default() {
            place(c, depth + 1, rows, under, placed, out);
        }
    }
    for i in 0..rows.len() {
        if !has_parent.contains(&i) {
            place(i, 0, rows, &under, &mut placed, &mut out);
        }
    }
    // Rows only reachable through a cycle of parents.
    for i in 0..rows.len() {
        place(i, 0, rows, &under, &mut placed, &mut out);
    }
    out
}

/// The table for people.
pub fn table(images: &Images, tree: bool) -> String {
    let now = images.generated_at;
    let header = [
        "REPOSITORY",
        "TAGS",
        "DIGEST",
        "KIND",
        "PLATFORMS",
        "SIZE",
        "RECLAIMABLE",
        "PUSHED",
        "PULLED",
        "STATUS",
    ];
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    let rows = images.rows();
    for (depth, r) in ordered(&rows, tree) {
        let indent = "  ".repeat(depth);
        let prefix = if depth > 0 { "└ " } else { "" };
        // A follower shows its role, with the subject's hex shortened.
        let mut tags = r
            .tag_roles
            .iter()
            .map(|(t, role)| match role.subject() {
                Some(_) if t.starts_with("sha256-") && t.len() >= 71 => {
                    format!("{}…{}[{}]", &t[..19], &t[71..], role.name())
                }
                Some(_) => format!("{t}[{}]", role.name()),
                None => t.clone(),
            })
            .collect::<Vec<_>>()
            .join(",");
        if tags.is_empty() {
            tags = "<none>".into();
        }
        if tags.chars().count() > 40 {
            tags = format!("{}…", tags.chars().take(39).collect::<String>());
        }
        let mut platforms = r.platforms.join(",");
        if platforms.chars().count() > 30 {
            platforms = format!("{}…", platforms.chars().take(29).collect::<String>());
        }
        lines.push(vec![
            format!("{indent}{prefix}{}", r.repository),
            tags,
            short(&r.digest).to_string(),
            kind(r).to_string(),
            if platforms.is_empty() {
                "-".into()
            } else {
                platforms
            },
            human_bytes(r.size),
            human_bytes(r.reclaimable_bytes),
            ago(r.pushed_at, now),
            ago(r.last_pulled_at, now),
            r.status.as_str().to_string(),
        ]);
    }
    let mut widths = vec![0; header.len()];
    for l in &lines {
        for (w, c) in widths.iter_mut().zip(l) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for l in &lines {
        let mut line = String::new();
        for (i, (c, w)) in l.iter().zip(&widths).enumerate() {
            let pad = w - c.chars().count();
            // Sizes right-aligned.
            if i == 5 || i == 6 {
                let _ = write!(line, "{}{c}  ", " ".repeat(pad));
            } else {
                let _ = write!(line, "{c}{}  ", " ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let problems: Vec<&Row> = rows.iter().filter(|r| !r.problems.is_empty()).collect();
    if !problems.is_empty() {
        out.push_str("\nProblems:\n");
        for r in problems {
            for p in &r.problems {
                let _ = writeln!(out, "  {}@{}: {p}", r.repository, short(&r.digest));
            }
        }
    }
    out.push('\n');
    out.push_str(&summary_text(images));
    out
}

/// The `docker system df`-like summary.
pub fn summary_text(images: &Images) -> String {
    let s = &images.summary;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} manifests in {} repositories ({} tags); {} shown",
        s.images,
        s.repositories,
        s.tags,
        images.entries.len()
    );
    let _ = writeln!(
        out,
        "Stored: {} in {} blobs; needed by manifests: {}; sum of image sizes: {} \
         (deduplication {:.2}x); garbage under --delete-untagged: {}",
        human_bytes(s.stored_bytes),
        s.stored_blobs,
        human_bytes(s.referenced_bytes),
        human_bytes(s.sum_of_image_sizes),
        s.deduplication_ratio,
        human_bytes(s.garbage_bytes)
    );
    if !images.repositories.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<40} {:>6} {:>5} {:>11} {:>11} {:>11} {:>11}",
            "REPOSITORY", "IMAGES", "TAGS", "SIZE", "UNIQUE", "SHARED", "RECLAIMABLE"
        );
        for r in &images.repositories {
            let _ = writeln!(
                out,
                "{:<40} {:>6} {:>5} {:>11} {:>11} {:>11} {:>11}",
                r.name,
                r.images,
                r.tags,
                human_bytes(r.size),
                human_bytes(r.unique_bytes),
                human_bytes(r.shared_bytes),
                human_bytes(r.reclaimable_bytes)
            );
        }
    }
    if let Some(l) = &images.access_logs {
        let _ = writeln!(
            out,
            "\nAccess logs: {} lines, {} pulls ({} attributed, {} of what storage no longer \
             holds, {} dropped by user agent), {} lines not understood",
            l.lines, l.pulls, l.attributed, l.unattributed, l.ignored_user_agent, l.unparsed_lines
        );
        if let Some(f) = &l.first_unparsed {
            let _ = writeln!(out, "  first not understood: {f}");
        }
    }
    out
}

/// The CSV columns, in order.
pub const CSV_HEADER: [&str; 21] = [
    "repository",
    "digest",
    "kind",
    "media_type",
    "artifact_type",
    "tags",
    "platforms",
    "children",
    "subject",
    "size",
    "reclaimable_bytes",
    "pushed_at",
    "created",
    "last_pulled_at",
    "pulled_by_digest_at",
    "status",
    "active",
    "stale",
    "untagged",
    "garbage",
    "problems",
];

/// One line per row, a header line; lists joined by spaces (problems by `; `).
pub fn csv<W: Write>(images: &Images, w: W) -> csv::Result<()> {
    let mut out = csv::Writer::from_writer(w);
    out.write_record(CSV_HEADER)?;
    let t = |t: Option<SystemTime>| t.map(rfc3339).unwrap_or_default();
    for e in &images.entries {
        let r = &images.row(e);
        out.write_record([
            r.repository.clone(),
            r.digest.clone(),
            kind(r).to_string(),
            r.media_type.clone().unwrap_or_default(),
            r.artifact_type.clone().unwrap_or_default(),
            r.tags.join(" "),
            r.platforms.join(" "),
            r.children.join(" "),
            r.subject.clone().unwrap_or_default(),
            r.size.to_string(),
            r.reclaimable_bytes.to_string(),
            t(r.pushed_at),
            r.created.clone().unwrap_or_default(),
            t(r.last_pulled_at),
            t(r.pulled_by_digest_at),
            r.status.as_str().to_string(),
            r.flags.contains(&Flag::Active).to_string(),
            r.flags.contains(&Flag::Stale).to_string(),
            r.flags.contains(&Flag::Untagged).to_string(),
            r.flags.contains(&Flag::Garbage).to_string(),
            r.problems.join("; "),
        ])?;
    }
    out.flush()?;
    Ok(())
}

/// Rows spelled out and formatted per task, and per batch (what is held
/// at once, in memory, before it is written).
const JSON_TASK_ROWS: usize = 256;
const JSON_BATCH_ROWS: usize = 2048;

/// The JSON document of `images --format json`: exactly what serializing
/// [`Images`] with [`crate::json::to_writer_lines`] writes (no trailing
/// newline), but with the rows spelled out and formatted on every thread,
/// a batch at a time, and written in order.
pub fn json<W: Write>(images: &Images, mut w: W) -> std::io::Result<()> {
    use rayon::prelude::*;
    use serde::Serialize;
    let to_io = std::io::Error::other;
    #[derive(Serialize)]
    struct Head<'a> {
        format_version: u32,
        tool_version: &'a str,
        generated_at: String,
        storage: &'a str,
    }
    #[derive(Serialize)]
    struct Tail<'a> {
        repositories: &'a [super::RepoRow],
        summary: &'a super::Summary,
        access_logs: &'a Option<super::pulls::LogSummary>,
    }
    // `{` … the head's fields … `\n}`: written without its `\n}`.
    let mut head = Vec::new();
    crate::json::to_writer_lines(
        &mut head,
        &Head {
            format_version: super::FORMAT_VERSION,
            tool_version: env!("CARGO_PKG_VERSION"),
            generated_at: rfc3339(images.generated_at),
            storage: &images.storage,
        },
    )
    .map_err(to_io)?;
    w.write_all(head.strip_suffix(b"\n}").unwrap_or(&head))?;
    w.write_all(b",\n  \"images\": [")?;
    let mut first = true;
    for batch in images.entries.chunks(JSON_BATCH_ROWS) {
        let parts: Vec<Vec<u8>> = batch
            .par_chunks(JSON_TASK_ROWS)
            .map(|rows| {
                let mut out = Vec::with_capacity(rows.len() * 640);
                for e in rows {
                    out.extend_from_slice(b",\n    ");
                    crate::json::append_one_line(&mut out, &images.row_ref(e))?;
                }
                Ok(out)
            })
            .collect::<serde_json::Result<_>>()
            .map_err(to_io)?;
        for part in &parts {
            // The first row has no comma before it.
            let part = if std::mem::take(&mut first) {
                &part[1..]
            } else {
                &part[..]
            };
            w.write_all(part)?;
        }
    }
    w.write_all(if first { b"]" } else { b"\n  ]" })?;
    // `{` … the tail's fields … `\n}`: written after the rows without its `{`.
    let mut tail = Vec::new();
    crate::json::to_writer_lines(
        &mut tail,
        &Tail {
            repositories: &images.repositories,
            summary: &images.summary,
            access_logs: &images.access_logs,
        },
    )
    .map_err(to_io)?;
    w.write_all(b",")?;
    w.write_all(tail.strip_prefix(b"{").unwrap_or(&tail))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The parallel writer and the document's `Serialize` write the same
    /// bytes (on the fixture, and with the rows filtered away).
    #[test]
    fn json_writer_equals_serializing_the_listing() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/registry");
        let storage = crate::storage::fs::FsStorage::open(&root).unwrap();
        let run = crate::ImagesRun {
            max_manifest_size: 4 << 20,
            sizes: true,
            read_configs: true,
            history_times: false,
            images: crate::images::ImagesOptions {
                stale_after: Duration::from_secs(180 * 86_400),
                now: SystemTime::now(),
            },
        };
        let progress = crate::progress::Progress::hidden();
        let (a, times, configs) = crate::analyze_images(&storage, &run, &progress).unwrap();
        let mut listing = crate::images::build(&a, &times, None, &configs, &run.images);
        for _ in 0..2 {
            let mut want = Vec::new();
            crate::json::to_writer_lines(&mut want, &listing).unwrap();
            let mut got = Vec::new();
            json(&listing, &mut got).unwrap();
            assert_eq!(
                String::from_utf8(got).unwrap(),
                String::from_utf8(want).unwrap()
            );
            listing.entries.clear();
        }
    }

    #[test]
    fn ages_read_naturally() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let at = |s| Some(now - Duration::from_secs(s));
        assert_eq!(ago(None, now), "-");
        assert_eq!(ago(at(5), now), "just now");
        assert_eq!(ago(at(60), now), "1 minute ago");
        assert_eq!(ago(at(7200), now), "2 hours ago");
        assert_eq!(ago(at(3 * 86_400), now), "3 days ago");
        assert_eq!(ago(at(90 * 86_400), now), "3 months ago");
        assert_eq!(ago(at(800 * 86_400), now), "2 years ago");
        assert_eq!(short("sha256:0123456789abcdef"), "0123456789ab");
    }
}
