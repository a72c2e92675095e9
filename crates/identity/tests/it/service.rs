//! The identity service end to end, over SQLite on disk (as the embedded mode runs it).

use std::sync::Arc;

use domain::{AccountId, Email, Package, Role, Timestamp, Vehicle};
use identity::IdentityConfig;
use identity::{
    Account, Caller, IdentityApi, IdentityError, IdentityService, SigningKey, TokenIssuer,
    TokenVerifier, Tokens,
};
use platform::{ApiError, ErrorCode};

use crate::support::{self, PASSWORD};

/// `n` refreshes of the same token, all in flight at once.
pub async fn refresh_concurrently(
    service: &Arc<IdentityService>,
    refresh_token: &str,
    n: usize,
) -> Vec<Result<Tokens, IdentityError>> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let service = service.clone();
            let token = refresh_token.to_owned();
            tokio::spawn(async move { service.refresh(token).await })
        })
        .collect();
    let mut results = Vec::with_capacity(n);
    for task in tasks {
        results.push(task.await.expect("refresh task"));
    }
    results
}

/// The caller an access token of `account` proves (as the gateway builds it).
fn caller(account: &Account) -> Caller {
    Caller::new(account.id, account.role, "")
}

fn now() -> Timestamp {
    platform::clock::now()
}

async fn signed_up(service: &IdentityService, role: Role) -> Email {
    let email = support::email(role.name());
    service
        .sign_up(support::sign_up(&email, role))
        .await
        .expect("signed up");
    email
}

fn invalid_token(result: Result<Tokens, IdentityError>) -> String {
    match result {
        Err(IdentityError::InvalidToken(message)) => message,
        other => panic!("expected InvalidToken, got {other:?}"),
    }
}

#[tokio::test]
async fn sign_up_log_in_and_the_access_token_says_who_and_what() {
    let (service, _dir) = support::sqlite_service(&support::config(5)).await;
    let email = support::email("Ana");
    let before = now();
    let account = service
        .sign_up(support::sign_up(&email, Role::Rider))
        .await
        .expect("signed up");
    assert_eq!((&account.email, account.role), (&email, Role::Rider));
    assert_eq!(account.vehicle, None);
    assert!(account.created_at >= before);
    assert_eq!(
        service.account(&caller(&account)).await,
        Ok(account.clone())
    );

    let tokens = service
        .log_in(email.clone(), PASSWORD.into())
        .await
        .expect("logged in");
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!((tokens.expires_in, tokens.refresh_expires_in), (900, 3600));
    assert_eq!(tokens.account, account);
    assert_ne!(tokens.access_token, tokens.refresh_token);

    let claims = service
        .verifier()
        .verify(&tokens.access_token, now())
        .expect("valid access token");
    assert_eq!((claims.account, claims.role), (account.id, Role::Rider));
    let lifetime = claims.expires_at.as_millis() - before.as_millis();
    assert!(
        (899_000..=901_000).contains(&lifetime),
        "expires in ~900 s, got {lifetime} ms"
    );
    // Any holder of the key verifies it, without the service.
    let elsewhere = TokenVerifier::new(&support::key());
    assert_eq!(elsewhere.verify(&tokens.access_token, now()), Ok(claims));
}

#[tokio::test]
async fn refresh_rotates_and_reuse_signs_the_account_out() {
    let (service, _dir) = support::sqlite_service(&support::config(5)).await;
    let email = signed_up(&service, Role::Driver).await;
    let first = service
        .log_in(email.clone(), PASSWORD.into())
        .await
        .expect("logged in");
    let second = service
        .refresh(first.refresh_token.clone())
        .await
        .expect("rotated");
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(second.account, first.account);
    let claims = service
        .verifier()
        .verify(&second.access_token, now())
        .expect("new access token");
    assert_eq!(claims.account, first.account.id);

    // Another device's session, to check that reuse signs out everything.
    let other_device = service
        .log_in(email, PASSWORD.into())
        .await
        .expect("logged in again");

    let reused = invalid_token(service.refresh(first.refresh_token).await);
    assert!(reused.contains("already used"), "{reused}");
    invalid_token(service.refresh(second.refresh_token).await);
    invalid_token(service.refresh(other_device.refresh_token).await);
}

