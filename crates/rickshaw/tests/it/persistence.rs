//! Ratings are durable: they survive a restart on the same data directory.

use serde_json::json;
use testkit::{StatusCode, spawn_app};

#[tokio::test]
async fn ratings_survive_a_restart() {
    let app = spawn_app().await;
    app.known_driver("Selim", "DHA-9", 0.0, 0.0).await;
    for (stars, by) in [
        (4, json!({"driver": "Selim"})),
        (5, json!({"car_number": "DHA-9"})),
    ] {
        let mut body = by;
        body["rating"] = json!(stars);
        let (status, reply) = app.post_json("/rating", body).await;
        assert_eq!(status, StatusCode::CREATED, "{reply}");
        assert_eq!(reply["driver"], "Selim");
    }
    let app = app.restart().await;
    let (status, summary) = app.get("/ratings/Selim").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        summary,
        json!({"driver": "Selim", "car_number": "DHA-9", "count": 2, "average": 4.5})
    );
    let (status, by_car) = app.get("/ratings/DHA-9").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_car["count"], 2);
}
