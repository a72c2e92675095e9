//! What a client sees when no service answers at all.

use platform::ErrorCode;
use proto::pricing::v1::PreviewRequest;
use proto::pricing::v1::pricing_client::PricingClient;

#[tokio::test]
async fn a_refused_connection_is_unavailable_and_names_the_service() {
    // A port that was free a moment ago: nothing listens on it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("valid uri")
        .connect_lazy();
    let request = proto::with_bearer(PreviewRequest::default(), "token").expect("sendable");
    let status = PricingClient::new(channel)
        .preview(request)
        .await
        .expect_err("nothing listens");
    let error = proto::remote_error("pricing", status);
    assert_eq!(error.code, ErrorCode::Unavailable, "{error:?}");
    assert!(
        error
            .message
            .starts_with("the pricing service is unreachable"),
        "{error:?}"
    );
}
