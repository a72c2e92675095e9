//! Support for the services' gRPC tests (the product does not use it): a real server on a free
//! port of this machine, and a channel to a port where nothing listens.

use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};

/// Serves `routes` on a free port of 127.0.0.1 for as long as the runtime runs, and returns a
/// channel to it.
pub async fn serve(routes: Routes) -> Channel {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds a free port");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(
        Server::builder()
            .add_routes(routes)
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    lazy(&format!("http://{addr}"))
}

/// A channel to a port that was free a moment ago: calls find nobody.
pub async fn nowhere() -> Channel {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds a free port");
    let addr = listener.local_addr().expect("its address");
    drop(listener);
    lazy(&format!("http://{addr}"))
}

fn lazy(url: &str) -> Channel {
    Endpoint::from_shared(url.to_owned())
        .expect("a valid URI")
        .connect_lazy()
}
