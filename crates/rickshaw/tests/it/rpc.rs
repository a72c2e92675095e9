//! Calls between processes (`platform::rpc`) on a NATS cluster, where each process may be
//! connected to a different node: instances that leave their queue group (a rolling restart)
//! lose no call.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use platform::Shutdown;
use platform::error::ApiError;
use platform::rpc::{self, Call, RpcClient};
use testkit::NatsServer;

const SUBJECT: &str = "rpc.echo.call";

async fn connect(node: &NatsServer) -> async_nats::Client {
    async_nats::connect(&node.url)
        .await
        .expect("connects to its node")
}

async fn echo(call: Call<u64>) -> Result<u64, ApiError> {
    Ok(call.request)
}

/// A caller on one node and two instances on two others: the cluster routes each call to one of
/// them. One instance stops and starts again, over and over, while calls stream in. A node learns
/// that an instance left a moment after the instance's own node does, and what it routes there in
/// between that node drops: a call must not be lost to that.
#[tokio::test]
async fn calls_survive_instances_leaving_their_queue_group_on_a_nats_cluster() {
    let nodes = NatsServer::start_cluster(3).await;
    let steady = Shutdown::new();
    rpc::serve(connect(&nodes[0]).await, SUBJECT, "echo", &steady, echo)
        .await
        .expect("serves");
    // Every node knows of the steady instance before the first call.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let caller = RpcClient::new(connect(&nodes[2]).await, Duration::from_secs(3));
    let done = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let mut callers = Vec::new();
    for lane in 0..32u64 {
        let (caller, done, answered) = (caller.clone(), done.clone(), answered.clone());
        callers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut n = lane << 32;
            while !done.load(Ordering::Relaxed) {
                n += 1;
                match caller.call::<u64, u64, ApiError>(SUBJECT, &n, None).await {
                    Ok(back) => {
                        assert_eq!(back, n, "the answer to this call");
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => failures.push(e.message),
                }
            }
            failures
        }));
    }

    // The restarted instance: a new connection to its node each time, as a new process has.
    for _ in 0..60 {
        let instance = Shutdown::new();
        rpc::serve(connect(&nodes[1]).await, SUBJECT, "echo", &instance, echo)
            .await
            .expect("serves");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(instance.complete(Duration::from_secs(5)).await, "it drains");
    }
    done.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for caller in callers {
        failures.extend(caller.await.expect("a caller"));
    }
    let answered = answered.load(Ordering::Relaxed);
    assert!(answered > 1_000, "calls flowed throughout: {answered}");
    assert!(
        failures.is_empty(),
        "{} of {} calls failed: {:?}",
        failures.len(),
        answered as usize + failures.len(),
        &failures[..failures.len().min(5)]
    );
    steady.complete(Duration::from_secs(5)).await;
}
