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
