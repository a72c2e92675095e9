//! Webhook delivery to a real receiver: signed, retried with backoff after a failure (the same
//! event again), given up after the last attempt.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use provider::model::NewIntent;
use provider::store::DeliveryState;
use provider::webhooks::{DeliveryPace, Endpoint, WebhookSender};
use provider::{Event, EventObject, EventType, Provider, signature};
use tokio_util::sync::CancellationToken;

use crate::support;

const SECRET: &str = "whsec_it";

/// What the receiver got: each request's `Stripe-Signature` and body.
#[derive(Clone, Default)]
pub struct Inbox {
    received: Arc<Mutex<Vec<(String, Bytes)>>>,
    /// Answer 500 to this many requests first.
    pub fail_first: usize,
}

impl Inbox {
    pub fn received(&self) -> Vec<(String, Bytes)> {
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

async fn receive(State(inbox): State<Inbox>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut received = inbox
        .received
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    received.push((signature, body));
    if received.len() <= inbox.fail_first {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

/// A receiver on 127.0.0.1:<any>, until `stop`; its URL.
pub async fn receiver(inbox: Inbox, stop: CancellationToken) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("address");
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(inbox);
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
            .expect("serves");
    });
    format!("http://{addr}/hook")
}

fn quick() -> DeliveryPace {
    DeliveryPace {
        poll: Duration::from_millis(20),
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        batch: 8,
        timeout: Duration::from_secs(2),
    }
}

/// Waits (at most 10 s) until `done` holds.
pub async fn until(mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..500 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not within 10 s");
}

async fn authorize(provider: &Provider) -> provider::PaymentIntent {
    provider
        .create_intent(NewIntent {
            amount: 1_500,
            payment_method: "pm_card_visa".into(),
            metadata: Default::default(),
        })
        .await
        .expect("authorized")
}

#[tokio::test]
async fn a_failed_delivery_is_retried_with_the_same_signed_event() {
    let stop = CancellationToken::new();
    let inbox = Inbox {
        fail_first: 1,
        ..Inbox::default()
    };
    let url = receiver(inbox.clone(), stop.clone()).await;
    let store = support::memory_store().await;
    let provider = Provider::new(store.clone(), 3600, true);
    let endpoint = Endpoint {
        url,
        signing_secret: SECRET.into(),
        max_attempts: 5,
    };
    let sender = WebhookSender::new(store.clone(), endpoint, quick()).expect("client");
    tokio::spawn(sender.run(stop.clone()));

    let intent = authorize(&provider).await;
    until(async || inbox.received().len() >= 2).await;
    let received = inbox.received();
    let events: Vec<Event> = received
        .iter()
        .map(|(_, body)| serde_json::from_slice(body).expect("an event"))
        .collect();
    assert_eq!(events[0].id, events[1].id, "the same event, again");
    assert!(events[0].id.starts_with("evt_"));
    assert_eq!(events[0].kind, EventType::AmountCapturableUpdated);
    assert_eq!(events[0].object, "event");
    let EventObject::PaymentIntent(object) = &events[0].data.object else {
        panic!("an intent event");
    };
    assert_eq!(object, &intent);
    for (header, body) in &received {
        assert_eq!(
            signature::verify(
                header,
                body,
                &["whsec_previous".to_owned(), SECRET.to_owned()],
                support::now_s(),
                300
            ),
            Ok(()),
            "{header}"
        );
        assert!(
            signature::verify(
                header,
                body,
                &["whsec_wrong".to_owned()],
                support::now_s(),
                300
            )
            .is_err()
        );
    }
    until(async || {
        store
            .delivery(&events[0].id)
            .await
            .expect("reads")
            .is_some_and(|d| d.state == DeliveryState::Delivered && d.attempts == 2)
    })
    .await;

    // Further changes are delivered too (a capture, a refund), each once: the receiver now
    // accepts.
    provider
        .capture(&intent.id, Some(1_000))
        .await
        .expect("captured");
    let refund = provider
        .refund(&intent.id, Some(400))
        .await
        .expect("refunded");
    until(async || inbox.received().len() >= 4).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let kinds: Vec<(EventType, String)> = inbox.received()[2..]
        .iter()
        .map(|(_, body)| {
            let event: Event = serde_json::from_slice(body).expect("an event");
            let id = match event.data.object {
                EventObject::PaymentIntent(i) => i.id,
                EventObject::Refund(r) => r.id,
            };
            (event.kind, id)
        })
        .collect();
    assert_eq!(kinds.len(), 2, "each delivered once: {kinds:?}");
    assert!(kinds.contains(&(EventType::Succeeded, intent.id.clone())));
    assert!(kinds.contains(&(EventType::ChargeRefunded, refund.id.clone())));
    stop.cancel();
}

#[tokio::test]
async fn a_delivery_is_given_up_after_its_last_attempt() {
    let stop = CancellationToken::new();
    let inbox = Inbox {
        fail_first: usize::MAX,
        ..Inbox::default()
    };
    let url = receiver(inbox.clone(), stop.clone()).await;
    let store = support::memory_store().await;
    let provider = Provider::new(store.clone(), 3600, true);
    let endpoint = Endpoint {
        url,
        signing_secret: SECRET.into(),
        max_attempts: 3,
    };
    let sender = WebhookSender::new(store.clone(), endpoint, quick()).expect("client");
    tokio::spawn(sender.run(stop.clone()));
    authorize(&provider).await;
    until(async || inbox.received().len() >= 3).await;
    let event: Event = serde_json::from_slice(&inbox.received()[0].1).expect("an event");
    until(async || {
        store
            .delivery(&event.id)
            .await
            .expect("reads")
            .is_some_and(|d| d.state == DeliveryState::Failed)
    })
    .await;
    let status = store
        .delivery(&event.id)
        .await
        .expect("reads")
        .expect("found");
    assert_eq!(status.attempts, 3);
    assert_eq!(
        status.last_error.as_deref(),
        Some("the endpoint answered 500 Internal Server Error")
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(inbox.received().len(), 3, "no attempt after the last");
    stop.cancel();
}

#[tokio::test]
async fn an_unreachable_endpoint_is_retried_not_fatal() {
    // A port nothing listens on (bound, then closed).
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        listener.local_addr().expect("address")
    };
    let store = support::memory_store().await;
    let provider = Provider::new(store.clone(), 3600, true);
    let endpoint = Endpoint {
        url: format!("http://{addr}/hook"),
        signing_secret: SECRET.into(),
        max_attempts: 12,
    };
    let sender = WebhookSender::new(store.clone(), endpoint, quick()).expect("client");
    let intent = authorize(&provider).await;
    assert_eq!(sender.deliver_due().await, 1);
    let _ = intent;
    let claimed = store
        .claim_deliveries(i64::MAX, 10, i64::MAX)
        .await
        .expect("claims");
    assert_eq!(claimed.len(), 1, "still pending after a refused connection");
    assert_eq!(claimed[0].attempts, 2);
}
