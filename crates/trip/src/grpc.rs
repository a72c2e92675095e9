//! The trip service over gRPC (`rickshaw.trip.v1.Trip`, crates/proto): [`service`] serves any
//! [`TripApi`]; [`GrpcTrip`] is a `TripApi` that calls one.
//!
//! The caller travels as its access token only (`authorization: Bearer …`); the serving side
//! rebuilds the `Caller` with its [`Authenticate`] and acts as that account — no account id in a
//! request is ever trusted.

use std::sync::Arc;

use async_trait::async_trait;
use domain::trip::Party;
use domain::{AccountId, TripId};
use platform::{ApiError, ErrorCode};
pub use proto::Authenticate;
use proto::common::v1 as common;
use proto::convert::{self, malformed};
use proto::trip::v1 as pb;
use proto::trip::v1::trip_client::TripClient;
use proto::trip::v1::trip_server::{Trip, TripServer};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::{Action, BookTrip, Caller, Money, TripApi, TripError, TripNotice, TripView};

/// The service's name in errors.
const SERVICE: &str = "trip";

/// Serves a [`TripApi`] over gRPC (built by [`service`]).
pub struct GrpcTripService {
    api: Arc<dyn TripApi>,
    authenticate: Authenticate,
}

/// The gRPC service to add to a `tonic::transport::Server`: every call is authenticated with
/// `authenticate` and answered by `api`.
pub fn service(api: Arc<dyn TripApi>, authenticate: Authenticate) -> TripServer<GrpcTripService> {
    TripServer::new(GrpcTripService { api, authenticate })
}

fn refused(e: TripError) -> Status {
    proto::status_of(e.into())
}

#[tonic::async_trait]
impl Trip for GrpcTripService {
    async fn book(
        &self,
        request: Request<pb::BookRequest>,
    ) -> Result<Response<pb::TripView>, Status> {
        let caller = proto::caller(&request, &self.authenticate)?;
        let message = request.into_inner();
        let book = BookTrip {
            quote_id: message.quote_id,
            package: convert::package(message.package, "package").map_err(proto::status_of)?,
        };
        let view = self.api.book(&caller, book).await.map_err(refused)?;
        Ok(Response::new(encode_view(view)))
    }

    async fn get(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::TripView>, Status> {
        let caller = proto::caller(&request, &self.authenticate)?;
        let id = convert::id(&request.get_ref().id, "id").map_err(proto::status_of)?;
        let view = self.api.get(&caller, id).await.map_err(refused)?;
        Ok(Response::new(encode_view(view)))
    }

    async fn list(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let caller = proto::caller(&request, &self.authenticate)?;
        let trips = self
            .api
            .list(&caller, request.get_ref().limit)
            .await
            .map_err(refused)?;
        Ok(Response::new(pb::ListResponse {
            trips: trips.into_iter().map(encode_view).collect(),
        }))
    }

    async fn act(
        &self,
        request: Request<pb::ActRequest>,
    ) -> Result<Response<pb::TripView>, Status> {
        let caller = proto::caller(&request, &self.authenticate)?;
        let message = request.get_ref();
        let id = convert::id(&message.id, "id").map_err(proto::status_of)?;
        let action = decode_action(message.action).map_err(proto::status_of)?;
        let view = self.api.act(&caller, id, action).await.map_err(refused)?;
        Ok(Response::new(encode_view(view)))
    }

    async fn notices(
        &self,
        request: Request<pb::NoticesRequest>,
    ) -> Result<Response<pb::NoticesResponse>, Status> {
        let caller = proto::caller(&request, &self.authenticate)?;
        let message = request.get_ref();
        let notices = self
            .api
            .notices(&caller, message.after, message.limit)
            .await
            .map_err(refused)?;
        Ok(Response::new(pb::NoticesResponse {
            notices: notices.into_iter().map(encode_notice).collect(),
        }))
    }
}

/// A [`TripApi`] served by a remote trip service.
#[derive(Clone)]
pub struct GrpcTrip {
    inner: TripClient<Channel>,
}

impl GrpcTrip {
    pub fn new(channel: Channel) -> Self {
        Self {
            inner: TripClient::new(channel),
        }
    }
}

fn authorized<T>(caller: &Caller, message: T) -> Result<Request<T>, TripError> {
    proto::with_bearer(message, &caller.token).map_err(TripError::Remote)
}

fn failed(status: Status) -> TripError {
    error_of(proto::remote_error(SERVICE, status))
}

fn unreadable(e: ApiError) -> TripError {
    TripError::Remote(malformed(SERVICE)(e))
}

#[async_trait]
impl TripApi for GrpcTrip {
    async fn book(&self, caller: &Caller, book: BookTrip) -> Result<TripView, TripError> {
        let message = pb::BookRequest {
            quote_id: book.quote_id,
            package: common::Package::from(book.package).into(),
        };
        let response = self
            .inner
            .clone()
            .book(authorized(caller, message)?)
            .await
            .map_err(failed)?;
        decode_view(response.into_inner()).map_err(unreadable)
    }

