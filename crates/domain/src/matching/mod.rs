//! Pairing waiting riders with free drivers: where the drivers are (`index`, and `grid`, its
//! snapshot for a tick's queries), how a batch is
//! paired (`assign`, over the ε-optimal `auction` and the exact solvers `sparse` and
//! `hungarian`), and which shard a point belongs to (`shard`).

pub mod assign;
pub mod auction;
pub mod grid;
mod hungarian;
pub mod index;
pub mod shard;
pub mod sparse;

pub use assign::{Limits, Pair, Strategy, assign, assign_indexed, assign_within, total_distance};
pub use index::{GeoIndex, Neighbor};
pub use shard::{shard_of, shard_of_place};
