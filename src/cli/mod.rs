//! Commands of the binary that have grown their own file: each holds the
//! command's arguments (clap derive) and the function that runs it.

pub mod images;
pub mod listing;
pub mod prune;
pub mod sweep;
