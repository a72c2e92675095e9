//! The operations service: the live picture of the city for the people who run it. It follows
//! the bus (every instance sees every event: drivers' status and positions, trip notices, the
//! course's requests, reports and matches), keeps `view::CityView` — drivers by state, open
//! trips, headline figures, demand and supply per H3 cell, the course's pool — and serves it to
//! admins at `GET /v1/admin/city` and, live, at `GET /v1/admin/city/live`. It keeps nothing on
//! disk: a new instance fills its picture from the events that follow (positions arrive every
//! second from every online driver).

pub mod config;
mod live;
pub mod module;
pub mod view;

pub use config::OperationsConfig;
pub use module::Module;
pub use view::{CityView, ViewLimits};
