//! The `regsweep` command line: parses arguments into a validated
//! configuration, runs the engine from the library, prints the result.

/// mimalloc: faster than glibc's malloc for the many small allocations of a
/// scan, and it returns freed memory to the system, which keeps peak RSS low.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use cli::exit::Exit;
use regsweep::config::Location;
use regsweep::mark::Mode;
use regsweep::output::metrics::{MetricError, Metrics};
use regsweep::output::report::ReportTable;
use regsweep::output::verify::VerifyTable;
use regsweep::plan::{self, PlanOptions};
use regsweep::problem::Severity;
use regsweep::progress::Progress;
use regsweep::storage::StorageExt;
use regsweep::ReportOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime};

/// Offline garbage collector and auditor for container-registry storage
/// (CNCF distribution / registry:2 layout, on a filesystem or object store).
#[derive(Parser, Debug)]
#[command(name = "regsweep", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Dry-run mark and sweep: report what can be reclaimed, touching nothing.
    ///
    /// Exit status: 0 when the storage has no problems (notes allowed),
    /// 1 when the report was written but problems (warnings or errors) were
    /// found in the storage, 2 when the run failed (bad arguments,
    /// storage that cannot be listed, output that cannot be written).
    Report(ReportArgs),

    /// Remove what the mark proved unreachable: prints the plan unless
    /// --apply is given. Links go first, blobs last; every removal is
    /// journaled; nothing younger than the grace period is touched.
    ///
    /// Exit status: 0 on success, 1 when some removals failed (see the
    /// journal), 2 when the run failed, 3 when --apply was refused because
    /// the storage has problems that make reachability uncertain.
    Sweep(cli::sweep::SweepArgs),

    /// Delete images by reference: `repo:tag`, `repo@sha256:<hex>` or a
    /// whole `repo`, with the tags, signatures, index children and blobs
    /// that only they use. Prints the plan unless --apply is given.
    ///
    /// Exit status: 0 on success, 1 when some removals failed, 2 when the
    /// run failed or a reference does not exist or is still needed (a kept
    /// index references it; see --force), 3 when --apply was refused
    /// because the storage has problems.
    Delete(cli::prune::DeleteArgs),

    /// Delete by retention policy (keep the last N, older than, not pulled
    /// for, untagged): an exact preview, then with --apply one journaled
    /// plan. See docs/retention.md.
    ///
    /// Exit status: 0 on success, 1 when some removals failed, 2 when the
    /// run failed (bad policy, regex, access log, storage), 3 when --apply
    /// was refused because the storage has problems.
    Prune(Box<cli::prune::PruneArgs>),

    /// Move a quarantine (from `sweep --quarantine DEST`) back into the storage.
    Restore(cli::sweep::RestoreArgs),

    /// Audit the storage: is every tag pullable whole? Checks tags, revision
    /// and _layers links, manifests, index children, blob presence and sizes
    /// (and, with --rehash, every blob's content), touching nothing.
    ///
    /// Exit status: 0 when no finding is an error (warnings and notes
    /// allowed), 1 when some finding is an error (something is missing,
    /// corrupt, or differs from the --against inventory), 2 when the run
    /// failed (bad arguments, storage that cannot be listed, unreadable
    /// inventory, output that cannot be written).
    Verify(VerifyArgs),

    /// List every manifest of every repository: kind, tags, platforms, size,
    /// what deleting it would free, when it was pushed and (with
    /// --access-log) pulled, and its status; with per-repository totals and a
    /// storage summary. Touches nothing.
    ///
    /// Exit status: 0 when the listing was written and the storage has no
    /// problems, 1 when it was written but problems were found, 2 when the
    /// run failed (bad arguments, storage or log that cannot be read, output
    /// that cannot be written).
    Images(cli::images::ImagesArgs),

    /// Record every repository, tag -> digest, manifest and blob -> size in a
    /// JSON file, for a later `verify --against` (e.g. before a backup).
    ///
    /// Exit status: 0 when the inventory was written, 1 when it was written
    /// but the scan found errors (it may be incomplete), 2 when the run failed.
    Inventory(InventoryArgs),
}

