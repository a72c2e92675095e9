//! Rickshaw's own benchmarks (`rickshaw bench …`): synthetic cities, the matcher's tick at city
//! scale against the `nearest` baseline and the exact optimum, and the position stream into the
//! geo index while ticks run. Measurement only: nothing here is used by the services.

pub mod city;
pub mod cpu;
pub mod ingest;
pub mod matching;
pub mod memory;

pub use city::{City, CityKind};
pub use ingest::{IngestBench, IngestReport};
pub use matching::{CaseResult, MatchingBench};
