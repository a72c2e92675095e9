//! The trip service over a real gRPC server on loopback (in-memory SQLite, in-process bus):
//! every field of a view and a notice arrives exactly, errors come back as the same `TripError`,
//! and the server acts only as the account its bearer token proves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use domain::events::{DriverLocated, DriverStatusChanged};
use domain::trip::Party;
use domain::{AccountId, LatLng, Package, Role, TripId};
use platform::bus::{InProcessBus, SharedBus};
use platform::config::TripsConfig;
use platform::{ApiError, ErrorCode};
use pricing::{PricingService, QuoteBook, Router};
use tonic::service::Routes;
use tonic::transport::Channel;
use trip::grpc::{Authenticate, GrpcTrip};
use trip::{
    Action, BookTrip, Caller, Dispatcher, Money, SqliteTripStore, TripApi, TripError, TripService,
};

const KEY: &[u8] = b"grpc test key, 32 bytes or more!";

struct Harness {
    service: TripService,
    dispatcher: Dispatcher,
    pricing: PricingService,
    /// The accounts the server's `Authenticate` knows, by token.
    tokens: Arc<Mutex<HashMap<String, Caller>>>,
    client: GrpcTrip,
    channel: Channel,
}

impl Harness {
    async fn new() -> Self {
        let pool = platform::store::open_sqlite_in_memory()
            .await
            .expect("sqlite");
        let store = Arc::new(SqliteTripStore::new(pool).await.expect("migrates"));
        let bus: SharedBus = Arc::new(InProcessBus::new());
        let config = TripsConfig::default();
        let service = TripService::new(store, bus.clone(), QuoteBook::new(KEY), config.policy());
        let dispatcher = Dispatcher::build(service.clone(), &bus, config)
            .await
            .expect("subscribes");
        let tokens: Arc<Mutex<HashMap<String, Caller>>> = Arc::default();
        let known = tokens.clone();
        let authenticate: Authenticate = Arc::new(move |token: &str| {
            known
                .lock()
                .expect("tokens")
                .get(token)
                .cloned()
                .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "unknown access token"))
        });
        let channel = proto::testing::serve(Routes::new(trip::grpc::service(
            Arc::new(service.clone()),
            authenticate,
        )))
        .await;
        Self {
            service,
            dispatcher,
            pricing: PricingService::new(
                Router::straight_line(Default::default()),
                QuoteBook::new(KEY),
                300,
            ),
            tokens,
            client: GrpcTrip::new(channel.clone()),
            channel,
        }
    }

    /// A new account whose token the server accepts.
    fn account(&self, role: Role) -> Caller {
        let account = AccountId::from_uuid(uuid::Uuid::now_v7());
        let caller = Caller::new(account, role, format!("token-of-{account}"));
        self.tokens
            .lock()
            .expect("tokens")
            .insert(caller.token.to_string(), caller.clone());
        caller
    }

    /// A driver online for cars, `metres_north` of the pickup.
    fn driver(&self, metres_north: f64) -> Caller {
        let caller = self.account(Role::Driver);
        let fleet = self.dispatcher.fleet();
        let mut fleet = fleet.lock().expect("fleet");
        let now = platform::clock::now();
        fleet.status(&DriverStatusChanged {
            driver: caller.account,
            online: true,
            package: Some(Package::Car),
            at: now,
        });
        fleet.located(&DriverLocated {
            driver: caller.account,
            position: LatLng::new(23.78 + metres_north / 111_195.0, 90.40).expect("valid"),
            at: now,
        });
        caller
    }

    async fn quote(&self, rider: &Caller) -> String {
        self.pricing
            .preview_at(
                rider.account,
                LatLng::new(23.78, 90.40).expect("valid"),
                LatLng::new(23.75, 90.39).expect("valid"),
                platform::clock::now(),
            )
            .await
            .expect("preview")
            .quote_id
    }

    /// Books a car trip over gRPC.
    async fn book(&self, rider: &Caller) -> trip::TripView {
        let quote_id = self.quote(rider).await;
        self.client
            .book(
                rider,
                BookTrip {
                    quote_id,
                    package: Package::Car,
                },
            )
            .await
            .expect("booked over gRPC")
    }

    /// What the service itself says the trip is now.
    async fn direct(&self, caller: &Caller, id: TripId) -> trip::TripView {
        self.service.get(caller, id).await.expect("visible")
    }
}

