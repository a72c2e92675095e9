//! The payment service across processes: `serve` answers `rpc.payment.*` with a local
//! `PaymentService`; `RemotePayment` is the `PaymentApi` of the services that call it from
//! elsewhere (trip at booking, the gateway for the riders' and drivers' views).

use std::sync::Arc;

use async_trait::async_trait;
use domain::{AccountId, TripId};
use platform::rpc::{self, RpcClient};
use platform::{ApiError, Shutdown};
use serde::{Deserialize, Serialize};

use crate::{
    Authorization, Authorize, Earnings, PaymentApi, PaymentError, PaymentService, PaymentView,
};

pub const AUTHORIZE: &str = "rpc.payment.authorize";
pub const VOID: &str = "rpc.payment.void";
pub const CONFIRM: &str = "rpc.payment.confirm";
pub const PAYMENTS_OF: &str = "rpc.payment.payments_of";
pub const EARNINGS_OF: &str = "rpc.payment.earnings_of";
pub const REFUND: &str = "rpc.payment.refund";
const GROUP: &str = "payment";

#[derive(Serialize, Deserialize)]
struct Refund {
    trip: TripId,
    amount: Option<u64>,
    idempotency_key: String,
    by: AccountId,
}

#[derive(Serialize, Deserialize)]
struct Confirm {
    rider: AccountId,
    trip: TripId,
}

pub async fn serve(
    service: Arc<PaymentService>,
    client: async_nats::Client,
    shutdown: &Shutdown,
) -> Result<(), ApiError> {
    let s = service.clone();
    rpc::serve(
        client.clone(),
        AUTHORIZE,
        GROUP,
        shutdown,
        move |call: rpc::Call<Authorize>| {
            let s = s.clone();
            async move { s.authorize(call.request).await }
        },
    )
    .await?;
    let s = service.clone();
    rpc::serve(
        client.clone(),
        VOID,
        GROUP,
        shutdown,
        move |call: rpc::Call<TripId>| {
            let s = s.clone();
            async move { s.void(call.request).await }
        },
    )
    .await?;
    let s = service.clone();
    rpc::serve(
        client.clone(),
        CONFIRM,
        GROUP,
        shutdown,
        move |call: rpc::Call<Confirm>| {
            let s = s.clone();
            async move { s.confirm(call.request.rider, call.request.trip).await }
        },
    )
    .await?;
    let s = service.clone();
    rpc::serve(
        client.clone(),
        PAYMENTS_OF,
        GROUP,
        shutdown,
        move |call: rpc::Call<AccountId>| {
            let s = s.clone();
            async move { s.payments_of(call.request).await }
        },
    )
    .await?;
    let s = service.clone();
    rpc::serve(
        client.clone(),
        EARNINGS_OF,
        GROUP,
        shutdown,
        move |call: rpc::Call<AccountId>| {
            let s = s.clone();
            async move { s.earnings_of(call.request).await }
        },
    )
    .await?;
    rpc::serve(
        client,
        REFUND,
        GROUP,
        shutdown,
        move |call: rpc::Call<Refund>| {
            let s = service.clone();
            let Refund {
                trip,
                amount,
                idempotency_key,
                by,
            } = call.request;
            async move { s.refund(trip, amount, idempotency_key, by).await }
        },
    )
    .await
}

#[derive(Clone, Debug)]
pub struct RemotePayment {
    rpc: RpcClient,
}

impl RemotePayment {
    pub fn new(rpc: RpcClient) -> Self {
        Self { rpc }
    }
}

#[async_trait]
impl PaymentApi for RemotePayment {
    async fn authorize(&self, request: Authorize) -> Result<Authorization, PaymentError> {
        self.rpc.call(AUTHORIZE, &request, None).await
    }

    async fn void(&self, trip: TripId) -> Result<(), PaymentError> {
        self.rpc.call(VOID, &trip, None).await
    }

    async fn confirm(&self, rider: AccountId, trip: TripId) -> Result<Authorization, PaymentError> {
        self.rpc.call(CONFIRM, &Confirm { rider, trip }, None).await
    }

    async fn payments_of(&self, rider: AccountId) -> Result<Vec<PaymentView>, PaymentError> {
        self.rpc.call(PAYMENTS_OF, &rider, None).await
    }

    async fn earnings_of(&self, driver: AccountId) -> Result<Earnings, PaymentError> {
        self.rpc.call(EARNINGS_OF, &driver, None).await
    }

    async fn refund(
        &self,
        trip: TripId,
        amount: Option<u64>,
        idempotency_key: String,
        by: AccountId,
    ) -> Result<PaymentView, PaymentError> {
        let request = Refund {
            trip,
            amount,
            idempotency_key,
            by,
        };
        self.rpc.call(REFUND, &request, None).await
    }
}
