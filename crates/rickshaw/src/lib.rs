//! The one binary's library: it composes the service crates into a running process — all of
//! them on in-process adapters (`rickshaw up`), or some of them on NATS and PostgreSQL
//! (`rickshaw serve`). Nothing here holds business logic; it only wires services to adapters.

pub mod admin;
pub mod nats_users;
pub mod system;

pub use system::{MODULES, Services, System};
