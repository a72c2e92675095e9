//! Two-way ratings of product trips end to end: after completion the rider rates the driver and
//! the driver the rider, once each; the averages hold under concurrent raters; the rider sees the
//! driver's average with the next assignment.

use reqwest::Method;
use serde_json::{Value, json};
use testkit::{StatusCode, TestApp, spawn_app};

use crate::product_flow::{
    WAIT, act, go_online, next_notice, offered, preview_and_book, rider_and_driver,
};

/// Books, dispatches and completes a trip of `rider` with `driver`; its id.
async fn completed_trip(app: &TestApp, rider: &str, driver: &str) -> String {
    let trip = preview_and_book(app, rider).await;
    let id = trip["id"].as_str().expect("id").to_owned();
    offered(app, driver, &id).await;
    for action in ["accept", "arrive", "start", "complete"] {
        act(app, driver, &id, action).await;
    }
    id
}

async fn rate(app: &TestApp, token: &str, trip: &str, body: Value) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        &format!("/v1/trips/{trip}/rating"),
        token,
        Some(body),
    )
    .await
}

#[tokio::test]
async fn both_sides_rate_a_completed_trip_once() {
    let app = spawn_app().await;
    let ((rider, rider_id), (driver, driver_id)) = rider_and_driver(&app).await;
    go_online(&app, &driver).await;

    // Not before the trip is completed.
    let early = preview_and_book(&app, &rider).await;
    let early_id = early["id"].as_str().expect("id").to_owned();
    let (status, body) = rate(&app, &rider, &early_id, json!({"stars": 5})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    offered(&app, &driver, &early_id).await;
    for action in ["accept", "arrive", "start", "complete"] {
        act(&app, &driver, &early_id, action).await;
    }

    let (status, given) = rate(
        &app,
        &rider,
        &early_id,
        json!({"stars": 5, "comment": "smooth ride", "tags": ["polite", "clean car"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{given}");
    assert_eq!(given["ratee_id"], driver_id.as_str());
    assert_eq!(given["rater_role"], "rider");
    assert_eq!(given["tags"], json!(["polite", "clean car"]));
    assert_eq!(
        given["ratee_rating"],
        json!({"account_id": driver_id, "average": 5.0, "count": 1})
    );
    let (status, back) = rate(&app, &driver, &early_id, json!({"stars": 4})).await;
    assert_eq!(status, StatusCode::CREATED, "{back}");
    assert_eq!(back["ratee_id"], rider_id.as_str());

    let (status, again) = rate(&app, &rider, &early_id, json!({"stars": 1})).await;
    assert_eq!(status, StatusCode::CONFLICT, "once: {again}");
    for (bad, field) in [
        (json!({"stars": 6}), "stars"),
        (json!({"stars": "five"}), "stars"),
        (json!({}), "stars"),
        (
            json!({"stars": 3, "tags": ["a", "b", "c", "d", "e", "f"]}),
            "tags",
        ),
        (json!({"stars": 3, "comment": "x".repeat(501)}), "comment"),
    ] {
        let (status, body) = rate(&app, &rider, &early_id, bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    let stranger = app.account("rider").await.0;
    let (status, _) = rate(&app, &stranger, &early_id, json!({"stars": 1})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not their trip");

    let (_, rider_rating) = app
        .call(
            Method::GET,
            &format!("/v1/accounts/{rider_id}/rating"),
            &driver,
            None,
        )
        .await;
    assert_eq!(rider_rating["average"], 4.0, "{rider_rating}");

    // The next assignment shows the rider the driver's average, live and on reading the trip.
    let mut rider_ws = app.product_ws(&rider, "").await;
    rider_ws.next_of_type("hello", WAIT).await;
    let next = preview_and_book(&app, &rider).await;
    let next_id = next["id"].as_str().expect("id").to_owned();
    offered(&app, &driver, &next_id).await;
    act(&app, &driver, &next_id, "accept").await;
    let assigned = loop {
        let notice = next_notice(&mut rider_ws).await;
        if notice["type"] == "trip.driver_assigned" {
            break notice;
        }
    };
    assert_eq!(assigned["driver_rating"]["average"], 5.0, "{assigned}");
    let (_, read) = app
        .call(Method::GET, &format!("/v1/trips/{next_id}"), &rider, None)
        .await;
    assert_eq!(read["driver_rating"]["count"], 1, "{read}");
    app.stop().await;
}

#[tokio::test]
async fn concurrent_raters_lose_no_update() {
    let app = spawn_app().await;
    let driver = {
        let ((_, _), (driver, _)) = rider_and_driver(&app).await;
        driver
    };
    go_online(&app, &driver).await;
    let mut trips = Vec::new();
    for _ in 0..6 {
        let rider = app.account("rider").await.0;
        let id = completed_trip(&app, &rider, &driver).await;
        trips.push((rider, id));
    }
    let stars = [5, 4, 3, 5, 2, 4];
    let ratings = trips
        .iter()
        .zip(stars)
        .map(|((rider, id), s)| rate(&app, rider, id, json!({"stars": s})));
    for (status, body) in futures_util::future::join_all(ratings).await {
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (_, me) = app.call(Method::GET, "/v1/me", &driver, None).await;
    let driver_id = me["id"].as_str().expect("id").to_owned();
    let (_, rating) = app
        .call(
            Method::GET,
            &format!("/v1/accounts/{driver_id}/rating"),
            &driver,
            None,
        )
        .await;
    assert_eq!(rating["count"], 6, "{rating}");
    assert_eq!(rating["average"], 3.83, "23 / 6: {rating}");
    app.stop().await;
}
