//! The one binary's library: it composes the service crates into a running system. The embedded
//! mode (`rickshaw up`) runs every service in this process on the in-process bus and SQLite.
//! Nothing here holds business logic; it only wires services to their adapters.

pub mod embedded;

pub use embedded::Embedded;
