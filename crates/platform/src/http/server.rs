//! The HTTP/1.1 server every process runs, with a bound on everything one client can hold:
//! a deadline for each request head (which also closes idle keep-alive connections), a cap on the
//! size of a request head, a cap on open connections and on open connections per client address.
//! (`axum::serve` has none of these: a client trickling header lines kept its connection for ever.)
//!
//! Each accepted connection carries its peer address as axum's `ConnectInfo<SocketAddr>`, for
//! limits kept per client address. A connection over the per-address cap is closed at once,
//! before a byte is read: the cheapest answer, and one a flood cannot make expensive. At the
//! global cap, a new connection takes the place of the one that has waited longest without a
//! request in progress (still sending its head, or idle between requests): a crowd of slow or
//! silent connections cannot lock real clients out, and a connection doing work (a request being
//! answered, a WebSocket session) is never the one closed.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::config::HttpConfig;

/// What the server bounds, from `[http]`.
#[derive(Clone, Debug)]
pub struct ServerLimits {
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_connections: usize,
    /// 0: no limit.
    pub max_connections_per_address: usize,
    /// After shutdown begins, how long open connections are still served (each response closing
    /// its connection) before idle ones are closed.
    pub drain: Duration,
}

impl From<&HttpConfig> for ServerLimits {
    fn from(config: &HttpConfig) -> Self {
        Self {
            header_read_timeout: Duration::from_millis(config.header_read_timeout_ms),
            max_header_bytes: config.max_header_bytes,
            max_connections: config.max_connections,
            max_connections_per_address: config.max_connections_per_address,
            drain: Duration::from_millis(config.drain_ms),
        }
    }
}

/// Open connections per client address; a slot is given back when its guard drops.
#[derive(Debug, Default)]
struct PerAddress {
    open: Mutex<HashMap<IpAddr, usize>>,
}

struct AddressSlot {
    table: Arc<PerAddress>,
    address: IpAddr,
}

