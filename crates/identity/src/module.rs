//! The identity service on the composition path: its store on the mode's database, its
//! `rpc.identity.*` answers in the distributed mode, `Arc<dyn IdentityApi>` for the services after
//! it; elsewhere a client that calls it over NATS.

use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use platform::config::SectionSpec;
use platform::service::{Backends, Deps, ServiceModule, Started};

use crate::{
    AccountStore, IdentityApi, IdentityConfig, IdentityService, PgAccountStore, RemoteIdentity,
    SigningKey, SqliteAccountStore, TokenVerifier, remote,
};

/// The key that signs access tokens (and quotes): the one place the mode decides it. Embedded:
/// the configured key, else `data_dir/identity.key` (made on first start). Distributed: the
/// configured key, required (instances must share it).
pub fn signing_key(deps: &Deps) -> anyhow::Result<SigningKey> {
    let config = deps.config.section::<IdentityConfig>()?;
    match &deps.backends {
        Backends::Embedded { data_dir } => {
            SigningKey::embedded(&config, data_dir).with_context(|| {
                format!(
                    "cannot read or create the signing key in {}",
                    data_dir.display()
                )
            })
        }
        Backends::Distributed { .. } => {
            SigningKey::required(&config).map_err(|e| anyhow::anyhow!("{e}"))
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
    fn bus_contract(&self) -> platform::service::BusContract {
        platform::service::BusContract {
            publishes: &[],
            calls: &[],
            serves: true,
            leases: false,
        }
    }

    fn name(&self) -> &'static str {
        "identity"
    }

    fn config_sections(&self) -> Vec<SectionSpec> {
        vec![SectionSpec::of::<IdentityConfig>()]
    }

    async fn start(&self, deps: &Deps) -> anyhow::Result<Started> {
        let key = signing_key(deps)?;
        let mut started = Started::default();
        let store = deps
            .open_store(
                &mut started,
                "identity.db",
                async |pool| {
                    Ok(Arc::new(SqliteAccountStore::new(pool).await?) as Arc<dyn AccountStore>)
                },
                async |url, max_connections| {
                    let store = PgAccountStore::connect(url, max_connections).await?;
                    store.migrate().await?;
                    let pool = store.pool().clone();
                    Ok((Arc::new(store) as Arc<dyn AccountStore>, pool))
                },
            )
            .await?;
        let service = Arc::new(IdentityService::new(
            store,
            key.clone(),
            &deps.config.section::<IdentityConfig>()?,
        ));
        deps.provide::<Arc<dyn IdentityApi>>(service.clone());
        if let Some(nats) = deps.nats() {
            remote::serve(
                service,
                TokenVerifier::new(&key),
                nats.clone(),
                &deps.shutdown,
            )
            .await?;
        }
        Ok(started)
    }

    fn remote(&self, deps: &Deps) -> anyhow::Result<()> {
        let rpc = deps
            .rpc()
            .ok_or_else(|| anyhow::anyhow!("the identity service is remote only over NATS"))?;
        deps.provide::<Arc<dyn IdentityApi>>(Arc::new(RemoteIdentity::new(rpc)));
        Ok(())
    }

    async fn migrate(&self, database_url: &str) -> anyhow::Result<()> {
        let store = PgAccountStore::connect(database_url, 1).await?;
        store.migrate().await?;
        store.pool().close().await;
        Ok(())
    }
}
