//! The report formats people look at and machines scrape: `--format html`
//! rendered by headless Chromium (DOM checked, console clean, screenshot kept
//! under `target/test-artifacts/`), `--metrics FILE` checked by `promtool
//! check metrics`, and `--format csv` parsed and compared row by row with
//! the JSON. On the committed fixture, on a damaged copy of it, and on the
//! scenario pushed to the real reference registry.

mod common;

use common::browser::{assert_readable, chromium, console_lines, render};
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const V2: &str = "docker/registry/v2";

static FS: Shared = Shared::new();

fn fixture() -> PathBuf {
    repo_root().join("fixtures/registry")
}

/// A copy of the fixture with one problem of each severity class: a tag link
/// that holds no digest (an error: reachability uncertain; a broken tag), a
/// `_layers` entry whose name is not a digest, and an upload without
/// `startedat` (warnings), and the same odd `_layers` entry in a
/// repository with a long, deep name (a path a page must not stretch a
/// table cell over many lines for). The repository names carry
/// HTML-special characters nowhere, but the messages carry quotes.
fn damaged_fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture(), dir.path());
    let repos = dir.path().join(V2).join("repositories");
    fs::write(
        repos.join("team-a/svc/api/_manifests/tags/1.0/current/link"),
        "sha256:zz",
    )
    .unwrap();
    let odd = repos.join("a/_layers/sha256/nothex");
    fs::create_dir_all(&odd).unwrap();
    fs::write(odd.join("link"), "x").unwrap();
    let deep = repos.join(
        "platform/observability/collectors/opentelemetry-contrib-exporter-prometheus-remote-write\
         /_layers/sha256/not-a-digest-but-a-rather-long-directory-name-0123456789abcdef",
    );
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("link"), "x").unwrap();
    let up = repos.join("a/_uploads/u-1");
    fs::create_dir_all(&up).unwrap();
    fs::write(up.join("data"), "hi").unwrap();
    dir
}

/// Runs regsweep; returns the output after checking the exit status is one
/// of `codes`.
fn regsweep_run(args: &[&str], env: &[(String, String)], codes: &[i32]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_regsweep"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = run(&mut cmd, Duration::from_secs(180));
    assert!(
        o.status.code().is_some_and(|c| codes.contains(&c)),
        "regsweep {args:?} exited with {} (wanted {codes:?})\n{}",
        o.status,
        o.stderr
    );
    o
}

fn json_of(args: &[&str], env: &[(String, String)], codes: &[i32]) -> Value {
    let o = regsweep_run(args, env, codes);
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON: {e}"))
}

/// Writes `regsweep COMMAND STORAGE --format html -o DIR/COMMAND.html -q`,
/// checking that it exits with one of `codes`; returns the page's path and
/// the exit status.
fn write_page(
    command: &str,
    storage: &str,
    env: &[(String, String)],
    codes: &[i32],
    dir: &Path,
) -> (PathBuf, Option<i32>) {
    let page = dir.join(format!("{command}.html"));
    let args = [
        command,
        storage,
        "--format",
        "html",
        "-o",
        page.to_str().unwrap(),
        "-q",
    ];
    let code = regsweep_run(&args, env, codes).status.code();
    (page, code)
}

/// Checks that the page needs nothing from outside and no JavaScript.
fn assert_self_contained(html: &str) {
    let lower = html.to_lowercase();
    for bad in [
        "<script", "<link", "<img", "<iframe", "@import", "url(", " src=",
    ] {
        assert!(!lower.contains(bad), "the page has {bad:?}");
    }
    let outside: Vec<&str> = lower
        .match_indices("http")
        .map(|(i, _)| &lower[i..(i + 40).min(lower.len())])
        .filter(|s| !s.starts_with("http://www.w3.org/2000/svg"))
        .collect();
    assert!(outside.is_empty(), "the page refers outside: {outside:?}");
}

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

