//! Money end to end, in the embedded mode (the provider in process, reached over real HTTP, its
//! webhooks too): a booking holds the fare, the completion captures it and the driver earns
//! their share; a free cancellation lets the hold go; a declined card stops the booking with 402;
//! a card that needs a confirmation books once confirmed.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use testkit::{StatusCode, TestApp, spawn_app};

use crate::product_flow::{act, go_online, offered, rider_and_driver};

/// A quote for the standard trip, then a booking of it with `card` (`None`: the default).
pub(crate) async fn quote(app: &TestApp, rider: &str) -> (String, u64) {
    let (status, preview) = app
        .call(
            Method::POST,
            "/v1/trips/preview",
            rider,
            Some(json!({"pickup": {"lat": 23.7580, "lng": 90.3895}, "dropoff": {"lat": 23.7806, "lng": 90.4074}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    let car = preview["fares"]
        .as_array()
        .expect("fares")
        .iter()
        .find(|f| f["package"] == "car")
        .expect("a car fare")
        .clone();
    (
        preview["quote_id"].as_str().expect("quote").to_owned(),
        car["fare"].as_u64().expect("fare"),
    )
}

pub(crate) async fn book(
    app: &TestApp,
    rider: &str,
    quote: &str,
    card: Option<&str>,
) -> (StatusCode, Value) {
    let mut body = json!({"quote_id": quote, "package": "car"});
    if let Some(card) = card {
        body["payment_method"] = json!(card);
    }
    app.call(Method::POST, "/v1/trips", rider, Some(body)).await
}

/// The rider's payment of `trip`, once `ready` accepts it (polled: settling follows the trip's
/// notices).
pub(crate) async fn payment_of(
    app: &TestApp,
    rider: &str,
    trip: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        let (status, body) = app.call(Method::GET, "/v1/me/payments", rider, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if let Some(payment) = body["payments"]
            .as_array()
            .expect("payments")
            .iter()
            .find(|p| p["trip_id"] == trip)
        {
            if ready(payment) {
                return payment.clone();
            }
            last = payment.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the payment of {trip} never got there; last seen: {last}");
}

#[tokio::test]
async fn a_trip_is_held_at_booking_and_captured_at_completion() {
    let app = spawn_app().await;
    let ((rider, _), (driver, _)) = rider_and_driver(&app).await;
    go_online(&app, &driver).await;
    let (quote, fare) = quote(&app, &rider).await;
    let (status, trip) = book(&app, &rider, &quote, None).await;
    assert_eq!(status, StatusCode::CREATED, "{trip}");
    let id = trip["id"].as_str().expect("id").to_owned();

    // Held: the fare and 20 %, in whole taka.
    let held = payment_of(&app, &rider, &id, |p| p["status"] == "authorized").await;
    let expected_hold = (fare * 12 / 10).div_ceil(100) * 100;
    assert_eq!(held["held"]["amount"], expected_hold, "{held}");
    assert_eq!(held["held"]["currency"], "BDT");
    assert_eq!(held["captured"]["amount"], 0);

    offered(&app, &driver, &id).await;
    for action in ["accept", "arrive", "start", "complete"] {
        act(&app, &driver, &id, action).await;
    }
    let captured = payment_of(&app, &rider, &id, |p| p["status"] == "captured").await;
    assert_eq!(
        captured["captured"]["amount"], fare,
        "the fare, not the hold: {captured}"
    );
    assert_eq!(captured["charged_for"], "fare");

    // The driver earns the fare less the 20 % commission, on today's line too.
    let (status, earnings) = app
        .call(Method::GET, "/v1/drivers/me/earnings", &driver, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{earnings}");
    let share = fare - (fare * 2_000).div_ceil(10_000);
    assert_eq!(earnings["total"]["amount"], share, "{earnings}");
    assert_eq!(earnings["trips"][0]["trip_id"], id.as_str());
    assert_eq!(earnings["days"][0]["trips"], 1);
    assert_eq!(earnings["days"][0]["amount"]["amount"], share);

    // Roles: a driver has no payments, a rider no earnings.
    let (status, _) = app
        .call(Method::GET, "/v1/me/payments", &driver, None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .call(Method::GET, "/v1/drivers/me/earnings", &rider, None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    app.stop().await;
}

#[tokio::test]
async fn a_free_cancellation_releases_the_hold_and_a_declined_card_books_nothing() {
    let app = spawn_app().await;
    let ((rider, _), _) = rider_and_driver(&app).await;

    let (declined_quote, _) = quote(&app, &rider).await;
    let (status, body) = book(
        &app,
        &rider,
        &declined_quote,
        Some("pm_card_chargeDeclined"),
    )
    .await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("declined")),
        "a message a person can act on: {body}"
    );
    let (_, trips) = app.call(Method::GET, "/v1/trips", &rider, None).await;
    assert_eq!(trips["trips"], json!([]), "no trip was booked");
    let (status, body) = book(&app, &rider, &declined_quote, Some("pm_no_such_card")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // The same quote with a good card books, then a free cancellation lets the hold go.
    let (status, trip) = book(&app, &rider, &declined_quote, None).await;
    assert_eq!(status, StatusCode::CREATED, "{trip}");
    let id = trip["id"].as_str().expect("id").to_owned();
    act(&app, &rider, &id, "cancel").await;
    let voided = payment_of(&app, &rider, &id, |p| p["status"] == "voided").await;
    assert_eq!(voided["captured"]["amount"], 0, "{voided}");
    app.stop().await;
}

#[tokio::test]
async fn a_card_that_needs_confirmation_books_once_confirmed() {
    let app = spawn_app().await;
    let ((rider, _), _) = rider_and_driver(&app).await;
    let (quote, _) = quote(&app, &rider).await;
    let (status, body) = book(&app, &rider, &quote, Some("pm_card_authenticationRequired")).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
    assert_eq!(body["error"]["next_action"], "confirm", "{body}");
    let trip = body["error"]["trip_id"]
        .as_str()
        .expect("trip id")
        .to_owned();

    let (status, confirmed) = app
        .call(
            Method::POST,
            &format!("/v1/payments/{trip}/confirm"),
            &rider,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    assert_eq!(confirmed["status"], "authorized");
    let (status, booked) = book(&app, &rider, &quote, Some("pm_card_authenticationRequired")).await;
    assert_eq!(status, StatusCode::CREATED, "{booked}");
    assert_eq!(
        booked["id"],
        trip.as_str(),
        "the trip the confirmation was for"
    );

    // Someone else's payment is not theirs to confirm.
    let other = app.account("rider").await.0;
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/v1/payments/{trip}/confirm"),
            &other,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

/// Signs `body` as the provider does, `age_s` seconds ago, with `secret`.
pub(crate) fn signed(secret: &str, age_s: i64, body: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let at = i64::try_from(now).expect("seconds") - age_s;
    provider::signature::sign(secret, at, body.as_bytes())
}

pub(crate) async fn post_webhook(app: &TestApp, signature: Option<&str>, body: &str) -> StatusCode {
    let mut request = app
        .http
        .post(app.url("/v1/payments/webhook"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(signature) = signature {
        request = request.header("Stripe-Signature", signature);
    }
    request.send().await.expect("sent").status()
}

/// The provider lets an uncaptured hold lapse (a 1 s authorization here): its signed webhook
/// expires the payment. Forged, stale and unsigned deliveries are refused; a duplicate, or an
/// older event arriving after a newer one, changes nothing.
#[tokio::test]
async fn the_webhook_receiver_follows_the_provider_and_refuses_forgeries() {
    let app = testkit::spawn_app_with(|c| {
        c.edit_section(|p: &mut provider::ProviderConfig| p.authorization_ttl_s = 1);
    })
    .await;
    let ((rider, _), _) = rider_and_driver(&app).await;
    let (quote, _) = quote(&app, &rider).await;
    let (status, trip) = book(&app, &rider, &quote, None).await;
    assert_eq!(status, StatusCode::CREATED, "{trip}");
    let id = trip["id"].as_str().expect("id").to_owned();
    let expired = payment_of(&app, &rider, &id, |p| p["status"] == "expired").await;
    assert_eq!(expired["captured"]["amount"], 0, "{expired}");

    let secret = "whsec_rickshaw_test";
    let event = |id: &str, kind: &str| {
        json!({"id": id, "object": "event", "type": kind, "created": 1,
               "data": {"object": {"id": "pi_unknown", "object": "payment_intent",
                                   "status": "canceled", "cancellation_reason": "automatic"}}})
        .to_string()
    };
    let body = event("evt_test_duplicate", "payment_intent.canceled");
    assert_eq!(
        post_webhook(&app, None, &body).await,
        StatusCode::BAD_REQUEST,
        "unsigned"
    );
    assert_eq!(
        post_webhook(&app, Some(&signed("whsec_forged", 0, &body)), &body).await,
        StatusCode::BAD_REQUEST,
        "another secret"
    );
    assert_eq!(
        post_webhook(&app, Some(&signed(secret, 600, &body)), &body).await,
        StatusCode::BAD_REQUEST,
        "ten minutes old"
    );
    let tampered = body.replace("automatic", "requested_by_customer");
    assert_eq!(
        post_webhook(&app, Some(&signed(secret, 0, &body)), &tampered).await,
        StatusCode::BAD_REQUEST,
        "a body that is not the one signed"
    );
    for _ in 0..2 {
        assert_eq!(
            post_webhook(&app, Some(&signed(secret, 0, &body)), &body).await,
            StatusCode::OK,
            "a genuine event, and its duplicate"
        );
    }
    // An older "authorized" event arriving late leaves the expired payment as it is.
    let late = event("evt_test_late", "payment_intent.amount_capturable_updated");
    assert_eq!(
        post_webhook(&app, Some(&signed(secret, 0, &late)), &late).await,
        StatusCode::OK
    );
    let still = payment_of(&app, &rider, &id, |_| true).await;
    assert_eq!(still["status"], "expired", "{still}");
    app.stop().await;
}

/// A late cancellation captures only the fee, and the driver earns their share of it.
#[tokio::test]
async fn a_late_cancellation_captures_only_the_fee() {
    let app = testkit::spawn_app_with(|c| {
        c.edit_section(|t: &mut trip::TripsConfig| t.free_cancel_window_ms = 0);
    })
    .await;
    let ((rider, _), (driver, _)) = rider_and_driver(&app).await;
    go_online(&app, &driver).await;
    let (quote, fare) = quote(&app, &rider).await;
    let (status, trip) = book(&app, &rider, &quote, None).await;
    assert_eq!(status, StatusCode::CREATED, "{trip}");
    let id = trip["id"].as_str().expect("id").to_owned();
    offered(&app, &driver, &id).await;
    act(&app, &driver, &id, "accept").await;
    let cancelled = act(&app, &rider, &id, "cancel").await;
    let fee = cancelled["cancellation_fee"]["amount"]
        .as_u64()
        .expect("a fee");
    assert!(fee > 0 && fee < fare, "{cancelled}");
    let paid = payment_of(&app, &rider, &id, |p| p["status"] == "captured").await;
    assert_eq!(paid["captured"]["amount"], fee, "only the fee: {paid}");
    assert_eq!(paid["charged_for"], "fee");
    let (_, earnings) = app
        .call(Method::GET, "/v1/drivers/me/earnings", &driver, None)
        .await;
    assert_eq!(earnings["total"]["amount"], fee - fee / 5, "{earnings}");
    app.stop().await;
}

/// `Idempotency-Key` (Stripe's semantics): twenty concurrent retries of one booking make one trip
/// and one hold; a finished request is replayed; the key with other parameters is a 422; an
/// action sent twice with one key answers the same trip twice.
#[tokio::test]
async fn retries_with_one_idempotency_key_book_once() {
    let app = spawn_app().await;
    let ((rider, _), _) = rider_and_driver(&app).await;
    let (quote, _) = quote(&app, &rider).await;
    let send = |key: &'static str, package: &'static str| {
        let request = app
            .http
            .post(app.url("/v1/trips"))
            .bearer_auth(&rider)
            .header("Idempotency-Key", key)
            .json(&json!({"quote_id": quote, "package": package}));
        async move {
            let response = request.send().await.expect("sent");
            let status = response.status();
            (status, response.json::<Value>().await.expect("JSON"))
        }
    };
    let answers = futures_util::future::join_all((0..20).map(|_| send("booking-1", "car"))).await;
    let booked: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .map(|(_, body)| body)
        .collect();
    assert!(!booked.is_empty(), "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|(status, _)| *status == StatusCode::CREATED || *status == StatusCode::CONFLICT),
        "201, or 409 while the first runs: {answers:?}"
    );
    let id = booked[0]["id"].clone();
    assert!(booked.iter().all(|b| b["id"] == id), "{booked:?}");
    let (status, again) = send("booking-1", "car").await;
    assert_eq!(
        (status, &again["id"]),
        (StatusCode::CREATED, &id),
        "replayed"
    );
    let (status, other) = send("booking-1", "bike").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{other}");
    assert_eq!(other["error"]["field"], "Idempotency-Key");

    let (_, trips) = app.call(Method::GET, "/v1/trips", &rider, None).await;
    assert_eq!(trips["trips"].as_array().map(Vec::len), Some(1), "{trips}");
    let (_, payments) = app.call(Method::GET, "/v1/me/payments", &rider, None).await;
    assert_eq!(
        payments["payments"].as_array().map(Vec::len),
        Some(1),
        "one hold: {payments}"
    );

    // An action twice with one key: the same answer; a third time without the key: 409.
    let trip = id.as_str().expect("id");
    let cancel = |key: Option<&'static str>| {
        let mut request = app
            .http
            .post(app.url(&format!("/v1/trips/{trip}/cancel")))
            .bearer_auth(&rider);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        async move { request.send().await.expect("sent").status() }
    };
    assert_eq!(cancel(Some("cancel-1")).await, StatusCode::OK);
    assert_eq!(cancel(Some("cancel-1")).await, StatusCode::OK, "replayed");
    assert_eq!(
        cancel(None).await,
        StatusCode::CONFLICT,
        "cancelled already"
    );
    app.stop().await;
}

/// A rider and a driver through a whole booked trip, its fare captured: `(rider token, driver
/// token, trip id, fare)`.
async fn a_captured_trip(app: &TestApp) -> (String, String, String, u64) {
    let ((rider, _), (driver, _)) = rider_and_driver(app).await;
    go_online(app, &driver).await;
    let (quote, fare) = quote(app, &rider).await;
    let (_, trip) = book(app, &rider, &quote, None).await;
    let id = trip["id"].as_str().expect("id").to_owned();
    offered(app, &driver, &id).await;
    for action in ["accept", "arrive", "start", "complete"] {
        act(app, &driver, &id, action).await;
    }
    payment_of(app, &rider, &id, |p| p["status"] == "captured").await;
    (rider, driver, id, fare)
}

/// An admin (made by `rickshaw admin create`, never by sign-up) refunds a trip: a part, then the
/// rest; each refund once per `Idempotency-Key`, never more than was captured; the rider gets a
/// notice, the driver's earnings follow.
#[tokio::test]
async fn an_admin_refunds_once_per_key_and_never_more_than_captured() {
    let app = spawn_app().await;
    let (rider, driver, id, fare) = a_captured_trip(&app).await;

    // Sign-up cannot make an admin; the command can.
    let (status, _) = app
        .post_json(
            "/v1/auth/signup",
            json!({"email": "ops@example.com", "password": "correct horse battery", "name": "Ops", "role": "admin"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let admin = crate::audit::admin_token(
        &app,
        "ops@example.com",
        &["--data-dir", &app.config.data_dir.to_string_lossy()],
    )
    .await;

    let refund = |token: String, key: Option<&'static str>, body: Value| {
        let mut request = app
            .http
            .post(app.url(&format!("/v1/admin/payments/{id}/refund")))
            .bearer_auth(token)
            .json(&body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        async move {
            let response = request.send().await.expect("sent");
            let status = response.status();
            (status, response.json::<Value>().await.expect("JSON"))
        }
    };
    let part = fare / 4;
    let (status, _) = refund(rider.clone(), Some("r1"), json!({"amount": part})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a rider refunds nothing");
    let (status, body) = refund(admin.clone(), None, json!({"amount": part})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "Idempotency-Key");
    for _ in 0..2 {
        let (status, body) = refund(admin.clone(), Some("r1"), json!({"amount": part})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["refunded"]["amount"], part,
            "once, however often it is sent: {body}"
        );
    }
    let (status, body) = refund(admin.clone(), Some("r1"), json!({"amount": part + 1})).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the key with another amount: {body}"
    );
    let (status, body) = refund(admin.clone(), Some("r2"), json!({"amount": fare})).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "more than is left: {body}"
    );
    let (status, body) = refund(admin.clone(), Some("r3"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["refunded"]["amount"], fare, "the rest: {body}");

    let paid = payment_of(&app, &rider, &id, |p| p["refunded"]["amount"] == fare).await;
    assert_eq!(paid["captured"]["amount"], fare);
    let (_, earnings) = app
        .call(Method::GET, "/v1/drivers/me/earnings", &driver, None)
        .await;
    assert_eq!(
        earnings["total"]["amount"], 0,
        "a whole refund takes the share back: {earnings}"
    );
    app.stop().await;
}

/// A refund made at the provider itself (its dashboard, say) reaches the payment through the
/// provider's signed `charge.refunded`; an admin's own refund, reported by the same webhook too,
/// is recorded once however the two race.
#[tokio::test]
async fn refunds_made_at_the_provider_are_reconciled_once() {
    let app = spawn_app().await;
    let (rider, driver, id, fare) = a_captured_trip(&app).await;
    let db = platform::store::open_sqlite(&app.config.data_dir.join("payment.db"))
        .await
        .expect("the payment database");
    let (intent,): (String,) = sqlx::query_as("SELECT intent_id FROM payments WHERE trip_id = $1")
        .bind(&id)
        .fetch_one(&db)
        .await
        .expect("the intent");
    db.close().await;

    let at_provider = fare / 5;
    let response = app
        .http
        .post(app.url("/provider/v1/refunds"))
        .bearer_auth("sk_test_rickshaw")
        .header("Idempotency-Key", "dashboard-1")
        .json(&json!({"payment_intent": intent, "amount": at_provider}))
        .send()
        .await
        .expect("sent");
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{:?}",
        response.text().await
    );
    let seen = payment_of(&app, &rider, &id, |p| {
        p["refunded"]["amount"] == at_provider
    })
    .await;
    assert_eq!(seen["captured"]["amount"], fare, "{seen}");

    let admin = crate::audit::admin_token(
        &app,
        "ops@example.com",
        &["--data-dir", &app.config.data_dir.to_string_lossy()],
    )
    .await;
    let by_admin = fare / 10;
    let response = app
        .http
        .post(app.url(&format!("/v1/admin/payments/{id}/refund")))
        .bearer_auth(&admin)
        .header("Idempotency-Key", "admin-1")
        .json(&json!({"amount": by_admin}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    // The provider's report of the admin's refund comes too; it must not count it again.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let settled = payment_of(&app, &rider, &id, |_| true).await;
    assert_eq!(
        settled["refunded"]["amount"],
        at_provider + by_admin,
        "each refund once: {settled}"
    );
    // The driver gives back their share of both.
    let (_, earnings) = app
        .call(Method::GET, "/v1/drivers/me/earnings", &driver, None)
        .await;
    let share = |amount: u64| amount - (amount * 2_000).div_ceil(10_000);
    // The platform's part of refunds is computed on their running total, so two refunds give
    // back what one of their sum would.
    assert_eq!(
        earnings["total"]["amount"],
        share(fare) - share(at_provider + by_admin),
        "the fare's share less the refunds' shares: {earnings}"
    );
    app.stop().await;
}
