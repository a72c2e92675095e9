//! Pairing waiting riders with free drivers.

pub mod assign;
mod hungarian;

pub use assign::{Pair, Strategy, assign, total_distance};