#[tokio::test]
async fn log_out_revokes_and_is_idempotent() {
    let (service, _dir) = support::sqlite_service(&support::config(5)).await;
    let email = signed_up(&service, Role::Rider).await;
    let tokens = service
        .log_in(email, PASSWORD.into())
        .await
        .expect("logged in");
    service
        .log_out(tokens.refresh_token.clone())
        .await
        .expect("logged out");
    invalid_token(service.refresh(tokens.refresh_token.clone()).await);
    service
        .log_out(tokens.refresh_token)
        .await
        .expect("logging out twice is fine");
    service
        .log_out("never-issued".into())
        .await
        .expect("an unknown token is fine");
    let unknown = invalid_token(service.refresh("never-issued".into()).await);
    assert!(unknown.contains("unknown"), "{unknown}");
}

#[tokio::test]
async fn an_email_has_one_account_whatever_its_case() {
    let (service, _dir) = support::sqlite_service(&support::config(5)).await;
    let email = support::email("case");
    service
        .sign_up(support::sign_up(&email, Role::Rider))
        .await
        .expect("signed up");
    let shouted = Email::parse(&email.as_str().to_uppercase()).expect("valid");
    let refused = service
        .sign_up(support::sign_up(&shouted, Role::Driver))
        .await
        .expect_err("duplicate");
    assert_eq!(refused, IdentityError::EmailTaken(email.clone()));
    let api = ApiError::from(refused);
    assert_eq!(api.code, ErrorCode::Conflict);
    assert!(api.message.contains(email.as_str()), "{}", api.message);
    // Logging in with any case reaches the one account.
    let tokens = service
        .log_in(shouted, PASSWORD.into())
        .await
        .expect("logged in");
    assert_eq!(tokens.account.email, email);
}

#[tokio::test]
async fn wrong_password_and_unknown_email_look_the_same() {
    let (service, _dir) = support::sqlite_service(&support::config(5)).await;
    let email = signed_up(&service, Role::Rider).await;
    let wrong = service
        .log_in(email, "not the password".into())
        .await
        .expect_err("wrong password");
    let unknown = service
        .log_in(support::email("nobody"), PASSWORD.into())
        .await
        .expect_err("unknown email");
    assert_eq!(wrong, IdentityError::InvalidCredentials);
    assert_eq!(wrong, unknown);
    let (wrong, unknown) = (ApiError::from(wrong), ApiError::from(unknown));
    assert_eq!(wrong, unknown);
    assert_eq!(wrong.code, ErrorCode::Unauthorized);
    assert_eq!(wrong.message, "wrong email or password");
}

#[tokio::test]
async fn past_the_free_failures_the_email_waits_before_its_next_attempt() {
    let (service, _dir) = support::sqlite_service(&support::config(3)).await;
    let email = signed_up(&service, Role::Rider).await;
    let bystander = signed_up(&service, Role::Rider).await;
    for _ in 0..3 {
        assert_eq!(
            service.log_in(email.clone(), "wrong password".into()).await,
            Err(IdentityError::InvalidCredentials)
        );
    }
    let locked = service
        .log_in(email.clone(), PASSWORD.into())
        .await
        .expect_err("waiting even with the right password");
    match &locked {
        IdentityError::TooManyAttempts { retry_after_s } => {
            assert!((55..=60).contains(retry_after_s), "{retry_after_s}");
        }
        other => panic!("expected TooManyAttempts, got {other:?}"),
    }
    let locked = ApiError::from(locked);
    assert_eq!(locked.code, ErrorCode::RateLimited);
    assert!(
        locked
            .retry_after_s()
            .is_some_and(|s| (55..=60).contains(&s))
    );
    assert!(
        matches!(
            service.log_in(email.clone(), "wrong password".into()).await,
            Err(IdentityError::TooManyAttempts { .. })
        ),
        "still locked"
    );
    service
        .log_in(bystander, PASSWORD.into())
        .await
        .expect("another email is not affected");
}

