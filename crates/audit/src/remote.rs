//! The audit service across processes: `serve` answers `rpc.audit.query` (for the admin the
//! call's token names); `RemoteAudit` is the `AuditApi` of the gateway elsewhere.

use std::sync::Arc;

use async_trait::async_trait;
use platform::auth::Caller;
use platform::rpc::{self, RpcClient};
use platform::{ApiError, Shutdown};

use crate::{AuditApi, AuditError, AuditPage, AuditQuery};

pub const QUERY: &str = "rpc.audit.query";
const GROUP: &str = "audit";

pub async fn serve(
    service: Arc<dyn AuditApi>,
    verifier: identity::TokenVerifier,
    client: async_nats::Client,
    shutdown: &Shutdown,
) -> Result<(), ApiError> {
    rpc::serve(
        client,
        QUERY,
        GROUP,
        shutdown,
        move |call: rpc::Call<AuditQuery>| {
            let (service, verifier) = (service.clone(), verifier.clone());
            async move {
                let caller = identity::caller_of(&verifier, call.bearer.as_deref())
                    .map_err(|_| AuditError::Forbidden)?;
                service.query(&caller, call.request).await
            }
        },
    )
    .await
}

#[derive(Clone, Debug)]
pub struct RemoteAudit {
    rpc: RpcClient,
}

impl RemoteAudit {
    pub fn new(rpc: RpcClient) -> Self {
        Self { rpc }
    }
}

#[async_trait]
impl AuditApi for RemoteAudit {
    async fn query(&self, caller: &Caller, query: AuditQuery) -> Result<AuditPage, AuditError> {
        self.rpc.call(QUERY, &query, Some(&caller.token)).await
    }
}