/// `<`, `>`, `&` and `"` as the DOM serializes text.
fn escaped(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[test]
fn chromium_console_check_catches_a_script_error() {
    // The console check of the tests below could fail: a page with a
    // failing script is caught.
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("bad.html");
    fs::write(
        &page,
        "<!DOCTYPE html><html><body><p>x</p><script>notDefinedAnywhere();</script></body></html>",
    )
    .unwrap();
    let o = chromium(&page, &["--dump-dom".to_string()]);
    let console = console_lines(&o.stderr);
    assert!(
        console.iter().any(|l| l.contains("notDefinedAnywhere")),
        "no console error found in: {}",
        o.stderr
    );
}

/// Renders `report --format html` of `storage` and checks it against the
/// JSON report of the same storage.
fn check_report_html(storage: &str, env: &[(String, String)], name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (page, code) = write_page("report", storage, env, &[0, 1], dir.path());
    let json = json_of(&["report", storage, "--format", "json", "-q"], env, &[0, 1]);
    let html = fs::read_to_string(&page).unwrap();
    assert_self_contained(&html);
    let r = render(&page, name);
    assert!(r.console.is_empty(), "console: {:?}", r.console);
    assert_readable(&r, name, 4.0);
    let dom = &r.dom;
    // The charts: treemap, reclaimable bars, ages histogram.
    assert!(count(dom, "<svg") >= 2, "no charts in the DOM");
    assert!(dom.contains("Stored bytes by repository"));
    let repos = json["repositories"].as_array().unwrap();
    let top = s(&repos[0]["name"]);
    let top_bytes = repos[0]["reclaimable_bytes"].as_u64().unwrap();
    let top_human = regsweep::report::human_bytes(top_bytes);
    if top_bytes > 0 {
        assert!(
            dom.contains(&format!("<title>{}: {top_human}</title>", escaped(&top))),
            "the reclaimable bar of the top repository {top} ({top_human}) is missing"
        );
    } else {
        assert!(dom.contains("Nothing to reclaim."));
    }
    for r in repos.iter().take(50) {
        let n = escaped(&s(&r["name"]));
        assert!(
            dom.contains(&format!("<td class=\"mono\">{n}</td>")),
            "repository {n} missing from the table"
        );
    }
    let sum = &json["summary"];
    let reclaim = regsweep::report::human_bytes(sum["reclaimable_bytes"].as_u64().unwrap());
    let stored = regsweep::report::human_bytes(sum["blob_bytes"].as_u64().unwrap());
    assert!(dom.contains(&format!("<div class=\"value\">{reclaim}</div>")));
    assert!(dom.contains(&format!("<div class=\"value\">{stored}</div>")));
    // One row per problem, in the JSON's order, with its remedy.
    let problems = json["problems"].as_array().unwrap();
    assert_eq!(
        count(dom, "<tr class=\"problem "),
        problems.len().min(1000),
        "problem rows"
    );
    for p in problems.iter().take(1000) {
        assert!(
            dom.contains(&escaped(&s(&p["path"]))),
            "problem {p} not shown"
        );
    }
    // The verdict agrees with the exit status.
    let blocked = sum["sweep_blocked"].as_bool().unwrap();
    assert_eq!(dom.contains("A sweep would refuse to run"), blocked);
    let troubled = problems.iter().any(|p| p["severity"] != "info");
    assert_eq!(code, Some(i32::from(troubled)));
    if troubled {
        assert!(dom.contains("class=\"banner warn\"") || dom.contains("class=\"banner err\""));
    } else {
        assert!(dom.contains("class=\"banner ok\""));
    }
}

#[test]
fn report_html_of_the_fixture_renders_in_chromium() {
    check_report_html(fixture().to_str().unwrap(), &[], "report-fixture");
}

#[test]
fn report_html_of_a_damaged_tree_lists_its_problems() {
    let d = damaged_fixture();
    check_report_html(d.path().to_str().unwrap(), &[], "report-damaged");
}

#[test]
fn report_html_of_the_pushed_scenario_renders_in_chromium() {
    let e = shared(&FS, Backend::Fs);
    check_report_html(&e.storage_arg(), &e.regsweep_env(), "report-scenario");
}

#[test]
fn verify_html_shows_broken_tags_first() {
    let d = damaged_fixture();
    let root = d.path().to_str().unwrap();
    let out = tempfile::tempdir().unwrap();
    let (page, _) = write_page("verify", root, &[], &[1], out.path());
    let json = json_of(&["verify", root, "--format", "json", "-q"], &[], &[1]);
    assert_self_contained(&fs::read_to_string(&page).unwrap());
    let r = render(&page, "verify-damaged");
    assert!(r.console.is_empty(), "console: {:?}", r.console);
    assert_readable(&r, "verify-damaged", 4.0);
    let dom = &r.dom;
    assert!(dom.contains("NOT WHOLE"));
    let broken = json["broken_tags"].as_array().unwrap();
    assert!(!broken.is_empty());
    assert_eq!(count(dom, "<tr class=\"broken-tag\">"), broken.len());
    for b in broken {
        let row = format!(
            "<tr class=\"broken-tag\"><td class=\"mono\">{}</td><td class=\"mono\">{}</td>",
            escaped(&s(&b["repository"])),
            escaped(&s(&b["tag"]))
        );
        assert!(dom.contains(&row), "broken tag {b} not shown");
    }
    let findings = json["findings"].as_array().unwrap();
    assert_eq!(count(dom, "<tr class=\"finding "), findings.len());
    // Broken tags come before the findings, and errors before warnings.
    let bt = dom.find("id=\"broken-tags\"").unwrap();
    let fi = dom.find("id=\"findings\"").unwrap();
    assert!(bt < fi);
    let first_warning = dom.find("<tr class=\"finding warning\"").unwrap();
    let first_error = dom.find("<tr class=\"finding error\"").unwrap();
    assert!(first_error < first_warning);
    assert!(count(dom, "<svg") >= 1, "no findings chart");
}

// ---------------------------------------------------------- metrics ----

#[test]
fn promtool_catches_a_bad_metrics_file() {
    // The check below could fail: promtool rejects a counter without _total.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.prom");
    fs::write(&f, "# HELP x_bytes x\n# TYPE x_bytes counter\nx_bytes 1\n").unwrap();
    let o = run(
        Command::new("sh")
            .arg("-c")
            .arg("promtool check metrics < \"$1\"")
            .arg("sh")
            .arg(&f),
        Duration::from_secs(60),
    );
    assert!(!o.status.success() || !o.stdout.trim().is_empty() || !o.stderr.trim().is_empty());
}

fn check_report_metrics(storage: &str, env: &[(String, String)]) {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("regsweep-report.prom");
    let json = json_of(
        &[
            "report",
            storage,
            "--format",
            "json",
            "-q",
            "--metrics",
            m.to_str().unwrap(),
        ],
        env,
        &[0, 1],
    );
    promtool_check(&m);
    let got = samples(&m);
    let sum = &json["summary"];
    assert_eq!(
        got["regsweep_stored_bytes"],
        sum["blob_bytes"].as_f64().unwrap()
    );
    assert_eq!(
        got["regsweep_garbage_blobs"],
        sum["garbage_blobs"].as_f64().unwrap()
    );
    assert_eq!(
        got["regsweep_total_reclaimable_bytes"],
        sum["reclaimable_bytes"].as_f64().unwrap()
    );
    for r in json["repositories"].as_array().unwrap() {
        let key = format!(
            "regsweep_reclaimable_bytes{{repository=\"{}\"}}",
            s(&r["name"])
        );
        assert_eq!(
            got.get(&key).copied(),
            r["reclaimable_bytes"].as_f64(),
            "{key}"
        );
    }
    let problems: f64 = got
        .iter()
        .filter(|(k, _)| k.starts_with("regsweep_problems{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(problems, sum["problems"].as_f64().unwrap());
    assert!(got.contains_key("regsweep_last_run_timestamp_seconds{command=\"report\"}"));
    assert!(got.contains_key("regsweep_run_duration_seconds{command=\"report\"}"));
    // Written atomically: nothing but the file is left in the directory.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn report_metrics_pass_promtool_on_the_fixture_damage_and_scenario() {
    check_report_metrics(fixture().to_str().unwrap(), &[]);
    let d = damaged_fixture();
    check_report_metrics(d.path().to_str().unwrap(), &[]);
    let e = shared(&FS, Backend::Fs);
    check_report_metrics(&e.storage_arg(), &e.regsweep_env());
}

#[test]
fn verify_metrics_pass_promtool() {
    let d = damaged_fixture();
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("verify.prom");
    let json = json_of(
        &[
            "verify",
            d.path().to_str().unwrap(),
            "--format",
            "json",
            "-q",
            "--metrics",
            m.to_str().unwrap(),
        ],
        &[],
        &[1],
    );
    promtool_check(&m);
    let got = samples(&m);
    assert_eq!(got["regsweep_verify_whole"], 0.0);
    assert_eq!(
        got["regsweep_verify_broken_tags"],
        json["summary"]["broken_tags"].as_f64().unwrap()
    );
    let findings: f64 = got
        .iter()
        .filter(|(k, _)| k.starts_with("regsweep_verify_findings{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(
        findings as usize,
        json["findings"].as_array().unwrap().len()
    );
    // With --rehash the pass's duration is there too.
    let m2 = dir.path().join("verify-rehash.prom");
    regsweep_run(
        &[
            "verify",
            fixture().to_str().unwrap(),
            "--rehash",
            "-q",
            "--metrics",
            m2.to_str().unwrap(),
        ],
        &[],
        &[0],
    );
    promtool_check(&m2);
    let got = samples(&m2);
    assert_eq!(got["regsweep_verify_whole"], 1.0);
    assert!(got.contains_key("regsweep_verify_rehash_duration_seconds"));
}

#[test]
fn sweep_metrics_pass_promtool_for_dry_run_refusal_and_apply() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.jsonl");
    let journal = journal.to_str().unwrap();
    // Refused: the damaged tree has a problem that blocks a sweep.
    let d = damaged_fixture();
    let m = dir.path().join("refused.prom");
    regsweep_run(
        &[
            "sweep",
            d.path().to_str().unwrap(),
            "--apply",
            "--settle",
            "0s",
            "--grace",
            "0s",
            "-q",
            "--journal",
            journal,
            "--metrics",
            m.to_str().unwrap(),
        ],
        &[],
        &[3],
    );
    promtool_check(&m);
    let got = samples(&m);
    assert_eq!(got["regsweep_sweep_refused"], 1.0);
    assert_eq!(got["regsweep_removed_bytes"], 0.0);
    // Dry run, then apply, on a copy of the fixture.
    let tree = tempfile::tempdir().unwrap();
    copy_tree(&fixture(), tree.path());
    let root = tree.path().to_str().unwrap();
    let m = dir.path().join("dry.prom");
    regsweep_run(
        &[
            "sweep",
            root,
            "--grace",
            "0s",
            "-q",
            "--metrics",
            m.to_str().unwrap(),
        ],
        &[],
        &[0],
    );
    promtool_check(&m);
    let dry = samples(&m);
    assert_eq!(dry["regsweep_sweep_applied"], 0.0);
    let planned = dry["regsweep_sweep_planned_bytes"];
    assert!(planned > 0.0);
    let m = dir.path().join("apply.prom");
    regsweep_run(
        &[
            "sweep",
            root,
            "--apply",
            "--settle",
            "0s",
            "--grace",
            "0s",
            "-q",
            "--journal",
            journal,
            "--metrics",
            m.to_str().unwrap(),
        ],
        &[],
        &[0],
    );
    promtool_check(&m);
    let got = samples(&m);
    assert_eq!(got["regsweep_sweep_applied"], 1.0);
    assert_eq!(got["regsweep_removed_bytes"], planned);
    assert!(got["regsweep_removed_objects"] > 0.0);
    assert_eq!(got["regsweep_sweep_failed_removals"], 0.0);
    assert!(got.contains_key("regsweep_last_run_timestamp_seconds{command=\"sweep\"}"));
}

// -------------------------------------------------------------- CSV ----

/// The CSV's records as JSON objects: each cell is compared with the JSON
/// value as text (numbers and booleans as written, null as an empty cell).
fn csv_rows(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            assert_eq!(rec.len(), header.len());
            header
                .iter()
                .cloned()
                .zip(rec.iter().map(str::to_string))
                .collect()
        })
        .collect()
}

fn json_rows(v: &Value, columns: &[&str]) -> Vec<BTreeMap<String, String>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|o| {
            columns
                .iter()
                .map(|c| {
                    let cell = match &o[*c] {
                        Value::Null => String::new(),
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (c.to_string(), cell)
                })
                .collect()
        })
        .collect()
}

