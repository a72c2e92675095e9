//! The identity service over gRPC (`rickshaw.identity.v1.Identity`, crates/proto): [`service`]
//! serves any [`IdentityApi`]; [`GrpcIdentity`] is an `IdentityApi` that calls one; and
//! [`authenticate`] is the [`Authenticate`] every gRPC service verifies its callers with.
//!
//! SignUp, LogIn, Refresh and LogOut are public. GetAccount and SetVehicle rebuild the caller from
//! its access token (`authorization: Bearer …`) and act on that account only: no account id
//! travels in a request. Passwords and tokens cross the wire (in plain text on a trusted network
//! until the channel has TLS) but never appear in a `Debug` of the messages.

use std::sync::Arc;

use async_trait::async_trait;
use domain::{Email, PersonName, Role, Vehicle};
use platform::{ApiError, ErrorCode};
pub use proto::Authenticate;
use proto::common::v1 as common;
use proto::convert::{self, malformed};
use proto::identity::v1 as pb;
use proto::identity::v1::identity_client::IdentityClient;
use proto::identity::v1::identity_server::{Identity, IdentityServer};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::{Account, Caller, IdentityApi, IdentityError, SignUp, TokenVerifier, Tokens};

/// The service's name in errors.
const SERVICE: &str = "identity";

/// Verifies a bearer token locally with `verifier` (no call to the identity service) and
/// rebuilds its `Caller`: what the pricing and trip gRPC services are built with.
pub fn authenticate(verifier: TokenVerifier) -> Authenticate {
    Arc::new(move |token: &str| {
        verifier
            .caller(token, platform::clock::now())
            .map(|(caller, _)| caller)
            .map_err(ApiError::from)
    })
}

/// Serves an [`IdentityApi`] over gRPC (built by [`service`]).
pub struct GrpcIdentityService {
    api: Arc<dyn IdentityApi>,
    authenticate: Authenticate,
}

/// The gRPC service to add to a `tonic::transport::Server`: answered by `api`; the calls on the
/// caller's own account are authenticated with `authenticate`.
pub fn service(
    api: Arc<dyn IdentityApi>,
    authenticate: Authenticate,
) -> IdentityServer<GrpcIdentityService> {
    IdentityServer::new(GrpcIdentityService { api, authenticate })
}

fn refused(e: IdentityError) -> Status {
    proto::status_of(e.into())
}

fn invalid(e: ApiError) -> Status {
    proto::status_of(e)
}

#[tonic::async_trait]
impl Identity for GrpcIdentityService {
    async fn sign_up(
        &self,
        request: Request<pb::SignUpRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let message = request.into_inner();
        let sign_up = SignUp {
            email: decode_email(&message.email).map_err(invalid)?,
            password: message.password,
            name: decode_name(&message.name).map_err(invalid)?,
            role: decode_role(message.role).map_err(invalid)?,
        };
        let account = self.api.sign_up(sign_up).await.map_err(refused)?;
        Ok(Response::new(encode_account(account)))
    }

    async fn log_in(
        &self,
        request: Request<pb::LogInRequest>,
    ) -> Result<Response<pb::Tokens>, Status> {
        let message = request.into_inner();
        let email = decode_email(&message.email).map_err(invalid)?;
        let tokens = self
            .api
            .log_in(email, message.password)
            .await
            .map_err(refused)?;
        Ok(Response::new(encode_tokens(tokens)))
    }

    async fn refresh(
        &self,
        request: Request<pb::RefreshRequest>,
    ) -> Result<Response<pb::Tokens>, Status> {
        let tokens = self
            .api
            .refresh(request.into_inner().refresh_token)
            .await
            .map_err(refused)?;
        Ok(Response::new(encode_tokens(tokens)))
    }

    async fn log_out(
        &self,
        request: Request<pb::LogOutRequest>,
    ) -> Result<Response<pb::LogOutResponse>, Status> {
        self.api
            .log_out(request.into_inner().refresh_token)
            .await
            .map_err(refused)?;
        Ok(Response::new(pb::LogOutResponse {}))
    }

    async fn get_account(
        &self,
        request: Request<pb::GetAccountRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let caller = proto::caller(&request, &self.authenticate)?;
        let account = self.api.account(&caller).await.map_err(refused)?;
        Ok(Response::new(encode_account(account)))
    }

    async fn set_vehicle(
        &self,
        request: Request<pb::SetVehicleRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let caller = proto::caller(&request, &self.authenticate)?;
        let vehicle = convert::required(request.into_inner().vehicle, "vehicle")
            .and_then(decode_vehicle)
            .map_err(invalid)?;
        let account = self
            .api
            .set_vehicle(&caller, vehicle)
            .await
            .map_err(refused)?;
        Ok(Response::new(encode_account(account)))
    }
}

/// An [`IdentityApi`] served by a remote identity service.
#[derive(Clone)]
pub struct GrpcIdentity {
    inner: IdentityClient<Channel>,
}

impl GrpcIdentity {
    pub fn new(channel: Channel) -> Self {
        Self {
            inner: IdentityClient::new(channel),
        }
    }
}