    async fn get(&self, caller: &Caller, id: TripId) -> Result<TripView, TripError> {
        let message = pb::GetRequest { id: id.to_string() };
        let response = self
            .inner
            .clone()
            .get(authorized(caller, message)?)
            .await
            .map_err(failed)?;
        decode_view(response.into_inner()).map_err(unreadable)
    }

    async fn list(&self, caller: &Caller, limit: u32) -> Result<Vec<TripView>, TripError> {
        let response = self
            .inner
            .clone()
            .list(authorized(caller, pb::ListRequest { limit })?)
            .await
            .map_err(failed)?;
        response
            .into_inner()
            .trips
            .into_iter()
            .map(decode_view)
            .collect::<Result<_, _>>()
            .map_err(unreadable)
    }

    async fn act(
        &self,
        caller: &Caller,
        id: TripId,
        action: Action,
    ) -> Result<TripView, TripError> {
        let message = pb::ActRequest {
            id: id.to_string(),
            action: encode_action(action).into(),
        };
        let response = self
            .inner
            .clone()
            .act(authorized(caller, message)?)
            .await
            .map_err(failed)?;
        decode_view(response.into_inner()).map_err(unreadable)
    }

    async fn notices(
        &self,
        caller: &Caller,
        after: i64,
        limit: u32,
    ) -> Result<Vec<TripNotice>, TripError> {
        let response = self
            .inner
            .clone()
            .notices(authorized(caller, pb::NoticesRequest { after, limit })?)
            .await
            .map_err(failed)?;
        response
            .into_inner()
            .notices
            .into_iter()
            .map(decode_notice)
            .collect::<Result<_, _>>()
            .map_err(unreadable)
    }
}

// ---- messages ------------------------------------------------------------------------------

fn encode_action(a: Action) -> pb::Action {
    match a {
        Action::Accept => pb::Action::Accept,
        Action::Decline => pb::Action::Decline,
        Action::Arrive => pb::Action::Arrive,
        Action::Start => pb::Action::Start,
        Action::Complete => pb::Action::Complete,
        Action::Cancel => pb::Action::Cancel,
    }
}

fn decode_action(value: i32) -> Result<Action, ApiError> {
    match pb::Action::try_from(value) {
        Ok(pb::Action::Accept) => Ok(Action::Accept),
        Ok(pb::Action::Decline) => Ok(Action::Decline),
        Ok(pb::Action::Arrive) => Ok(Action::Arrive),
        Ok(pb::Action::Start) => Ok(Action::Start),
        Ok(pb::Action::Complete) => Ok(Action::Complete),
        Ok(pb::Action::Cancel) => Ok(Action::Cancel),
        Ok(pb::Action::Unspecified) | Err(_) => Err(ApiError::invalid_field(
            "action",
            "action must be one of accept, decline, arrive, start, complete, cancel",
        )),
    }
}

/// `TripView::status` names and their enum values.
const STATUSES: [(&str, pb::TripStatus); 8] = [
    ("searching", pb::TripStatus::Searching),
    ("offered", pb::TripStatus::Offered),
    ("driver_assigned", pb::TripStatus::DriverAssigned),
    ("arrived", pb::TripStatus::Arrived),
    ("in_progress", pb::TripStatus::InProgress),
    ("completed", pb::TripStatus::Completed),
    ("cancelled", pb::TripStatus::Cancelled),
    ("no_drivers_found", pb::TripStatus::NoDriversFound),
];

fn encode_status(status: &str) -> pb::TripStatus {
    STATUSES
        .iter()
        .find(|(name, _)| *name == status)
        .map_or(pb::TripStatus::Unspecified, |(_, value)| *value)
}

fn decode_status(value: i32) -> Result<String, ApiError> {
    STATUSES
        .iter()
        .find(|(_, status)| *status as i32 == value)
        .map(|(name, _)| (*name).to_owned())
        .ok_or_else(|| ApiError::invalid_field("status", format!("unknown trip status {value}")))
}

fn encode_party(p: Party) -> pb::Party {
    match p {
        Party::Rider => pb::Party::Rider,
        Party::Driver => pb::Party::Driver,
    }
}

fn decode_party(value: i32, field: &str) -> Result<Party, ApiError> {
    match pb::Party::try_from(value) {
        Ok(pb::Party::Rider) => Ok(Party::Rider),
        Ok(pb::Party::Driver) => Ok(Party::Driver),
        Ok(pb::Party::Unspecified) | Err(_) => Err(ApiError::invalid_field(
            field,
            format!("{field} must be rider or driver"),
        )),
    }
}

fn encode_money(m: Money) -> common::Money {
    common::Money {
        amount: m.amount,
        currency: m.currency,
    }
}

fn decode_money(m: common::Money) -> Money {
    Money {
        amount: m.amount,
        currency: m.currency,
    }
}

fn encode_view(v: TripView) -> pb::TripView {
    pb::TripView {
        id: v.id.to_string(),
        status: encode_status(&v.status).into(),
        rider_id: v.rider_id.to_string(),
        driver_id: v.driver_id.map(|d| d.to_string()),
        package: common::Package::from(v.package).into(),
        pickup: Some(v.pickup.into()),
        dropoff: Some(v.dropoff.into()),
        route: Some(v.route.into()),
        fare: Some(encode_money(v.fare)),
        requested_at_ms: v.requested_at.as_millis(),
        updated_at_ms: v.updated_at.as_millis(),
        offer_expires_at_ms: v.offer_expires_at.map(|t| t.as_millis()),
        assigned_at_ms: v.assigned_at.map(|t| t.as_millis()),
        arrived_at_ms: v.arrived_at.map(|t| t.as_millis()),
        cancelled_by: v.cancelled_by.map(|p| encode_party(p).into()),
        cancellation_fee: v.cancellation_fee.map(encode_money),
        version: v.version,
    }
}

fn decode_view(v: pb::TripView) -> Result<TripView, ApiError> {
    Ok(TripView {
        id: convert::id(&v.id, "id")?,
        status: decode_status(v.status)?,
        rider_id: convert::id(&v.rider_id, "rider_id")?,
        driver_id: v
            .driver_id
            .map(|d| convert::id::<AccountId>(&d, "driver_id"))
            .transpose()?,
        package: convert::package(v.package, "package")?,
        pickup: convert::lat_lng(v.pickup, "pickup")?,
        dropoff: convert::lat_lng(v.dropoff, "dropoff")?,
        route: convert::route(v.route, "route")?,
        fare: decode_money(convert::required(v.fare, "fare")?),
        requested_at: convert::timestamp(v.requested_at_ms),
        updated_at: convert::timestamp(v.updated_at_ms),
        offer_expires_at: v.offer_expires_at_ms.map(convert::timestamp),
        assigned_at: v.assigned_at_ms.map(convert::timestamp),
        arrived_at: v.arrived_at_ms.map(convert::timestamp),
        cancelled_by: v
            .cancelled_by
            .map(|p| decode_party(p, "cancelled_by"))
            .transpose()?,
        cancellation_fee: v.cancellation_fee.map(decode_money),
        version: v.version,
    })
}

fn encode_notice(n: TripNotice) -> pb::TripNotice {
    pb::TripNotice {
        id: n.id,
        kind: n.kind,
        recipients: n.recipients.iter().map(ToString::to_string).collect(),
        trip: Some(encode_view(n.trip)),
        at_ms: n.at.as_millis(),
    }
}

fn decode_notice(n: pb::TripNotice) -> Result<TripNotice, ApiError> {
    Ok(TripNotice {
        id: n.id,
        kind: n.kind,
        recipients: n
            .recipients
            .iter()
            .map(|r| convert::id(r, "recipients"))
            .collect::<Result<_, _>>()?,
        trip: decode_view(convert::required(n.trip, "trip")?)?,
        at: convert::timestamp(n.at_ms),
    })
}

// ---- errors --------------------------------------------------------------------------------

/// Fields a `TripError::InvalidField` names (it holds a `&'static str`).
const FIELDS: [&str; 6] = ["quote_id", "package", "id", "action", "limit", "after"];
/// `domain::trip::TripState::name`s and `domain::trip::Command::name`s, for `TripError::Illegal`.
const STATES: [&str; 8] = [
    "searching",
    "offered",
    "driver_assigned",
    "arrived",
    "in_progress",
    "completed",
    "cancelled",
    "no_drivers_found",
];
const COMMANDS: [&str; 9] = [
    "offer",
    "accept",
    "decline",
    "expire_offer",
    "expire_search",
    "arrive",
    "start",
    "complete",
    "cancel",
];

fn known(names: &[&'static str], name: &str) -> Option<&'static str> {
    names.iter().copied().find(|n| *n == name)
}

/// The `TripError` a remote service answered: the variant that converts into exactly this
/// `ApiError` (a 404 is `NotFound(id)`, an illegal transition `Illegal { state, command }`), else
/// `Remote` — so `ApiError::from` gives back what the service said, whatever it was.
fn error_of(e: ApiError) -> TripError {
    let message = e.message.clone();
    let candidate = match (e.code, e.field.as_deref()) {
        (ErrorCode::Forbidden, None) => Some(TripError::Forbidden(message)),
        (ErrorCode::NotFound, None) => message
            .strip_prefix("no trip ")
            .and_then(|rest| rest.strip_suffix(" of yours"))
            .and_then(|id| id.parse().ok())
            .map(TripError::NotFound),
        (ErrorCode::InvalidInput, Some(field)) => {
            known(&FIELDS, field).map(|field| TripError::InvalidField { field, message })
        }
        (ErrorCode::Conflict, None) => Some(
            message
                .strip_prefix("cannot ")
                .and_then(|rest| rest.split_once(" a trip that is "))
                .and_then(|(command, state)| {
                    Some(TripError::Illegal {
                        state: known(&STATES, state)?,
                        command: known(&COMMANDS, command)?,
                    })
                })
                .unwrap_or(TripError::Conflict(message)),
        ),
        (ErrorCode::Unavailable, None) => Some(TripError::Unavailable(message)),
        (ErrorCode::Internal, None) => message
            .strip_prefix("trip store: ")
            .map(|cause| TripError::Store(cause.to_owned())),
        _ => None,
    };
    match candidate {
        // Details do not travel: an `Illegal` rebuilt from its message carries its own again.
        Some(candidate) if same_error(&ApiError::from(same(&candidate)), &e) => candidate,
        _ => TripError::Remote(e),
    }
}

fn same_error(a: &ApiError, b: &ApiError) -> bool {
    (a.code, &a.message, &a.field) == (b.code, &b.message, &b.field)
}

/// A copy (`TripError` is not `Clone`).
fn same(e: &TripError) -> TripError {
    match e {
        TripError::Forbidden(m) => TripError::Forbidden(m.clone()),
        TripError::NotFound(id) => TripError::NotFound(*id),
        TripError::InvalidField { field, message } => TripError::InvalidField {
            field,
            message: message.clone(),
        },
        TripError::Illegal { state, command } => TripError::Illegal { state, command },
        TripError::Conflict(m) => TripError::Conflict(m.clone()),
        TripError::Unavailable(m) => TripError::Unavailable(m.clone()),
        TripError::Store(m) => TripError::Store(m.clone()),
        TripError::Remote(e) => TripError::Remote(e.clone()),
    }
}

#[cfg(test)]
mod tests {
    use domain::Timestamp;
    use domain::trip::{Command, TripState};

    use super::*;

    #[test]
    fn every_trip_error_comes_back_as_itself() {
        let id = TripId::from_uuid(uuid::Uuid::from_u128(42));
        for e in [
            TripError::Forbidden("only drivers accept trips".into()),
            TripError::NotFound(id),
            TripError::InvalidField {
                field: "quote_id",
                message: "the quote has expired".into(),
            },
            TripError::Illegal {
                state: "completed",
                command: "cancel",
            },
            TripError::Conflict("this driver already has an active trip".into()),
            TripError::Unavailable("trip is changing too fast".into()),
            TripError::Store("disk full".into()),
            TripError::Remote(ApiError::new(ErrorCode::Unauthorized, "expired token")),
            TripError::Remote(ApiError::invalid_field("pickup", "latitude 91 is outside")),
        ] {
            let api = ApiError::from(same(&e));
            let back = error_of(proto::error_of(proto::status_of(api.clone())));
            assert_eq!(format!("{back:?}"), format!("{e:?}"));
            assert_eq!(ApiError::from(back), api);
        }
    }

    #[test]
    fn the_name_tables_match_the_domain() {
        let a = AccountId::from_uuid(uuid::Uuid::from_u128(1));
        let t = Timestamp::from_millis(1);
        let states = [
            TripState::Searching,
            TripState::Offered {
                driver: a,
                offered_at: t,
            },
            TripState::DriverAssigned {
                driver: a,
                assigned_at: t,
            },
            TripState::Arrived {
                driver: a,
                assigned_at: t,
                arrived_at: t,
            },
            TripState::InProgress {
                driver: a,
                started_at: t,
            },
            TripState::Completed {
                driver: a,
                completed_at: t,
            },
            TripState::Cancelled {
                by: Party::Rider,
                fee: 0,
                cancelled_at: t,
                driver: None,
            },
            TripState::NoDriversFound { at: t },
        ];
        let names: Vec<_> = states.iter().map(TripState::name).collect();
        assert_eq!(names, STATES);
        assert_eq!(STATUSES.iter().map(|(n, _)| *n).collect::<Vec<_>>(), STATES);
        let commands = [
            Command::Offer { driver: a },
            Command::Accept { driver: a },
            Command::Decline { driver: a },
            Command::ExpireOffer,
            Command::ExpireSearch,
            Command::Arrive { driver: a },
            Command::Start { driver: a },
            Command::Complete { driver: a },
            Command::Cancel {
                by: Party::Rider,
                driver: None,
            },
        ];
        let names: Vec<_> = commands.iter().map(Command::name).collect();
        assert_eq!(names, COMMANDS);
        for action in Action::ALL {
            assert_eq!(decode_action(encode_action(action) as i32), Ok(action));
        }
        assert!(decode_action(0).is_err());
    }
}
