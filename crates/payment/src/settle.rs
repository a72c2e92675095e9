//! Settling payments when trips end: a durable consumer of the trip notices (one instance of the
//! group gets each), reading only what it needs of them — the payment service's own view of the
//! trip service's event, so the two crates do not depend on each other's types.

use domain::events::Event;
use domain::{AccountId, TripId};
use platform::Shutdown;
use platform::bus::{self, BusError, Handled, SharedBus, SubscribeOptions, Subscription};
use serde::{Deserialize, Serialize};

use crate::PaymentError;
use crate::service::{Outcome, PaymentService};

/// `trip.notice.v1`, as much of it as settling needs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct TripNotice {
    kind: String,
    trip: NoticeTrip,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct NoticeTrip {
    id: TripId,
    driver_id: Option<AccountId>,
    fare: Amount,
    #[serde(default)]
    cancellation_fee: Option<Amount>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Amount {
    amount: u64,
}

impl Event for TripNotice {
    const SUBJECT: &'static str = "trip.notice.v1";
}

impl TripNotice {
    fn outcome(&self) -> Option<Outcome> {
        match self.kind.as_str() {
            "trip.completed" => Some(Outcome::Completed {
                fare: self.trip.fare.amount,
                driver: self.trip.driver_id?,
            }),
            "trip.cancelled" => Some(Outcome::Cancelled {
                fee: self.trip.cancellation_fee.map_or(0, |f| f.amount),
                driver: self.trip.driver_id,
            }),
            "trip.no_drivers_found" => Some(Outcome::NoDriver),
            _ => None,
        }
    }
}

/// Attempts before a notice is dead-lettered: with the bus's backoff (capped at 10 s) about an
/// hour of a provider outage.
const MAX_DELIVER: u32 = 360;

pub(crate) async fn subscribe(bus: &SharedBus) -> Result<Subscription, BusError> {
    let mut options = SubscribeOptions::durable(TripNotice::SUBJECT, "payment-settle");
    options.max_deliver = MAX_DELIVER;
    bus.subscribe(options).await
}

/// Trips settled at once. A settlement waits on the provider (a capture, a release); the other
/// notices, most of them, are skipped at once, and must not queue behind it: on the in-process
/// bus a full queue here would refuse the trip service's next notices (its offers) to everyone.
const SETTLING_AT_ONCE: usize = 32;

pub(crate) fn run(service: PaymentService, notices: Subscription, shutdown: &Shutdown) {
    shutdown.spawn(bus::consume_concurrently(
        notices,
        shutdown.token(),
        "payment.settle",
        SETTLING_AT_ONCE,
        move |notice: TripNotice, _| {
            let service = service.clone();
            async move {
                let Some(outcome) = notice.outcome() else {
                    return Handled::Done;
                };
                match service.settle(notice.trip.id, outcome).await {
                    Ok(()) => Handled::Done,
                    Err(e @ (PaymentError::Unavailable(_) | PaymentError::Conflict(_))) => {
                        Handled::Retry(e.to_string())
                    }
                    Err(e) => {
                        tracing::error!(trip = %notice.trip.id, error = %e, "cannot settle a trip's payment");
                        Handled::Done
                    }
                }
            }
        },
    ));
}
