//! The identity store contract on a real PostgreSQL server, and what several service instances
//! share through it.

use std::sync::Arc;

use domain::Role;
use identity::{IdentityApi, IdentityError};

use crate::support::{self, PASSWORD};

mod contract {
    identity::identity_store_contract!(async { Box::new(crate::support::pg_store().await) });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_share_the_login_limit_and_the_sessions() {
    let store: Arc<dyn identity::AccountStore> = Arc::new(support::pg_store().await);
    let config = support::config(3);
    let (one, two) = (
        support::service(store.clone(), &config),
        support::service(store, &config),
    );
    let email = support::email("shared");
    one.sign_up(support::sign_up(&email, Role::Rider))
        .await
        .expect("signed up");
    let tokens = two
        .log_in(email.clone(), PASSWORD.into())
        .await
        .expect("the other instance knows the account");
    let refreshed = one
        .refresh(tokens.refresh_token.clone())
        .await
        .expect("the first instance rotates the session");
    assert!(matches!(
        two.refresh(tokens.refresh_token).await,
        Err(IdentityError::InvalidToken(_))
    ));
    assert!(
        matches!(
            two.refresh(refreshed.refresh_token).await,
            Err(IdentityError::InvalidToken(_))
        ),
        "reuse seen by one instance revoked the session for all"
    );

    for instance in [&one, &two, &one] {
        assert_eq!(
            instance
                .log_in(email.clone(), "wrong password".into())
                .await,
            Err(IdentityError::InvalidCredentials)
        );
    }
    assert!(matches!(
        two.log_in(email.clone(), PASSWORD.into()).await,
        Err(IdentityError::TooManyAttempts { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_on_postgres_have_one_winner() {
    let store: Arc<dyn identity::AccountStore> = Arc::new(support::pg_store().await);
    let service = Arc::new(support::service(store, &support::config(5)));
    let email = support::email("race");
    service
        .sign_up(support::sign_up(&email, Role::Driver))
        .await
        .expect("signed up");
    let tokens = service
        .log_in(email, PASSWORD.into())
        .await
        .expect("logged in");
    let results = crate::service::refresh_concurrently(&service, &tokens.refresh_token, 20).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
}
