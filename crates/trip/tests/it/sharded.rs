//! Product dispatch on several instances at once: each dispatcher on its own connection to one
//! PostgreSQL database, the shards shared through leases in a real NATS key-value bucket (the
//! server of `RICKSHAW_TEST_NATS_URL`, default this machine's). The same riders and drivers are
//! given to one instance and to three: the three offer as many trips (within 1 %) for as much
//! total pickup distance (within 2 %), and never a driver two trips.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use domain::events::{DriverLocated, DriverStatusChanged};
use domain::trip::TripState;
use domain::{AccountId, LatLng, Package, Role};
use matching::{AllShards, KvLeases, LeaseConfig, Leases};
use platform::Shutdown;
use platform::bus::{InProcessBus, SharedBus};
use pricing::{PricingService, QuoteBook, Router};
use trip::TripsConfig;
use trip::{BookTrip, Caller, Dispatcher, TripService, TripStore};

const KEY: &[u8] = b"test key, thirty-two bytes long!";
const TRIPS: usize = 120;
const DRIVERS: usize = 150;

fn nats_url() -> String {
    std::env::var("RICKSHAW_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// A fixed pseudo-random city: pickups and drivers over 18 × 10 km of Dhaka.
struct City {
    seed: u64,
}

impl City {
    fn next(&mut self) -> f64 {
        // SplitMix64: the same sequence on every machine.
        self.seed = self.seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1_u64 << 53) as f64
    }

    fn place(&mut self) -> LatLng {
        LatLng::new(23.70 + 0.16 * self.next(), 90.35 + 0.10 * self.next()).expect("valid")
    }
}

struct Outcome {
    offered: usize,
    pickup_m: f64,
}

/// Books the city's trips, puts its drivers online, and runs `instances` dispatchers' rounds side
/// by side until no round offers anything more.
async fn dispatch_the_city(test: &str, instances: usize) -> Outcome {
    let config = TripsConfig {
        lease_ttl_ms: 800,
        ..TripsConfig::default()
    };
    crate::postgres::fresh_store(test).await;
    let shutdown = Shutdown::new();
    let bucket = format!("trip_test_{}", uuid::Uuid::now_v7().simple());
    let js = if instances > 1 {
        let client = async_nats::connect(nats_url())
            .await
            .expect("a NATS server with JetStream (set RICKSHAW_TEST_NATS_URL)");
        Some(async_nats::jetstream::new(client))
    } else {
        None
    };
    let mut dispatchers = Vec::new();
    let mut all_leases: Vec<Arc<dyn Leases>> = Vec::new();
    let mut services = Vec::new();
    for i in 0..instances {
        let store: Arc<dyn TripStore> = Arc::new(crate::postgres::store_on(test).await);
        let bus: SharedBus = Arc::new(InProcessBus::new());
        let service = TripService::new(
            store,
            bus.clone(),
            QuoteBook::new(KEY),
            config.policy(),
            Arc::new(crate::NoCharge),
        );
        let leases: Arc<dyn Leases> = match &js {
            None => Arc::new(AllShards(config.shards)),
            Some(js) => KvLeases::start(
                js,
                LeaseConfig {
                    shards: config.shards,
                    ttl: Duration::from_millis(config.lease_ttl_ms),
                    bucket: bucket.clone(),
                    replicas: 1,
                    instance: format!("dispatcher-{i}"),
                    warmup: Duration::ZERO,
                },
                &shutdown,
                None,
            )
            .await
            .expect("leases"),
        };
        let dispatcher = Dispatcher::build(service.clone(), &bus, config.clone(), leases.clone())
            .await
            .expect("builds");
        dispatchers.push(dispatcher);
        all_leases.push(leases);
        services.push(service);
    }
    // The split has settled: together the instances hold every shard, and none holds more than
    // its fair share (so none is still giving shards up: a shard changing hands has no owner for
    // up to a lease, and its trips would wait a round — the comparison is of settled owners).
    let fair = (config.shards as usize).div_ceil(instances);
    let mut split = false;
    for _ in 0..300 {
        let owned: Vec<_> = all_leases.iter().map(|l| l.owned()).collect();
        let union: HashSet<u32> = owned.iter().flatten().copied().collect();
        if owned.iter().all(|o| !o.is_empty() && o.len() <= fair)
            && union.len() == config.shards as usize
        {
            split = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(split, "the {instances} instances never shared the shards");

    let mut city = City { seed: 7 };
    let t0 = platform::clock::now();
    let pricing = PricingService::new(
        Router::straight_line(Default::default()),
        QuoteBook::new(KEY),
        300,
    );
    for _ in 0..TRIPS {
        let rider = Caller::new(AccountId::from_uuid(uuid::Uuid::now_v7()), Role::Rider, "");
        let (pickup, dropoff) = (city.place(), city.place());
        let preview = pricing
            .preview_at(rider.account, pickup, dropoff, t0)
            .await
            .expect("preview");
        services[0]
            .book_at(
                &rider,
                BookTrip {
                    quote_id: preview.quote_id,
                    package: Package::Car,
                    payment_method: None,
                    idempotency_key: None,
                },
                t0,
            )
            .await
            .expect("booked");
    }
    let mut drivers: HashMap<AccountId, LatLng> = HashMap::new();
    for n in 0..DRIVERS {
        let driver = AccountId::from_uuid(uuid::Uuid::from_u128(n as u128 + 1));
        let position = city.place();
        drivers.insert(driver, position);
        for dispatcher in &dispatchers {
            let fleet = dispatcher.fleet();
            let mut fleet = fleet.lock().expect("fleet");
            fleet.status(&DriverStatusChanged {
                driver,
                online: true,
                package: Some(Package::Car),
                at: t0,
            });
            fleet.located(&DriverLocated {
                driver,
                position,
                at: t0,
            });
        }
    }

    // Rounds side by side, as the instances' tickers would run them.
    let mut idle_rounds = 0;
    for k in 1..=20 {
        let now = t0.plus_millis(k * 200);
        let rounds = futures_util::future::join_all(dispatchers.iter().map(|d| d.round(now))).await;
        let offers: usize = rounds.into_iter().map(|r| r.expect("round").offers).sum();
        idle_rounds = if offers == 0 { idle_rounds + 1 } else { 0 };
        if idle_rounds == 2 {
            break;
        }
    }

    let open = services[0]
        .store()
        .open_trips(1_000)
        .await
        .expect("open trips");
    let mut holders = HashSet::new();
    let mut outcome = Outcome {
        offered: 0,
        pickup_m: 0.0,
    };
    for record in open {
        if let TripState::Offered { driver, .. } = record.trip.state {
            assert!(holders.insert(driver), "{driver} was offered two trips");
            outcome.offered += 1;
            outcome.pickup_m += record.pickup.distance_m(&drivers[&driver]);
        }
    }
    assert!(shutdown.complete(Duration::from_secs(5)).await);
    if let Some(js) = js {
        let _ = js.delete_key_value(&bucket).await;
    }
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_dispatchers_offer_what_one_does_and_never_a_driver_twice() {
    let one = dispatch_the_city("sharded_one", 1).await;
    let three = dispatch_the_city("sharded_three", 3).await;
    assert!(one.offered >= TRIPS * 9 / 10, "{} offered", one.offered);
    let counts = (three.offered as f64 - one.offered as f64).abs() / one.offered as f64;
    let distance = (three.pickup_m - one.pickup_m).abs() / one.pickup_m;
    eprintln!(
        "one instance: {} trips offered, {:.0} m of pickups; three: {} trips, {:.0} m",
        one.offered, one.pickup_m, three.offered, three.pickup_m
    );
    assert!(
        counts <= 0.01,
        "offered {} vs {}",
        three.offered,
        one.offered
    );
    assert!(
        distance <= 0.02,
        "pickups {:.0} m vs {:.0} m",
        three.pickup_m,
        one.pickup_m
    );
}
