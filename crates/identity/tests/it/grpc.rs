//! The identity service over a real gRPC server on loopback (SQLite on disk): every field of an
//! account and a token pair arrives exactly, errors come back as the same `IdentityError`, and
//! the account calls act only on the account the bearer token proves.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use domain::{Email, Package, Role, Vehicle};
use identity::grpc::GrpcIdentity;
use identity::{
    Account, Caller, IdentityApi, IdentityError, IdentityService, SignUp, TokenVerifier, Tokens,
};
use platform::{ApiError, ErrorCode};
use tonic::service::Routes;
use tonic::transport::Channel;

use crate::support::{self, PASSWORD};

/// The real service, remembering the token pairs it handed out.
struct Recording {
    inner: IdentityService,
    tokens: Mutex<Vec<Tokens>>,
}

impl Recording {
    fn record(&self, result: Result<Tokens, IdentityError>) -> Result<Tokens, IdentityError> {
        if let Ok(tokens) = &result {
            self.tokens.lock().expect("lock").push(tokens.clone());
        }
        result
    }

    fn last(&self) -> Tokens {
        self.tokens
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .expect("tokens were issued")
    }
}

#[async_trait]
impl IdentityApi for Recording {
    async fn sign_up(&self, request: SignUp) -> Result<Account, IdentityError> {
        self.inner.sign_up(request).await
    }
    async fn log_in(&self, email: Email, password: String) -> Result<Tokens, IdentityError> {
        self.record(self.inner.log_in(email, password).await)
    }
    async fn refresh(&self, refresh_token: String) -> Result<Tokens, IdentityError> {
        self.record(self.inner.refresh(refresh_token).await)
    }
    async fn log_out(&self, refresh_token: String) -> Result<(), IdentityError> {
        self.inner.log_out(refresh_token).await
    }
    async fn account(&self, caller: &Caller) -> Result<Account, IdentityError> {
        self.inner.account(caller).await
    }
    async fn set_vehicle(
        &self,
        caller: &Caller,
        vehicle: Vehicle,
    ) -> Result<Account, IdentityError> {
        self.inner.set_vehicle(caller, vehicle).await
    }
}

struct Harness {
    recording: Arc<Recording>,
    verifier: TokenVerifier,
    client: GrpcIdentity,
    channel: Channel,
    _dir: tempfile::TempDir,
}

async fn serve(login_free_failures: u32) -> Harness {
    let (service, dir) = support::sqlite_service(&support::config(login_free_failures)).await;
    let verifier = service.verifier();
    let recording = Arc::new(Recording {
        inner: service,
        tokens: Mutex::new(Vec::new()),
    });
    let channel = proto::testing::serve(Routes::new(identity::grpc::service(
        recording.clone(),
        identity::grpc::authenticate(verifier.clone()),
    )))
    .await;
    Harness {
        recording,
        verifier,
        client: GrpcIdentity::new(channel.clone()),
        channel,
        _dir: dir,
    }
}

/// The caller a token pair proves, as the gateway builds it.
fn caller(tokens: &Tokens) -> Caller {
    Caller::new(
        tokens.account.id,
        tokens.account.role,
        tokens.access_token.as_str(),
    )
}

#[tokio::test]
async fn accounts_and_tokens_arrive_field_for_field() {
    let h = serve(0).await;
    let email = support::email("grpc-driver");
    let signed_up = h
        .client
        .sign_up(support::sign_up(&email, Role::Driver))
        .await
        .expect("signed up");
    assert_eq!(signed_up.email, email);
    assert_eq!(signed_up.vehicle, None);

    let tokens = h
        .client
        .log_in(email.clone(), PASSWORD.to_owned())
        .await
        .expect("logged in");
    assert_eq!(tokens, h.recording.last());
    assert_eq!(tokens.account, signed_up);
    let claims = h
        .verifier
        .verify(&tokens.access_token, platform::clock::now())
        .expect("the access token verifies");
    assert_eq!(claims.account, signed_up.id);

    let driver = caller(&tokens);
    assert_eq!(h.client.account(&driver).await.expect("account"), signed_up);
    let vehicle = Vehicle::new(Package::Premium, "DHA-GA 11-2233", "Toyota Premio").expect("valid");
    let with_vehicle = h
        .client
        .set_vehicle(&driver, vehicle.clone())
        .await
        .expect("vehicle set");
    assert_eq!(with_vehicle.vehicle, Some(vehicle));
    assert_eq!(
        with_vehicle,
        h.recording.inner.account(&driver).await.expect("direct")
    );
    assert_eq!(
        h.client.account(&driver).await.expect("account"),
        with_vehicle
    );

    let refreshed = h
        .client
        .refresh(tokens.refresh_token.clone())
        .await
        .expect("refreshed");
    assert_eq!(refreshed, h.recording.last());
    assert_eq!(refreshed.account, with_vehicle);
    h.client
        .log_out(refreshed.refresh_token.clone())
        .await
        .expect("logged out");
    let e = h
        .client
        .refresh(refreshed.refresh_token)
        .await
        .expect_err("revoked");
    assert!(matches!(e, IdentityError::InvalidToken(_)), "{e:?}");
}

