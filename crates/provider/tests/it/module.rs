//! The module as the composition starts it: config section, store file, routes, tasks; and its
//! PostgreSQL migration.

use std::sync::Arc;
use std::time::Duration;

use platform::Shutdown;
use platform::bus::InProcessBus;
use platform::config::Config;
use platform::service::{Backends, Deps, ServiceModule};
use provider::{Event, EventType, ProviderConfig, signature};
use serde_json::json;

use crate::support::{self, intent_path};
use crate::webhooks::{Inbox, receiver, until};

#[tokio::test]
async fn the_embedded_module_serves_its_routes_and_sends_signed_webhooks() {
    let shutdown = Shutdown::new();
    // The payment service's webhook receiver, standing in.
    let inbox = Inbox::default();
    let url = receiver(inbox.clone(), shutdown.token()).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::default();
    config.edit_section::<ProviderConfig>(|c| {
        c.secret_key = support::KEY.into();
        c.webhook_url = Some(url);
        c.webhook_secrets = vec!["whsec_module".into(), "whsec_next".into()];
    });
    let deps = Deps::new(
        config,
        "127.0.0.1:1".parse().expect("address"),
        Arc::new(InProcessBus::new()),
        Backends::Embedded {
            data_dir: dir.path().to_owned(),
        },
        shutdown.clone(),
        platform::http::Health::default(),
    );
    let module = provider::Module;
    assert_eq!(module.name(), "provider");
    assert_eq!(module.config_sections()[0].name, "provider");
    let started = module.start(&deps).await.expect("starts");
    assert!(
        dir.path().join("provider.db").exists(),
        "its own SQLite file"
    );
    assert_eq!(started.tasks.len(), 2, "webhook delivery and housekeeping");
    let app = started.http.clone().expect("routes");
    for task in started.tasks {
        task(&shutdown);
    }

    let id = support::authorized(&app, 2_000).await;
    let captured = support::post(&app, &intent_path(&id, "capture"), json!({})).await;
    assert_eq!(captured.ok()["amount_received"], 2_000);

    until(async || inbox.received().len() >= 2).await;
    let mut kinds = Vec::new();
    for (header, body) in inbox.received() {
        signature::verify(
            &header,
            &body,
            &["whsec_module".to_owned()],
            support::now_s(),
            300,
        )
        .expect("signed with the first secret");
        let event: Event = serde_json::from_slice(&body).expect("an event");
        kinds.push(event.kind);
    }
    kinds.sort_by_key(|k| k.as_str());
    assert_eq!(
        kinds,
        [EventType::AmountCapturableUpdated, EventType::Succeeded]
    );
    assert!(
        shutdown.complete(Duration::from_secs(5)).await,
        "tasks stop"
    );
    for closer in started.closers {
        closer.await;
    }
}

#[tokio::test]
async fn the_module_migrates_its_postgres_schema() {
    let url = crate::postgres::database_url();
    platform::store::ensure_postgres_database(&url)
        .await
        .expect("a PostgreSQL server (set RICKSHAW_TEST_DATABASE_URL)");
    provider::Module.migrate(&url).await.expect("migrates");
    provider::Module.migrate(&url).await.expect("idempotent");
    let store = crate::postgres::store().await;
    let (provider, app) = support::app(Arc::new(store), 3600);
    let id = support::authorized(&app, 100).await;
    assert_eq!(provider.intent(&id).await.expect("found").amount, 100);
}