/// Where the storage is.
#[derive(Args, Debug)]
struct StorageArgs {
    /// The registry's root directory (the one holding docker/registry/v2), or
    /// s3://bucket[/prefix], gs://bucket[/prefix], az://container[/prefix].
    /// Object-store credentials, region and endpoint come from the standard
    /// environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_REGION, AWS_ENDPOINT_URL, AWS_ALLOW_HTTP; GOOGLE_*; AZURE_*).
    #[arg(value_name = "STORAGE", required_unless_present = "registry_config")]
    pub(crate) storage: Option<String>,

    /// Read the storage location from the reference registry's config.yml
    /// (its storage: section: filesystem, s3, gcs or azure) instead of STORAGE.
    #[arg(long, value_name = "FILE", conflicts_with = "storage")]
    pub(crate) registry_config: Option<PathBuf>,

    /// Requests kept in flight: on object stores (default 64), or threads
    /// doing filesystem I/O (default 8 per core, 8 to 64, enough to keep a
    /// disk's queue full on a cold cache, of which 2 per core work while
    /// the disk is not being read; N fixes the count).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    concurrency: Option<u16>,

    /// Worker threads for filesystem I/O and parsing (default: one per core).
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,

    /// List the bucket from an AWS S3 Inventory report instead of LISTing
    /// it: s3-inventory://bucket/prefix/manifest.json, or a local
    /// manifest.json (its data files in data/ beside it). CSV or Parquet,
    /// with Key, Size and LastModifiedDate. Ages count back from the
    /// inventory's creation time; see the README.
    #[arg(long, value_name = "URL|PATH")]
    listing: Option<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    /// A summary for people.
    Text,
    /// The versioned JSON document described in the README.
    Json,
    /// One table as CSV, with a header line (choose it with --table).
    Csv,
    /// One self-contained HTML page with charts (no scripts, no external
    /// resources).
    Html,
}

#[derive(Args, Debug)]
struct ReportArgs {
    #[command(flatten)]
    storage: StorageArgs,

    /// Roots are only the manifests that tags point at (plus their index
    /// children, layers, configs and referrers); untagged manifests become
    /// garbage. Without it every revision-linked manifest is kept, as the
    /// reference registry's garbage-collect does by default.
    #[arg(long, short = 'm')]
    delete_untagged: bool,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,

    /// Write the report to FILE instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,

    /// With --format csv: the table to write (default: repositories).
    #[arg(long, value_enum, value_name = "TABLE")]
    table: Option<ReportTable>,

    /// Also write Prometheus metrics to FILE (node_exporter's textfile
    /// format, replaced atomically; name it *.prom in the collector's
    /// directory).
    #[arg(long, value_name = "FILE")]
    metrics: Option<PathBuf>,

    /// How many repositories the text report lists.
    #[arg(long, default_value_t = 10, value_name = "N")]
    top: usize,

    /// Largest manifest read, in bytes; larger ones are reported as problems.
    #[arg(long, default_value_t = 4 << 20, value_name = "BYTES")]
    max_manifest_size: u64,

    /// The registry's tags, where its storage holds none (see `sweep
    /// --help`).
    #[arg(long, value_name = "FILE")]
    tags_from: Option<PathBuf>,

    /// Never show progress, even on a terminal.
    #[arg(long, short)]
    quiet: bool,

    /// List every file instead of only the directories whose names are
    /// digests: slower on a filesystem, but also finds stray files (such as
    /// `*.tmp` left by interrupted writes) inside them, and stats every blob.
    #[arg(long)]
    deep: bool,