#[tokio::test]
async fn a_whole_trip_arrives_field_for_field() {
    let h = Harness::new().await;
    let rider = h.account(Role::Rider);
    let booked = h.book(&rider).await;
    assert_eq!(booked.status, "searching");
    assert_eq!(booked, h.direct(&rider, booked.id).await);
    let id = booked.id;

    let driver = h.driver(300.0);
    let round = h
        .dispatcher
        .round(platform::clock::now())
        .await
        .expect("round");
    assert!(round.offers >= 1, "{round:?}");
    let offered = h
        .client
        .get(&driver, id)
        .await
        .expect("the offer is visible");
    assert_eq!(offered.status, "offered");
    assert_eq!(offered.driver_id, Some(driver.account));
    assert!(offered.offer_expires_at.is_some());
    assert_eq!(offered, h.direct(&driver, id).await);

    for (action, status) in [
        (Action::Accept, "driver_assigned"),
        (Action::Arrive, "arrived"),
        (Action::Start, "in_progress"),
        (Action::Complete, "completed"),
    ] {
        let view = h.client.act(&driver, id, action).await.expect("legal");
        assert_eq!(view.status, status);
        assert_eq!(view, h.direct(&driver, id).await);
        if action == Action::Arrive {
            assert!(view.assigned_at.is_some() && view.arrived_at.is_some());
        }
        assert_eq!(h.client.get(&rider, id).await.expect("rider"), view);
    }

    assert_eq!(
        h.client.list(&rider, 10).await.expect("list"),
        h.service.list(&rider, 10).await.expect("list")
    );
    for caller in [&rider, &driver] {
        let remote = h.client.notices(caller, 0, 100).await.expect("notices");
        assert!(remote.len() >= 5, "{remote:?}");
        assert_eq!(
            remote,
            h.service.notices(caller, 0, 100).await.expect("notices")
        );
        let after = remote[1].id;
        assert_eq!(
            h.client.notices(caller, after, 2).await.expect("page"),
            remote[2..4]
        );
    }

    // A cancelled trip: who cancelled and the fee arrive too.
    let second = h.book(&rider).await;
    let cancelled = h
        .client
        .act(&rider, second.id, Action::Cancel)
        .await
        .expect("cancelled");
    assert_eq!(cancelled.cancelled_by, Some(Party::Rider));
    assert_eq!(cancelled.cancellation_fee, Some(Money::bdt(0)));
    assert_eq!(cancelled, h.direct(&rider, second.id).await);
}

#[tokio::test]
async fn errors_come_back_as_the_same_trip_error() {
    let h = Harness::new().await;
    let rider = h.account(Role::Rider);

    let unknown = TripId::from_uuid(uuid::Uuid::now_v7());
    let e = h
        .client
        .get(&rider, unknown)
        .await
        .expect_err("no such trip");
    assert!(
        matches!(e, TripError::NotFound(id) if id == unknown),
        "{e:?}"
    );
    assert_eq!(ApiError::from(e).code, ErrorCode::NotFound);

    let trip = h.book(&rider).await;
    h.client
        .act(&rider, trip.id, Action::Cancel)
        .await
        .expect("cancelled");
    let e = h
        .client
        .act(&rider, trip.id, Action::Cancel)
        .await
        .expect_err("cancelled already");
    assert!(
        matches!(
            e,
            TripError::Illegal {
                state: "cancelled",
                command: "cancel"
            }
        ),
        "{e:?}"
    );
    assert_eq!(ApiError::from(e).code, ErrorCode::Conflict);

    let e = h
        .client
        .act(&rider, trip.id, Action::Accept)
        .await
        .expect_err("riders do not accept");
    assert!(matches!(e, TripError::Forbidden(_)), "{e:?}");

    let e = h
        .client
        .book(
            &rider,
            BookTrip {
                quote_id: "not-a-quote".into(),
                package: Package::Car,
            },
        )
        .await
        .expect_err("no such quote");
    assert!(
        matches!(
            e,
            TripError::InvalidField {
                field: "quote_id",
                ..
            }
        ),
        "{e:?}"
    );
    let e = ApiError::from(e);
    assert_eq!(
        (e.code, e.field.as_deref()),
        (ErrorCode::InvalidInput, Some("quote_id"))
    );

    // A request the client type could not send: an unspecified action names the field.
    let request = proto::with_bearer(
        proto::trip::v1::ActRequest {
            id: trip.id.to_string(),
            action: 0,
        },
        &rider.token,
    )
    .expect("sendable");
    let status = proto::trip::v1::trip_client::TripClient::new(h.channel.clone())
        .act(request)
        .await
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(proto::error_of(status).field.as_deref(), Some("action"));
}

#[tokio::test]
async fn only_the_token_says_who_is_calling() {
    let h = Harness::new().await;
    let rider = h.account(Role::Rider);
    let trip = h.book(&rider).await;

    for token in ["", "forged"] {
        let impostor = Caller::new(rider.account, Role::Rider, token);
        let e = h.client.get(&impostor, trip.id).await.expect_err("refused");
        assert!(matches!(e, TripError::Remote(_)), "{e:?}");
        assert_eq!(ApiError::from(e).code, ErrorCode::Unauthorized, "{token:?}");
        let e = h.client.list(&impostor, 10).await.expect_err("refused");
        assert_eq!(ApiError::from(e).code, ErrorCode::Unauthorized, "{token:?}");
    }

    // Another rider's token with this rider's account id: the server acts as the other rider.
    let other = h.account(Role::Rider);
    let claims_to_be_rider = Caller::new(rider.account, Role::Rider, other.token.clone());
    let e = h
        .client
        .get(&claims_to_be_rider, trip.id)
        .await
        .expect_err("not theirs");
    assert!(matches!(e, TripError::NotFound(_)), "{e:?}");
    assert!(
        h.client
            .list(&claims_to_be_rider, 10)
            .await
            .expect("list")
            .is_empty()
    );
}

#[tokio::test]
async fn an_unreachable_service_is_unavailable() {
    let client = GrpcTrip::new(proto::testing::nowhere().await);
    let rider = Caller::new(AccountId::from_uuid(uuid::Uuid::now_v7()), Role::Rider, "t");
    let e = client.list(&rider, 10).await.expect_err("nothing listens");
    assert!(matches!(e, TripError::Unavailable(_)), "{e:?}");
    let e = ApiError::from(e);
    assert_eq!(e.code, ErrorCode::Unavailable);
    assert!(e.message.contains("trip service"), "{}", e.message);
}
