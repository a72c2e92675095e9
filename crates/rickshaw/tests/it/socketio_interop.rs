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
        let mut child = Command::new(python)
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
            panic!("the python client exited before {event}");
        })
        .await
        .unwrap_or_else(|_| panic!("no {event} from the python client within 30 s"))
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
