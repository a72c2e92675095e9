//! A socket.io client from another ecosystem (python-socketio) receives matches, over
//! long-polling upgraded to WebSocket and over WebSocket only, anonymous and identified.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use testkit::{StatusCode, spawn_app, test_python};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

struct Listener {
    _child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Listener {
    async fn spawn(python: &Path, url: &str, extra: &[&str]) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/socketio_listen.py");
        Self::run(python, &script, url, extra)
    }

    /// The JavaScript client (socket.io-client from npm), run with `node`.
    async fn spawn_node(url: &str, extra: &[&str]) -> Self {
        let dir = tokio::task::spawn_blocking(testkit::test_node_dir)
            .await
            .expect("npm");
        let script = dir.join("socketio_listen.mjs");
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/socketio_listen.mjs"),
            &script,
        )
        .expect("the script copied beside its node_modules");
        Self::run(Path::new("node"), &script, url, extra)
    }

    fn run(program: &Path, script: &Path, url: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(program)
            .arg(script)
            .arg(url)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python starts");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Self {
            _child: child,
            lines,
        }
    }

    /// The data of the next event named `event`.
    async fn next(&mut self, event: &str) -> Value {
        tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = self.lines.next_line().await.expect("readable") {
                let value: Value = serde_json::from_str(&line).expect("JSON line");
                if value["event"] == event {
                    return value["data"].clone();
                }
            }
            panic!("the client exited before {event}");
        })
        .await
        .unwrap_or_else(|_| panic!("no {event} from the client within 30 s"))
    }
}

#[tokio::test]
async fn python_socketio_clients_receive_matches() {
    let python = tokio::task::spawn_blocking(test_python)
        .await
        .expect("venv");
    let app = spawn_app().await;
    let mut anonymous = Listener::spawn(&python, &app.base_url, &["--transport", "polling"]).await;
    let mut identified = Listener::spawn(
        &python,
        &app.base_url,
        &["--transport", "websocket", "--name", "Mina"],
    )
    .await;
    let mut other = Listener::spawn(
        &python,
        &app.base_url,
        &[
            "--transport",
            "websocket",
            "--name",
            "Tariq",
            "--timeout",
            "3",
        ],
    )
    .await;
    anonymous.next("connected").await;
    identified.next("connected").await;
    assert_eq!(identified.next("identified").await["name"], "Mina");
    other.next("connected").await;

    let (status, _) = app
        .post_json(
            "/driver",
            json!({"name": "Jamal", "car": "SIO-1", "x": 10, "y": 10}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = app
        .post_json(
            "/rider",
            json!({"name": "Mina", "x": 13, "y": 14, "destination": [13, 24]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    for listener in [&mut anonymous, &mut identified] {
        let m = listener.next("match").await;
        assert_eq!(m["rider"], "Mina");
        assert_eq!(m["driver"], "Jamal");
        assert_eq!(m["pickup_distance"], 5.0);
        assert_eq!(m["fare"], 20.0);
    }
    // Tariq is someone else: by the time the others have their match, his would have arrived too.
    tokio::time::sleep(Duration::from_millis(500)).await;
    other._child.start_kill().expect("kill");
    while let Ok(Some(line)) = other.lines.next_line().await {
        assert!(
            !line.contains("\"match\""),
            "an identified client got someone else's match: {line}"
        );
    }
}

/// The course's dialects (issue 11, item 5): clients of the default namespace `/` in two languages
/// (python-socketio, and socket.io-client from npm under Node) get the match under the event
/// names `course.match_events` lists, with the names, car and fare in every spelling; the routes
/// answer under `/api/` too; a car number may be a JSON number, ratings come in the same families.
#[tokio::test]
async fn course_dialects_reach_clients_in_two_languages() {
    let python = tokio::task::spawn_blocking(test_python)
        .await
        .expect("venv");
    let app = testkit::spawn_app_with(|c| {
        c.edit_section(|course: &mut communication::CourseConfig| {
            course.match_events = vec!["match".into(), "rideMatched".into()];
        });
    })
    .await;
    let url = app.base_url.clone();
    let mut from_python = Listener::spawn(
        &python,
        &url,
        &[
            "--transport",
            "websocket",
            "--namespace",
            "/",
            "--event",
            "rideMatched",
        ],
    )
    .await;
    let mut from_node =
        Listener::spawn_node(&url, &["--namespace", "/", "--event", "rideMatched"]).await;
    let mut from_node_classic = Listener::spawn_node(&url, &["--name", "Mina"]).await;
    let mut plain = app.ws("").await;
    for listener in [&mut from_python, &mut from_node, &mut from_node_classic] {
        listener.next("connected").await;
    }

    let (status, body) = app
        .post_json(
            "/api/driver",
            json!({"d_name": "Jamal", "d_car": 4242, "x": 10, "y": 10}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["car_number"], "4242");
    let (status, body) = app
        .post_json(
            "/api/rider",
            json!({"r_name": "Mina", "x": 13, "y": 14, "destination": [13, 24]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    for listener in [&mut from_python, &mut from_node] {
        let m = listener.next("rideMatched").await;
        for (key, value) in [
            ("rider", json!("Mina")),
            ("riderName", json!("Mina")),
            ("rider_name", json!("Mina")),
            ("r_name", json!("Mina")),
            ("driver", json!("Jamal")),
            ("driverName", json!("Jamal")),
            ("driver_name", json!("Jamal")),
            ("d_name", json!("Jamal")),
            ("car", json!("4242")),
            ("carNumber", json!("4242")),
            ("car_number", json!("4242")),
            ("d_car", json!("4242")),
            ("fare", json!(20.0)),
            ("cost", json!(20.0)),
        ] {
            // JavaScript and Python write 20.0 as 20.
            match value.as_f64() {
                Some(number) => assert_eq!(m[key].as_f64(), Some(number), "{key} in {m}"),
                None => assert_eq!(m[key], value, "{key} in {m}"),
            }
        }
    }
    // The classic namespace and name still get `match`; plain WebSocket frames come under both.
    assert_eq!(from_node_classic.next("match").await["rider"], "Mina");
    let mut types = std::collections::BTreeSet::new();
    while types.len() < 2 {
        let message = plain
            .next_message(Duration::from_secs(10))
            .await
            .expect("a frame in time");
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            let frame: Value = serde_json::from_str(text.as_str()).expect("JSON");
            if let Some(kind @ ("match" | "rideMatched")) = frame["type"].as_str() {
                assert_eq!(frame["r_name"], "Mina", "{frame}");
                types.insert(kind.to_owned());
            }
        }
    }

    let (status, body) = app
        .post_json("/api/rating", json!({"d_car": 4242, "score": 5}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app.get("/api/ratings/Jamal").await;
    assert_eq!(
        (status, &body["count"]),
        (StatusCode::OK, &json!(1)),
        "{body}"
    );
    let (status, body) = app
        .post_json(
            "/driver",
            json!({"name": "Jamal", "car": 42.5, "x": 10, "y": 10}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "car");
}
