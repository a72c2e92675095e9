//! The error every edge speaks: one `ErrorCode` decides the HTTP status (and travels as is in
//! the replies between processes, `platform::rpc`); 4xx bodies say exactly what was wrong, 5xx
//! bodies are opaque and the cause is logged.
//!
//! Body: `{"error": {"code": "invalid_input", "message": "…", "field": "x"}}` (`field` optional),
//! plus any details the error carries, e.g. `"state": "cancelled", "command": "accept"` on a 409
//! for a transition the trip's state forbids.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not well-formed JSON.
    InvalidJson,
    /// Well-formed, but naming something that never existed in a way no retry can mend (a
    /// `last_event_id` beyond the log): the client's own state is wrong.
    BadRequest,
    /// Well-formed, but a field is missing, mistyped or out of range.
    InvalidInput,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    /// A payment was refused (a declined card, a confirmation still needed).
    PaymentRequired,
    PayloadTooLarge,
    UnsupportedMediaType,
    RateLimited,
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub fn http_status(self) -> StatusCode {
        match self {
            Self::InvalidJson | Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::InvalidInput => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PaymentRequired => StatusCode::PAYMENT_REQUIRED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Serialises as its fields (for the RPC between processes); the HTTP body is [`IntoResponse`]'s.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<String>,
    /// Machine-readable facts about the error, merged into the error object of the body.
    pub details: Option<serde_json::Map<String, serde_json::Value>>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
            details: None,
        }
    }

    /// The error with one more detail in its body.
    pub fn with_detail(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.details
            .get_or_insert_with(Default::default)
            .insert(key.to_owned(), value.into());
        self
    }

    /// A 422 naming the offending field.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::InvalidInput,
            message: message.into(),
            field: Some(field.into()),
            details: None,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// A server-side failure: `cause` is logged, never shown to the caller.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::Internal, cause.to_string())
    }

    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::Unavailable, cause.to_string())
    }

    /// The error with the seconds after which a retry may succeed: the `retry_after_s` detail,
    /// and the `Retry-After` header of the response (on a 503 too, whose body is opaque).
    pub fn with_retry_after(self, seconds: u64) -> Self {
        self.with_detail(RETRY_AFTER_S, seconds.max(1))
    }

    /// The seconds of `with_retry_after`, if the error has them.
    pub fn retry_after_s(&self) -> Option<u64> {
        self.details
            .as_ref()
            .and_then(|d| d.get(RETRY_AFTER_S))
            .and_then(serde_json::Value::as_u64)
    }
}

const RETRY_AFTER_S: &str = "retry_after_s";

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: ErrorCode,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    details: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.http_status();
        let server_error = status.is_server_error();
        let message = if server_error {
            tracing::error!(code = ?self.code, cause = %self.message, "request failed");
            match self.code {
                ErrorCode::Unavailable => "the service is temporarily unavailable; retry shortly",
                _ => "internal error; it has been logged",
            }
        } else {
            self.message.as_str()
        };
        let body = Body {
            error: Inner {
                code: self.code,
                message,
                field: self.field.as_deref(),
                details: self.details.as_ref().filter(|_| !server_error),
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after_s() {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_to_the_matching_status_class() {
        assert_eq!(ErrorCode::InvalidInput.http_status().as_u16(), 422);
        assert_eq!(ErrorCode::PayloadTooLarge.http_status().as_u16(), 413);
        assert!(ErrorCode::Internal.http_status().is_server_error());
    }

    #[test]
    fn retry_after_is_a_header_even_on_an_opaque_503() {
        let response = ApiError::unavailable("hash queue full")
            .with_retry_after(3)
            .into_response();
        assert_eq!(response.status().as_u16(), 503);
        assert_eq!(
            response.headers().get("retry-after").map(|v| v.as_bytes()),
            Some(&b"3"[..])
        );
        let limited = ApiError::new(ErrorCode::RateLimited, "slow down").with_retry_after(0);
        assert_eq!(limited.retry_after_s(), Some(1), "never 0");
    }
}
