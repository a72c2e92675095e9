//! One booking is one trace across processes. Three `rickshaw serve` processes (the edge; the
//! trip side; the money side) on NATS and PostgreSQL send their spans over OTLP/HTTP to a
//! receiver in this test (the OTLP protobuf decoded with `opentelemetry-proto`, the protocol's
//! own crate). The booking's spans come from all three, under one trace id, each call's server
//! span the child of its client span in the other process; the trip side's log line names the
//! trace.

use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use serde_json::{Value, json};

#[derive(Clone, Debug)]
struct Span {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
}

type Received = Arc<Mutex<Vec<Span>>>;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn receive(State(received): State<Received>, body: Bytes) -> StatusCode {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut spans = received.lock().expect("lock");
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| match &v.value {
                Some(AnyValue::StringValue(s)) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                spans.push(Span {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent: hex(&span.parent_span_id),
                });
            }
        }
    }
    StatusCode::OK
}

struct Process {
    child: tokio::process::Child,
    url: String,
    log: std::path::PathBuf,
}

async fn serve(
    services: &str,
    env: &[(&str, String)],
    dir: &Path,
    port: u16,
    extra: &[(&str, String)],
) -> Process {
    let log = dir.join(format!("{}.log", services.replace(',', "+")));
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rickshaw"))
        .args(["serve", "--services", services])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RICKSHAW_LISTEN", format!("127.0.0.1:{port}"))
        .env("RICKSHAW_DATA_DIR", dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    Process {
        child,
        url: format!("http://127.0.0.1:{port}"),
        log,
    }
}

async fn ready(process: &mut Process) {
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(response) = http.get(format!("{}/readyz", process.url)).send().await
            && response.status().is_success()
        {
            return;
        }
        if let Ok(Some(status)) = process.child.try_wait() {
            panic!(
                "the process exited ({status}): {}",
                std::fs::read_to_string(&process.log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "not ready: {}",
        std::fs::read_to_string(&process.log).unwrap_or_default()
    );
}

async fn post(url: &str, body: Value, token: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("answered");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_booking_is_one_trace_across_three_processes() {
    let received: Received = Arc::default();
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let otlp = format!("http://{}", receiver.local_addr().expect("address"));
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(receive))
        .with_state(received.clone());
    tokio::spawn(async move { axum::serve(receiver, app).await });

    let nats = testkit::NatsServer::start().await;
    let db = testkit::TestDatabase::create().await;
    let dir = tempfile::tempdir().expect("scratch");
    let money_port = testkit::free_port();
    let money_url = format!("http://127.0.0.1:{money_port}");
    let env = [
        ("RICKSHAW_NATS__URL", nats.url.clone()),
        ("RICKSHAW_DATABASE__URL", db.url.clone()),
        ("RICKSHAW_DATABASE__MAX_CONNECTIONS", "3".to_owned()),
        (
            "RICKSHAW_IDENTITY__SIGNING_KEY",
            "a-signing-key-for-the-trace-test-of-forty-eight-c".to_owned(),
        ),
        ("RICKSHAW_TELEMETRY__OTLP_ENDPOINT", otlp),
        ("RICKSHAW_LOG__FORMAT", "json".to_owned()),
        (
            "RICKSHAW_PAYMENT__PROVIDER_URL",
            format!("{money_url}/provider/v1"),
        ),
        (
            "RICKSHAW_PROVIDER__WEBHOOK_URL",
            format!("{money_url}/v1/payments/webhook"),
        ),
        // Spans leave every 200 ms instead of 5 s.
        ("OTEL_BSP_SCHEDULE_DELAY", "200".to_owned()),
    ];
    let mut money = serve(
        "provider,payment,mail,audit",
        &env,
        dir.path(),
        money_port,
        &[],
    )
    .await;
    let mut core = serve(
        "identity,pricing,supply,rider,trip,rating,matching",
        &env,
        dir.path(),
        testkit::free_port(),
        &[],
    )
    .await;
    let mut edge = serve(
        "gateway,communication,operations",
        &env,
        dir.path(),
        testkit::free_port(),
        &[],
    )
    .await;
    for process in [&mut money, &mut core, &mut edge] {
        ready(process).await;
    }

    // A rider books a trip through the edge.
    let base = edge.url.clone();
    let (status, body) = post(
        &format!("{base}/v1/auth/signup"),
        json!({"email": "traced@example.com", "password": "correct horse", "name": "Asha", "role": "rider"}),
        None,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let (status, login) = post(
        &format!("{base}/v1/auth/login"),
        json!({"email": "traced@example.com", "password": "correct horse"}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{login}");
    let token = login["access_token"].as_str().expect("token").to_owned();
    let (status, preview) = post(
        &format!("{base}/v1/trips/preview"),
        json!({"pickup": {"lat": 23.7808, "lng": 90.4067}, "dropoff": {"lat": 23.7925, "lng": 90.4078}}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200, "{preview}");
    let (status, trip) = post(
        &format!("{base}/v1/trips"),
        json!({"quote_id": preview["quote_id"], "package": "car"}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 201, "{trip}");

    // The booking's trace: its root is the edge's `POST /v1/trips`.
    let mut last = Vec::new();
    for _ in 0..150 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let spans = received.lock().expect("lock").clone();
        let Some(root) = spans
            .iter()
            .find(|s| s.name == "POST /v1/trips" && s.parent.is_empty())
        else {
            last = spans;
            continue;
        };
        let trace: Vec<&Span> = spans
            .iter()
            .filter(|s| s.trace_id == root.trace_id)
            .collect();
        let services: HashSet<&str> = trace.iter().map(|s| s.service.as_str()).collect();
        let called = |name: &str, kind_server: bool| {
            trace
                .iter()
                .filter(|s| s.name == name)
                .find(|s| {
                    let server = trace
                        .iter()
                        .any(|p| p.span_id == s.parent && p.name == name);
                    server == kind_server
                })
                .copied()
        };
        // Each call's server span (callee's process) is the child of its client span (caller's).
        let book_server = called("rpc.trip.book", true);
        let authorize_server = called("rpc.payment.authorize", true);
        if services.len() >= 3
            && let (Some(book_server), Some(authorize_server)) = (book_server, authorize_server)
        {
            let book_client = trace
                .iter()
                .find(|s| s.span_id == book_server.parent)
                .expect("its parent");
            // Processes name themselves by their services, in order.
            assert_eq!(book_client.service, "communication+gateway+operations");
            assert!(book_server.service.contains("trip"), "{book_server:?}");
            let authorize_client = trace
                .iter()
                .find(|s| s.span_id == authorize_server.parent)
                .expect("its parent");
            assert!(
                authorize_client.service.contains("trip"),
                "{authorize_client:?}"
            );
            assert!(
                authorize_server.service.contains("payment"),
                "{authorize_server:?}"
            );
            // The provider's HTTP side joins the trace too (traceparent on the request).
            assert!(
                trace
                    .iter()
                    .any(|s| s.name.starts_with("POST /provider/v1/payment_intents")),
                "{trace:#?}"
            );
            // The trip side's log line about the booking names the trace.
            let log = std::fs::read_to_string(&core.log).expect("log");
            assert!(
                log.lines()
                    .any(|l| l.contains("trip booked") && l.contains(&root.trace_id)),
                "no `trip booked` line with trace {} in:\n{log}",
                root.trace_id
            );
            db.drop().await;
            return;
        }
        last = spans;
    }
    panic!("no trace across three services with the right parentage: {last:#?}");
}
