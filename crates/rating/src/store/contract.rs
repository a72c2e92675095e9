//! The contract every rating store must pass; instantiate with `rating_store_contract!`.

use domain::rating::Stars;
use domain::{CarNumber, PersonName, Timestamp};

use super::{DriverRef, RatingStore};

fn name(s: &str) -> PersonName {
    PersonName::parse(s).expect("valid name")
}

fn car(s: &str) -> CarNumber {
    CarNumber::parse(s).expect("valid car")
}

fn stars(n: i64) -> Stars {
    Stars::new(n).expect("valid stars")
}

/// A name unique to this run, so stores backed by a shared server need no cleanup.
pub fn unique(base: &str) -> String {
    // The random tail of a v7 UUID: short enough for a car number.
    let id = uuid::Uuid::now_v7().simple().to_string();
    format!("{base}-{}", &id[20..])
}

pub async fn a_known_driver_is_found_by_name_and_car(store: &dyn RatingStore) {
    let driver = name(&unique("Karim"));
    let plate = car(&unique("DHA"));
    assert_eq!(
        store
            .find_driver(&DriverRef::Name(driver.clone()))
            .await
            .expect("query"),
        None
    );
    store
        .remember_driver(&driver, &plate, Timestamp::from_millis(1))
        .await
        .expect("remember");
    store
        .remember_driver(&driver, &plate, Timestamp::from_millis(2))
        .await
        .expect("idempotent");
    let by_name = store
        .find_driver(&DriverRef::Name(driver.clone()))
        .await
        .expect("query")
        .expect("known");
    assert_eq!(by_name.car_number, plate);
    let by_car = store
        .find_driver(&DriverRef::Car(plate))
        .await
        .expect("query")
        .expect("known");
    assert_eq!(by_car.name, driver);
}

/// A batch of reports is the same as each in turn: the latest report wins, even within it.
pub async fn a_batch_of_reports_is_remembered_in_order(store: &dyn RatingStore) {
    let (first, second) = (name(&unique("Rahim")), name(&unique("Salma")));
    let (old_plate, new_plate) = (car(&unique("OLD")), car(&unique("NEW")));
    store
        .remember_drivers(&[
            (first.clone(), old_plate.clone(), Timestamp::from_millis(1)),
            (first.clone(), new_plate.clone(), Timestamp::from_millis(2)),
            (second.clone(), old_plate.clone(), Timestamp::from_millis(3)),
        ])
        .await
        .expect("remembered");
    let found = |driver: DriverRef| async move {
        store
            .find_driver(&driver)
            .await
            .expect("query")
            .expect("known")
    };
    assert_eq!(
        found(DriverRef::Name(first.clone())).await.car_number,
        new_plate
    );
    assert_eq!(found(DriverRef::Car(new_plate)).await.name, first);
    assert_eq!(found(DriverRef::Car(old_plate)).await.name, second);
    store
        .remember_drivers(&[])
        .await
        .expect("nothing to remember");
}

pub async fn a_car_belongs_to_its_latest_driver(store: &dyn RatingStore) {
    let plate = car(&unique("CAR"));
    let first = name(&unique("first"));
    let second = name(&unique("second"));
    store
        .remember_driver(&first, &plate, Timestamp::from_millis(10))
        .await
        .expect("remember");
    store
        .remember_driver(&second, &plate, Timestamp::from_millis(20))
        .await
        .expect("remember");
    let found = store
        .find_driver(&DriverRef::Car(plate.clone()))
        .await
        .expect("query")
        .expect("known");
    assert_eq!(found.name, second);
    store
        .remember_driver(&first, &plate, Timestamp::from_millis(30))
        .await
        .expect("remember");
    let found = store
        .find_driver(&DriverRef::Car(plate.clone()))
        .await
        .expect("query")
        .expect("known");
    assert_eq!(
        found.name, first,
        "the first driver reported the car again, last"
    );
    let other = car(&unique("NEW"));
    store
        .remember_driver(&first, &other, Timestamp::from_millis(40))
        .await
        .expect("remember");
    let found = store
        .find_driver(&DriverRef::Car(plate))
        .await
        .expect("query")
        .expect("known");
    assert_eq!(found.name, second, "the first driver moved to another car");
    store
        .remember_driver(&first, &car(&unique("OLD")), Timestamp::from_millis(35))
        .await
        .expect("remember");
    let found = store
        .find_driver(&DriverRef::Name(first))
        .await
        .expect("query")
        .expect("known");
    assert_eq!(
        found.car_number, other,
        "an older report never overrides a newer one"
    );
}

