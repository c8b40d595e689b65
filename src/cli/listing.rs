//! `--listing`: the storage opened with an S3 Inventory as its listing.

use crate::{location, StorageArgs};
use anyhow::{bail, Context, Result};
use regsweep::config::Location;
use regsweep::s3_inventory::{self, overlay::InventoryListing, Source};
use regsweep::storage::{Storage, V2_PREFIX};
use std::time::SystemTime;

/// The storage a command works on, listed by the bucket or by an inventory.
pub struct Opened {
    /// Where it is.
    pub loc: Location,
    store: Store,
}

enum Store {
    Plain(Box<dyn Storage>),
    Listed(Box<InventoryListing>),
}

impl Opened {
    /// The storage.
    pub fn storage(&self) -> &dyn Storage {
        match &self.store {
            Store::Plain(s) => s.as_ref(),
            Store::Listed(s) => s.as_ref(),
        }
    }

    /// The time that ages (the grace period, upload ages) count back from:
    /// now, or when the inventory was taken (nothing written after it is
    /// in its listing, and what it lists is no younger than that).
    pub fn now(&self) -> SystemTime {
        match &self.store {
            Store::Plain(_) => SystemTime::now(),
            Store::Listed(s) => s.created(),
        }
    }

    /// Prints what removals left alone because the object was gone or had
    /// changed since the inventory.
    pub fn report_skipped(&self) {
        if let Store::Listed(s) = &self.store {
            for (k, why) in s.skipped() {
                eprintln!("  skipped: {k}: {why}");
            }
        }
    }
}

/// Opens the storage of `a`, with its `--listing` when given. `apply`:
/// removals will be carried out, so `repositories/` is listed in the bucket
/// first (see [`InventoryListing::refresh`]).
pub fn open(a: &StorageArgs, apply: bool) -> Result<Opened> {
    open_with(a, apply, false)
}

/// [`open`] for a command that scans once and removes nothing (a report):
/// an inventory's index is released as soon as the scan has listed it
/// ([`InventoryListing::list_once`]).
pub fn open_once(a: &StorageArgs) -> Result<Opened> {
    open_with(a, false, true)
}

fn open_with(a: &StorageArgs, apply: bool, once: bool) -> Result<Opened> {
    let loc = location(a)?;
    let concurrency = a.concurrency.map(usize::from);
    let Some(arg) = &a.listing else {
        let s = loc.open_with_concurrency(concurrency)?;
        return Ok(Opened {
            loc,
            store: Store::Plain(s),
        });
    };
    let (bucket, prefix, s3) = match &loc {
        Location::Dir(p) => bail!(
            "--listing reads an S3 Inventory of a bucket; {} is a directory (list it as it is)",
            p.display()
        ),
        Location::Url(u, _) => {
            let parsed = url::Url::parse(u)?;
            if !matches!(parsed.scheme(), "s3" | "s3a") {
                bail!("--listing reads an S3 Inventory; {u} is not an s3:// storage");
            }
            (
                parsed.host_str().unwrap_or_default().to_string(),
                parsed.path().trim_matches('/').to_string(),
                None,
            )
        }
        Location::S3(s) => (s.bucket.clone(), s.prefix.clone(), Some(s.clone())),
    };
    let root = if prefix.is_empty() {
        format!("{V2_PREFIX}/")
    } else {
        format!("{prefix}/{V2_PREFIX}/")
    };
    let source = Source::parse(arg)?;
    let started = std::time::Instant::now();
    let inv = s3_inventory::load(&source, arg, &root, Some(&bucket), s3.as_ref())
        .with_context(|| format!("reading the inventory {arg}"))?;
    if std::env::var_os("REGSWEEP_TIMINGS").is_some() {
        eprintln!(
            "regsweep: inventory {arg}: {} objects under the root, {} files, {} bytes read, {:.2} s, index {} bytes",
            inv.index.len(),
            inv.manifest.files.len(),
            inv.bytes_read,
            started.elapsed().as_secs_f64(),
            inv.index.heap_bytes()
        );
    }
    let inner = loc.open_with_concurrency(concurrency)?;
    let mut listed = InventoryListing::new(inner, inv);
    if once {
        listed = listed.list_once();
    }
    let mut listed = Box::new(listed);
    if apply {
        let r = listed
            .refresh()
            .context("listing repositories/ in the bucket before removing anything")?;
        eprintln!(
            "regsweep: repositories/ listed in the bucket: {} objects, {} new or changed since the inventory{}; {} blob(s) they name added to the inventory's",
            r.listed,
            r.changed_count,
            if r.changed.is_empty() {
                String::new()
            } else {
                format!(" (e.g. {})", r.changed.iter().take(3).cloned().collect::<Vec<_>>().join(", "))
            },
            r.blobs_added
        );
    }
    Ok(Opened {
        loc,
        store: Store::Listed(listed),
    })
}
