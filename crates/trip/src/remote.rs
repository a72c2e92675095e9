//! The trip service across processes, over NATS request/reply (`platform::rpc`): [`serve`]
//! answers `rpc.trip.*` with a local [`TripApi`], rebuilding the caller from the token each call
//! carries; [`RemoteTrip`] is the `TripApi` of a process where trip runs elsewhere (the gateway,
//! communication). A `TripError` comes back as itself: its `&'static str` fields are read back
//! from the names they can hold.

use std::sync::Arc;

use async_trait::async_trait;
use domain::TripId;
use identity::TokenVerifier;
use platform::rpc::{self, Call, RpcClient};
use platform::{ApiError, Shutdown};
use serde::{Deserialize, Serialize};

use crate::{Action, BookTrip, Caller, TripApi, TripError, TripNotice, TripView};

pub const BOOK: &str = "rpc.trip.book";
pub const GET: &str = "rpc.trip.get";
pub const LIST: &str = "rpc.trip.list";
pub const ACT: &str = "rpc.trip.act";
pub const NOTICES: &str = "rpc.trip.notices";
pub const NOTICE_HEAD: &str = "rpc.trip.notice_head";
const GROUP: &str = "trip";

/// Fields a `TripError::InvalidField` names.
const FIELDS: [&str; 7] = [
    "quote_id",
    "package",
    "id",
    "action",
    "limit",
    "after",
    "Idempotency-Key",
];
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

