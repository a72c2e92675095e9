//! The contract every identity store must pass; instantiate with `identity_store_contract!`.

use domain::{AccountId, Email, Package, PersonName, Role, Timestamp, Vehicle};

use super::{AccountStore, RefreshGrant, Rotation, StoreError, TokenHash};
use crate::Account;

/// An email unique to this run, so stores backed by a shared server need no cleanup.
pub fn unique_email(base: &str) -> Email {
    let id = uuid::Uuid::now_v7().simple().to_string();
    Email::parse(&format!("{base}.{}@example.com", &id[16..])).expect("valid email")
}

pub fn new_account(email: Email, role: Role) -> Account {
    Account {
        id: AccountId::from_uuid(uuid::Uuid::now_v7()),
        email,
        name: PersonName::parse("Ana Rahman").expect("valid name"),
        role,
        vehicle: None,
        created_at: Timestamp::from_millis(1_700_000_000_000),
    }
}

fn token(text: &str) -> TokenHash {
    // Unique per run too: the hashes are primary keys in a shared database.
    TokenHash::of(&format!("{text}-{}", uuid::Uuid::now_v7()))
}

fn at(millis: i64) -> Timestamp {
    Timestamp::from_millis(millis)
}

/// An account with one refresh token, valid until `expires_at`.
async fn account_with_token(
    store: &dyn AccountStore,
    expires_at: Timestamp,
) -> (Account, TokenHash) {
    let account = new_account(unique_email("tok"), Role::Rider);
    store
        .create_account(&account, "$argon2id$stub")
        .await
        .expect("created");
    let hash = token("first");
    store
        .add_refresh_token(&RefreshGrant {
            token: hash.clone(),
            account: account.id,
            issued_at: at(1_000),
            expires_at,
        })
        .await
        .expect("stored");
    (account, hash)
}

pub async fn an_account_is_found_by_id_and_by_email(store: &dyn AccountStore) {
    let account = new_account(unique_email("ana"), Role::Driver);
    assert_eq!(store.account(account.id).await.expect("query"), None);
    assert_eq!(
        store.credentials(&account.email).await.expect("query"),
        None
    );
    store
        .create_account(&account, "$argon2id$v=19$stub")
        .await
        .expect("created");
    assert_eq!(
        store.account(account.id).await.expect("query"),
        Some(account.clone())
    );
    let credentials = store
        .credentials(&account.email)
        .await
        .expect("query")
        .expect("found by email");
    assert_eq!(credentials.account, account);
    assert_eq!(credentials.password_hash, "$argon2id$v=19$stub");
    let stranger = AccountId::from_uuid(uuid::Uuid::now_v7());
    assert_eq!(store.account(stranger).await.expect("query"), None);
}

pub async fn an_email_has_one_account(store: &dyn AccountStore) {
    let email = unique_email("dup");
    let first = new_account(email.clone(), Role::Rider);
    store.create_account(&first, "h1").await.expect("created");
    let second = new_account(email.clone(), Role::Driver);
    let refused = store.create_account(&second, "h2").await;
    assert!(
        matches!(&refused, Err(StoreError::EmailTaken(e)) if *e == email),
        "{refused:?}"
    );
    assert_eq!(store.account(second.id).await.expect("query"), None);
    let kept = store
        .credentials(&email)
        .await
        .expect("query")
        .expect("found");
    assert_eq!((kept.account, kept.password_hash.as_str()), (first, "h1"));
}

pub async fn a_vehicle_is_set_and_replaced(store: &dyn AccountStore) {
    let account = new_account(unique_email("drv"), Role::Driver);
    store.create_account(&account, "h").await.expect("created");
    let car = Vehicle::new(Package::Car, "DHA-11", "Toyota Axio").expect("valid");
    let updated = store
        .set_vehicle(account.id, &car)
        .await
        .expect("query")
        .expect("found");
    assert_eq!(updated.vehicle.as_ref(), Some(&car));
    assert_eq!((updated.id, &updated.email), (account.id, &account.email));
    let bike = Vehicle::new(Package::Bike, "BK 7", "Honda CB").expect("valid");
    store
        .set_vehicle(account.id, &bike)
        .await
        .expect("query")
        .expect("found");
    let stored = store
        .account(account.id)
        .await
        .expect("query")
        .expect("found");
    assert_eq!(stored.vehicle, Some(bike.clone()));
    let stranger = AccountId::from_uuid(uuid::Uuid::now_v7());
    assert_eq!(
        store.set_vehicle(stranger, &bike).await.expect("query"),
        None
    );
}