pub async fn ratings_accumulate_into_a_summary(store: &dyn RatingStore) {
    let driver = name(&unique("Rahim"));
    store
        .remember_driver(&driver, &car(&unique("X")), Timestamp::from_millis(1))
        .await
        .expect("remember");
    let empty = store.summary(&driver).await.expect("summary");
    assert_eq!((empty.count, empty.average), (0, None));
    let mut last = empty;
    let mut seqs = Vec::new();
    for n in [5, 4, 3, 4] {
        let (summary, pending) = store
            .add_rating(
                uuid::Uuid::now_v7(),
                &driver,
                stars(n),
                Timestamp::from_millis(2),
                &announcement(&driver),
            )
            .await
            .expect("rating stored");
        last = summary;
        seqs.push(pending.seq);
    }
    assert_eq!((last.count, last.average), (4, Some(4.0)));
    assert_eq!(store.summary(&driver).await.expect("summary"), last);
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "each rating has its own outbox row: {seqs:?}"
    );
}

/// A `DriverRated`-like announcement of a rating of `driver`.
fn announcement(driver: &PersonName) -> platform::bus::Envelope {
    platform::bus::contract::envelope("rating.driver_rated.v1", driver.as_str())
}

pub async fn an_announcement_left_in_the_outbox_is_relayed_once(store: &dyn RatingStore) {
    use platform::bus::{Bus, InProcessBus, SubscribeOptions};

    let driver = name(&unique("Salma"));
    store
        .remember_driver(&driver, &car(&unique("Y")), Timestamp::from_millis(1))
        .await
        .expect("remember");
    let (_, pending) = store
        .add_rating(
            uuid::Uuid::now_v7(),
            &driver,
            stars(5),
            Timestamp::from_millis(2),
            &announcement(&driver),
        )
        .await
        .expect("rating stored");
    let bus = InProcessBus::new();
    let mut sub = bus
        .subscribe(SubscribeOptions::ephemeral("rating.>"))
        .await
        .expect("subscribes");
    let outbox = store.outbox();
    let after_it = pending.envelope.occurred_at.plus_millis(1);
    outbox
        .relay_older(after_it, 100_000, &bus)
        .await
        .expect("relays");
    let quiet = std::time::Duration::from_millis(300);
    let relayed = platform::bus::contract::drain(&mut sub, quiet).await;
    assert_eq!(
        relayed
            .iter()
            .filter(|e| e.id == pending.envelope.id)
            .count(),
        1,
        "relayed once, with the id it was written with"
    );
    outbox
        .relay_older(after_it, 100_000, &bus)
        .await
        .expect("relays");
    let again = platform::bus::contract::drain(&mut sub, quiet).await;
    assert!(
        again.iter().all(|e| e.id != pending.envelope.id),
        "a relayed row is gone"
    );
}

pub async fn a_rating_of_an_unknown_driver_is_refused(store: &dyn RatingStore) {
    let ghost = name(&unique("ghost"));
    let result = store
        .add_rating(
            uuid::Uuid::now_v7(),
            &ghost,
            stars(3),
            Timestamp::from_millis(1),
            &announcement(&ghost),
        )
        .await;
    assert!(
        result.is_err(),
        "the store must not hold ratings of drivers it does not know"
    );
    assert_eq!(store.summary(&ghost).await.expect("summary").count, 0);
}

/// One `#[tokio::test]` per clause for the store built by `$make` (an async block).
#[macro_export]
macro_rules! rating_store_contract {
    ($make:expr) => {
        $crate::rating_store_contract!(@tests $make;
            a_known_driver_is_found_by_name_and_car,
            a_car_belongs_to_its_latest_driver,
            a_batch_of_reports_is_remembered_in_order,
            ratings_accumulate_into_a_summary,
            a_rating_of_an_unknown_driver_is_refused,
            an_announcement_left_in_the_outbox_is_relayed_once,
        );
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let store = $make.await;
                $crate::store::contract::$name(&store).await;
            }
        )*
    };
}