fn check_csv_table(args: &[&str], table: &str, json: &Value, key: &str, codes: &[i32]) {
    let mut a: Vec<&str> = args.to_vec();
    a.extend(["--format", "csv", "--table", table, "-q"]);
    let text = regsweep_run(&a, &[], codes).stdout;
    let rows = csv_rows(&text);
    let header: Vec<String> = csv::Reader::from_reader(text.as_bytes())
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    assert!(!header.is_empty(), "{table}: no header");
    let cols: Vec<&str> = header.iter().map(String::as_str).collect();
    // Every JSON field is a column, except the remedy that CSV adds.
    if let Some(first) = json[key].as_array().and_then(|a| a.first()) {
        for k in first.as_object().unwrap().keys() {
            assert!(cols.contains(&k.as_str()), "{table}: no column {k}");
        }
    }
    // An age in seconds moves on between the two runs: compared within a
    // minute, apart from the exact cells.
    let cols: Vec<&str> = cols
        .into_iter()
        .filter(|c| *c != "remedy" && *c != "age_seconds")
        .collect();
    let ages = |rows: &[BTreeMap<String, String>]| -> Vec<Option<i64>> {
        rows.iter()
            .map(|r| r.get("age_seconds").and_then(|a| a.parse().ok()))
            .collect()
    };
    let csv_ages = ages(&rows);
    let csv_cells: Vec<BTreeMap<String, String>> = rows
        .into_iter()
        .map(|mut r| {
            r.remove("remedy");
            r.remove("age_seconds");
            r
        })
        .collect();
    assert_eq!(
        csv_cells,
        json_rows(&json[key], &cols),
        "{table} differs from JSON {key}"
    );
    let json_ages: Vec<Option<i64>> = json[key]
        .as_array()
        .map(|a| a.iter().map(|r| r["age_seconds"].as_i64()).collect())
        .unwrap_or_default();
    if header.iter().any(|h| h == "age_seconds") {
        assert_eq!(csv_ages.len(), json_ages.len());
        for (c, j) in csv_ages.iter().zip(&json_ages) {
            match (c, j) {
                (Some(c), Some(j)) => assert!((c - j).abs() <= 60, "{table}: age {c} vs {j}"),
                (c, j) => assert_eq!(c.is_some(), j.is_some(), "{table}: age {c:?} vs {j:?}"),
            }
        }
    }
}

