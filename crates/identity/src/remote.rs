//! The identity service across processes, over NATS request/reply (`platform::rpc`): [`serve`]
//! answers `rpc.identity.*` with a local [`IdentityApi`]; [`RemoteIdentity`] is the
//! `IdentityApi` of a process where identity runs elsewhere. [`caller_of`] is how every service
//! rebuilds its caller from the token a call carries.
//!
//! Sign-up, login, refresh and logout are public. `account` and `set_vehicle` rebuild the caller
//! from its access token (the request's `authorization` header) and act on that account only: no
//! account id travels in a request. Passwords and tokens cross the internal network (NATS) but
//! never appear in a `Debug` of the requests.

use std::sync::Arc;

use async_trait::async_trait;
use domain::{AccountId, Email, Vehicle};
use platform::rpc::{self, Call, RpcClient};
use platform::{ApiError, Shutdown};
use serde::{Deserialize, Serialize};

use crate::{Account, Caller, IdentityApi, IdentityError, SignUp, TokenVerifier, Tokens};

pub const SIGN_UP: &str = "rpc.identity.sign_up";
pub const LOG_IN: &str = "rpc.identity.log_in";
pub const REFRESH: &str = "rpc.identity.refresh";
pub const LOG_OUT: &str = "rpc.identity.log_out";
pub const ACCOUNT: &str = "rpc.identity.account";
pub const SET_VEHICLE: &str = "rpc.identity.set_vehicle";
pub const ACCOUNT_BY_ID: &str = "rpc.identity.account_by_id";
const GROUP: &str = "identity";

/// The caller a call was made for: its bearer token, verified locally with `verifier`.
pub fn caller_of(verifier: &TokenVerifier, bearer: Option<&str>) -> Result<Caller, IdentityError> {
    let token = bearer.ok_or_else(|| {
        IdentityError::InvalidToken("the call carries no access token".to_owned())
    })?;
    verifier
        .caller(token, platform::clock::now())
        .map(|(caller, _)| caller)
}

#[derive(Serialize, Deserialize)]
struct LogIn {
    email: Email,
    password: String,
}

impl std::fmt::Debug for LogIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogIn")
            .field("email", &self.email)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A refresh token on its way (refresh, logout).
#[derive(Serialize, Deserialize)]
struct RefreshToken {
    refresh_token: String,
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshToken(<redacted>)")
    }
}

/// Answers `rpc.identity.*` with `api`, authenticating the account calls with `verifier`.
pub async fn serve(
    api: Arc<dyn IdentityApi>,
    verifier: TokenVerifier,
    client: async_nats::Client,
    shutdown: &Shutdown,
) -> Result<(), ApiError> {
    let service = api.clone();
    rpc::serve(
        client.clone(),
        SIGN_UP,
        GROUP,
        shutdown,
        move |call: Call<SignUp>| {
            let service = service.clone();
            async move { service.sign_up(call.request).await }
        },
    )
    .await?;
    let service = api.clone();
    rpc::serve(
        client.clone(),
        LOG_IN,
        GROUP,
        shutdown,
        move |call: Call<LogIn>| {
            let service = service.clone();
            async move {
                let LogIn { email, password } = call.request;
                service.log_in(email, password).await
            }
        },
    )
    .await?;
    let service = api.clone();
    rpc::serve(
        client.clone(),
        REFRESH,
        GROUP,
        shutdown,
        move |call: Call<RefreshToken>| {
            let service = service.clone();
            async move { service.refresh(call.request.refresh_token).await }
        },
    )
    .await?;
    let service = api.clone();
    rpc::serve(
        client.clone(),
        LOG_OUT,
        GROUP,
        shutdown,
        move |call: Call<RefreshToken>| {
            let service = service.clone();
            async move { service.log_out(call.request.refresh_token).await }
        },
    )
    .await?;
    let (service, check) = (api.clone(), verifier.clone());
    rpc::serve(
        client.clone(),
        ACCOUNT,
        GROUP,
        shutdown,
        move |call: Call<()>| {
            let (service, check) = (service.clone(), check.clone());
            async move {
                let caller = caller_of(&check, call.bearer.as_deref())?;
                service.account(&caller).await
            }
        },
    )
    .await?;
    let service = api.clone();
    rpc::serve(
        client.clone(),
        ACCOUNT_BY_ID,
        GROUP,
        shutdown,
        move |call: Call<AccountId>| {
            let service = service.clone();
            async move { service.account_by_id(call.request).await }
        },
    )
    .await?;
    rpc::serve(
        client,
        SET_VEHICLE,
        GROUP,
        shutdown,
        move |call: Call<Vehicle>| {
            let (service, check) = (api.clone(), verifier.clone());
            async move {
                let caller = caller_of(&check, call.bearer.as_deref())?;
                service.set_vehicle(&caller, call.request).await
            }
        },
    )
    .await
}

/// An [`IdentityApi`] served by a remote identity service.
#[derive(Clone, Debug)]
pub struct RemoteIdentity {
    rpc: RpcClient,
}

impl RemoteIdentity {
    pub fn new(rpc: RpcClient) -> Self {
        Self { rpc }
    }
}

#[async_trait]
impl IdentityApi for RemoteIdentity {
    async fn sign_up(&self, request: SignUp) -> Result<Account, IdentityError> {
        self.rpc.call(SIGN_UP, &request, None).await
    }

    async fn log_in(&self, email: Email, password: String) -> Result<Tokens, IdentityError> {
        self.rpc
            .call(LOG_IN, &LogIn { email, password }, None)
            .await
    }

    async fn refresh(&self, refresh_token: String) -> Result<Tokens, IdentityError> {
        self.rpc
            .call(REFRESH, &RefreshToken { refresh_token }, None)
            .await
    }

    async fn log_out(&self, refresh_token: String) -> Result<(), IdentityError> {
        self.rpc
            .call(LOG_OUT, &RefreshToken { refresh_token }, None)
            .await
    }

    async fn account(&self, caller: &Caller) -> Result<Account, IdentityError> {
        self.rpc.call(ACCOUNT, &(), Some(&caller.token)).await
    }

    async fn account_by_id(&self, id: AccountId) -> Result<Account, IdentityError> {
        self.rpc.call(ACCOUNT_BY_ID, &id, None).await
    }

    async fn set_vehicle(
        &self,
        caller: &Caller,
        vehicle: Vehicle,
    ) -> Result<Account, IdentityError> {
        self.rpc
            .call(SET_VEHICLE, &vehicle, Some(&caller.token))
            .await
    }
}