#[tokio::test]
async fn successes_do_not_count_against_the_limit() {
    let (service, _dir) = support::sqlite_service(&support::config(2)).await;
    let email = signed_up(&service, Role::Driver).await;
    for _ in 0..4 {
        service
            .log_in(email.clone(), PASSWORD.into())
            .await
            .expect("logged in");
    }
    assert_eq!(
        service.log_in(email.clone(), "wrong password".into()).await,
        Err(IdentityError::InvalidCredentials)
    );
    service
        .log_in(email, PASSWORD.into())
        .await
        .expect("one failure is under the limit of 2");
}

#[tokio::test]
async fn an_expired_access_token_is_refused() {
    let issuer = TokenIssuer::new(&support::key(), 900);
    let verifier = TokenVerifier::new(&support::key());
    let account = AccountId::from_uuid(uuid::Uuid::now_v7());
    let now = now();
    let stale = issuer
        .issue(account, Role::Rider, now.plus_millis(-901_000))
        .expect("signed");
    let refused = verifier.verify(&stale, now).expect_err("expired");
    assert!(
        matches!(&refused, IdentityError::InvalidToken(m) if m.contains("expired")),
        "{refused:?}"
    );
    assert_eq!(ApiError::from(refused).code, ErrorCode::Unauthorized);
    let fresh = issuer
        .issue(account, Role::Rider, now.plus_millis(-800_000))
        .expect("signed");
    assert!(verifier.verify(&fresh, now).is_ok());
}

#[tokio::test]
async fn a_token_signed_with_another_key_is_refused() {
    let (service, _dir) = support::sqlite_service(&support::config(5)).await;
    let email = signed_up(&service, Role::Rider).await;
    let tokens = service
        .log_in(email, PASSWORD.into())
        .await
        .expect("logged in");
    let stranger = TokenVerifier::new(&SigningKey::generate());
    assert!(matches!(
        stranger.verify(&tokens.access_token, now()),
        Err(IdentityError::InvalidToken(_))
    ));
    let forged = TokenIssuer::new(&SigningKey::generate(), 900)
        .issue(tokens.account.id, Role::Driver, now())
        .expect("signed");
    assert!(matches!(
        service.verifier().verify(&forged, now()),
        Err(IdentityError::InvalidToken(_))
    ));
}

#[tokio::test]
async fn only_drivers_set_a_vehicle() {
    let (service, _dir) = support::sqlite_service(&support::config(5)).await;
    let car = Vehicle::new(Package::Car, "DHA-KA 11", "Toyota Axio").expect("valid");
    let rider = service
        .sign_up(support::sign_up(&support::email("r"), Role::Rider))
        .await
        .expect("signed up");
    let refused = service
        .set_vehicle(&caller(&rider), car.clone())
        .await
        .expect_err("riders have no vehicle");
    assert!(
        matches!(refused, IdentityError::Forbidden(_)),
        "{refused:?}"
    );
    assert_eq!(ApiError::from(refused).code, ErrorCode::Forbidden);
    // A caller claiming to be a driver does not change what the account is.
    let pretender = Caller::new(rider.id, Role::Driver, "");
    assert!(matches!(
        service.set_vehicle(&pretender, car.clone()).await,
        Err(IdentityError::Forbidden(_))
    ));
    assert_eq!(
        service
            .account(&caller(&rider))
            .await
            .expect("found")
            .vehicle,
        None
    );

    let driver = service
        .sign_up(support::sign_up(&support::email("d"), Role::Driver))
        .await
        .expect("signed up");
    let updated = service
        .set_vehicle(&caller(&driver), car.clone())
        .await
        .expect("set");
    assert_eq!(updated.vehicle.as_ref(), Some(&car));
    assert_eq!(service.account(&caller(&driver)).await, Ok(updated));

    let ghost = Caller::new(AccountId::from_uuid(uuid::Uuid::now_v7()), Role::Driver, "");
    assert_eq!(
        service.set_vehicle(&ghost, car).await,
        Err(IdentityError::UnknownAccount)
    );
    let missing = service.account(&ghost).await.expect_err("unknown");
    assert_eq!(ApiError::from(missing).code, ErrorCode::NotFound);
}