impl PerAddress {
    fn take(self: &Arc<Self>, address: IpAddr, max: usize) -> Option<AddressSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(address).or_insert(0);
        if max > 0 && *count >= max {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            table: self.clone(),
            address,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self
            .table
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// The connections waiting without a request in progress, oldest wait first: the ones a new
/// connection may take the place of when every slot is taken.
#[derive(Debug, Default)]
struct Waiting {
    /// When each started waiting (a sequence number) → its eviction token.
    by_age: Mutex<BTreeMap<u64, CancellationToken>>,
    next: AtomicU64,
}

/// One connection's place in `Waiting` (0: not waiting: a request in progress, or upgraded).
#[derive(Debug)]
struct Place {
    since: AtomicU64,
    evict: CancellationToken,
}

impl Waiting {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, CancellationToken>> {
        self.by_age.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `place` waits from now (a new connection, or one whose response is done).
    fn wait(&self, place: &Place) {
        let since = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut by_age = self.lock();
        let before = place.since.swap(since, Ordering::Relaxed);
        if before != 0 {
            by_age.remove(&before);
        }
        by_age.insert(since, place.evict.clone());
    }

    /// `place` has a request in progress (or was upgraded): not to be evicted.
    fn work(&self, place: &Place) {
        let mut by_age = self.lock();
        let before = place.since.swap(0, Ordering::Relaxed);
        if before != 0 {
            by_age.remove(&before);
        }
    }

    /// Asks the connection that has waited longest to close; false if none is waiting.
    fn evict_oldest(&self) -> bool {
        match self.lock().pop_first() {
            Some((_, evict)) => {
                evict.cancel();
                true
            }
            None => false,
        }
    }
}

/// Pending connections the kernel queues for `accept`: as many as it allows (`somaxconn`), so a
/// burst of reconnects (thousands cut off by the head deadline at once) is not met with dropped
/// handshakes that a real client then retries only a second or three later.
const LISTEN_BACKLOG: u32 = 65_535;

/// A listener on `address` with the deepest accept queue the kernel allows (address reuse on,
/// as `TcpListener::bind` does).
pub fn bind(address: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// How long a new connection waits for the slot of the connection it evicted.
const EVICTION_WAIT: Duration = Duration::from_millis(200);

/// Serves `router` until `shutdown` is cancelled, then stops accepting (a new connection is
/// refused, so a proxy tries another instance), and drains: for `limits.drain` the connections
/// already open are still served, every response carrying `Connection: close`, so a proxy's
/// keep-alive connection closes after its next response and never as the proxy sends on it.
/// Then every connection finishes its request in flight and closes (idle ones at once), and this
/// returns once all have (WebSocket sessions watch the same token and close themselves).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    limits: ServerLimits,
) -> std::io::Result<()> {
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = Arc::new(PerAddress::default());
    let waiting = Arc::new(Waiting::default());
    let tracker = TaskTracker::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_header_size(limits.max_header_bytes);
    let open_gauge = metrics::gauge!("http_connections_open");
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, or a connection reset before it was accepted: a
                // moment's pause instead of a busy loop, then go on.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // The address's own cap first: a client over it never makes another's connection go.
        let Some(slot) = per_address.take(peer.ip(), limits.max_connections_per_address) else {
            metrics::counter!("http_connections_refused_total", "reason" => "per_address")
                .increment(1);
            drop(stream);
            continue;
        };
        let permit = match connections.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            // Every slot taken: the longest-waiting idle connection makes room, if there is one.
            Err(_) if waiting.evict_oldest() => {
                metrics::counter!("http_connections_evicted_total").increment(1);
                tokio::time::timeout(EVICTION_WAIT, connections.clone().acquire_owned())
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
            Err(_) => None,
        };
        let Some(permit) = permit else {
            metrics::counter!("http_connections_refused_total", "reason" => "max_connections")
                .increment(1);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let place = Arc::new(Place {
            since: AtomicU64::new(0),
            evict: CancellationToken::new(),
        });
        waiting.wait(&place);
        let (table, here) = (waiting.clone(), place.clone());
        let draining = shutdown.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            table.work(&here);
            let (table, here) = (table.clone(), here.clone());
            let draining = draining.clone();
            let answer = router.clone().oneshot(request);
            async move {
                let mut response = answer.await;
                if draining.is_cancelled()
                    && let Ok(response) = response.as_mut()
                    && response.status() != axum::http::StatusCode::SWITCHING_PROTOCOLS
                {
                    // Hyper closes the connection once this response is written.
                    response.headers_mut().insert(
                        axum::http::header::CONNECTION,
                        axum::http::HeaderValue::from_static("close"),
                    );
                }
                // An upgraded connection (a WebSocket) works for as long as it lives.
                if response
                    .as_ref()
                    .is_ok_and(|r| r.status() != axum::http::StatusCode::SWITCHING_PROTOCOLS)
                {
                    table.wait(&here);
                }
                response
            }
        });
        let connection = http
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let stop = shutdown.clone();
        let gauge = open_gauge.clone();
        let table = waiting.clone();
        let drain = limits.drain;
        tracker.spawn(async move {
            let _held = (permit, slot);
            gauge.increment(1.0);
            tokio::pin!(connection);
            let served = tokio::select! {
                served = connection.as_mut() => served,
                // Made room for a newer connection: closed (it had no request in progress).
                () = place.evict.cancelled() => Ok(()),
                () = stop.cancelled() => {
                    // The drain: served on (each response closing the connection) until the
                    // client closes it or the drain is over.
                    tokio::select! {
                        served = connection.as_mut() => served,
                        () = tokio::time::sleep(drain) => {
                            connection.as_mut().graceful_shutdown();
                            connection.await
                        }
                    }
                }
            };
            table.work(&place);
            if let Err(e) = served {
                tracing::debug!(error = %e, %peer, "connection closed with an error");
            }
            gauge.decrement(1.0);
        });
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_slots_back() {
        let table = Arc::new(PerAddress::default());
        let a: IpAddr = [127, 0, 0, 2].into();
        let b: IpAddr = [127, 0, 0, 3].into();
        let first = table.take(a, 2).expect("first");
        let second = table.take(a, 2).expect("second");
        assert!(table.take(a, 2).is_none(), "a third is over the cap");
        assert!(table.take(b, 2).is_some(), "another address has its own");
        drop(first);
        assert!(
            table.take(a, 2).is_some(),
            "a closed connection frees its slot"
        );
        drop(second);
        assert!(table.take(a, 0).is_some(), "0: no limit");
    }
}
