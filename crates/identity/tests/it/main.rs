//! Integration tests: the store contract on a real PostgreSQL server, and the service end to end
//! (SQLite on disk, and PostgreSQL for what instances share).

mod postgres;
mod service;
mod support;
