//! `rickshaw admin create`: an operations account. Sign-up never grants the admin role; this
//! writes one straight into the identity store — the embedded mode's SQLite file under the data
//! directory, or the distributed mode's PostgreSQL.

use std::sync::Arc;

use anyhow::Context;
use domain::{Email, PersonName, Role};
use identity::{
    AccountStore, IdentityConfig, IdentityService, PgAccountStore, SignUp, SigningKey,
    SqliteAccountStore,
};
use platform::Config;

/// Creates the admin `email` (`name`, `password`) in the store `config` names: PostgreSQL at
/// `database_url` if given, else `<data_dir>/identity.db`. The new account.
pub async fn create(
    config: &Config,
    database_url: Option<&str>,
    email: &str,
    name: &str,
    password: String,
) -> anyhow::Result<identity::Account> {
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!("--email: {e}"))?;
    let name = PersonName::parse(name).map_err(|e| anyhow::anyhow!("--name: {e}"))?;
    let identity_config = config.section::<IdentityConfig>()?;
    let (store, key): (Arc<dyn AccountStore>, SigningKey) = match database_url {
        Some(url) => {
            let store = PgAccountStore::connect(url, 1).await?;
            store.migrate().await?;
            // Creating an account issues no token: the cluster's key is not needed here.
            (Arc::new(store), SigningKey::generate())
        }
        None => {
            let dir = &config.data_dir;
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let pool = platform::store::open_sqlite(&dir.join("identity.db")).await?;
            let key = SigningKey::embedded(&identity_config, dir)?;
            (Arc::new(SqliteAccountStore::new(pool).await?), key)
        }
    };
    let service = IdentityService::new(store, key, &identity_config);
    let account = service
        .create(SignUp {
            email,
            password,
            name,
            role: Role::Admin,
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(account)
}
