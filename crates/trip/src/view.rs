//! What clients see of a trip (the JSON of `GET /v1/trips/{id}` and of every notice). Excluded
//! drivers stay private: a rider never learns who declined.

use domain::pricing::RouteEstimate;
use domain::trip::{Party, TripPolicy, TripState, TripStatus};
use domain::{AccountId, LatLng, Package, Timestamp, TripId};
use serde::{Deserialize, Serialize};

use crate::store::TripRecord;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    /// Minor units (poisha).
    pub amount: u64,
    pub currency: String,
}

impl Money {
    pub fn bdt(amount: u64) -> Self {
        Self {
            amount,
            currency: domain::fare::CURRENCY.to_owned(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TripView {
    pub id: TripId,
    pub status: TripStatus,
    pub rider_id: AccountId,
    pub driver_id: Option<AccountId>,
    pub package: Package,
    pub pickup: LatLng,
    pub dropoff: LatLng,
    pub route: RouteEstimate,
    pub fare: Money,
    pub requested_at: Timestamp,
    pub updated_at: Timestamp,
    /// While offered: when the offer lapses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offer_expires_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assigned_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arrived_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled_by: Option<Party>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancellation_fee: Option<Money>,
    /// While a driver is assigned or waiting: until when the rider may cancel free of charge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_cancel_until: Option<Timestamp>,
    /// While a driver is assigned or waiting: what the rider's cancel costs after
    /// `free_cancel_until` (shown before the rider confirms a cancel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_cancel_fee: Option<Money>,
    /// Bumped by every change.
    pub version: u64,
}

impl TripView {
    pub fn of(record: &TripRecord, policy: &TripPolicy) -> Self {
        let state = &record.trip.state;
        let mut view = Self {
            id: record.id,
            status: state.status(),
            rider_id: record.trip.rider,
            driver_id: state.driver(),
            package: record.package,
            pickup: record.pickup,
            dropoff: record.dropoff,
            route: record.route,
            fare: Money::bdt(record.fare),
            requested_at: record.trip.requested_at,
            updated_at: record.updated_at,
            offer_expires_at: None,
            assigned_at: None,
            arrived_at: None,
            cancelled_by: None,
            cancellation_fee: None,
            free_cancel_until: None,
            late_cancel_fee: None,
            version: record.trip.version,
        };
        match *state {
            TripState::Offered { offered_at, .. } => {
                view.offer_expires_at = Some(
                    offered_at
                        .plus_millis(i64::try_from(policy.offer_timeout_ms).unwrap_or(i64::MAX)),
                );
            }
            TripState::DriverAssigned { assigned_at, .. } => {
                view.assigned_at = Some(assigned_at);
                view.cancel_terms(assigned_at, policy);
            }
            TripState::Arrived {
                assigned_at,
                arrived_at,
                ..
            } => {
                view.assigned_at = Some(assigned_at);
                view.arrived_at = Some(arrived_at);
                view.cancel_terms(assigned_at, policy);
            }
            TripState::Cancelled { by, fee, .. } => {
                view.cancelled_by = Some(by);
                view.cancellation_fee = Some(Money::bdt(fee));
            }
            _ => {}
        }
        view
    }

    /// The rider's cancel is free until the window after the assignment closes, then costs the
    /// late fee (`domain::trip::apply` charges exactly this).
    fn cancel_terms(&mut self, assigned_at: Timestamp, policy: &TripPolicy) {
        self.free_cancel_until = Some(
            assigned_at
                .plus_millis(i64::try_from(policy.free_cancel_window_ms).unwrap_or(i64::MAX)),
        );
        self.late_cancel_fee = Some(Money::bdt(policy.late_cancel_fee));
    }
}