/// The rows the repositories table adds for reclaimable bytes that no
/// repository holds, as the JSON's summary gives them.
fn unowned_rows(summary: &Value) -> Vec<Value> {
    [
        ("(linked into several repositories)", "garbage_shared_bytes"),
        ("(unlinked blobs)", "garbage_unlinked_bytes"),
    ]
    .into_iter()
    .filter(|(_, k)| summary[k].as_u64().unwrap() > 0)
    .map(|(name, k)| {
        serde_json::json!({
            "name": name, "visible": false, "tags": 0, "manifests": 0,
            "manifests_tagged": 0, "manifests_untagged": 0, "manifests_garbage": 0,
            "layer_links": 0, "unique_bytes": 0, "shared_bytes": 0,
            "reclaimable_bytes": summary[k], "uploads": 0,
        })
    })
    .collect()
}

/// Every per-repository table adds up to the headline: the JSON's rows
/// with the garbage linked into several repositories and the unlinked
/// blobs, the CSV's rows, the text's top table (with the rest and a total),
/// and the page's table and bars, on a tree that has both kinds of garbage
/// no single repository holds.
#[test]
fn per_repository_rows_add_up_to_the_headline() {
    let d = tempfile::tempdir().unwrap();
    copy_tree(&fixture(), d.path());
    let root = d.path().to_str().unwrap();
    let before = json_of(&["report", root, "--format", "json", "-q"], &[], &[0, 1]);
    // A garbage blob linked into one repository, linked into a second too.
    let repos = d.path().join(V2).join("repositories");
    let garbage: Vec<String> = before["garbage_blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| s(&b["digest"]))
        .collect();
    let linked = garbage
        .iter()
        .find(|g| {
            let hex = g.trim_start_matches("sha256:");
            repos
                .join(format!("a/b/_layers/sha256/{hex}/link"))
                .exists()
        })
        .expect("a garbage blob linked into a/b")
        .clone();
    let hex = linked.trim_start_matches("sha256:");
    let link = repos.join(format!("a/_layers/sha256/{hex}/link"));
    fs::create_dir_all(link.parent().unwrap()).unwrap();
    fs::write(&link, &linked).unwrap();

    let json = json_of(&["report", root, "--format", "json", "-q"], &[], &[0, 1]);
    let sum = &json["summary"];
    let total = sum["reclaimable_bytes"].as_u64().unwrap();
    let shared = sum["garbage_shared_bytes"].as_u64().unwrap();
    let unlinked = sum["garbage_unlinked_bytes"].as_u64().unwrap();
    assert!(shared > 0 && unlinked > 0, "{sum}");
    assert_eq!(sum["garbage_shared_blobs"], 1);
    let rows: u64 = json["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reclaimable_bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(
        rows + shared + unlinked,
        total,
        "JSON rows + shared + unlinked"
    );

    let csv = regsweep_run(&["report", root, "--format", "csv", "-q"], &[], &[0, 1]).stdout;
    let csv = csv_rows(&csv);
    let csv_sum: u64 = csv
        .iter()
        .map(|r| r["reclaimable_bytes"].parse::<u64>().unwrap())
        .sum();
    assert_eq!(csv_sum, total, "CSV rows");
    assert!(csv.iter().any(|r| r["name"] == "(unlinked blobs)"));
    assert!(csv
        .iter()
        .any(|r| r["name"] == "(linked into several repositories)"));

    // The text: with --top 1 the rest is one row, and the total is the headline's.
    let text = regsweep_run(&["report", root, "--top", "1", "-q"], &[], &[0, 1]).stdout;
    let human = regsweep::report::human_bytes;
    for (bytes, name) in [
        (unlinked, "(unlinked blobs)"),
        (shared, "(linked into several repositories)"),
        (total, "(total)"),
    ] {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(&human(bytes)) && l.ends_with(name)),
            "no {name} row of {} in\n{text}",
            human(bytes)
        );
    }
    assert!(text.contains(" other repositor"), "{text}");

    // The page: the same rows in its table, and a bar for each.
    let (page, _) = write_page("report", root, &[], &[0, 1], d.path());
    let html = fs::read_to_string(&page).unwrap();
    for (bytes, name) in [
        (unlinked, "(unlinked blobs)"),
        (shared, "(linked into several repositories)"),
    ] {
        assert!(
            html.contains(&format!("<td class=\"mono\">{name}</td>")),
            "{name} row"
        );
        assert!(
            html.contains(&format!("<title>{name}: {}</title>", human(bytes))),
            "{name} bar"
        );
    }
}

