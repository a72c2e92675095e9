//! The identity service on the composition path: its store on the mode's database, its gRPC
//! service in the distributed mode, `Arc<dyn IdentityApi>` for the services after it; elsewhere a
//! gRPC client of `grpc.identity`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use platform::service::{Backends, Deps, ServiceModule, Started};

use crate::{
    AccountStore, IdentityApi, IdentityService, PgAccountStore, SigningKey, SqliteAccountStore,
    TokenVerifier, grpc,
};

/// The key that signs access tokens (and quotes): the one place the mode decides it. Embedded:
/// the configured key, else `data_dir/identity.key` (made on first start). Distributed: the
/// configured key, required (instances must share it).
pub fn signing_key(deps: &Deps) -> anyhow::Result<SigningKey> {
    match &deps.backends {
        Backends::Embedded { data_dir } => SigningKey::embedded(&deps.config.identity, data_dir)
            .with_context(|| {
                format!(
                    "cannot read or create the signing key in {}",
                    data_dir.display()
                )
            }),
        Backends::Distributed { .. } => {
            SigningKey::required(&deps.config.identity).map_err(|e| anyhow::anyhow!("{e}"))
        }
    }
}

/// The verifier of the tokens identity issues, for any service that authenticates callers.
pub fn verifier(deps: &Deps) -> anyhow::Result<TokenVerifier> {
    Ok(TokenVerifier::new(&signing_key(deps)?))
}

pub struct Module;

#[async_trait]
impl ServiceModule for Module {
    fn name(&self) -> &'static str {
        "identity"
    }

    async fn start(&self, deps: &Deps) -> anyhow::Result<Started> {
        let key = signing_key(deps)?;
        let mut started = Started::default();
        let store: Arc<dyn AccountStore> = match &deps.backends {
            Backends::Embedded { .. } => {
                let pool = deps.sqlite("identity.db").await?;
                let store = SqliteAccountStore::new(pool.clone()).await?;
                started = started.closer(async move { pool.close().await });
                Arc::new(store)
            }
            Backends::Distributed {
                database_url,
                max_connections,
                ..
            } => {
                let store = PgAccountStore::connect(database_url, *max_connections).await?;
                store.migrate().await?;
                let pool = store.pool().clone();
                started = started.closer(async move { pool.close().await });
                Arc::new(store)
            }
        };
        let service = Arc::new(IdentityService::new(
            store,
            key.clone(),
            &deps.config.identity,
        ));
        deps.provide::<Arc<dyn IdentityApi>>(service.clone());
        if !deps.is_embedded() {
            let authenticate = grpc::authenticate(TokenVerifier::new(&key));
            started.grpc = Some(proto::grpc_router(grpc::service(service, authenticate)));
        }
        Ok(started)
    }

    fn remote(&self, deps: &Deps) -> anyhow::Result<()> {
        let grpc = &deps.config.grpc;
        let channel = proto::balanced(&grpc.identity, Duration::from_millis(grpc.timeout_ms))
            .map_err(|e| anyhow::anyhow!("grpc.identity: {e}"))?;
        deps.provide::<Arc<dyn IdentityApi>>(Arc::new(grpc::GrpcIdentity::new(channel)));
        Ok(())
    }

    async fn migrate(&self, database_url: &str) -> anyhow::Result<()> {
        let store = PgAccountStore::connect(database_url, 1).await?;
        store.migrate().await?;
        store.pool().close().await;
        Ok(())
    }
}