fn failed(status: Status) -> IdentityError {
    error_of(proto::remote_error(SERVICE, status))
}

fn unreadable(e: ApiError) -> IdentityError {
    error_of(malformed(SERVICE)(e))
}

fn authorized<T>(caller: &Caller, message: T) -> Result<Request<T>, IdentityError> {
    proto::with_bearer(message, &caller.token).map_err(error_of)
}

#[async_trait]
impl IdentityApi for GrpcIdentity {
    async fn sign_up(&self, request: SignUp) -> Result<Account, IdentityError> {
        let message = pb::SignUpRequest {
            email: request.email.into(),
            password: request.password,
            name: request.name.into(),
            role: encode_role(request.role).into(),
        };
        let response = self.inner.clone().sign_up(message).await.map_err(failed)?;
        decode_account(response.into_inner()).map_err(unreadable)
    }

    async fn log_in(&self, email: Email, password: String) -> Result<Tokens, IdentityError> {
        let message = pb::LogInRequest {
            email: email.into(),
            password,
        };
        let response = self.inner.clone().log_in(message).await.map_err(failed)?;
        decode_tokens(response.into_inner()).map_err(unreadable)
    }

    async fn refresh(&self, refresh_token: String) -> Result<Tokens, IdentityError> {
        let response = self
            .inner
            .clone()
            .refresh(pb::RefreshRequest { refresh_token })
            .await
            .map_err(failed)?;
        decode_tokens(response.into_inner()).map_err(unreadable)
    }

