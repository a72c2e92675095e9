//! The bounded HTTP server against real sockets: a client that trickles its request head or sits
//! idle is cut off; a connection over the per-address cap is closed at once; at the global cap a
//! new connection takes the place of the one that waited longest without a request in progress,
//! never of one being answered.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use platform::http::{ServerLimits, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

struct Server {
    addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(limits: ServerLimits) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(1_500)).await;
                    "slow"
                }),
            );
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve(listener, router, stop.clone(), limits));
        Self { addr, stop, task }
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("stops once its connections are gone")
            .expect("joined")
            .expect("served");
    }
}

fn limits() -> ServerLimits {
    ServerLimits {
        header_read_timeout: Duration::from_millis(400),
        max_header_bytes: 16 * 1024,
        max_connections: 100,
        max_connections_per_address: 0,
        drain: Duration::ZERO,
    }
}

/// A connection from `from` (any 127.x.y.z address is this machine's).
async fn connect(server: SocketAddr, from: [u8; 4]) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(IpAddr::from(from), 0))
        .expect("bind the client address");
    socket.connect(server).await.expect("connect")
}

/// Whether the server closed `stream` within `within` (EOF or reset), reading what it sends.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

async fn get_healthz(server: SocketAddr, from: [u8; 4]) -> String {
    let mut stream = connect(server, from).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response))
        .await
        .expect("answered in time")
        .expect("read");
    response
}

#[tokio::test]
async fn a_client_trickling_its_head_or_idling_is_cut_off() {
    let server = Server::start(limits()).await;
    let mut trickler = connect(server.addr, [127, 0, 0, 1]).await;
    trickler
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let trickle = async {
        for i in 0..30 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if trickler
                .write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                return true;
            }
        }
        false
    };
    let cut_off = trickle.await || closed_within(&mut trickler, Duration::from_millis(10)).await;
    assert!(
        cut_off,
        "still open after 3 s of trickling (deadline 0.4 s)"
    );

    // An idle keep-alive connection goes too, after its response.
    let mut idle = connect(server.addr, [127, 0, 0, 1]).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    assert!(
        closed_within(&mut idle, Duration::from_secs(3)).await,
        "an idle connection stayed open"
    );
    assert!(
        get_healthz(server.addr, [127, 0, 0, 1])
            .await
            .starts_with("HTTP/1.1 200")
    );
    server.stop().await;
}

/// Reads one response with a `Content-Length` body from a kept-alive `stream`.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut response = Vec::new();
    let mut buf = [0u8; 1024];
    let complete = |r: &[u8]| {
        let text = String::from_utf8_lossy(r);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            return false;
        };
        head.lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(str::to_owned)
            })
            .and_then(|n| n.trim().parse::<usize>().ok())
            .is_some_and(|n| body.len() >= n)
    };
    while !complete(&response) {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("answered in time")
            .expect("read");
        assert!(n > 0, "closed before a whole response: {response:?}");
        response.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&response).into_owned()
}