/// `images`' page, on the fixture and on a damaged copy whose tag link
/// holds no digest (its manifest's row then has a problem): every total,
/// repository tile and problem on the page is the JSON's, and it reads at
/// 1366 px.
#[test]
fn images_page_agrees_with_its_json_on_the_fixture_and_damage() {
    let d = damaged_fixture();
    let broken = d
        .path()
        .join(V2)
        .join("repositories/team-a/svc/api/_manifests/revisions/sha256");
    // A revision whose blob is gone: a manifest with a problem.
    let gone = fs::read_dir(&broken)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .next()
        .unwrap();
    fs::remove_dir_all(
        d.path()
            .join(V2)
            .join(format!("blobs/sha256/{}/{gone}", &gone[..2])),
    )
    .unwrap();
    for (root, name) in [
        (fixture(), "images-fixture"),
        (d.path().to_path_buf(), "images-damaged"),
    ] {
        let root = root.to_str().unwrap();
        let json = json_of(&["images", root, "--format", "json", "-q"], &[], &[0, 1]);
        let out = tempfile::tempdir().unwrap();
        let (page, _) = write_page("images", root, &[], &[0, 1], out.path());
        let r = render(&page, name);
        assert!(r.console.is_empty(), "{name}: {:?}", r.console);
        assert_readable(&r, name, 4.0);
        let dom = &r.dom;
        let human = regsweep::report::human_bytes;
        let sum = &json["summary"];
        for k in ["stored_bytes", "sum_of_image_sizes", "garbage_bytes"] {
            let v = human(sum[k].as_u64().unwrap());
            assert!(
                dom.contains(&format!("<div class=\"value\">{v}</div>")),
                "{name}: {k} {v} not a total on the page"
            );
        }
        for repo in json["repositories"].as_array().unwrap() {
            let tile = format!(
                "<title>{}: {} (",
                s(&repo["name"]),
                human(repo["size"].as_u64().unwrap())
            );
            assert!(dom.contains(&tile), "{name}: no tile {tile}");
        }
        let problems: usize = json["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["problems"].as_array().unwrap().len())
            .sum();
        assert_eq!(
            count(dom, "<tr class=\"problem\">"),
            problems,
            "{name}: problem rows"
        );
        assert_eq!(
            problems > 0,
            name == "images-damaged",
            "{name}: {problems} problems"
        );
    }
}

/// "Pushed" is one thing: the report page's age histogram counts the
/// manifests that `images` gives a `pushed_at`, tagged and untagged.
#[test]
fn report_page_ages_are_the_images_push_times() {
    let root = fixture();
    let root = root.to_str().unwrap();
    let listing = json_of(&["images", root, "--format", "json", "-q"], &[], &[0, 1]);
    let (mut tagged, mut untagged) = (0, 0);
    for r in listing["images"].as_array().unwrap() {
        if r["pushed_at"].is_string() {
            if r["tags"].as_array().unwrap().is_empty() {
                untagged += 1;
            } else {
                tagged += 1;
            }
        }
    }
    assert!(tagged > 0 && untagged > 0);
    let d = tempfile::tempdir().unwrap();
    let (page, _) = write_page("report", root, &[], &[0, 1], d.path());
    let html = fs::read_to_string(&page).unwrap();
    for want in [
        format!("tagged manifests, pushed ({tagged})"),
        format!("untagged manifests, pushed ({untagged})"),
    ] {
        assert!(html.contains(&want), "{want} not on the page");
    }
}

/// A reclaimable figure that damage makes uncertain says so, in every
/// format, and a clean tree's does not.
#[test]
fn reclaimable_is_marked_uncertain_on_a_damaged_tree() {
    let d = damaged_fixture();
    for (root, damaged) in [(fixture(), false), (d.path().to_path_buf(), true)] {
        let root = root.to_str().unwrap();
        let json = json_of(&["report", root, "--format", "json", "-q"], &[], &[0, 1]);
        let sum = &json["summary"];
        assert_eq!(sum["sweep_blocked"].as_bool(), Some(damaged));
        assert_eq!(sum["reclaimable_uncertain"].is_string(), damaged, "{sum}");
        let text = regsweep_run(&["report", root, "-q"], &[], &[0, 1]).stdout;
        assert_eq!(text.contains("reclaimable is uncertain"), damaged, "{text}");
        let (page, _) = write_page("report", root, &[], &[0, 1], d.path());
        let html = fs::read_to_string(&page).unwrap();
        assert_eq!(html.contains("uncertain: problems make"), damaged);
    }
}

#[test]
fn report_csv_tables_have_the_rows_of_the_json() {
    let d = damaged_fixture();
    for root in [fixture(), d.path().to_path_buf()] {
        let root = root.to_str().unwrap();
        let mut json = json_of(&["report", root, "--format", "json", "-q"], &[], &[0, 1]);
        // The repositories table ends with the reclaimable bytes that no
        // repository holds.
        let extra = unowned_rows(&json["summary"]);
        let n_extra = extra.len();
        json["repositories"].as_array_mut().unwrap().extend(extra);
        for (table, key) in [
            ("repositories", "repositories"),
            ("garbage-blobs", "garbage_blobs"),
            ("garbage-manifests", "garbage_manifests"),
            ("uploads", "abandoned_uploads"),
            ("problems", "problems"),
        ] {
            check_csv_table(&["report", root], table, &json, key, &[0, 1]);
        }
        // The default table is the repositories.
        let plain = regsweep_run(&["report", root, "--format", "csv", "-q"], &[], &[0, 1]).stdout;
        assert_eq!(
            csv_rows(&plain).len(),
            json["repositories"].as_array().unwrap().len()
        );
        assert!(n_extra <= 2);
    }
    // --table without --format csv is refused.
    let o = regsweep_run(
        &[
            "report",
            fixture().to_str().unwrap(),
            "--table",
            "uploads",
            "-q",
        ],
        &[],
        &[2],
    );
    assert!(o.stderr.contains("--format csv"), "{}", o.stderr);
}

#[test]
fn verify_csv_tables_have_the_rows_of_the_json() {
    let d = damaged_fixture();
    let root = d.path().to_str().unwrap();
    let json = json_of(&["verify", root, "--format", "json", "-q"], &[], &[1]);
    assert!(!json["findings"].as_array().unwrap().is_empty());
    check_csv_table(&["verify", root], "findings", &json, "findings", &[1]);
    // Broken tags: causes are the findings' rows, space-separated.
    let text = regsweep_run(
        &[
            "verify",
            root,
            "--format",
            "csv",
            "--table",
            "broken-tags",
            "-q",
        ],
        &[],
        &[1],
    )
    .stdout;
    let rows = csv_rows(&text);
    let broken = json["broken_tags"].as_array().unwrap();
    assert_eq!(rows.len(), broken.len());
    for (r, b) in rows.iter().zip(broken) {
        assert_eq!(r["repository"], s(&b["repository"]));
        assert_eq!(r["tag"], s(&b["tag"]));
        let causes: Vec<String> = b["causes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(r["causes"], causes.join(" "));
    }
}
