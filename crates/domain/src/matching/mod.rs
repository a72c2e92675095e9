//! Pairing waiting riders with free drivers.

pub mod assign;
mod hungarian;
pub mod shard;

pub use assign::{Pair, Strategy, assign, total_distance};
pub use shard::shard_of;
