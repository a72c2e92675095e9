//! `TripService`: the `TripApi` over a store, the bus and the quote key. Every change runs the
//! domain's `apply` on the stored trip and writes the result with a compare-and-set; a write that
//! lost a race re-reads and re-applies, so concurrent commands serialise into one legal history.

use std::sync::Arc;

use async_trait::async_trait;
use domain::trip::{self, Command, Party, Trip, TripEvent, TripPolicy, TripState};
use domain::{AccountId, Role, Timestamp, TripId};
use futures_util::StreamExt;
use payment::{Authorize, PaymentApi};
use platform::bus::SharedBus;
use platform::clock;
use platform::idempotency::{self, Once};
use platform::outbox::Outbox;
use pricing::{QuoteBook, QuoteError};

use crate::store::{Change, NewNotice, StoreError, Stored, TripRecord, TripStore};
use crate::view::TripView;
use crate::{Action, BookTrip, Caller, NoticeKind, TripApi, TripError, TripNotice};

/// A compare-and-set that keeps losing is retried this often before the caller gets a 503.
const MAX_ATTEMPTS: usize = 16;
/// Offers written in one transaction by a dispatch round.
const OFFERS_PER_COMMIT: usize = 32;
/// Longest page of `list` and `notices`.
pub const MAX_PAGE: u32 = 200;

#[derive(Clone)]
pub struct TripService {
    store: Arc<dyn TripStore>,
    /// Where the notices committed with each change go: published after the commit, relayed
    /// again if that publish is lost.
    outbox: Outbox,
    quotes: QuoteBook,
    policy: TripPolicy,
    /// Holds a booking's fare before the trip is stored.
    payments: Arc<dyn PaymentApi>,
    /// Where drivers are (the dispatcher's fleet mirror), for the arrival rule.
    arrival: Option<Arrival>,
}

/// The arrival rule: a driver arrives within `radius_m` of the pickup, by their last position.
#[derive(Clone)]
struct Arrival {
    fleet: Arc<std::sync::Mutex<matching::Fleet>>,
    radius_m: f64,
}