fn one_of(names: &[&'static str], what: &str, name: &str) -> Result<&'static str, String> {
    names
        .iter()
        .copied()
        .find(|n| *n == name)
        .ok_or_else(|| format!("unknown {what} {name:?}"))
}

/// `TripError` as it is read off the wire: its `&'static str` fields as strings, which must be
/// names they can hold.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WireTripError {
    Forbidden(String),
    NotFound(TripId),
    InvalidField { field: String, message: String },
    Illegal { state: String, command: String },
    Conflict(String),
    Unavailable(String),
    Store(String),
    Payment(payment::PaymentError),
    Remote(ApiError),
}

impl<'de> Deserialize<'de> for TripError {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::try_from(WireTripError::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<WireTripError> for TripError {
    type Error = String;

    fn try_from(wire: WireTripError) -> Result<Self, String> {
        Ok(match wire {
            WireTripError::Forbidden(m) => Self::Forbidden(m),
            WireTripError::NotFound(id) => Self::NotFound(id),
            WireTripError::InvalidField { field, message } => Self::InvalidField {
                field: one_of(&FIELDS, "field", &field)?,
                message,
            },
            WireTripError::Illegal { state, command } => Self::Illegal {
                state: one_of(&STATES, "state", &state)?,
                command: one_of(&COMMANDS, "command", &command)?,
            },
            WireTripError::Conflict(m) => Self::Conflict(m),
            WireTripError::Unavailable(m) => Self::Unavailable(m),
            WireTripError::Store(m) => Self::Store(m),
            WireTripError::Payment(e) => Self::Payment(e),
            WireTripError::Remote(e) => Self::Remote(e),
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Act {
    id: TripId,
    action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    idempotency_key: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Page {
    after: i64,
    limit: u32,
}

/// Answers `rpc.trip.*` with `api`, for the caller `verifier` finds in each call's token.
pub async fn serve(
    api: Arc<dyn TripApi>,
    verifier: TokenVerifier,
    client: async_nats::Client,
    shutdown: &Shutdown,
) -> Result<(), ApiError> {
    let caller = move |verifier: &TokenVerifier, bearer: Option<&str>| {
        identity::caller_of(verifier, bearer).map_err(|e| TripError::Remote(e.into()))
    };
    let (service, check) = (api.clone(), verifier.clone());
    rpc::serve(
        client.clone(),
        BOOK,
        GROUP,
        shutdown,
        move |call: Call<BookTrip>| {
            let (service, check) = (service.clone(), check.clone());
            async move {
                let caller = caller(&check, call.bearer.as_deref())?;
                service.book(&caller, call.request).await
            }
        },
    )
    .await?;
    let (service, check) = (api.clone(), verifier.clone());
    rpc::serve(
        client.clone(),
        GET,
        GROUP,
        shutdown,
        move |call: Call<TripId>| {
            let (service, check) = (service.clone(), check.clone());
            async move {
                let caller = caller(&check, call.bearer.as_deref())?;
                service.get(&caller, call.request).await
            }
        },
    )
    .await?;
    let (service, check) = (api.clone(), verifier.clone());
    rpc::serve(
        client.clone(),
        LIST,
        GROUP,
        shutdown,
        move |call: Call<u32>| {
            let (service, check) = (service.clone(), check.clone());
            async move {
                let caller = caller(&check, call.bearer.as_deref())?;
                service.list(&caller, call.request).await
            }
        },
    )
    .await?;
    let (service, check) = (api.clone(), verifier.clone());
    rpc::serve(
        client.clone(),
        ACT,
        GROUP,
        shutdown,
        move |call: Call<Act>| {
            let (service, check) = (service.clone(), check.clone());
            async move {
                let caller = caller(&check, call.bearer.as_deref())?;
                let Act {
                    id,
                    action,
                    idempotency_key,
                } = call.request;
                service
                    .act_keyed(&caller, id, action, idempotency_key)
                    .await
            }
        },
    )
    .await?;
    let head = api.clone();
    rpc::serve(
        client.clone(),
        NOTICE_HEAD,
        GROUP,
        shutdown,
        move |_: Call<()>| {
            let service = head.clone();
            async move { service.notice_head().await }
        },
    )
    .await?;
    rpc::serve(client, NOTICES, GROUP, shutdown, move |call: Call<Page>| {
        let (service, check) = (api.clone(), verifier.clone());
        async move {
            let caller = caller(&check, call.bearer.as_deref())?;
            service
                .notices(&caller, call.request.after, call.request.limit)
                .await
        }
    })
    .await
}

/// A [`TripApi`] served by a remote trip service.
#[derive(Clone, Debug)]
pub struct RemoteTrip {
    rpc: RpcClient,
}

impl RemoteTrip {
    pub fn new(rpc: RpcClient) -> Self {
        Self { rpc }
    }
}

#[async_trait]
impl TripApi for RemoteTrip {
    async fn book(&self, caller: &Caller, request: BookTrip) -> Result<TripView, TripError> {
        self.rpc.call(BOOK, &request, Some(&caller.token)).await
    }

    async fn get(&self, caller: &Caller, id: TripId) -> Result<TripView, TripError> {
        self.rpc.call(GET, &id, Some(&caller.token)).await
    }

    async fn list(&self, caller: &Caller, limit: u32) -> Result<Vec<TripView>, TripError> {
        self.rpc.call(LIST, &limit, Some(&caller.token)).await
    }

    async fn act_keyed(
        &self,
        caller: &Caller,
        id: TripId,
        action: Action,
        idempotency_key: Option<String>,
    ) -> Result<TripView, TripError> {
        let request = Act {
            id,
            action,
            idempotency_key,
        };
        self.rpc.call(ACT, &request, Some(&caller.token)).await
    }

    async fn notice_head(&self) -> Result<i64, TripError> {
        self.rpc.call(NOTICE_HEAD, &(), None).await
    }

    async fn notices(
        &self,
        caller: &Caller,
        after: i64,
        limit: u32,
    ) -> Result<Vec<TripNotice>, TripError> {
        self.rpc
            .call(NOTICES, &Page { after, limit }, Some(&caller.token))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_trip_error_crosses_processes_as_itself() {
        let mut errors = vec![
            TripError::Forbidden("only riders book trips".into()),
            TripError::NotFound(TripId::from_uuid(uuid::Uuid::now_v7())),
            TripError::Conflict("this driver already has an active trip".into()),
            TripError::Unavailable("trip 1 is changing too fast; try again".into()),
            TripError::Store("disk full".into()),
            TripError::Remote(ApiError::unavailable("rpc.trip.book: no reply")),
        ];
        errors.extend(FIELDS.iter().map(|field| TripError::InvalidField {
            field,
            message: "is wrong".into(),
        }));
        for state in STATES {
            errors.extend(
                COMMANDS
                    .iter()
                    .map(|command| TripError::Illegal { state, command }),
            );
        }
        platform::rpc::assert_round_trip(&errors);
    }
}