pub async fn a_refresh_token_rotates_once_and_reuse_revokes_the_family(store: &dyn AccountStore) {
    let (account, t1) = account_with_token(store, at(1_000_000)).await;
    let (t2, t3, t4, t5) = (token("t2"), token("t3"), token("t4"), token("t5"));
    let rotated = Rotation::Rotated {
        account: account.id,
    };
    let reused = Rotation::Reused {
        account: account.id,
    };
    let rotate = |from: &TokenHash, to: &TokenHash| {
        let (from, to) = (from.clone(), to.clone());
        async move {
            store
                .rotate_refresh_token(&from, &to, at(1_000_000), at(2_000))
                .await
                .expect("rotation")
        }
    };
    assert_eq!(rotate(&t1, &t2).await, rotated);
    assert_eq!(rotate(&t2, &t3).await, rotated, "the replacement is live");
    assert_eq!(rotate(&t1, &t4).await, reused, "t1 was spent");
    assert_eq!(
        rotate(&t3, &t5).await,
        reused,
        "reuse revoked the newest token of the account too"
    );
    assert_eq!(
        rotate(&t4, &token("t6")).await,
        Rotation::Unknown,
        "a reused token gets no replacement"
    );
    assert!(!store.revoke_refresh_token(&t3).await.expect("revoke"));

    // Other accounts keep their sessions.
    let (_, other) = account_with_token(store, at(1_000_000)).await;
    assert_eq!(rotate(&t1, &token("t7")).await, reused);
    assert!(matches!(
        rotate(&other, &token("t8")).await,
        Rotation::Rotated { account: a } if a != account.id
    ));
}

pub async fn an_expired_or_unknown_refresh_token_is_refused(store: &dyn AccountStore) {
    let (account, t1) = account_with_token(store, at(5_000)).await;
    let next = token("next");
    assert_eq!(
        store
            .rotate_refresh_token(&t1, &next, at(9_000), at(5_000))
            .await
            .expect("rotation"),
        Rotation::Expired,
        "a token is refused from its expiry on"
    );
    assert_eq!(
        store
            .rotate_refresh_token(&token("never-issued"), &next, at(9_000), at(4_000))
            .await
            .expect("rotation"),
        Rotation::Unknown
    );
    assert_eq!(
        store
            .rotate_refresh_token(&t1, &next, at(9_000), at(4_999))
            .await
            .expect("rotation"),
        Rotation::Rotated {
            account: account.id
        },
        "an expired attempt changed nothing"
    );
    assert_eq!(
        store
            .rotate_refresh_token(&next, &token("after"), at(12_000), at(8_999))
            .await
            .expect("rotation"),
        Rotation::Rotated {
            account: account.id
        },
        "the replacement carries its own expiry"
    );
}

pub async fn revoking_is_idempotent_and_per_account(store: &dyn AccountStore) {
    let (account, t1) = account_with_token(store, at(1_000_000)).await;
    assert!(store.revoke_refresh_token(&t1).await.expect("revoke"));
    assert!(!store.revoke_refresh_token(&t1).await.expect("again"));
    assert!(
        !store
            .revoke_refresh_token(&token("unknown"))
            .await
            .expect("unknown")
    );
    assert_eq!(
        store
            .rotate_refresh_token(&t1, &token("x"), at(1_000_000), at(2_000))
            .await
            .expect("rotation"),
        Rotation::Reused {
            account: account.id
        },
        "a logged-out token presented again counts as reuse"
    );

    let (account, a1) = account_with_token(store, at(1_000_000)).await;
    let a2 = token("a2");
    store
        .add_refresh_token(&RefreshGrant {
            token: a2.clone(),
            account: account.id,
            issued_at: at(1_000),
            expires_at: at(1_000_000),
        })
        .await
        .expect("second session");
    let (_, b1) = account_with_token(store, at(1_000_000)).await;
    assert_eq!(
        store
            .revoke_all_refresh_tokens(account.id)
            .await
            .expect("revoke all"),
        2
    );
    for spent in [&a1, &a2] {
        assert!(!store.revoke_refresh_token(spent).await.expect("revoke"));
    }
    assert!(
        store.revoke_refresh_token(&b1).await.expect("revoke"),
        "another account's token was live"
    );
}

