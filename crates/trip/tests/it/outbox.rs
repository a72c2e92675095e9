//! Notices whose publish fails after their commit still arrive: the outbox relay publishes them
//! once the bus is back — the offer reaches the driver, the completion reaches the rider (whose
//! `/v1/ws` then stops forwarding the driver's position). On SQLite and on PostgreSQL.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use domain::events::Event;
use platform::bus::{
    Bus, BusError, Envelope, InProcessBus, SharedBus, SubscribeOptions, Subscription,
};
use trip::{Action, TripNotice, TripStore};

use crate::service::Harness;

/// A bus whose publishes fail while it is down (as a NATS outage, or a process killed between
/// its commit and its publish, looks to the notices).
struct FlakyBus {
    inner: InProcessBus,
    down: AtomicBool,
}

#[async_trait]
impl Bus for FlakyBus {
    async fn publish(&self, envelope: Envelope) -> Result<(), BusError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(BusError::Backend("the bus is down (test)".into()));
        }
        self.inner.publish(envelope).await
    }

    async fn subscribe(&self, options: SubscribeOptions) -> Result<Subscription, BusError> {
        self.inner.subscribe(options).await
    }
}

/// The notices `sub` delivers until it is quiet for half a second.
async fn notices(sub: &mut Subscription) -> Vec<TripNotice> {
    let mut got = Vec::new();
    while let Ok(Some(delivery)) =
        tokio::time::timeout(Duration::from_millis(500), sub.next()).await
    {
        got.push(delivery.envelope.decode().expect("a notice"));
        delivery.ack().await.expect("acked");
    }
    got
}

async fn notices_lost_after_their_commit_are_relayed(store: Arc<dyn TripStore>) {
    let bus = Arc::new(FlakyBus {
        inner: InProcessBus::new(),
        down: AtomicBool::new(false),
    });
    let mut sub = bus
        .subscribe(SubscribeOptions::ephemeral(TripNotice::SUBJECT))
        .await
        .expect("subscribes");
    let h = Harness::on(store, bus.clone() as SharedBus).await;
    let rider = h.rider();
    let driver = h.driver(300.0);

    bus.down.store(true, Ordering::SeqCst);
    let id = h.book(&rider).await;
    let round = h.dispatcher.round(h.at(1_000)).await.expect("round");
    assert!(round.offers >= 1, "{round:?}");
    assert!(notices(&mut sub).await.is_empty(), "nothing got through");

    bus.down.store(false, Ordering::SeqCst);
    let relayed = h
        .service
        .outbox()
        .relay_once(Duration::ZERO)
        .await
        .expect("relayed");
    assert_eq!(relayed, 2, "the booking's notice and the offer");
    let got = notices(&mut sub).await;
    let offer = got
        .iter()
        .find(|n| n.kind == "trip.offered")
        .expect("the offer is relayed");
    assert_eq!(offer.recipients, [driver.account], "to the driver");
    assert_eq!(offer.trip.id, id);

    // The trip goes on; the completion's publish is lost too.
    for action in [Action::Accept, Action::Arrive, Action::Start] {
        h.service
            .act_at(&driver, id, action, h.at(2_000))
            .await
            .expect("legal");
    }
    assert_eq!(notices(&mut sub).await.len(), 3, "published at once");
    bus.down.store(true, Ordering::SeqCst);
    h.service
        .act_at(&driver, id, Action::Complete, h.at(3_000))
        .await
        .expect("completed");
    bus.down.store(false, Ordering::SeqCst);
    let outbox = h.service.outbox();
    assert_eq!(outbox.relay_once(Duration::ZERO).await.expect("relayed"), 1);
    let got = notices(&mut sub).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].kind, "trip.completed");
    assert!(got[0].recipients.contains(&rider.account), "to the rider");
    // What the fast path published is forgotten, not sent again.
    assert_eq!(outbox.relay_once(Duration::ZERO).await.expect("relayed"), 0);
    assert!(notices(&mut sub).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pool = platform::store::open_sqlite(&dir.path().join("trip.db"))
        .await
        .expect("sqlite");
    let store = trip::SqliteTripStore::new(pool).await.expect("migrates");
    notices_lost_after_their_commit_are_relayed(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres() {
    let store = crate::postgres::fresh_store("outbox_relay").await;
    notices_lost_after_their_commit_are_relayed(Arc::new(store)).await;
}
