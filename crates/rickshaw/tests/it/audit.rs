//! Money and trust end to end, in both modes (issue 12's "done when"): a booking retried twenty
//! times at once with one `Idempotency-Key` makes one trip and one hold; the completion captures
//! the fare and the rider's receipt reaches a real SMTP server; both sides rate; an admin refunds a
//! part (a notice by mail); a late cancellation captures only the fee; a declined card books
//! nothing; the webhook receiver refuses forgeries and takes a duplicate once; and the audit log
//! shows the trip's whole history in order, to admins only.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use testkit::{StatusCode, TestApp};

use crate::mail::{Smtp, message_with, taka};
use crate::payments::{book, payment_of, post_webhook, quote, signed};
use crate::product_flow::{act, go_online, offered, rider_and_driver};

pub(crate) const PASSWORD: &str = "correct horse battery";

/// Makes an admin with `rickshaw admin create` (on the store `store` names: `--data-dir …` or
/// `--database-url …`), logs in through `app`, and returns the access token.
pub(crate) async fn admin_token(app: &TestApp, email: &str, store: &[&str]) -> String {
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_rickshaw"))
        .args(["admin", "create", "--email", email, "--name", "Ops"])
        .args(store)
        .env("RICKSHAW_ADMIN_PASSWORD", PASSWORD)
        .output()
        .expect("the binary runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let (status, login) = app
        .post_json(
            "/v1/auth/login",
            json!({"email": email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert_eq!(login["account"]["role"], "admin");
    login["access_token"].as_str().expect("token").to_owned()
}

/// `GET /v1/admin/audit?{query}` as `admin`, every page (`limit` a page), once `done` accepts the
/// entries' kinds (polled: the log follows the bus).
async fn audit(
    app: &TestApp,
    admin: &str,
    query: &str,
    limit: u32,
    done: impl Fn(&[&str]) -> bool,
) -> Vec<Value> {
    let mut last = Vec::new();
    for _ in 0..150 {
        let mut entries = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut path = format!("/v1/admin/audit?{query}&limit={limit}");
            if let Some(after) = &after {
                path.push_str(&format!("&after={after}"));
            }
            let (status, page) = app.call(Method::GET, &path, admin, None).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            entries.extend(page["entries"].as_array().expect("entries").iter().cloned());
            match page["next"].as_str() {
                Some(next) => after = Some(next.to_owned()),
                None => break,
            }
        }
        let kinds: Vec<&str> = entries
            .iter()
            .map(|e| e["kind"].as_str().expect("kind"))
            .collect();
        if done(&kinds) {
            return entries;
        }
        last = entries;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the audit log never got there: {last:#?}");
}

fn count(kinds: &[&str], kind: &str) -> usize {
    kinds.iter().filter(|k| **k == kind).count()
}

/// The scenario, on `app` (the public edge) with `backend` (where the payment service, and so
/// the webhook receiver, runs), mail going to `smtp`; `store` tells `rickshaw admin create` where
/// the accounts are.
async fn money_and_trust(app: &TestApp, backend: &TestApp, smtp: &Smtp, store: &[&str]) {
    let ((rider, rider_id), (driver, driver_id)) = rider_and_driver(app).await;
    go_online(app, &driver).await;
    let admin = admin_token(app, &format!("ops-{}@example.com", &rider_id[..8]), store).await;

    // Twenty concurrent retries of one booking: one trip, one hold.
    let (quote_id, fare) = quote(app, &rider).await;
    let send = || {
        let request = app
            .http
            .post(app.url("/v1/trips"))
            .bearer_auth(&rider)
            .header("Idempotency-Key", "book-once")
            .json(&json!({"quote_id": quote_id, "package": "car"}));
        async move {
            let response = request.send().await.expect("sent");
            let status = response.status();
            (status, response.json::<Value>().await.expect("JSON"))
        }
    };
    let answers = futures_util::future::join_all((0..20).map(|_| send())).await;
    assert!(
        answers
            .iter()
            .all(|(s, _)| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT),
        "201, or 409 while the first runs: {answers:?}"
    );
    let booked: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .map(|(_, b)| b)
        .collect();
    assert!(!booked.is_empty(), "{answers:?}");
    let id = booked[0]["id"].as_str().expect("id").to_owned();
    assert!(booked.iter().all(|b| b["id"] == id.as_str()), "{booked:?}");
    let held = payment_of(app, &rider, &id, |p| p["status"] == "authorized").await;
    let (_, payments) = app.call(Method::GET, "/v1/me/payments", &rider, None).await;
    assert_eq!(
        payments["payments"].as_array().map(Vec::len),
        Some(1),
        "one hold: {payments}"
    );

    // Completed: the fare captured (not the hold), the receipt at the SMTP server.
    offered(app, &driver, &id).await;
    for action in ["accept", "arrive", "start", "complete"] {
        act(app, &driver, &id, action).await;
    }
    let captured = payment_of(app, &rider, &id, |p| p["status"] == "captured").await;
    assert_eq!(
        captured["captured"]["amount"], fare,
        "{captured} (held {held})"
    );
    let (_, me) = app.call(Method::GET, "/v1/me", &rider, None).await;
    let email = me["email"].as_str().expect("email").to_owned();
    let receipt = message_with(
        &smtp.maildir,
        &format!("Your Rickshaw receipt: {}", taka(fare)),
    )
    .await;
    assert!(receipt.contains(&email), "to the rider: {receipt}");

    // Both rate, once each.
    for (token, stars) in [(&rider, 5), (&driver, 4)] {
        let (status, body) = app
            .call(
                Method::POST,
                &format!("/v1/trips/{id}/rating"),
                token,
                Some(json!({"stars": stars, "tags": ["polite"]})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    // An admin refunds a part: the rider is told by mail.
    let part = fare / 4;
    let (status, refunded) = {
        let response = app
            .http
            .post(app.url(&format!("/v1/admin/payments/{id}/refund")))
            .bearer_auth(&admin)
            .header("Idempotency-Key", "refund-1")
            .json(&json!({"amount": part}))
            .send()
            .await
            .expect("sent");
        (
            response.status(),
            response.json::<Value>().await.expect("JSON"),
        )
    };
    assert_eq!(status, StatusCode::OK, "{refunded}");
    assert_eq!(refunded["refunded"]["amount"], part, "{refunded}");
    message_with(
        &smtp.maildir,
        &format!("Rickshaw: a refund of {}", taka(part)),
    )
    .await;

    // A late cancellation captures only the fee (a free window of 0 here).
    let (second_quote, _) = quote(app, &rider).await;
    let (status, second) = book(app, &rider, &second_quote, None).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let second = second["id"].as_str().expect("id").to_owned();
    offered(app, &driver, &second).await;
    act(app, &driver, &second, "accept").await;
    let cancelled = act(app, &rider, &second, "cancel").await;
    let fee = cancelled["cancellation_fee"]["amount"]
        .as_u64()
        .expect("a fee");
    let paid = payment_of(app, &rider, &second, |p| p["status"] == "captured").await;
    assert_eq!(paid["captured"]["amount"], fee, "only the fee: {paid}");

    // A declined card books nothing.
    let (third_quote, _) = quote(app, &rider).await;
    let (status, declined) = book(app, &rider, &third_quote, Some("pm_card_chargeDeclined")).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{declined}");
    let (_, trips) = app.call(Method::GET, "/v1/trips", &rider, None).await;
    assert_eq!(trips["trips"].as_array().map(Vec::len), Some(2), "{trips}");

    // The webhook receiver: forged and stale deliveries refused, a duplicate taken once.
    let body = json!({"id": format!("evt_{}", &rider_id[..8]), "object": "event",
                      "type": "payment_intent.canceled", "created": 1,
                      "data": {"object": {"id": "pi_unknown", "object": "payment_intent",
                                          "status": "canceled"}}})
    .to_string();
    let secret = "whsec_rickshaw_test";
    for (signature, expected) in [
        (signed("whsec_forged", 0, &body), StatusCode::BAD_REQUEST),
        (signed(secret, 600, &body), StatusCode::BAD_REQUEST),
        (signed(secret, 0, &body), StatusCode::OK),
        (signed(secret, 0, &body), StatusCode::OK),
    ] {
        assert_eq!(
            post_webhook(backend, Some(&signature), &body).await,
            expected
        );
    }

    // The audit log: the first trip's whole history, in order, across pages of 4.
    let history = audit(app, &admin, &format!("trip={id}"), 4, |k| {
        count(k, "rating.trip_rated") == 2 && count(k, "mail.refund") == 1
    })
    .await;
    let kinds: Vec<&str> = history
        .iter()
        .map(|e| e["kind"].as_str().expect("kind"))
        .collect();
    let at = |i: usize| history[i]["occurred_at"].as_i64().expect("time");
    assert!(
        (1..history.len()).all(|i| at(i - 1) <= at(i)),
        "oldest first: {kinds:?}"
    );
    let position = |kind: &str| {
        kinds
            .iter()
            .position(|k| *k == kind)
            .unwrap_or_else(|| panic!("no {kind} in {kinds:?}"))
    };
    let story = [
        "payment.authorized",
        "trip.requested",
        "trip.offered",
        "trip.driver_assigned",
        "trip.driver_arrived",
        "trip.started",
        "trip.completed",
        "payment.captured",
        "mail.receipt",
        "payment.refunded",
        "mail.refund",
    ];
    for pair in story.windows(2) {
        let (a, b) = (position(pair[0]), position(pair[1]));
        // Two services' events in one millisecond may show either way; otherwise in order.
        assert!(
            a < b || at(a) == at(b),
            "{} before {}: {kinds:?}",
            pair[0],
            pair[1]
        );
    }
    assert!(position("rating.trip_rated") > position("trip.completed"));
    for kind in story {
        assert_eq!(count(&kinds, kind), 1, "{kind} once: {kinds:?}");
    }
    let actor = |kind: &str| history[position(kind)]["actor"].clone();
    assert_eq!(
        actor("trip.requested"),
        json!({"kind": "rider", "account_id": rider_id})
    );
    assert_eq!(
        actor("trip.driver_assigned"),
        json!({"kind": "driver", "account_id": driver_id})
    );
    assert_eq!(actor("trip.offered"), json!({"kind": "system"}));
    assert_eq!(actor("payment.refunded")["kind"], "admin");
    let raters: Vec<&str> = history
        .iter()
        .filter(|e| e["kind"] == "rating.trip_rated")
        .map(|e| e["actor"]["kind"].as_str().expect("actor"))
        .collect();
    assert_eq!(raters, ["rider", "driver"]);
    let notice_ids: Vec<i64> = history
        .iter()
        .filter(|e| e["subject"] == "trip.notice.v1")
        .map(|e| e["data"]["id"].as_i64().expect("notice id"))
        .collect();
    assert!(notice_ids.windows(2).all(|w| w[0] < w[1]), "{notice_ids:?}");
    assert!(
        history.iter().all(|e| e["trip_id"] == id.as_str()),
        "only this trip"
    );
    let captured_entry = &history[position("payment.captured")];
    assert_eq!(captured_entry["data"]["amount"], fare);
    let accounts = captured_entry["accounts"].as_array().expect("accounts");
    assert!(accounts.contains(&json!(rider_id)) && accounts.contains(&json!(driver_id)));

    // The second trip's fee, the driver's own comings and goings, by filter.
    let fees = audit(
        app,
        &admin,
        &format!("trip={second}&kind=payment"),
        100,
        |k| k.contains(&"payment.captured"),
    )
    .await;
    let captured_fee = fees
        .iter()
        .find(|e| e["kind"] == "payment.captured")
        .expect("fee");
    assert_eq!(captured_fee["data"]["kind"], "fee");
    assert_eq!(captured_fee["data"]["amount"], fee);
    audit(
        app,
        &admin,
        &format!("account={driver_id}&kind=driver"),
        100,
        |k| k.contains(&"driver.online"),
    )
    .await;

    // Only admins read it; every parameter is checked.
    let (status, body) = app.call(Method::GET, "/v1/admin/audit", &rider, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    for (query, field) in [
        ("limit=0", "limit"),
        ("trip=nope", "trip"),
        ("since=later", "since"),
        ("colour=blue", "colour"),
    ] {
        let (status, body) = app
            .call(
                Method::GET,
                &format!("/v1/admin/audit?{query}"),
                &admin,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{body}");
    }

    // The operations map followed the same events (from the bus, in whichever process it runs):
    // the driver, and the wait from booking to assignment. Only admins see it.
    let (status, body) = app.call(Method::GET, "/v1/admin/city", &rider, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let mut city = Value::Null;
    for _ in 0..100 {
        let (status, body) = app.call(Method::GET, "/v1/admin/city", &admin, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        city = body;
        let drivers = city["drivers"].as_array().expect("drivers");
        if drivers.iter().any(|d| d["id"] == driver_id.as_str())
            && city["figures"]["book_to_assigned_p50_ms"].is_u64()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the operations map never showed the driver and the assignment: {city:#}");
}

fn late_cancellations_pay(c: &mut platform::Config) {
    c.edit_section(|t: &mut trip::TripsConfig| t.free_cancel_window_ms = 0);
}

#[tokio::test]
async fn money_and_trust_in_the_embedded_mode() {
    let smtp = Smtp::start().await;
    let app = testkit::spawn_app_with(|c| {
        smtp.configure(c);
        late_cancellations_pay(c);
    })
    .await;
    let data_dir = app.config.data_dir.to_string_lossy().into_owned();
    money_and_trust(&app, &app, &smtp, &["--data-dir", &data_dir]).await;
    app.stop().await;
}

/// Every service of the money path in one process on NATS and PostgreSQL; the gateway,
/// communication and operations in another, calling them over NATS.
#[tokio::test]
async fn money_and_trust_across_processes() {
    let nats = testkit::NatsServer::start().await;
    let db = testkit::TestDatabase::create().await;
    let smtp = Smtp::start().await;
    let backend = testkit::spawn_distributed_with(
        "identity,pricing,provider,payment,mail,supply,trip,rating,audit",
        &nats,
        &db,
        |c| {
            smtp.configure(c);
            late_cancellations_pay(c);
        },
    )
    .await;
    let edge =
        testkit::spawn_distributed_with("gateway,communication,operations", &nats, &db, |c| {
            late_cancellations_pay(c);
        })
        .await;
    money_and_trust(&edge, &backend, &smtp, &["--database-url", &db.url]).await;
    // Calls between processes are measured per method, as histograms (the dashboard's).
    let (_, metrics) = edge.get_text("/metrics").await;
    for series in [
        r#"rpc_request_duration_seconds_bucket{subject="rpc.trip.book""#,
        r#"rpc_requests_total{subject="rpc.trip.book",outcome="ok"}"#,
    ] {
        assert!(metrics.contains(series), "{series} in:\n{metrics}");
    }
    edge.stop().await;
    backend.stop().await;
    db.drop().await;
}