/// Shutdown with a drain, as behind nginx: new connections are refused at once, a kept-alive
/// connection is still answered (with `Connection: close`, then closed), and an idle one is not
/// closed under a proxy that might be sending on it until the drain is over.
#[tokio::test]
async fn shutdown_refuses_new_connections_and_drains_kept_alive_ones() {
    let drain = Duration::from_secs(3);
    let server = Server::start(ServerLimits {
        header_read_timeout: Duration::from_secs(30),
        drain,
        ..limits()
    })
    .await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut kept = connect(server.addr, [127, 0, 0, 1]).await;
    kept.write_all(request).await.expect("write");
    let first = read_response(&mut kept).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(
        !first.to_ascii_lowercase().contains("connection: close"),
        "{first}"
    );
    let mut idle = connect(server.addr, [127, 0, 0, 1]).await;
    // Served: the connection is past its accept (and its place is counted).
    idle.write_all(request).await.expect("write");
    read_response(&mut idle).await;

    let began = tokio::time::Instant::now();
    server.stop.cancel();
    // The listener goes at once: a new connection is refused (a proxy's cue to try another).
    let mut refused = false;
    for _ in 0..50 {
        if TcpStream::connect(server.addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        refused,
        "a new connection was still accepted 1 s into shutdown"
    );

    // A kept-alive connection is answered, and told the connection closes.
    kept.write_all(request)
        .await
        .expect("write during the drain");
    let during = read_response(&mut kept).await;
    assert!(during.starts_with("HTTP/1.1 200"), "{during}");
    assert!(
        during.to_ascii_lowercase().contains("connection: close"),
        "{during}"
    );
    assert!(
        closed_within(&mut kept, Duration::from_secs(2)).await,
        "the connection stayed open after its Connection: close response"
    );

    // The idle one stays open for the drain, then closes.
    assert!(
        !closed_within(&mut idle, drain.saturating_sub(began.elapsed()) / 2).await,
        "an idle connection closed before the drain was over"
    );
    assert!(
        closed_within(&mut idle, Duration::from_secs(5)).await,
        "an idle connection outlived the drain"
    );
    assert!(
        began.elapsed() >= drain,
        "closed after {:?}",
        began.elapsed()
    );
    server.stop().await;
}

#[tokio::test]
async fn over_an_address_cap_a_connection_is_closed_at_the_global_cap_the_longest_waiting_makes_room()
 {
    let server = Server::start(ServerLimits {
        header_read_timeout: Duration::from_secs(30),
        max_connections: 5,
        max_connections_per_address: 2,
        ..limits()
    })
    .await;
    // One address holds its two connections (half a request head each).
    let attacker = [127, 0, 0, 2];
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = connect(server.addr, attacker).await;
        stream
            .write_all(b"GET / HTTP/1.1\r\n")
            .await
            .expect("write");
        held.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = connect(server.addr, attacker).await;
    assert!(
        closed_within(&mut third, Duration::from_secs(2)).await,
        "a third connection from one address is closed"
    );
    assert!(
        get_healthz(server.addr, [127, 0, 0, 1])
            .await
            .starts_with("HTTP/1.1 200"),
        "another address is served"
    );
    // Two more addresses fill the server's five connections; a sixth takes the place of the one
    // that has waited longest (the attacker's first), and is served.
    for from in [[127, 0, 0, 3], [127, 0, 0, 3], [127, 0, 0, 4]] {
        let mut stream = connect(server.addr, from).await;
        stream
            .write_all(b"GET / HTTP/1.1\r\n")
            .await
            .expect("write");
        held.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        get_healthz(server.addr, [127, 0, 0, 5])
            .await
            .starts_with("HTTP/1.1 200"),
        "a new client gets in at the cap"
    );
    assert!(
        closed_within(&mut held[0], Duration::from_secs(2)).await,
        "the longest-waiting connection made room"
    );
    assert!(
        !closed_within(&mut held[4], Duration::from_millis(300)).await,
        "the newest waiting one is kept"
    );
    drop(held);
    server.stop().await;
}

#[tokio::test]
async fn a_connection_being_answered_is_never_the_one_closed() {
    let server = Server::start(ServerLimits {
        header_read_timeout: Duration::from_secs(30),
        max_connections: 2,
        max_connections_per_address: 0,
        ..limits()
    })
    .await;
    // The older connection is being answered (a slow request); the newer one only waits.
    let mut working = connect(server.addr, [127, 0, 0, 2]).await;
    working
        .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut waiting = connect(server.addr, [127, 0, 0, 3]).await;
    waiting
        .write_all(b"GET / HTTP/1.1\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        get_healthz(server.addr, [127, 0, 0, 4])
            .await
            .starts_with("HTTP/1.1 200")
    );
    assert!(
        closed_within(&mut waiting, Duration::from_secs(2)).await,
        "the waiting one made room"
    );
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), working.read_to_string(&mut answer))
        .await
        .expect("answered")
        .expect("read");
    assert!(
        answer.ends_with("slow"),
        "the slow request was answered: {answer}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_client_over_its_address_cap_makes_no_one_else_go() {
    let server = Server::start(ServerLimits {
        header_read_timeout: Duration::from_secs(30),
        max_connections: 2,
        max_connections_per_address: 1,
        ..limits()
    })
    .await;
    let mut mine = connect(server.addr, [127, 0, 0, 2]).await;
    mine.write_all(b"GET / HTTP/1.1\r\n").await.expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut theirs = connect(server.addr, [127, 0, 0, 3]).await;
    theirs
        .write_all(b"GET / HTTP/1.1\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The server is full; a second connection from 127.0.0.2 is over that address's cap.
    let mut again = connect(server.addr, [127, 0, 0, 2]).await;
    assert!(closed_within(&mut again, Duration::from_secs(2)).await);
    assert!(
        !closed_within(&mut mine, Duration::from_millis(300)).await
            && !closed_within(&mut theirs, Duration::from_millis(300)).await,
        "nobody was evicted for it"
    );
    drop((mine, theirs));
    server.stop().await;
}
