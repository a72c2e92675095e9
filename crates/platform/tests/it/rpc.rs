//! Calls between processes over a real NATS server: the caller's token travels as a header, a
//! service's error comes back as the very value it returned, and a call nobody answers (no
//! instance, or too slow) is a 503 naming the subject.

use std::time::Duration;

use platform::rpc::{self, Call, RpcClient};
use platform::{ApiError, ErrorCode, Shutdown};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum EchoError {
    Refused { why: String },
    Other(ApiError),
}

impl From<EchoError> for ApiError {
    fn from(e: EchoError) -> Self {
        match e {
            EchoError::Refused { why } => ApiError::new(ErrorCode::Conflict, why),
            EchoError::Other(e) => e,
        }
    }
}

impl From<ApiError> for EchoError {
    fn from(e: ApiError) -> Self {
        Self::Other(e)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Echo {
    text: String,
    refuse: bool,
    sleep_ms: u64,
}

/// A subject no other test (or run) uses.
fn subject(name: &str) -> &'static str {
    Box::leak(format!("rpc.test{}.{name}", uuid::Uuid::now_v7().simple()).into_boxed_str())
}

async fn client() -> async_nats::Client {
    async_nats::connect(crate::nats_url())
        .await
        .expect("a NATS server (set RICKSHAW_TEST_NATS_URL)")
}

#[tokio::test]
async fn a_call_carries_its_token_and_its_error_comes_back_typed() {
    let (server, shutdown) = (client().await, Shutdown::new());
    let echo = subject("echo");
    rpc::serve(
        server,
        echo,
        "echo",
        &shutdown,
        |call: Call<Echo>| async move {
            tokio::time::sleep(Duration::from_millis(call.request.sleep_ms)).await;
            if call.request.refuse {
                return Err(EchoError::Refused {
                    why: format!("no to {}", call.request.text),
                });
            }
            Ok(format!("{} for {:?}", call.request.text, call.bearer))
        },
    )
    .await
    .expect("serves");
    let rpc = RpcClient::new(client().await, Duration::from_millis(500));
    let call = |text: &str, refuse: bool, sleep_ms: u64, bearer: Option<&'static str>| {
        let (rpc, text) = (rpc.clone(), text.to_owned());
        async move {
            rpc.call::<_, String, EchoError>(
                echo,
                &Echo {
                    text,
                    refuse,
                    sleep_ms,
                },
                bearer,
            )
            .await
        }
    };
    assert_eq!(
        call("hi", false, 0, Some("tok3n")).await,
        Ok("hi for Some(\"tok3n\")".to_owned())
    );
    assert_eq!(
        call("hi", false, 0, None).await,
        Ok("hi for None".to_owned())
    );
    assert_eq!(
        call("that", true, 0, None).await,
        Err(EchoError::Refused {
            why: "no to that".into()
        }),
        "the service's own error value"
    );
    match call("slow", false, 2_000, None).await {
        Err(EchoError::Other(e)) => {
            assert_eq!(e.code, ErrorCode::Unavailable);
            assert!(
                e.message.contains(echo) && e.message.contains("no reply"),
                "{e}"
            );
        }
        other => panic!("expected a 503, got {other:?}"),
    }
    match rpc
        .call::<_, String, EchoError>(subject("nobody"), &(), None)
        .await
    {
        Err(EchoError::Other(e)) => {
            assert_eq!(e.code, ErrorCode::Unavailable);
            assert!(e.message.contains("no instance"), "{e}");
        }
        other => panic!("expected a 503, got {other:?}"),
    }
    assert!(shutdown.complete(Duration::from_secs(5)).await, "drains");
}

/// A call slower than the resend interval is waited for, not sent twice: its instance says it has
/// it. (That a request nobody acknowledges is sent again is rickshaw's `tests/it/rpc.rs`, on a
/// NATS cluster, where requests are lost.)
#[tokio::test]
async fn a_slow_call_is_waited_for_and_run_once() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    let (server, shutdown) = (client().await, Shutdown::new());
    let slow = subject("slow");
    let runs = Arc::new(AtomicU32::new(0));
    let counted = runs.clone();
    rpc::serve(server, slow, "slow", &shutdown, move |call: Call<u64>| {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(call.request)).await;
            Ok::<_, ApiError>(call.request)
        }
    })
    .await
    .expect("serves");
    let rpc = RpcClient::new(client().await, Duration::from_secs(10));
    let slower = (rpc::RESEND_AFTER * 2).as_millis() as u64;
    assert_eq!(
        rpc.call::<_, u64, ApiError>(slow, &slower, None).await,
        Ok(slower)
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1, "run once");
    assert!(shutdown.complete(Duration::from_secs(5)).await, "drains");
}
