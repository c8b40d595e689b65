//! The scan: list the registry's storage and turn it into an [`Inventory`] of
//! blobs, repositories, tags, links and uploads, with digests interned.
//!
//! Listing is read-only and concurrent. How the storage is listed is chosen
//! once, at the entry ([`scan`]), from what the backend offers:
//!
//! - a filesystem ([`Storage::fast_paths`]) is walked directory by
//!   directory (`walk.rs`): the 256 `blobs/sha256/xx/` shards (`blobs.rs`),
//!   then every repository's `_manifests/`, `_layers/`, `_uploads/`, either
//!   shallow (`shallow.rs`: digest directories are not entered, their names
//!   are the digests) or, with [`ScanOptions::deep`], in full;
//! - any other backend (an object store) lists `blobs/` and `repositories/`
//!   each in one recursive listing, split into ranges listed in parallel
//!   (`flat.rs`).
//!
//! Both strategies end in the same raw form (`raw.rs`); every listed file of
//! a recursive listing is sorted by `classify.rs`. Then the links whose
//! content matters are read (`links.rs`: tags' `current`, revision links of
//! unexpected size, `startedat` files; on an object store by the thread
//! that listed the repositories, as soon as it has, while the blobs may
//! still be listed), alias links resolved (`aliases.rs`),
//! and the digests interned into the [`Inventory`] (`inventory.rs`). What
//! names must look like is in `layout.rs`.

mod aliases;
mod blobs;
mod classify;
pub mod external_tags;
mod flat;
mod inventory;
mod layout;
mod links;
mod raw;
mod shallow;
mod walk;

pub use aliases::layer_link_dir;
pub use blobs::fill_blob_stats;
pub use inventory::{
    Blob, BlobHashes, Inventory, LinkCheck, LinkFault, LinkKind, Repository, ScanOptions, Tag,
    Upload,
};
pub use layout::{parse_link, valid_component, valid_repository, valid_tag, LinkError};

use crate::progress::Progress;
use crate::storage::{Storage, StorageError};
use blobs::BlobTable;

/// Scans the storage into an [`Inventory`]. Fails only when the storage
/// cannot be listed at all; everything else becomes a [`Problem`](crate::problem::Problem).
pub fn scan(
    storage: &dyn Storage,
    opts: &ScanOptions,
    progress: &Progress,
) -> Result<Inventory, StorageError> {
    let mut problems = Vec::new();
    // Intern while listing: blobs first, so that blob ids are dense 0..n.
    let mut table = BlobTable::new(opts.deep && opts.hash_blobs);
    let (mut raw, links_read) = match storage.fast_paths() {
        Some(fs) => (
            walk::list(fs, opts, progress, &mut table, &mut problems)?,
            None,
        ),
        None => {
            let (raw, links) = flat::list(storage, opts, progress, &mut table, &mut problems)?;
            (raw, Some(links))
        }
    };
    let BlobTable {
        mut interner,
        blobs,
        hashes,
        ..
    } = table;
    if links_read.is_none() {
        progress.phase("reading links");
    }
    let tag_currents = links::read_links(storage, opts, &mut raw, &mut problems, links_read);
    let raw_aliases =
        aliases::resolve_aliases(storage, opts.max_link_size, &mut raw, &mut problems);
    let link_counts = links::take_counts(&mut raw);
    let (repos, aliases) = raw::into_repositories(
        raw,
        tag_currents,
        raw_aliases,
        &mut interner,
        opts.link_times,
    );
    let mut inv = Inventory {
        storage: storage.describe(),
        interner,
        blobs,
        repos,
        problems,
        absent: Default::default(),
        links: LinkCheck::default(),
        hashes,
        aliases,
    };
    if opts.deep && opts.check_links {
        links::check_unread_links(storage, opts, &mut inv, link_counts);
    }
    if opts.stat_blobs {
        let all = inv.stored_blobs();
        fill_blob_stats(storage, &mut inv, &all, true);
    }
    if let Some(t) = &opts.tags_from {
        t.apply(&mut inv);
    }
    Ok(inv)
}

/// The error of a storage (as `described`) with nothing at all under `docker/registry/v2/`:
/// a wrong bucket prefix or root (an object store has no directory to be
/// missing), never a storage to call clean or whole.
fn nothing_here(described: &str) -> StorageError {
    StorageError::Backend {
        key: format!("{described}/{}/", crate::storage::V2_PREFIX),
        message: "nothing is stored here: not a registry root (check the path, bucket \
                  or prefix), or a registry nothing was ever pushed to"
            .into(),
    }
}