pub async fn concurrent_rotations_of_one_token_have_one_winner(store: &dyn AccountStore) {
    let (account, t1) = account_with_token(store, at(1_000_000)).await;
    let nexts: Vec<TokenHash> = (0..20).map(|i| token(&format!("n{i}"))).collect();
    let outcomes = futures_util::future::join_all(nexts.iter().map(|next| {
        let t1 = t1.clone();
        async move {
            store
                .rotate_refresh_token(&t1, next, at(1_000_000), at(2_000))
                .await
                .expect("rotation")
        }
    }))
    .await;
    let winners = outcomes
        .iter()
        .filter(|o| matches!(o, Rotation::Rotated { .. }))
        .count();
    assert_eq!(winners, 1, "{outcomes:?}");
    assert!(
        outcomes.iter().all(|o| matches!(
            o,
            Rotation::Rotated { account: a } | Rotation::Reused { account: a } if *a == account.id
        )),
        "{outcomes:?}"
    );
    // Every loser presented a spent token, so the winner's replacement is revoked as well.
    for next in &nexts {
        assert!(!store.revoke_refresh_token(next).await.expect("revoke"));
    }
}

pub async fn login_attempts_are_counted_per_email_in_a_window(store: &dyn AccountStore) {
    let (ana, bob) = (unique_email("ana"), unique_email("bob"));
    let ids: Vec<uuid::Uuid> = (0..4).map(|_| uuid::Uuid::now_v7()).collect();
    for (id, millis) in ids.iter().zip([1_000, 3_000, 2_000]) {
        store
            .record_login_attempt(*id, &ana, at(millis))
            .await
            .expect("recorded");
    }
    store
        .record_login_attempt(ids[3], &bob, at(2_500))
        .await
        .expect("recorded");
    assert_eq!(
        store
            .login_attempts_since(&ana, at(1_000))
            .await
            .expect("query"),
        vec![at(2_000), at(3_000)],
        "after `since` (exclusive), oldest first"
    );
    store.forget_login_attempt(ids[1]).await.expect("forget");
    assert_eq!(
        store
            .login_attempts_since(&ana, at(0))
            .await
            .expect("query"),
        vec![at(1_000), at(2_000)]
    );
    assert!(
        store
            .forget_login_attempts_before(at(2_001))
            .await
            .expect("prune")
            >= 2
    );
    assert_eq!(
        store
            .login_attempts_since(&ana, at(0))
            .await
            .expect("query"),
        Vec::<Timestamp>::new()
    );
    assert_eq!(
        store
            .login_attempts_since(&bob, at(0))
            .await
            .expect("query"),
        vec![at(2_500)],
        "pruning keeps what is recent"
    );
    store.forget_login_attempt(ids[3]).await.expect("forget");
}

/// One `#[tokio::test]` per clause for the store built by `$make` (an async block). `$make`
/// yields a pointer to the store: a `Box`, an `Arc`, or a fixture that derefs to the store and
/// keeps what it needs alive (a temporary directory).
#[macro_export]
macro_rules! identity_store_contract {
    ($make:expr) => {
        $crate::identity_store_contract!(@tests $make;
            an_account_is_found_by_id_and_by_email,
            an_email_has_one_account,
            a_vehicle_is_set_and_replaced,
            a_refresh_token_rotates_once_and_reuse_revokes_the_family,
            an_expired_or_unknown_refresh_token_is_refused,
            revoking_is_idempotent_and_per_account,
            concurrent_rotations_of_one_token_have_one_winner,
            login_attempts_are_counted_per_email_in_a_window,
        );
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let store = $make.await;
                $crate::store::contract::$name(&*store).await;
            }
        )*
    };
}
