//! The trip service's section of the config (`[trips]`): dispatch, its shards, timeouts and
//! fees.

use platform::config::Section;
use serde::{Deserialize, Serialize};

/// The trip lifecycle: dispatch, timeouts and fees.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TripsConfig {
    /// How often searching trips are offered to free drivers (one batch per instance).
    pub dispatch_ms: u64,
    /// Geographic shards of dispatch: the H3 cells of `shard_resolution` containing pickups are
    /// spread over `shards` shards, which the instances share by leases.
    pub shards: u32,
    pub shard_resolution: u8,
    /// How long a dispatch shard's lease lasts without renewal (the distributed mode): a killed
    /// instance's shards are taken over about this long after its last renewal.
    pub lease_ttl_ms: u64,
    /// A driver is offered trips whose pickup is at most this far (metres).
    pub max_pickup_m: f64,
    /// A driver whose last position is older than this is not offered trips.
    pub position_ttl_ms: u64,
    /// `arrive` needs the driver's last known position within this many metres of the pickup
    /// (0: no check). A position on its way (coalesced by supply) is waited for, briefly.
    pub arrive_radius_m: f64,
    pub offer_timeout_ms: u64,
    pub search_timeout_ms: u64,
    pub free_cancel_window_ms: u64,
    pub late_cancel_fee: u64,
    pub no_show_after_ms: u64,
    pub no_show_fee: u64,
}

impl Default for TripsConfig {
    fn default() -> Self {
        let policy = domain::trip::TripPolicy::default();
        Self {
            dispatch_ms: 1_000,
            shards: 16,
            shard_resolution: 7,
            lease_ttl_ms: 2_000,
            max_pickup_m: 5_000.0,
            position_ttl_ms: 60_000,
            arrive_radius_m: 250.0,
            offer_timeout_ms: policy.offer_timeout_ms,
            search_timeout_ms: policy.search_timeout_ms,
            free_cancel_window_ms: policy.free_cancel_window_ms,
            late_cancel_fee: policy.late_cancel_fee,
            no_show_after_ms: policy.no_show_after_ms,
            no_show_fee: policy.no_show_fee,
        }
    }
}

impl TripsConfig {
    pub fn policy(&self) -> domain::trip::TripPolicy {
        domain::trip::TripPolicy {
            offer_timeout_ms: self.offer_timeout_ms,
            search_timeout_ms: self.search_timeout_ms,
            free_cancel_window_ms: self.free_cancel_window_ms,
            late_cancel_fee: self.late_cancel_fee,
            no_show_after_ms: self.no_show_after_ms,
            no_show_fee: self.no_show_fee,
        }
    }
}

impl Section for TripsConfig {
    const NAME: &'static str = "trips";

    fn validate(&self) -> Result<(), String> {
        if self.dispatch_ms < 10 || self.offer_timeout_ms < self.dispatch_ms {
            return Err(format!(
                "trips.dispatch_ms = {} must be at least 10 and at most trips.offer_timeout_ms = {}",
                self.dispatch_ms, self.offer_timeout_ms
            ));
        }
        if !(self.arrive_radius_m.is_finite() && self.arrive_radius_m >= 0.0) {
            return Err(format!(
                "trips.arrive_radius_m = {} must be 0 (no check) or a positive number of metres",
                self.arrive_radius_m
            ));
        }
        if !(self.max_pickup_m.is_finite() && self.max_pickup_m > 0.0) {
            return Err(format!(
                "trips.max_pickup_m = {} must be a positive number",
                self.max_pickup_m
            ));
        }
        if self.shards == 0 || self.shards > 1024 || self.shard_resolution > 15 {
            return Err(format!(
                "trips.shards = {} must be 1 to 1024 and trips.shard_resolution = {} an H3 resolution, 0 to 15",
                self.shards, self.shard_resolution
            ));
        }
        if self.lease_ttl_ms < 400 {
            return Err(format!(
                "trips.lease_ttl_ms = {} is below the 400 ms minimum",
                self.lease_ttl_ms
            ));
        }
        Ok(())
    }
}