    /// Also write the sweep plan (JSON) to FILE, made with the default grace
    /// period and upload age; `sweep --plan FILE --apply` carries it out.
    #[arg(long, value_name = "FILE")]
    plan: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct VerifyArgs {
    #[command(flatten)]
    storage: StorageArgs,

    /// Recompute the sha256 of every blob and report each one whose content
    /// does not match its digest (memory-mapped in parallel on a filesystem,
    /// streamed on object stores). Without it only manifests are hashed.
    #[arg(long)]
    rehash: bool,

    /// Also compare the storage with an inventory written by
    /// `regsweep inventory`: report every tag, manifest and blob it lists that
    /// is missing or changed (and, as notes, what is new).
    #[arg(long, value_name = "INVENTORY")]
    against: Option<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,

    /// Write the result to FILE instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,

    /// With --format csv: the table to write (default: findings).
    #[arg(long, value_enum, value_name = "TABLE")]
    table: Option<VerifyTable>,

    /// Also write Prometheus metrics to FILE (textfile format, replaced
    /// atomically).
    #[arg(long, value_name = "FILE")]
    metrics: Option<PathBuf>,

    /// Largest manifest read, in bytes; larger ones are reported as errors.
    #[arg(long, default_value_t = 4 << 20, value_name = "BYTES")]
    max_manifest_size: u64,

    /// Never show progress, even on a terminal.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct InventoryArgs {
    #[command(flatten)]
    storage: StorageArgs,

    /// Where to write the inventory (JSON; replaced atomically).
    #[arg(long, short, value_name = "INVENTORY")]
    output: PathBuf,

    /// Never show progress, even on a terminal.
    #[arg(long, short)]
    quiet: bool,
}

fn location(a: &StorageArgs) -> Result<Location> {
    Ok(match (&a.storage, &a.registry_config) {
        (_, Some(cfg)) => Location::from_registry_config(cfg)?,
        (Some(s), None) => Location::parse(s)?,
        (None, None) => bail!("give STORAGE or --registry-config FILE"),
    })
}

/// Runs `f` on a buffered writer to `path` (atomically: a temporary file
/// renamed into place) or to standard output.
fn write_with(path: Option<&Path>, f: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    match path {
        None => {
            // A closed pipe (`| head`) fails these writes with EPIPE; `main`
            // ends the run quietly then (see `cli::is_broken_pipe`).
            let mut w = std::io::BufWriter::new(std::io::stdout().lock());
            f(&mut w).context("writing to standard output")?;
            w.flush().context("writing to standard output")?;
        }
        // A device or a pipe (`--output /dev/null`) is written in place: a
        // temporary file renamed over it would replace it.
        Some(p) if std::fs::metadata(p).is_ok_and(|m| !m.is_file()) => {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .with_context(|| format!("writing {}", p.display()))?;
            let mut w = std::io::BufWriter::new(file);
            f(&mut w).with_context(|| format!("writing {}", p.display()))?;
            w.flush()
                .with_context(|| format!("writing {}", p.display()))?;
        }
        Some(p) => {
            let tmp = p.with_extension(format!("tmp.{}", std::process::id()));
            let file =
                std::fs::File::create(&tmp).with_context(|| format!("writing {}", p.display()))?;
            let mut w = std::io::BufWriter::new(file);
            let wrote = f(&mut w).and_then(|()| Ok(w.flush()?));
            if let Err(e) = wrote {
                drop(w);
                let _ = std::fs::remove_file(&tmp);
                return Err(e.context(format!("writing {}", p.display())));
            }
            drop(w);
            std::fs::rename(&tmp, p).with_context(|| format!("writing {}", p.display()))?;
        }
    }
    Ok(())
}

/// Writes `text` to `path` (atomically), or to standard output.
fn write_output(path: Option<&Path>, text: &str) -> Result<()> {
    match path {
        None => cli::out(text),
        Some(_) => write_with(path, |w| Ok(w.write_all(text.as_bytes())?)),
    }
}

/// Refuses, before anything is scanned, an output file that cannot be
/// written: its directory missing, not a directory or not writable, or the
/// path a directory. A device or a pipe is written in place and passes.
pub(crate) fn check_outputs(paths: &[Option<&Path>]) -> Result<()> {
    for p in paths.iter().flatten() {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => bail!("cannot write {}: it is a directory", p.display()),
            Ok(m) if !m.is_file() => continue,
            _ => {}
        }
        let dir = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        match std::fs::metadata(dir) {
            Err(e) => bail!("cannot write {}: {}: {e}", p.display(), dir.display()),
            Ok(m) if !m.is_dir() => {
                bail!(
                    "cannot write {}: {} is not a directory",
                    p.display(),
                    dir.display()
                )
            }
            Ok(_) => {}
        }
        // Writable: a probe made and removed beside it.
        let probe = dir.join(format!(".regsweep-probe.{}", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
        {
            Ok(_) => {
                let _ = std::fs::remove_file(&probe);
            }
            Err(e) => bail!("cannot write {}: {e}", p.display()),
        }
    }
    Ok(())
}

/// `--table` is a choice of CSV table: refused with another format.
fn check_table<T>(format: Format, table: &Option<T>) -> Result<()> {
    if table.is_some() && !matches!(format, Format::Csv) {
        bail!("--table goes with --format csv");
    }
    Ok(())
}

/// Writes the metrics file of a successful run of `command`, when asked:
/// what `fill` adds, and when the run ended and how long it took.
fn write_metrics(
    path: Option<&Path>,
    command: &str,
    started: Instant,
    fill: impl FnOnce(&mut Metrics) -> Result<(), MetricError>,
) -> Result<()> {
    let Some(p) = path else { return Ok(()) };
    let mut m = Metrics::new();
    fill(&mut m)?;
    m.run(command, SystemTime::now(), started.elapsed())?;
    m.write_file(p)
        .with_context(|| format!("writing metrics {}", p.display()))
}

/// The analysis settings shared by `report` and `sweep`.
fn report_options(mode: Mode, max_manifest_size: u64, deep: bool) -> ReportOptions {
    ReportOptions {
        mode,
        graph: regsweep::graph::GraphOptions {
            max_manifest_size,
            ..Default::default()
        },
        scan: if deep {
            regsweep::scan::ScanOptions::default()
        } else {
            regsweep::scan::ScanOptions::fast()
        },
    }
}

fn report(a: ReportArgs) -> Result<Exit> {
    let started = Instant::now();
    check_table(a.format, &a.table)?;
    check_outputs(&[a.output.as_deref(), a.metrics.as_deref(), a.plan.as_deref()])?;
    worker_threads(a.storage.jobs)?;
    let opened = cli::listing::open_once(&a.storage)?;
    let storage = opened.storage();
    let mode = if a.delete_untagged {
        Mode::DeleteUntagged
    } else {
        Mode::KeepUntagged
    };
    let mut opts = report_options(mode, a.max_manifest_size, a.deep);
    if let Some(f) = &a.tags_from {
        opts.scan.tags_from = Some(std::sync::Arc::new(
            regsweep::scan::external_tags::ExternalTags::read(f)?,
        ));
    }
    // Tag history matters only to a sweep plan.
    opts.scan.tag_history = a.plan.is_some();
    opts.scan.blob_ages = a.plan.is_some();
    let progress = progress(a.quiet);
    progress.count_requests(storage.requests());
    let mut an = regsweep::analyze(storage, &opts, &progress)
        .with_context(|| format!("scanning {}", storage.describe()))?;
    let now = opened.now();
    if a.plan.is_none() {
        // Only a plan needs the parsed manifests: free them for the report,
        // on another thread (125,000 nodes take a while to free).
        let graph = std::mem::take(&mut an.graph);
        std::thread::spawn(move || drop(graph));
    }
    // The page's age histogram: when each manifest was pushed (its
    // revision link's time, as `images` reads it).
    let times = matches!(a.format, Format::Html).then(|| {
        progress.phase("reading push times");
        regsweep::times::read(storage, &mut an.inventory, false)
    });
    progress.phase("building the report");
    // The plan counts the scan's problems too: copied then, else moved.
    let problems = if a.plan.is_some() {
        an.inventory.problems.clone()
    } else {
        std::mem::take(&mut an.inventory.problems)
    };
    let mut rep = regsweep::report::build_with(
        &an.inventory,
        problems,
        &an.roots,
        &an.marked,
        opts.mode,
        now,
    );
    rep.summary.requests = storage.requests().map(|c| c.snapshot());
    progress.phase("writing the report");
    match a.format {
        Format::Text => write_output(a.output.as_deref(), &rep.to_text(a.top))?,
        // Streamed: a large report is never held as one string.
        Format::Json => write_json_to(a.output.as_deref(), &rep)?,
        Format::Csv => write_with(a.output.as_deref(), |w| {
            let table = a.table.unwrap_or(ReportTable::Repositories);
            Ok(regsweep::output::report::write_csv(w, &rep, table)?)
        })?,
        Format::Html => {
            use regsweep::output::html::{self, report as page};
            let ages = page::manifest_ages(&an.inventory, &times.unwrap_or_default(), now);
            let page = page::ReportPage::new(&rep, &ages);
            write_with(a.output.as_deref(), |w| Ok(html::write_page(w, &page)?))?;
        }
    }
    progress.finish();
    write_metrics(a.metrics.as_deref(), "report", started, |m| {
        regsweep::output::report::add_metrics(m, &rep)
    })?;
    if let Some(p) = &a.plan {
        let plan = plan::build(storage, &an, opts.mode, &PlanOptions::default(), now);
        write_json(p, &plan)?;
    }
    timing_requests(storage);
    let troubled = rep.problems.iter().any(|p| p.severity >= Severity::Warning);
    // The process ends here: its memory goes back to the system at once,
    // without freeing every digest list and repository entry one by one.
    std::mem::forget(rep);
    std::mem::forget(an);
    Ok(Exit::trouble_if(troubled))
}

fn worker_threads(jobs: Option<usize>) -> Result<()> {
    if let Some(j) = jobs {
        rayon::ThreadPoolBuilder::new()
            .num_threads(j.max(1))
            .build_global()
            .context("setting up worker threads")?;
    }
    Ok(())
}

/// With `REGSWEEP_TIMINGS` set, on an object store: every request the run
/// sent, by kind, on stderr.
fn timing_requests(storage: &dyn regsweep::storage::Storage) {
    if std::env::var_os("REGSWEEP_TIMINGS").is_none() {
        return;
    }
    if let Some(c) = storage.requests() {
        eprintln!("regsweep: in all: {}", c.snapshot());
    }
}

fn progress(quiet: bool) -> Progress {
    if quiet {
        Progress::hidden()
    } else {
        Progress::auto()
    }
}

fn verify(a: VerifyArgs) -> Result<Exit> {
    let started = Instant::now();
    check_table(a.format, &a.table)?;
    check_outputs(&[a.output.as_deref(), a.metrics.as_deref()])?;
    worker_threads(a.storage.jobs)?;
    let against = match &a.against {
        Some(p) => Some(regsweep::inventory::load(p)?),
        None => None,
    };
    let opened = cli::listing::open(&a.storage, false)?;
    let storage = opened.storage();
    let opts = regsweep::verify::VerifyOptions {
        graph: regsweep::graph::GraphOptions {
            max_manifest_size: a.max_manifest_size,
            ..Default::default()
        },
        rehash: a.rehash,
        against,
        ..Default::default()
    };
    let progress = progress(a.quiet);
    progress.count_requests(storage.requests());
    let v = regsweep::verify::verify(storage, &opts, &progress)
        .with_context(|| format!("verifying {}", storage.describe()))?;
    timing_requests(storage);
    match a.format {
        Format::Text => write_output(a.output.as_deref(), &v.to_text())?,
        Format::Json => {
            let name = a.against.as_ref().map(|p| p.display().to_string());
            let doc = v.to_json(name.as_deref(), std::time::SystemTime::now());
            write_json_to(a.output.as_deref(), &doc)?;
        }
        Format::Csv => write_with(a.output.as_deref(), |w| {
            let table = a.table.unwrap_or(VerifyTable::Findings);
            Ok(regsweep::output::verify::write_csv(w, &v, table)?)
        })?,
        Format::Html => {
            use regsweep::output::html;
            let name = a.against.as_ref().map(|p| p.display().to_string());
            let now = regsweep::report::rfc3339(SystemTime::now());
            let page = html::verify::VerifyPage::new(&v, name.as_deref(), now);
            write_with(a.output.as_deref(), |w| Ok(html::write_page(w, &page)?))?;
        }
    }
    write_metrics(a.metrics.as_deref(), "verify", started, |m| {
        regsweep::output::verify::add_metrics(m, &v)
    })?;
    Ok(Exit::trouble_if(!v.is_whole()))
}

fn inventory(a: InventoryArgs) -> Result<Exit> {
    check_outputs(&[Some(&a.output)])?;
    worker_threads(a.storage.jobs)?;
    let opened = cli::listing::open(&a.storage, false)?;
    let storage = opened.storage();
    let progress = progress(a.quiet);
    let inv = regsweep::scan::scan(storage, &Default::default(), &progress)
        .with_context(|| format!("scanning {}", storage.describe()))?;
    progress.finish();
    let doc = regsweep::inventory::record(&inv, std::time::SystemTime::now());
    write_json(&a.output, &doc)?;
    let errors: Vec<_> = inv
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .collect();
    for p in &errors {
        eprintln!("regsweep: {}: {}", p.path, p.message);
    }
    if !errors.is_empty() {
        eprintln!(
            "regsweep: the inventory may be incomplete: {} error(s) while scanning",
            errors.len()
        );
    }
    Ok(Exit::trouble_if(!errors.is_empty()))
}

fn write_json<T: serde::Serialize>(path: &Path, v: &T) -> Result<()> {
    write_json_to(Some(path), v)
}

/// Writes `v` as JSON, indented, each array element on one line
/// ([`regsweep::json`]), streamed: a large report is never one string.
fn write_json_to<T: serde::Serialize>(path: Option<&Path>, v: &T) -> Result<()> {
    write_with(path, |w| {
        // serde_json makes many small writes: buffer them in front of the
        // `dyn Write`, so that they are inlined copies, not virtual calls.
        let mut w = std::io::BufWriter::with_capacity(1 << 20, w);
        regsweep::json::to_writer_lines(&mut w, v)?;
        w.write_all(b"\n")?;
        w.flush()?;
        Ok(())
    })
}

/// Tunes mimalloc for a short-lived batch process: commit arena memory as
/// it is used and return freed memory at once (peak RSS, not speed, is what
/// grows otherwise). Environment variables `MIMALLOC_*` still override.
fn tune_allocator() {
    use libmimalloc_sys::mi_option_set;
    // Indices of `mi_option_arena_eager_commit` and `mi_option_purge_delay`.
    const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    for (opt, env, value) in [
        (ARENA_EAGER_COMMIT, "MIMALLOC_ARENA_EAGER_COMMIT", 0),
        (PURGE_DELAY, "MIMALLOC_PURGE_DELAY", 0),
    ] {
        if std::env::var_os(env).is_none() {
            // SAFETY: setting a documented mimalloc option to a valid value.
            unsafe { mi_option_set(opt, value) };
        }
    }
}

fn main() -> ExitCode {
    tune_allocator();
    regsweep::s3_inventory::parquet::quiet_caught_panics();
    let cli = Cli::parse();
    let res = match cli.command {
        Command::Report(a) => report(a),
        Command::Sweep(a) => cli::sweep::run(a),
        Command::Delete(a) => cli::prune::run_delete(a),
        Command::Prune(a) => cli::prune::run_prune(*a),
        Command::Restore(a) => cli::sweep::restore(a),
        Command::Verify(a) => verify(a),
        Command::Inventory(a) => inventory(a),
        Command::Images(a) => cli::images::run(a),
    };
    match res {
        Ok(exit) => exit.into(),
        // The reader of the output is gone (`regsweep … | head`): nothing
        // is wrong, and nothing more can be said to it.
        Err(e) if cli::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("regsweep: error: {e:#}");
            Exit::Error.into()
        }
    }
}