#[tokio::test]
async fn passwords_must_be_8_to_128_characters() {
    let (service, _dir) = support::sqlite_service(&support::config(5)).await;
    for (password, accepted) in [
        ("1234567", false),
        ("12345678", true),
        (&*"p".repeat(128), true),
        (&*"p".repeat(129), false),
    ] {
        let mut request = support::sign_up(&support::email("pw"), Role::Rider);
        request.password = password.to_owned();
        let result = service.sign_up(request).await;
        match (accepted, result) {
            (true, Ok(_)) => {}
            (false, Err(e @ IdentityError::WeakPassword(_))) => {
                let api = ApiError::from(e);
                assert_eq!(
                    (api.code, api.field.as_deref()),
                    (ErrorCode::InvalidInput, Some("password"))
                );
            }
            (_, other) => panic!("{} characters: {other:?}", password.len()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_refreshes_of_one_token_have_one_winner() {
    let (service, _dir) = support::sqlite_service(&support::config(5)).await;
    let service = Arc::new(service);
    let email = signed_up(&service, Role::Rider).await;
    let tokens = service
        .log_in(email, PASSWORD.into())
        .await
        .expect("logged in");
    let results = refresh_concurrently(&service, &tokens.refresh_token, 20).await;
    let winners: Vec<&Tokens> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(_) | Err(IdentityError::InvalidToken(_)))),
        "{results:?}"
    );
    // The losers presented a spent token: the winner's new session is revoked as well.
    invalid_token(service.refresh(winners[0].refresh_token.clone()).await);
}

#[tokio::test]
async fn secrets_never_show_in_debug_output() {
    let (service, _dir) = support::sqlite_service(&support::config(5)).await;
    let email = signed_up(&service, Role::Rider).await;
    let request = support::sign_up(&email, Role::Rider);
    assert!(!format!("{request:?}").contains(PASSWORD));
    let tokens = service
        .log_in(email, PASSWORD.into())
        .await
        .expect("logged in");
    let shown = format!("{tokens:?} {service:?}");
    assert!(!shown.contains(&tokens.access_token), "{shown}");
    assert!(!shown.contains(&tokens.refresh_token), "{shown}");
    assert!(!shown.contains("test-signing-key"), "{shown}");
    // The wire form carries them, for the client.
    let json = serde_json::to_value(&tokens).expect("serializes");
    assert_eq!(json["refresh_token"], tokens.refresh_token.as_str());
    let back: Tokens = serde_json::from_value(json).expect("deserializes");
    assert_eq!(back, tokens);
}

#[tokio::test]
async fn store_failures_are_503_with_retry_after() {
    // An unavailable store is the caller's cue to try again shortly (the body stays opaque: 5xx
    // bodies never carry the cause).
    let api = ApiError::from(IdentityError::Store("disk full at /var/lib".into()));
    assert_eq!(api.code, ErrorCode::Unavailable);
    assert_eq!(api.code.http_status().as_u16(), 503);
    assert_eq!(api.retry_after_s(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_is_refused_with_503_not_queued_without_bound() {
    let config = IdentityConfig {
        hash_workers: 1,
        hash_queue: 1,
        hash_queue_timeout_ms: 10_000,
        ..support::config(0)
    };
    let (service, _dir) = support::sqlite_service(&config).await;
    let service = Arc::new(service);
    let email = signed_up(&service, Role::Rider).await;
    // 40 logins of fresh emails at once: one hashes, one waits, the rest are refused at once.
    let flood: Vec<_> = (0..40)
        .map(|i| {
            let service = service.clone();
            tokio::spawn(async move {
                service
                    .log_in(support::email(&format!("flood-{i}")), "whatever123".into())
                    .await
            })
        })
        .collect();
    let (mut wrong, mut busy) = (0, 0);
    for login in flood {
        match login.await.expect("joined") {
            Err(IdentityError::InvalidCredentials) => wrong += 1,
            Err(IdentityError::Busy { retry_after_s }) => {
                assert_eq!(retry_after_s, 10);
                let api = ApiError::from(IdentityError::Busy { retry_after_s });
                assert_eq!(api.code, ErrorCode::Unavailable);
                assert_eq!(api.retry_after_s(), Some(10));
                busy += 1;
            }
            other => panic!("expected 401 or 503, got {other:?}"),
        }
    }
    assert!((1..=10).contains(&wrong), "{wrong} checked, {busy} refused");
    assert!(busy >= 30, "{wrong} checked, {busy} refused");
    service
        .log_in(email, PASSWORD.into())
        .await
        .expect("the flood is over: a real login works");
}
