//! What a client sees when no service answers at all.

use platform::ErrorCode;
use proto::pricing::v1::PreviewRequest;
use proto::pricing::v1::pricing_client::PricingClient;

#[tokio::test]
async fn a_refused_connection_is_unavailable_and_names_the_service() {
    let channel = proto::testing::nowhere().await;
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