/// How long an arrival far from the pickup waits for a newer position of the driver's (supply
/// coalesces a driver's positions to one a second) before it is refused.
const ARRIVAL_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl TripService {
    pub fn new(
        store: Arc<dyn TripStore>,
        bus: SharedBus,
        quotes: QuoteBook,
        policy: TripPolicy,
        payments: Arc<dyn PaymentApi>,
    ) -> Self {
        let outbox = Outbox::new("trip", bus, store.outbox());
        Self {
            store,
            outbox,
            quotes,
            policy,
            payments,
            arrival: None,
        }
    }

    /// The service with the arrival rule: `arrive` needs the driver's last position in `fleet`
    /// within `radius_m` of the pickup (0: no rule).
    pub fn with_arrival_rule(
        mut self,
        fleet: Arc<std::sync::Mutex<matching::Fleet>>,
        radius_m: f64,
    ) -> Self {
        self.arrival = (radius_m > 0.0).then_some(Arrival { fleet, radius_m });
        self
    }

    /// Refuses (409) an arrival of `driver` at `record`'s pickup from farther than the rule
    /// allows, after waiting briefly for a newer position.
    async fn at_pickup(&self, record: &TripRecord, driver: AccountId) -> Result<(), TripError> {
        let Some(arrival) = &self.arrival else {
            return Ok(());
        };
        if record.trip.state.driver() != Some(driver) {
            return Ok(()); // not this driver's to arrive: the transition says so
        }
        let distance = || {
            arrival
                .fleet
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .position(&driver)
                .map(|at| at.distance_m(&record.pickup))
        };
        let deadline = tokio::time::Instant::now() + ARRIVAL_WAIT;
        loop {
            let now = distance();
            if now.is_some_and(|d| d <= arrival.radius_m) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let Some(d) = now else {
                    // Every assigned driver shared a position (dispatch offers no trip without
                    // one); a mirror that has none started after it (a restarted instance), and
                    // cannot judge: the arrival is let through, and counted.
                    metrics::counter!("trip_arrivals_unverified_total").increment(1);
                    return Ok(());
                };
                metrics::counter!("trip_arrivals_refused_total").increment(1);
                return Err(TripError::Conflict(format!(
                    "you are {d:.0} m from the pickup; arrive within {:.0} m of it",
                    arrival.radius_m
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    pub fn store(&self) -> &Arc<dyn TripStore> {
        &self.store
    }

    /// The outbox of the trip notices; run its relay (`Outbox::relay`) wherever the service runs.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    pub fn policy(&self) -> &TripPolicy {
        &self.policy
    }

    pub(crate) fn view(&self, record: &TripRecord) -> TripView {
        TripView::of(record, &self.policy)
    }

    /// The view `caller` may see: a rider learns the driver once one is assigned, not who is
    /// being offered the trip; a driver who declined or missed it sees its state, not who took it
    /// or what anyone paid.
    fn view_for(&self, record: &TripRecord, caller: &Caller) -> TripView {
        let mut view = self.view(record);
        let offered = matches!(record.trip.state, TripState::Offered { .. });
        let past_driver =
            caller.role == Role::Driver && record.trip.state.driver() != Some(caller.account);
        if (caller.role == Role::Rider && offered) || past_driver {
            view.driver_id = None;
            view.offer_expires_at = None;
        }
        if past_driver {
            view.assigned_at = None;
            view.arrived_at = None;
            view.cancelled_by = None;
            view.cancellation_fee = None;
        }
        view
    }

    async fn load(&self, id: TripId) -> Result<TripRecord, TripError> {
        self.store
            .get(id)
            .await
            .map_err(store_error)?
            .ok_or(TripError::NotFound(id))
    }

    /// Applies `command(record)` to trip `id` at `now` and stores the result, re-reading and
    /// re-applying when another writer got there first. `command` also decides who may act.
    pub(crate) async fn transition(
        &self,
        id: TripId,
        now: Timestamp,
        command: impl Fn(&TripRecord) -> Result<Command, TripError>,
    ) -> Result<TripRecord, TripError> {
        for _ in 0..MAX_ATTEMPTS {
            let record = self.load(id).await?;
            let command = command(&record)?;
            let (next_trip, events) = trip::apply(&record.trip, command, now, &self.policy)
                .map_err(|e| TripError::from_transition(e, id))?;
            let next = TripRecord {
                trip: next_trip,
                updated_at: now,
                ..record.clone()
            };
            let notices = self.notices(&record.trip, &next, &events, now);
            match self
                .store
                .update(&next, record.trip.version, &notices)
                .await
            {
                Ok(stored) => {
                    metrics::counter!("trip_transitions_total", "command" => command.name())
                        .increment(1);
                    self.publish(stored).await;
                    return Ok(next);
                }
                Err(StoreError::Stale) => continue,
                Err(StoreError::DriverBusy) => {
                    return Err(TripError::Conflict(
                        "this driver already has an active trip; finish or cancel it first".into(),
                    ));
                }
                Err(e) => return Err(store_error(e)),
            }
        }
        Err(TripError::Unavailable(format!(
            "trip {id} is changing too fast; try again"
        )))
    }

    /// Offers each trip to its driver, [`OFFERS_PER_COMMIT`] to a transaction (one commit for
    /// many, not one a trip). A trip that changed since its record was read, or that cannot be offered
    /// to that driver any more, is skipped: the next round sees it as it is. Returns how many
    /// were offered.
    pub(crate) async fn offer_all(
        &self,
        offers: Vec<(TripRecord, AccountId)>,
        now: Timestamp,
    ) -> Result<u64, TripError> {
        let mut changes = Vec::with_capacity(offers.len());
        for (record, driver) in offers {
            let Ok((next_trip, events)) =
                trip::apply(&record.trip, Command::Offer { driver }, now, &self.policy)
            else {
                continue;
            };
            let next = TripRecord {
                trip: next_trip,
                updated_at: now,
                ..record.clone()
            };
            let notices = self.notices(&record.trip, &next, &events, now);
            changes.push(Change {
                next,
                expected_version: record.trip.version,
                notices,
            });
        }
        let mut offered = 0;
        // A few dozen offers a transaction: one commit for many, while the other writers
        // (accepts, bookings) still get the database between two chunks of a large round.
        // Several chunks are written at once: PostgreSQL commits them in parallel, SQLite in one
        // group commit.
        let mut chunks = Vec::new();
        let mut rest = changes;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(OFFERS_PER_COMMIT));
            chunks.push(rest);
            rest = tail;
        }
        let writes = chunks.into_iter().map(|chunk| {
            let (store, outbox) = (self.store.clone(), self.outbox.clone());
            async move {
                let outcomes = store.update_many(&chunk).await.map_err(store_error)?;
                let mut rows = Vec::new();
                let mut offered = 0;
                for stored in outcomes.into_iter().flatten() {
                    offered += 1;
                    rows.extend(stored.into_iter().map(|s| s.outbox));
                }
                outbox.publish_committed(rows).await;
                Ok::<u64, TripError>(offered)
            }
        });
        let mut chunks = futures_util::stream::iter(writes)
            .buffer_unordered(self.store.concurrent_writes().max(1));
        while let Some(chunk) = chunks.next().await {
            offered += chunk?;
        }
        metrics::counter!("trip_transitions_total", "command" => "offer").increment(offered);
        Ok(offered)
    }

    /// Who hears of a change: the rider of every change of state they can see, the driver of
    /// their offers and of the trip while it is theirs.
    fn notices(
        &self,
        before: &Trip,
        next: &TripRecord,
        events: &[TripEvent],
        at: Timestamp,
    ) -> Vec<NewNotice> {
        let rider = Some(next.trip.rider);
        let view = self.view(next);
        events
            .iter()
            .map(|event| {
                let (kind, rider, driver) = match *event {
                    TripEvent::Offered { driver } => (NoticeKind::Offered, None, Some(driver)),
                    TripEvent::OfferDeclined { driver } | TripEvent::OfferExpired { driver } => {
                        (NoticeKind::OfferWithdrawn, None, Some(driver))
                    }
                    TripEvent::DriverAssigned { driver } => {
                        (NoticeKind::DriverAssigned, rider, Some(driver))
                    }
                    TripEvent::DriverArrived { driver } => {
                        (NoticeKind::DriverArrived, rider, Some(driver))
                    }
                    TripEvent::Started { driver } => (NoticeKind::Started, rider, Some(driver)),
                    TripEvent::Completed { driver } => (NoticeKind::Completed, rider, Some(driver)),
                    TripEvent::Redispatched { cancelled_by } => {
                        (NoticeKind::Redispatched, rider, Some(cancelled_by))
                    }
                    TripEvent::Cancelled { .. } => {
                        (NoticeKind::Cancelled, rider, before.state.driver())
                    }
                    TripEvent::NoDriversFound => (NoticeKind::NoDriversFound, rider, None),
                };
                NewNotice {
                    kind,
                    rider,
                    driver,
                    trip: view.clone(),
                    at,
                }
            })
            .collect()
    }

    /// Live delivery of what was just committed; a notice whose publish fails now is relayed from
    /// the outbox later (and is in the log for a client that reconnects meanwhile).
    async fn publish(&self, stored: Vec<Stored>) {
        self.outbox
            .publish_committed(stored.into_iter().map(|s| s.outbox).collect())
            .await;
    }

    /// The caller may see the trip: its rider, or the driver it is (or was) offered or assigned to.
    fn visible(record: &TripRecord, caller: &Caller) -> bool {
        match caller.role {
            Role::Rider => record.trip.rider == caller.account,
            Role::Driver => {
                record.trip.state.driver() == Some(caller.account)
                    || record.trip.excluded.contains(&caller.account)
            }
            // Operations reads trips through its own routes, not as a party to them.
            Role::Admin => false,
        }
    }

    pub async fn book_at(
        &self,
        caller: &Caller,
        request: BookTrip,
        now: Timestamp,
    ) -> Result<TripView, TripError> {
        if caller.role != Role::Rider {
            return Err(TripError::Forbidden("only riders book trips".into()));
        }
        let quote =
            self.quotes
                .verify(&request.quote_id, now)
                .map_err(|e| TripError::InvalidField {
                    field: "quote_id",
                    message: match e {
                        QuoteError::Expired => e.to_string(),
                        QuoteError::Invalid(_) => {
                            "this is not a quote issued by POST /v1/trips/preview".into()
                        }
                    },
                })?;
        if quote.rider != caller.account {
            return Err(TripError::InvalidField {
                field: "quote_id",
                message: "this quote was made for another account".into(),
            });
        }
        let fare = quote
            .fare(request.package)
            .ok_or_else(|| TripError::InvalidField {
                field: "package",
                message: format!("the quote has no fare for {}", request.package),
            })?;
        if let Some(existing) = self.store.by_quote(quote.id).await.map_err(store_error)? {
            return self.rebooked(existing, caller, request);
        }
        // The trip takes its quote's id: two bookings of one quote racing each other are the same
        // trip, so they share one authorization (the payment service's is per trip).
        let id = TripId::from_uuid(quote.id);
        self.payments
            .authorize(Authorize {
                trip: id,
                rider: caller.account,
                fare,
                payment_method: request.payment_method.clone(),
            })
            .await
            .map_err(TripError::Payment)?;
        let record = TripRecord {
            id,
            quote_id: quote.id,
            package: request.package,
            pickup: quote.pickup,
            dropoff: quote.dropoff,
            route: quote.route,
            fare,
            trip: Trip::new(caller.account, now),
            updated_at: now,
        };
        let notice = NewNotice {
            kind: NoticeKind::Requested,
            rider: Some(caller.account),
            driver: None,
            trip: self.view(&record),
            at: now,
        };
        match self.store.create(&record, &[notice]).await {
            Ok(stored) => {
                metrics::counter!("trips_booked_total", "package" => request.package.name())
                    .increment(1);
                tracing::info!(trip = %record.id, package = request.package.name(), "trip booked");
                self.publish(stored).await;
                Ok(self.view(&record))
            }
            Err(StoreError::QuoteUsed) => {
                let existing = self
                    .store
                    .by_quote(quote.id)
                    .await
                    .map_err(store_error)?
                    .ok_or_else(|| TripError::Store("a booked quote vanished".into()))?;
                self.rebooked(existing, caller, request)
            }
            Err(e) => {
                // A racing booking of the same quote may have stored this very trip (sharing the
                // hold): then it is the answer, and the hold is not ours to let go.
                if let Ok(Some(existing)) = self.store.get(id).await {
                    return self.rebooked(existing, caller, request);
                }
                self.release_hold(id).await;
                Err(match e {
                    StoreError::RiderBusy => TripError::Conflict(
                        "you already have an open trip; cancel it or wait for it to end".into(),
                    ),
                    e => store_error(e),
                })
            }
        }
    }

    /// Runs `run` once per `(caller, op, key)` (`platform::idempotency`): a repeat with the same
    /// parameters gets the stored answer, other parameters a 422, a repeat while the first runs a
    /// 409. An answer that says "try again" frees the key.
    async fn once<F, Fut>(
        &self,
        op: &str,
        caller: &Caller,
        key: &str,
        fingerprint: String,
        run: F,
    ) -> Result<TripView, TripError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<TripView, TripError>>,
    {
        idempotency::valid_key(key).map_err(|message| TripError::InvalidField {
            field: "Idempotency-Key",
            message,
        })?;
        let scope = format!("{op}:{}", caller.account);
        // Answers that say "try again" (or "confirm, then book again") are not kept: the retry
        // with the same key must run.
        let keep = |result: &Result<TripView, TripError>| {
            !matches!(
                result,
                Err(TripError::Unavailable(_)
                    | TripError::Store(_)
                    | TripError::Remote(_)
                    | TripError::Conflict(_)
                    | TripError::Payment(
                        payment::PaymentError::Unavailable(_)
                            | payment::PaymentError::Conflict(_)
                            | payment::PaymentError::ConfirmationRequired(_)
                    ))
            )
        };
        let once = self
            .store
            .idempotency()
            .once(&scope, key, &fingerprint, clock::now(), keep, run)
            .await
            .map_err(TripError::Store)?;
        match once {
            Once::Answered(result) => result,
            Once::Mismatch => Err(TripError::InvalidField {
                field: "Idempotency-Key",
                message:
                    "this key was used with other parameters; send a new key for a new request"
                        .into(),
            }),
            Once::InFlight => Err(TripError::Conflict(
                "a request with this Idempotency-Key is still running; retry it in a moment".into(),
            )),
        }
    }

    /// Lets go of the hold of a booking that was not stored (best effort: a hold left behind
    /// expires at the provider, and the payment service follows its webhook).
    async fn release_hold(&self, trip: TripId) {
        if let Err(e) = self.payments.void(trip).await {
            tracing::warn!(%trip, error = %e, "cannot release the hold of a booking that failed");
        }
    }

    /// A quote booked again: the same trip (idempotent), unless the package differs.
    fn rebooked(
        &self,
        existing: TripRecord,
        caller: &Caller,
        request: BookTrip,
    ) -> Result<TripView, TripError> {
        if existing.trip.rider != caller.account {
            return Err(TripError::Store("a quote booked by another rider".into()));
        }
        if existing.package != request.package {
            return Err(TripError::Conflict(format!(
                "this quote was booked already, as {}; preview again for another package",
                existing.package
            )));
        }
        Ok(self.view(&existing))
    }

    pub async fn act_at(
        &self,
        caller: &Caller,
        id: TripId,
        action: Action,
        now: Timestamp,
    ) -> Result<TripView, TripError> {
        if action.drivers_only() && caller.role != Role::Driver {
            return Err(TripError::Forbidden(format!(
                "only drivers {} trips",
                action.name()
            )));
        }
        let me = caller.account;
        let command = |record: &TripRecord| {
            if !Self::visible(record, caller) {
                return Err(TripError::NotFound(id));
            }
            Ok(match action {
                Action::Accept => Command::Accept { driver: me },
                Action::Decline => Command::Decline { driver: me },
                Action::Arrive => Command::Arrive { driver: me },
                Action::Start => Command::Start { driver: me },
                Action::Complete => Command::Complete { driver: me },
                Action::Cancel => match caller.role {
                    Role::Rider => Command::Cancel {
                        by: Party::Rider,
                        driver: None,
                    },
                    Role::Driver => Command::Cancel {
                        by: Party::Driver,
                        driver: Some(me),
                    },
                    Role::Admin => {
                        return Err(TripError::Forbidden(
                            "only the trip's rider or driver acts on it".into(),
                        ));
                    }
                },
            })
        };
        if action == Action::Arrive && self.arrival.is_some() {
            let record = self.load(id).await?;
            if !Self::visible(&record, caller) {
                return Err(TripError::NotFound(id));
            }
            self.at_pickup(&record, me).await?;
        }
        match self.transition(id, now, command).await {
            Ok(next) => Ok(self.view_for(&next, caller)),
            // The same accept sent twice: the second sees its own result.
            Err(TripError::Illegal { .. }) if action == Action::Accept => {
                let record = self.load(id).await?;
                if record.active_driver() == Some(me) {
                    Ok(self.view(&record))
                } else {
                    Err(TripError::from_transition(
                        domain::trip::TransitionError::Illegal {
                            state: record.trip.state.name(),
                            command: "accept",
                        },
                        id,
                    ))
                }
            }
            Err(e) => Err(e),
        }
    }
}

fn store_error(e: StoreError) -> TripError {
    TripError::Store(e.to_string())
}

fn page(limit: u32) -> u32 {
    limit.clamp(1, MAX_PAGE)
}

#[async_trait]
impl TripApi for TripService {
    #[tracing::instrument(skip_all, fields(rider = %caller.account))]
    async fn book(&self, caller: &Caller, request: BookTrip) -> Result<TripView, TripError> {
        let Some(key) = request.idempotency_key.clone() else {
            return self.book_at(caller, request, clock::now()).await;
        };
        let fingerprint =
            serde_json::json!([request.quote_id, request.package, request.payment_method])
                .to_string();
        self.once("book", caller, &key, fingerprint, || {
            self.book_at(caller, request, clock::now())
        })
        .await
    }

    async fn get(&self, caller: &Caller, id: TripId) -> Result<TripView, TripError> {
        let record = self.load(id).await?;
        if !Self::visible(&record, caller) {
            return Err(TripError::NotFound(id));
        }
        Ok(self.view_for(&record, caller))
    }

    async fn list(&self, caller: &Caller, limit: u32) -> Result<Vec<TripView>, TripError> {
        let records = self
            .store
            .list_for(caller.account, page(limit))
            .await
            .map_err(store_error)?;
        Ok(records
            .iter()
            .filter(|r| Self::visible(r, caller))
            .map(|r| self.view_for(r, caller))
            .collect())
    }

    #[tracing::instrument(skip_all, fields(trip = %id, action = action.name()))]
    async fn act_keyed(
        &self,
        caller: &Caller,
        id: TripId,
        action: Action,
        idempotency_key: Option<String>,
    ) -> Result<TripView, TripError> {
        let Some(key) = idempotency_key else {
            return self.act_at(caller, id, action, clock::now()).await;
        };
        let fingerprint = serde_json::json!([id, action]).to_string();
        self.once("act", caller, &key, fingerprint, || {
            self.act_at(caller, id, action, clock::now())
        })
        .await
    }

    async fn notice_head(&self) -> Result<i64, TripError> {
        self.store.notice_head().await.map_err(store_error)
    }

    async fn notices(
        &self,
        caller: &Caller,
        after: i64,
        limit: u32,
    ) -> Result<Vec<TripNotice>, TripError> {
        self.store
            .notices_for(caller.account, after, page(limit))
            .await
            .map_err(store_error)
    }
}