#[tokio::test]
async fn errors_come_back_as_the_same_identity_error() {
    let h = serve(2).await;
    let email = support::email("grpc-rider");
    h.client
        .sign_up(support::sign_up(&email, Role::Rider))
        .await
        .expect("signed up");

    let e = h
        .client
        .sign_up(support::sign_up(&email, Role::Rider))
        .await
        .expect_err("taken");
    assert_eq!(e, IdentityError::EmailTaken(email.clone()));
    assert_eq!(ApiError::from(e).code, ErrorCode::Conflict);

    let mut weak = support::sign_up(&support::email("weak"), Role::Rider);
    weak.password = "short".into();
    let e = h.client.sign_up(weak).await.expect_err("weak");
    assert!(matches!(e, IdentityError::WeakPassword(_)), "{e:?}");
    let e = ApiError::from(e);
    assert_eq!(
        (e.code, e.field.as_deref()),
        (ErrorCode::InvalidInput, Some("password"))
    );

    let e = h
        .client
        .log_in(email.clone(), "wrong password".into())
        .await
        .expect_err("wrong");
    assert_eq!(e, IdentityError::InvalidCredentials);
    let e = ApiError::from(e);
    assert_eq!(e.code, ErrorCode::Unauthorized);

    h.client
        .log_in(email.clone(), "wrong again".into())
        .await
        .expect_err("wrong");
    let e = h
        .client
        .log_in(email.clone(), PASSWORD.into())
        .await
        .expect_err("limited");
    assert!(
        matches!(e, IdentityError::TooManyAttempts { retry_after_s } if retry_after_s >= 1),
        "{e:?}"
    );
    assert_eq!(ApiError::from(e).code, ErrorCode::RateLimited);

    // A rider has no vehicle.
    let rider_email = support::email("grpc-rider-2");
    h.client
        .sign_up(support::sign_up(&rider_email, Role::Rider))
        .await
        .expect("signed up");
    let tokens = h
        .client
        .log_in(rider_email, PASSWORD.into())
        .await
        .expect("logged in");
    let vehicle = Vehicle::new(Package::Car, "DHA-1", "Corolla").expect("valid");
    let e = h
        .client
        .set_vehicle(&caller(&tokens), vehicle)
        .await
        .expect_err("riders have no vehicle");
    assert!(matches!(e, IdentityError::Forbidden(_)), "{e:?}");

    // A request the client type could not send: an unspecified role names the field.
    let status = proto::identity::v1::identity_client::IdentityClient::new(h.channel.clone())
        .sign_up(proto::identity::v1::SignUpRequest {
            email: support::email("norole").into(),
            password: PASSWORD.into(),
            name: "Ana".into(),
            role: 0,
        })
        .await
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(proto::error_of(status).field.as_deref(), Some("role"));
}

#[tokio::test]
async fn the_account_calls_act_only_on_the_token_s_account() {
    let h = serve(0).await;
    let mut pairs = Vec::new();
    for name in ["grpc-a", "grpc-b"] {
        let email = support::email(name);
        h.client
            .sign_up(support::sign_up(&email, Role::Driver))
            .await
            .expect("signed up");
        pairs.push(h.client.log_in(email, PASSWORD.into()).await.expect("in"));
    }
    let (a, b) = (&pairs[0], &pairs[1]);

    for token in ["", "not-a-jwt"] {
        let impostor = Caller::new(a.account.id, Role::Driver, token);
        let e = h.client.account(&impostor).await.expect_err("refused");
        assert!(matches!(e, IdentityError::InvalidToken(_)), "{e:?}");
        assert_eq!(ApiError::from(e).code, ErrorCode::Unauthorized);
        let vehicle = Vehicle::new(Package::Car, "DHA-2", "Axio").expect("valid");
        let e = h
            .client
            .set_vehicle(&impostor, vehicle)
            .await
            .expect_err("refused");
        assert_eq!(ApiError::from(e).code, ErrorCode::Unauthorized);
    }

    // B's token with A's account id: the server acts on B.
    let claims_to_be_a = Caller::new(a.account.id, Role::Driver, b.access_token.as_str());
    let vehicle = Vehicle::new(Package::Bike, "DHA-3", "Honda CB").expect("valid");
    let changed = h
        .client
        .set_vehicle(&claims_to_be_a, vehicle.clone())
        .await
        .expect("set");
    assert_eq!(changed.id, b.account.id);
    assert_eq!(
        h.client.account(&caller(b)).await.expect("b").vehicle,
        Some(vehicle)
    );
    assert_eq!(h.client.account(&caller(a)).await.expect("a").vehicle, None);
}

#[tokio::test]
async fn an_unreachable_service_is_an_error_naming_it() {
    let client = GrpcIdentity::new(proto::testing::nowhere().await);
    let e = client
        .log_in(support::email("nobody"), PASSWORD.into())
        .await
        .expect_err("nothing listens");
    assert!(
        matches!(&e, IdentityError::Unavailable(m) if m.contains("identity service is unreachable")),
        "{e:?}"
    );
    assert_eq!(
        platform::ApiError::from(e).code,
        platform::ErrorCode::Unavailable
    );
}
