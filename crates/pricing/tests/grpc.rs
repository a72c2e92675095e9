//! The pricing service over a real gRPC server on loopback: every field of a preview arrives
//! exactly, errors keep their meaning, and only a verified bearer token gets an answer.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use domain::{AccountId, LatLng, Package, Role};
use platform::auth::Caller;
use platform::{ApiError, ErrorCode};
use pricing::grpc::{Authenticate, GrpcPricing};
use pricing::{Preview, PricingApi, PricingError, PricingService, QuoteBook, Router};
use tonic::service::Routes;
use tonic::transport::Channel;

const KEY: &[u8] = b"test key, thirty-two bytes long!";

fn at(lat: f64, lng: f64) -> LatLng {
    LatLng::new(lat, lng).expect("valid")
}

/// The real service, remembering what it answered and whom.
struct Recording {
    inner: PricingService,
    answered: Mutex<Vec<(Caller, Preview)>>,
}

#[async_trait]
impl PricingApi for Recording {
    async fn preview(
        &self,
        caller: &Caller,
        pickup: LatLng,
        dropoff: LatLng,
    ) -> Result<Preview, PricingError> {
        let preview = self.inner.preview(caller, pickup, dropoff).await?;
        self.answered
            .lock()
            .expect("lock")
            .push((caller.clone(), preview.clone()));
        Ok(preview)
    }
}

fn account(n: u128) -> AccountId {
    AccountId::from_uuid(uuid::Uuid::from_u128(n))
}

/// Tokens `rider-token` and `driver-token` stand for accounts 1 and 2; anything else is refused.
fn authenticate() -> Authenticate {
    Arc::new(|token: &str| match token {
        "rider-token" => Ok(Caller::new(account(1), Role::Rider, token)),
        "driver-token" => Ok(Caller::new(account(2), Role::Driver, token)),
        _ => Err(ApiError::new(
            ErrorCode::Unauthorized,
            "the access token's signature is not valid",
        )),
    })
}

struct Harness {
    recording: Arc<Recording>,
    client: GrpcPricing,
    channel: Channel,
}

async fn serve() -> Harness {
    let recording = Arc::new(Recording {
        inner: PricingService::new(
            Router::straight_line(Default::default()),
            QuoteBook::new(KEY),
            300,
        ),
        answered: Mutex::new(Vec::new()),
    });
    let channel = proto::testing::serve(Routes::new(pricing::grpc::service(
        recording.clone(),
        authenticate(),
    )))
    .await;
    Harness {
        recording,
        client: GrpcPricing::new(channel.clone()),
        channel,
    }
}

/// Callers as the gateway hands them over: the account and role are what the gateway believes;
/// only the token travels.
fn rider(token: &str) -> Caller {
    Caller::new(account(99), Role::Rider, token)
}

#[tokio::test]
async fn a_preview_arrives_field_for_field() {
    let h = serve().await;
    let (pickup, dropoff) = (at(23.780_612_3, 90.407_412_9), at(23.750_9, 90.393_5));
    let preview = h
        .client
        .preview(&rider("rider-token"), pickup, dropoff)
        .await
        .expect("priced");
    let answered = h.recording.answered.lock().expect("lock").clone();
    let [(caller, served)] = answered.as_slice() else {
        panic!("one call expected, got {answered:?}");
    };
    assert_eq!(&preview, served);
    assert_eq!(preview.fares.len(), Package::ALL.len());
    assert_eq!((preview.pickup, preview.dropoff), (pickup, dropoff));
    // The server rebuilt the caller from the token, not from what the client believed.
    assert_eq!(caller.account, account(1));
    assert_eq!(&*caller.token, "rider-token");
    let quote = QuoteBook::new(KEY)
        .verify(&preview.quote_id, platform::clock::now())
        .expect("the quote verifies");
    assert_eq!(quote.rider, account(1));
}

#[tokio::test]
async fn errors_come_back_as_the_same_pricing_error() {
    let h = serve().await;
    let a = at(23.78, 90.40);

    let same = h.client.preview(&rider("rider-token"), a, a).await;
    let Err(e) = same else {
        panic!("the same place was priced")
    };
    assert!(matches!(e, PricingError::SamePlace), "{e:?}");
    let e = ApiError::from(e);
    assert_eq!(
        (e.code, e.field.as_deref()),
        (ErrorCode::InvalidInput, Some("dropoff"))
    );

    let far = h
        .client
        .preview(&rider("rider-token"), a, at(22.33, 91.83))
        .await;
    let Err(PricingError::TooLong(metres)) = far else {
        panic!("a 200 km trip was priced: {far:?}")
    };
    assert!(metres > pricing::MAX_TRIP_M);

    let driver = Caller::new(account(2), Role::Driver, "driver-token");
    let e = h
        .client
        .preview(&driver, a, at(23.75, 90.39))
        .await
        .expect_err("drivers do not preview");
    assert!(matches!(e, PricingError::Forbidden), "{e:?}");
    assert_eq!(ApiError::from(e).code, ErrorCode::Forbidden);
}

#[tokio::test]
async fn no_token_or_a_bad_one_is_unauthenticated() {
    let h = serve().await;
    let (a, b) = (at(23.78, 90.40), at(23.75, 90.39));
    for token in ["", "forged-token"] {
        let e = h
            .client
            .preview(&rider(token), a, b)
            .await
            .expect_err("refused");
        let e = ApiError::from(e);
        assert_eq!(e.code, ErrorCode::Unauthorized, "{token:?}: {e:?}");
    }
    assert!(h.recording.answered.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn a_request_missing_a_field_is_refused_naming_it() {
    let h = serve().await;
    let request = proto::with_bearer(
        proto::pricing::v1::PreviewRequest {
            pickup: Some(at(23.78, 90.40).into()),
            dropoff: None,
        },
        "rider-token",
    )
    .expect("sendable");
    let status = proto::pricing::v1::pricing_client::PricingClient::new(h.channel.clone())
        .preview(request)
        .await
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let e = proto::error_of(status);
    assert_eq!(
        (e.code, e.field.as_deref()),
        (ErrorCode::InvalidInput, Some("dropoff"))
    );
}

#[tokio::test]
async fn an_unreachable_service_is_unavailable() {
    let client = GrpcPricing::new(proto::testing::nowhere().await);
    let e = client
        .preview(&rider("rider-token"), at(23.78, 90.40), at(23.75, 90.39))
        .await
        .expect_err("nothing listens");
    let e = ApiError::from(e);
    assert_eq!(e.code, ErrorCode::Unavailable);
    assert!(e.message.contains("pricing service"), "{}", e.message);
}
