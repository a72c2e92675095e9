//! The product API end to end (issue 4): a rider and a driver sign up, the rider previews and
//! books, the driver gets the offer over the WebSocket, and the trip runs to completion; every
//! state and every push either side saw is checked, and a reconnecting client catches up. Plus the
//! rules of who may do what (401 / 403 / 404) and input validation, over HTTP.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use testkit::{StatusCode, TestApp, WsClient, spawn_app};

pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// The next trip notice (skipping positions, `hello`, …).
pub(crate) async fn next_notice(ws: &mut WsClient) -> Value {
    loop {
        let message = ws.next_message(WAIT).await.expect("a message in time");
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            let value: Value = serde_json::from_str(text.as_str()).expect("JSON");
            if value["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("trip."))
            {
                return value;
            }
        }
    }
}

pub(crate) async fn act(app: &TestApp, token: &str, trip: &str, action: &str) -> Value {
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/v1/trips/{trip}/{action}"),
            token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{action}: {body}");
    body
}

/// Signs up a rider and a car driver near Dhaka's Farmgate, online with a position.
pub(crate) async fn rider_and_driver(app: &TestApp) -> ((String, String), (String, String)) {
    let rider = app.account("rider").await;
    let driver = app.account("driver").await;
    let (status, body) = app
        .call(
            Method::PUT,
            "/v1/drivers/me/vehicle",
            &driver.0,
            Some(json!({"package": "car", "plate": "DHAKA-GA-11-2233", "model": "Toyota Axio"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["vehicle"]["package"], "car");
    (rider, driver)
}

pub(crate) async fn go_online(app: &TestApp, driver: &str) {
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/drivers/me/status",
            driver,
            Some(json!({"status": "online"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/drivers/me/location",
            driver,
            Some(json!({"lat": 23.7590, "lng": 90.3900})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

pub(crate) async fn preview_and_book(app: &TestApp, rider: &str) -> Value {
    let (status, preview) = app
        .call(
            Method::POST,
            "/v1/trips/preview",
            rider,
            Some(json!({"pickup": {"lat": 23.7580, "lng": 90.3895}, "dropoff": {"lat": 23.7806, "lng": 90.4074}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    let fares = preview["fares"].as_array().expect("fares");
    assert_eq!(fares.len(), 4, "{preview}");
    let car = fares
        .iter()
        .find(|f| f["package"] == "car")
        .expect("a car fare");
    assert_eq!(car["currency"], "BDT");
    let (status, trip) = app
        .call(
            Method::POST,
            "/v1/trips",
            rider,
            Some(json!({"quote_id": preview["quote_id"], "package": "car"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{trip}");
    assert_eq!(trip["status"], "searching");
    assert_eq!(
        trip["fare"]["amount"], car["fare"],
        "the booked fare is the quoted one"
    );
    trip
}

/// The whole trip on `app`, as both users see it.
pub async fn a_whole_trip_as_both_users_see_it(app: &TestApp) {
    let ((rider, rider_id), (driver, driver_id)) = rider_and_driver(app).await;
    let mut driver_ws = app.product_ws(&driver, "").await;
    let hello = driver_ws.next_of_type("hello", WAIT).await;
    assert_eq!(hello["role"], "driver");
    let mut rider_ws = app.product_ws(&rider, "").await;
    rider_ws.next_of_type("hello", WAIT).await;
    go_online(app, &driver).await;

    let trip = preview_and_book(app, &rider).await;
    let id = trip["id"].as_str().expect("id").to_owned();
    let requested = next_notice(&mut rider_ws).await;
    assert_eq!(requested["type"], "trip.requested");

    // The batched dispatcher offers the trip to the only driver, over the WebSocket.
    let offer = next_notice(&mut driver_ws).await;
    assert_eq!(offer["type"], "trip.offered", "{offer}");
    assert_eq!(offer["trip"]["id"], id.as_str());
    assert_eq!(offer["trip"]["driver_id"], driver_id.as_str());
    assert!(offer["trip"]["offer_expires_at"].is_i64(), "{offer}");

    let mut rider_saw = vec![requested["type"].as_str().expect("type").to_owned()];
    let mut driver_saw = vec!["trip.offered".to_owned()];
    let mut last_rider_id = String::new();
    for (action, status, notice) in [
        ("accept", "driver_assigned", "trip.driver_assigned"),
        ("arrive", "arrived", "trip.driver_arrived"),
        ("start", "in_progress", "trip.started"),
        ("complete", "completed", "trip.completed"),
    ] {
        let view = act(app, &driver, &id, action).await;
        assert_eq!(view["status"], status);
        let (code, seen) = app
            .call(Method::GET, &format!("/v1/trips/{id}"), &rider, None)
            .await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(seen["status"], status, "the rider reads the same state");
        let to_rider = next_notice(&mut rider_ws).await;
        let to_driver = next_notice(&mut driver_ws).await;
        assert_eq!(
            (to_rider["type"].as_str(), to_driver["type"].as_str()),
            (Some(notice), Some(notice))
        );
        assert_eq!(to_rider["trip"]["status"], status);
        assert_eq!(to_rider["trip"]["rider_id"], rider_id.as_str());
        rider_saw.push(notice.to_owned());
        driver_saw.push(notice.to_owned());
        if action == "accept" {
            last_rider_id = to_rider["id"].as_str().expect("id").to_owned();
            // While assigned, the rider sees the driver move.
            driver_ws
                .send_text(&json!({"type": "location", "lat": 23.7585, "lng": 90.3897}).to_string())
                .await;
            let position = rider_ws.next_of_type("driver.position", WAIT).await;
            assert_eq!(position["driver_id"], driver_id.as_str());
            assert_eq!(position["position"]["lat"], 23.7585);
            assert!(
                position["id"]
                    .as_str()
                    .expect("id")
                    .starts_with(&format!("{last_rider_id}."))
            );
        }
    }
    assert_eq!(
        rider_saw,
        [
            "trip.requested",
            "trip.driver_assigned",
            "trip.driver_arrived",
            "trip.started",
            "trip.completed"
        ]
    );
    assert_eq!(
        driver_saw,
        [
            "trip.offered",
            "trip.driver_assigned",
            "trip.driver_arrived",
            "trip.started",
            "trip.completed"
        ]
    );

    // A rider reconnecting after the assignment is sent what came later, from the log; the
    // notices up to its last id come again first, flagged `resent` (it may have missed one
    // published late), and it drops those it has.
    let mut again = app
        .product_ws(&rider, &format!("?last_event_id={last_rider_id}"))
        .await;
    let last: i64 = last_rider_id.parse().expect("a notice id");
    let mut replayed = Vec::new();
    while replayed.len() < 3 {
        let notice = next_notice(&mut again).await;
        let id: i64 = notice["id"].as_str().expect("id").parse().expect("number");
        if notice["resent"] == true {
            assert!(
                id <= last,
                "only notices up to the last id are resent: {notice}"
            );
            continue;
        }
        assert!(id > last, "{notice}");
        replayed.push(notice["type"].as_str().expect("type").to_owned());
    }
    assert_eq!(
        replayed,
        ["trip.driver_arrived", "trip.started", "trip.completed"]
    );
    assert!(
        again
            .next_message(Duration::from_millis(300))
            .await
            .is_none(),
        "nothing more, nothing twice"
    );

    let (status, mine) = app.call(Method::GET, "/v1/trips", &rider, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mine["trips"][0]["id"], id.as_str());
    assert_eq!(mine["trips"][0]["status"], "completed");
    go_offline(app, &driver).await;
}

/// Off duty, so later tests on the same system get their own drivers' offers.
async fn go_offline(app: &TestApp, driver: &str) {
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/drivers/me/status",
            driver,
            Some(json!({"status": "offline"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["online"], false);
}

#[tokio::test]
async fn a_whole_trip_in_the_embedded_mode() {
    let app = spawn_app().await;
    a_whole_trip_as_both_users_see_it(&app).await;
    app.stop().await;
}

/// 401 without a valid token, 403 for the wrong role, 404 for someone else's trip, 409 for an
/// illegal transition naming the state and the command.
pub async fn who_may_do_what(app: &TestApp) {
    let ((rider, _), (driver, _)) = rider_and_driver(app).await;
    let (other_rider, _) = app.account("rider").await;

    let (status, body) = app.call(Method::GET, "/v1/me", "", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, _) = app.call(Method::GET, "/v1/me", "not-a-token", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, me) = app.call(Method::GET, "/v1/me", &rider, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["role"], "rider");

    let trip = preview_and_book(app, &rider).await;
    let id = trip["id"].as_str().expect("id");
    // A rider cannot call driver endpoints.
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/v1/trips/{id}/accept"),
            &rider,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = app
        .call(
            Method::POST,
            "/v1/drivers/me/status",
            &rider,
            Some(json!({"status": "online"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A driver cannot preview or book.
    let (status, _) = app
        .call(
            Method::POST,
            "/v1/trips/preview",
            &driver,
            Some(json!({"pickup": {"lat": 1, "lng": 1}, "dropoff": {"lat": 1.1, "lng": 1}})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Someone else's trip does not exist for you.
    for token in [&other_rider, &driver] {
        let (status, body) = app
            .call(Method::GET, &format!("/v1/trips/{id}"), token, None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/v1/trips/{id}/cancel"),
            &other_rider,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .call(Method::POST, &format!("/v1/trips/{id}/fly"), &rider, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A second open trip is refused; the first can be cancelled, free, once.
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/trips/preview",
            &rider,
            Some(json!({"pickup": {"lat": 23.75, "lng": 90.38}, "dropoff": {"lat": 23.78, "lng": 90.40}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/trips",
            &rider,
            Some(json!({"quote_id": body["quote_id"], "package": "bike"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let cancelled = act(app, &rider, id, "cancel").await;
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["cancellation_fee"]["amount"], 0);
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/v1/trips/{id}/cancel"),
            &rider,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        body["error"]["message"],
        "cannot cancel a trip that is cancelled"
    );
}

#[tokio::test]
async fn who_may_do_what_in_the_embedded_mode() {
    let app = spawn_app().await;
    who_may_do_what(&app).await;
    app.stop().await;
}

/// Every body is validated, naming the field; nothing is half-written.
#[tokio::test]
async fn bad_product_input_is_named() {
    let app = spawn_app().await;
    let (rider, _) = app.account("rider").await;
    let cases = [
        (
            json!({"pickup": {"lat": 91, "lng": 90}, "dropoff": {"lat": 23, "lng": 90}}),
            "pickup.lat",
        ),
        (
            json!({"pickup": {"lat": 23, "lng": 190}, "dropoff": {"lat": 23, "lng": 90}}),
            "pickup.lng",
        ),
        (json!({"pickup": {"lat": 23, "lng": 90}}), "dropoff"),
        (
            json!({"pickup": {"lat": "x", "lng": 90}, "dropoff": {"lat": 23, "lng": 90}}),
            "pickup.lat",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = app
            .call(Method::POST, "/v1/trips/preview", &rider, Some(body))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
    let (status, answer) = app
        .call(
            Method::POST,
            "/v1/trips",
            &rider,
            Some(json!({"quote_id": "forged", "package": "car"})),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("quote_id"))
    );
    let (status, answer) = app
        .call(
            Method::POST,
            "/v1/trips",
            &rider,
            Some(json!({"quote_id": "x", "package": "rickshaw"})),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("package"))
    );
    let (status, _) = app
        .post_raw(
            "/v1/auth/login",
            b"{not json".to_vec(),
            Some("application/json"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, answer) = app
        .post_json(
            "/v1/auth/signup",
            json!({"email": "nope", "password": "long enough", "name": "X", "role": "rider"}),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("email"))
    );
    let (status, answer) = app
        .post_json(
            "/v1/auth/signup",
            json!({"email": "a@b.co", "password": "short", "name": "X", "role": "rider"}),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("password"))
    );
    let (status, _) = app
        .call(Method::GET, "/v1/trips/not-a-uuid", &rider, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, mine) = app.call(Method::GET, "/v1/trips", &rider, None).await;
    assert_eq!(
        (status, mine["trips"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(0)),
        "nothing was booked"
    );
    let (status, spec) = app.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(spec["paths"]["/v1/trips/{id}/{action}"].is_object());
    let (status, docs) = app.get_text("/docs").await;
    assert_eq!(status, StatusCode::OK);
    assert!(docs.contains("/openapi.json"));
    // A last_event_id beyond the notice log's head names nothing ever sent.
    let (status, body) = app
        .get(&format!("/v1/ws?token={rider}&last_event_id=999999999"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "bad_request", "{body}");
    assert_eq!(body["error"]["field"], "last_event_id", "{body}");
    // Served from the binary: nothing the page loads comes from elsewhere.
    assert!(!docs.contains("https://"), "{docs}");
    let (status, redoc) = app.get_text("/docs/redoc.standalone.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        redoc.len() > 500_000 && redoc.contains("Redoc"),
        "the Redoc bundle"
    );
    assert!(
        !redoc.contains("cdn."),
        "the bundle fetches nothing from a CDN either"
    );
    let (status, _) = app.get_text("/docs/redoc-logo-mini.svg").await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}

/// Waits until the dispatcher offered `trip` to `driver` (polling as the driver).
pub(crate) async fn offered(app: &TestApp, driver: &str, trip: &str) {
    for _ in 0..200 {
        let (status, view) = app
            .call(Method::GET, &format!("/v1/trips/{trip}"), driver, None)
            .await;
        if status == StatusCode::OK && view["status"] == "offered" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("trip {trip} was never offered");
}

/// Races over HTTP: the same accept sent 20 times at once assigns the trip once; an accept racing
/// the rider's cancel never leaves the trip assigned.
pub async fn racing_requests_keep_one_history(app: &TestApp) {
    let ((rider, _), (driver, _)) = rider_and_driver(app).await;
    go_online(app, &driver).await;
    let trip = preview_and_book(app, &rider).await;
    let id = trip["id"].as_str().expect("id").to_owned();
    offered(app, &driver, &id).await;
    let path = format!("/v1/trips/{id}/accept");
    let accepts = (0..20).map(|_| app.call(Method::POST, &path, &driver, None));
    let answers = futures_util::future::join_all(accepts).await;
    for (status, body) in &answers {
        assert_eq!(
            *status,
            StatusCode::OK,
            "a repeated accept answers the trip: {body}"
        );
        assert_eq!(body["status"], "driver_assigned");
    }
    let versions: std::collections::BTreeSet<u64> = answers
        .iter()
        .map(|(_, b)| b["version"].as_u64().expect("version"))
        .collect();
    assert_eq!(
        versions.len(),
        1,
        "one transition, seen by all: {versions:?}"
    );
    act(app, &driver, &id, "arrive").await;
    act(app, &driver, &id, "start").await;
    act(app, &driver, &id, "complete").await;

    for _ in 0..5 {
        let trip = preview_and_book(app, &rider).await;
        let id = trip["id"].as_str().expect("id").to_owned();
        offered(app, &driver, &id).await;
        let accept_path = format!("/v1/trips/{id}/accept");
        let cancel_path = format!("/v1/trips/{id}/cancel");
        let (accepted, cancelled) = tokio::join!(
            app.call(Method::POST, &accept_path, &driver, None),
            app.call(Method::POST, &cancel_path, &rider, None),
        );
        assert_eq!(cancelled.0, StatusCode::OK, "{}", cancelled.1);
        assert_eq!(cancelled.1["status"], "cancelled");
        match accepted.0 {
            StatusCode::OK => assert!(
                accepted.1["version"].as_u64() < cancelled.1["version"].as_u64(),
                "the accept came first"
            ),
            StatusCode::CONFLICT => {}
            other => panic!("accept answered {other}: {}", accepted.1),
        }
        let (_, now) = app
            .call(Method::GET, &format!("/v1/trips/{id}"), &rider, None)
            .await;
        assert_eq!(
            now["status"], "cancelled",
            "a cancelled trip stays cancelled"
        );
    }
}

#[tokio::test]
async fn racing_requests_in_the_embedded_mode() {
    let app = spawn_app().await;
    racing_requests_keep_one_history(&app).await;
    app.stop().await;
}

/// The distributed mode: identity, pricing, trip and supply in one process on NATS and
/// PostgreSQL, called over NATS request/reply by a gateway and communication in another (which
/// need no address of it).
#[tokio::test]
async fn the_product_across_processes() {
    let nats = testkit::NatsServer::start().await;
    let db = testkit::TestDatabase::create().await;
    let backend =
        testkit::spawn_distributed("identity,pricing,provider,payment,trip,supply", &nats, &db)
            .await;
    let edge = testkit::spawn_distributed("gateway,communication", &nats, &db).await;
    a_whole_trip_as_both_users_see_it(&edge).await;
    who_may_do_what(&edge).await;
    racing_requests_keep_one_history(&edge).await;

    // Without the backend the edge says so: 503, not a hang or a 500.
    backend.stop().await;
    let (status, body) = edge
        .post_json(
            "/v1/auth/login",
            json!({"email": "a@b.co", "password": "whatever1"}),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    edge.stop().await;
    db.drop().await;
}

/// A driver arrives at the pickup, not from across town: `arrive` from 2 km away is a 409 naming
/// the distance; from the pickup it is accepted.
#[tokio::test]
async fn a_driver_arrives_only_at_the_pickup() {
    let app = spawn_app().await;
    let ((rider, _), (driver, _)) = rider_and_driver(&app).await;
    go_online(&app, &driver).await;
    let mut rider_ws = app.product_ws(&rider, "").await;
    rider_ws.next_of_type("hello", WAIT).await;
    let trip = preview_and_book(&app, &rider).await;
    let id = trip["id"].as_str().expect("id").to_owned();
    offered(&app, &driver, &id).await;
    act(&app, &driver, &id, "accept").await;

    // Two kilometres north; seen by the rider once published (the trip service mirrors the same
    // event).
    let far = json!({"lat": 23.7760, "lng": 90.3895});
    let (status, body) = app
        .call(Method::POST, "/v1/drivers/me/location", &driver, Some(far))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    loop {
        let position = rider_ws.next_of_type("driver.position", WAIT).await;
        if position["position"]["lat"] == 23.776 {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/v1/trips/{id}/arrive"),
            &driver,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("m from the pickup") && message.contains("within 250 m"),
        "{message}"
    );

    // At the pickup (a position on its way is waited for).
    let (status, _) = app
        .call(
            Method::POST,
            "/v1/drivers/me/location",
            &driver,
            Some(json!({"lat": 23.7580, "lng": 90.3895})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let arrived = act(&app, &driver, &id, "arrive").await;
    assert_eq!(arrived["status"], "arrived", "{arrived}");
    app.stop().await;
}
