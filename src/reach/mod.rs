//! Reachability, written once: which manifests and blobs stay, given a
//! frozen snapshot of the registry (the graph of parsed manifests and each
//! repository's tags and revision links) and a set of roots.
//!
//! The rules, and where they live:
//! * [`live`]: the mark's closure of roots over index children, configs and
//!   layers, and referrers by `subject`;
//! * [`closure`]: one manifest's closure, with and without referrers, and
//!   what deleting it frees without re-marking;
//! * [`roles`]: every tag's role (a version, or a follower of a subject:
//!   cosign `sha256-<hex>.sig|.att|.sbom`, the referrers tag schema's
//!   `sha256-<hex>`, a tag naming a manifest with a `subject`);
//! * [`followers`]: what removing a manifest takes along (the tags that
//!   follow it, and what they leave untagged).
//!
//! The mark ([`crate::mark`]), `images`' per-row reclaimable bytes,
//! `delete`'s references ([`crate::prune::refs`]), `prune`'s views of the
//! repositories, the retention engine's followers ([`crate::policy`]) and
//! `verify`'s orphans ([`live::referenced`]) call these; none of them
//! decides reachability by rules of its own.

pub mod closure;
pub mod followers;
pub mod live;
pub mod roles;

pub use closure::{closure, referrers, Closure, Counts, Referrers, RepoRootIndex};
pub use followers::{delete_one, tags_seen, takes_along, TagSeen};
pub use roles::TagRole;