    async fn log_out(&self, refresh_token: String) -> Result<(), IdentityError> {
        self.inner
            .clone()
            .log_out(pb::LogOutRequest { refresh_token })
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn account(&self, caller: &Caller) -> Result<Account, IdentityError> {
        let response = self
            .inner
            .clone()
            .get_account(authorized(caller, pb::GetAccountRequest {})?)
            .await
            .map_err(failed)?;
        decode_account(response.into_inner()).map_err(unreadable)
    }

    async fn set_vehicle(
        &self,
        caller: &Caller,
        vehicle: Vehicle,
    ) -> Result<Account, IdentityError> {
        let message = pb::SetVehicleRequest {
            vehicle: Some(encode_vehicle(vehicle)),
        };
        let response = self
            .inner
            .clone()
            .set_vehicle(authorized(caller, message)?)
            .await
            .map_err(failed)?;
        decode_account(response.into_inner()).map_err(unreadable)
    }
}

// ---- messages ------------------------------------------------------------------------------

fn encode_role(r: Role) -> pb::Role {
    match r {
        Role::Rider => pb::Role::Rider,
        Role::Driver => pb::Role::Driver,
    }
}

fn decode_role(value: i32) -> Result<Role, ApiError> {
    match pb::Role::try_from(value) {
        Ok(pb::Role::Rider) => Ok(Role::Rider),
        Ok(pb::Role::Driver) => Ok(Role::Driver),
        Ok(pb::Role::Unspecified) | Err(_) => Err(ApiError::invalid_field(
            "role",
            "role must be rider or driver",
        )),
    }
}

fn decode_email(value: &str) -> Result<Email, ApiError> {
    Email::parse(value).map_err(|e| ApiError::invalid_field("email", e))
}

fn decode_name(value: &str) -> Result<PersonName, ApiError> {
    PersonName::parse(value).map_err(|e| ApiError::invalid_field("name", e.to_string()))
}

fn encode_vehicle(v: Vehicle) -> pb::Vehicle {
    pb::Vehicle {
        package: common::Package::from(v.package).into(),
        plate: v.plate,
        model: v.model,
    }
}

fn decode_vehicle(v: pb::Vehicle) -> Result<Vehicle, ApiError> {
    let package = convert::package(v.package, "package")?;
    Vehicle::new(package, &v.plate, &v.model)
        .map_err(|(field, message)| ApiError::invalid_field(field, message))
}

fn encode_account(a: Account) -> pb::Account {
    pb::Account {
        id: a.id.to_string(),
        email: a.email.into(),
        name: a.name.into(),
        role: encode_role(a.role).into(),
        vehicle: a.vehicle.map(encode_vehicle),
        created_at_ms: a.created_at.as_millis(),
    }
}

fn decode_account(a: pb::Account) -> Result<Account, ApiError> {
    Ok(Account {
        id: convert::id(&a.id, "id")?,
        email: decode_email(&a.email)?,
        name: decode_name(&a.name)?,
        role: decode_role(a.role)?,
        vehicle: a.vehicle.map(decode_vehicle).transpose()?,
        created_at: convert::timestamp(a.created_at_ms),
    })
}

fn encode_tokens(t: Tokens) -> pb::Tokens {
    pb::Tokens {
        access_token: t.access_token,
        token_type: t.token_type,
        expires_in: t.expires_in,
        refresh_token: t.refresh_token,
        refresh_expires_in: t.refresh_expires_in,
        account: Some(encode_account(t.account)),
    }
}

fn decode_tokens(t: pb::Tokens) -> Result<Tokens, ApiError> {
    Ok(Tokens {
        access_token: t.access_token,
        token_type: t.token_type,
        expires_in: t.expires_in,
        refresh_token: t.refresh_token,
        refresh_expires_in: t.refresh_expires_in,
        account: decode_account(convert::required(t.account, "account")?)?,
    })
}

// ---- errors --------------------------------------------------------------------------------

/// The `IdentityError` a remote service answered: the variant that converts into exactly this
/// `ApiError` when there is one (every error `IdentityService` returns). Otherwise the nearest:
/// `unauthorized` → `InvalidToken`, `forbidden` → `Forbidden`, `not_found` → `UnknownAccount`,
/// `rate_limited` → `TooManyAttempts`, `unavailable` (an unreachable service) → `Unavailable`,
/// and anything else → `Store`, an opaque 500 naming the cause.
fn error_of(e: ApiError) -> IdentityError {
    let message = e.message.clone();
    let exact = match (e.code, e.field.as_deref()) {
        (ErrorCode::Conflict, None) => message
            .strip_prefix("an account with email ")
            .and_then(|rest| rest.strip_suffix(" already exists"))
            .and_then(|email| Email::parse(email).ok())
            .map(IdentityError::EmailTaken),
        (ErrorCode::Unauthorized, None) => Some(
            if message == IdentityError::InvalidCredentials.to_string() {
                IdentityError::InvalidCredentials
            } else {
                IdentityError::InvalidToken(message.clone())
            },
        ),
        (ErrorCode::InvalidInput, Some("password")) => {
            Some(IdentityError::WeakPassword(message.clone()))
        }
        (ErrorCode::RateLimited, None) => e
            .retry_after_s()
            .map(|retry_after_s| IdentityError::TooManyAttempts { retry_after_s }),
        (ErrorCode::Unavailable, None) if e.retry_after_s().is_some() => e
            .retry_after_s()
            .map(|retry_after_s| IdentityError::Busy { retry_after_s }),
        (ErrorCode::Forbidden, None) => Some(IdentityError::Forbidden(message.clone())),
        (ErrorCode::NotFound, None) => Some(IdentityError::UnknownAccount),
        (ErrorCode::Unavailable, None) => Some(IdentityError::Unavailable(message.clone())),
        (ErrorCode::Internal, None) => message
            .strip_prefix("identity store: ")
            .map(|cause| IdentityError::Store(cause.to_owned())),
        _ => None,
    };
    if let Some(exact) = exact.filter(|x| ApiError::from(x.clone()) == e) {
        return exact;
    }
    match e.code {
        ErrorCode::Unauthorized => IdentityError::InvalidToken(message),
        ErrorCode::Forbidden => IdentityError::Forbidden(message),
        ErrorCode::NotFound => IdentityError::UnknownAccount,
        ErrorCode::RateLimited => IdentityError::TooManyAttempts {
            retry_after_s: e.retry_after_s().unwrap_or(1),
        },
        ErrorCode::Unavailable => IdentityError::Unavailable(message),
        ErrorCode::InvalidJson
        | ErrorCode::InvalidInput
        | ErrorCode::MethodNotAllowed
        | ErrorCode::Conflict
        | ErrorCode::PayloadTooLarge
        | ErrorCode::UnsupportedMediaType
        | ErrorCode::Internal => IdentityError::Store(match e.field {
            Some(field) => format!("{message} ({field})"),
            None => message,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_identity_error_comes_back_as_itself() {
        for e in [
            IdentityError::EmailTaken(Email::parse("ana@example.com").expect("valid")),
            IdentityError::InvalidCredentials,
            IdentityError::WeakPassword("the password must be at least 8 characters".into()),
            IdentityError::TooManyAttempts { retry_after_s: 17 },
            IdentityError::Busy { retry_after_s: 2 },
            IdentityError::InvalidToken("the access token has expired".into()),
            IdentityError::Forbidden("only drivers have a vehicle".into()),
            IdentityError::UnknownAccount,
            IdentityError::Store("disk full".into()),
            IdentityError::Unavailable("the identity service is unreachable".into()),
        ] {
            let api = ApiError::from(e.clone());
            let back = error_of(proto::error_of(proto::status_of(api.clone())));
            assert_eq!(back, e);
            assert_eq!(ApiError::from(back), api);
        }
    }

    #[test]
    fn what_identity_errors_cannot_say_keeps_its_class_where_it_can() {
        let e = error_of(ApiError::new(ErrorCode::Unauthorized, "missing metadata"));
        assert_eq!(ApiError::from(e).code, ErrorCode::Unauthorized);
        let e = error_of(ApiError::unavailable("the identity service is unreachable"));
        assert!(matches!(&e, IdentityError::Unavailable(m) if m.contains("unreachable")));
        assert_eq!(ApiError::from(e).code, ErrorCode::Unavailable);
        let e = error_of(ApiError::invalid_field("email", "not an email"));
        assert!(matches!(&e, IdentityError::Store(m) if m.contains("(email)")));
    }
}
