//! The provider on the composition path: its store on the mode's database (SQLite file
//! `provider.db`, or the PostgreSQL schema `provider`), its routes under `/provider/v1`, the
//! webhook delivery and the housekeeping (tasks). It provides no client to other services: the
//! payment service calls it over HTTP, as it would call Stripe — at the address it provides as a
//! [`LocalProvider`] when both run in one process.

/// Where the provider of this process answers (`…/provider/v1`), for a payment service in the
/// same process that was given no `payment.provider_url`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalProvider {
    pub url: String,
}

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use async_trait::async_trait;
use platform::config::SectionSpec;
use platform::service::{Deps, ServiceModule, Started};

use crate::maintenance::{self, MaintenancePace};
use crate::webhooks::{DeliveryPace, Endpoint, WebhookSender};
use crate::{PgProviderStore, Provider, ProviderConfig, ProviderStore, SqliteProviderStore, api};

pub struct Module;

#[async_trait]
impl ServiceModule for Module {
    fn name(&self) -> &'static str {
        "provider"
    }

    fn config_sections(&self) -> Vec<SectionSpec> {
        vec![SectionSpec::of::<ProviderConfig>()]
    }

    async fn start(&self, deps: &Deps) -> anyhow::Result<Started> {
        let config = deps.config.section::<ProviderConfig>()?;
        let mut started = Started::default();
        let store = deps
            .open_store(
                &mut started,
                "provider.db",
                async |pool| {
                    Ok(Arc::new(SqliteProviderStore::new(pool).await?) as Arc<dyn ProviderStore>)
                },
                async |url, max_connections| {
                    let store = PgProviderStore::connect(url, max_connections).await?;
                    store.migrate().await?;
                    let pool = store.pool().clone();
                    Ok((Arc::new(store) as Arc<dyn ProviderStore>, pool))
                },
            )
            .await?;
        let endpoint = webhook_url(&config, deps).map(|url| Endpoint {
            url,
            signing_secret: config.signing_secret().to_owned(),
            max_attempts: config.webhook_max_attempts,
        });
        if endpoint.is_none() {
            tracing::warn!(
                "provider.webhook_url is unset in the distributed mode: the provider sends no webhooks"
            );
        }
        let provider = Arc::new(Provider::new(
            store.clone(),
            config.authorization_ttl_s,
            endpoint.is_some(),
        ));
        started.http = Some(api::router(provider.clone(), &config.secret_key));
        deps.provide(LocalProvider {
            url: format!("http://{}/provider/v1", reachable(deps.local_addr)),
        });
        started = started.task(maintenance::task(provider, MaintenancePace::default()));
        if let Some(endpoint) = endpoint {
            started =
                started.task(WebhookSender::new(store, endpoint, DeliveryPace::default())?.task());
        }
        Ok(started)
    }

    async fn migrate(&self, database_url: &str) -> anyhow::Result<()> {
        let store = PgProviderStore::connect(database_url, 1).await?;
        store.migrate().await?;
        store.pool().close().await;
        Ok(())
    }
}

/// Where events go: the configured URL; else, in the embedded mode, the payment service's
/// webhook route in this very process; else (distributed) nowhere.
fn webhook_url(config: &ProviderConfig, deps: &Deps) -> Option<String> {
    match &config.webhook_url {
        Some(url) => Some(url.clone()),
        None if deps.is_embedded() => Some(local_webhook_url(deps.local_addr)),
        None => None,
    }
}

/// The payment service's webhook route on this process's listener.
pub fn local_webhook_url(local_addr: SocketAddr) -> String {
    format!("http://{}/v1/payments/webhook", reachable(local_addr))
}

/// This process's listener as a client reaches it (a wildcard listen address on loopback).
fn reachable(local_addr: SocketAddr) -> SocketAddr {
    let ip = match local_addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, local_addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_webhook_url_reaches_this_process() {
        assert_eq!(
            local_webhook_url(SocketAddr::from(([127, 0, 0, 1], 8080))),
            "http://127.0.0.1:8080/v1/payments/webhook"
        );
        assert_eq!(
            local_webhook_url(SocketAddr::from(([0, 0, 0, 0], 9000))),
            "http://127.0.0.1:9000/v1/payments/webhook"
        );
        assert_eq!(
            local_webhook_url("[::]:81".parse().expect("address")),
            "http://[::1]:81/v1/payments/webhook"
        );
    }
}
