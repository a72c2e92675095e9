//! The provider's errors, in Stripe's shape rather than the platform's:
//! `{"error": {"type", "code", "message", "param"?, "decline_code"?, "payment_intent"?}}`, with
//! Stripe's types (`invalid_request_error`, `card_error`, `idempotency_error`, `api_error`) and
//! codes, so a client written against Stripe handles them unchanged.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::model::PaymentIntent;
use crate::store::StoreError;

/// Stripe's error types: what kind of failure, hence what the client can do about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    /// The request is wrong (or wrong for the object's state): fix it, do not retry it as is.
    InvalidRequestError,
    /// The card was declined: ask the customer for another.
    CardError,
    /// The Idempotency-Key was reused with another request, or its first request still runs.
    IdempotencyError,
    /// The provider failed: retry (with the same Idempotency-Key).
    ApiError,
}

/// The `error` object of an error body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorObject {
    #[serde(rename = "type")]
    pub kind: ErrorType,
    pub code: String,
    pub message: String,
    /// The request parameter at fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// Why the card was declined (`card_error` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decline_code: Option<String>,
    /// The intent as it now is: a declined one, or one in the wrong state for the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_intent: Option<Box<PaymentIntent>>,
}

/// A whole error body, `{"error": {...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorObject,
}

/// An error answered to a client: its HTTP status and its body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}", code = .object.code, message = .object.message)]
pub struct ProviderError {
    pub status: StatusCode,
    pub object: ErrorObject,
    /// The request was refused before the endpoint ran (it failed validation): its
    /// Idempotency-Key is not spent, as Stripe saves no result for such a request.
    pub(crate) not_executed: bool,
}

impl ProviderError {
    fn new(status: StatusCode, kind: ErrorType, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            object: ErrorObject {
                kind,
                code: code.to_owned(),
                message: message.into(),
                param: None,
                decline_code: None,
                payment_intent: None,
            },
            not_executed: false,
        }
    }

    pub(crate) fn with_param(mut self, param: &str) -> Self {
        self.object.param = Some(param.to_owned());
        self
    }

    pub(crate) fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Marks a failed validation: nothing ran, the Idempotency-Key may be used again.
    pub(crate) fn not_executed(mut self) -> Self {
        self.not_executed = true;
        self
    }

    /// A 400 `invalid_request_error` about one parameter.
    pub(crate) fn invalid_param(code: &str, param: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorType::InvalidRequestError,
            code,
            message,
        )
        .with_param(param)
    }

    /// A 400 `invalid_request_error` about the request as a whole.
    pub(crate) fn invalid_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorType::InvalidRequestError,
            code,
            message,
        )
    }

    pub(crate) fn amount_too_small(param: &str) -> Self {
        Self::invalid_param(
            "amount_too_small",
            param,
            format!(
                "Amount must be at least {} (minor units).",
                crate::model::MIN_AMOUNT
            ),
        )
    }

    /// A 404: no object with this id (a path parameter).
    pub(crate) fn not_found(object: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorType::InvalidRequestError,
            "resource_missing",
            format!("No such {object}: '{id}'"),
        )
        .with_param("id")
    }

    /// A 400: the request names an object that does not exist (a body parameter).
    pub(crate) fn missing_reference(object: &str, param: &str, id: &str) -> Self {
        Self::invalid_param(
            "resource_missing",
            param,
            format!("No such {object}: '{id}'"),
        )
    }

    /// A 400: the intent's status forbids `action`; the intent is in the body.
    pub(crate) fn unexpected_state(intent: &PaymentIntent, action: &str) -> Self {
        let required = match action {
            "confirm" => "requires_action",
            "cancel" => "requires_capture or requires_action",
            "refund" => "succeeded",
            _ => "requires_capture",
        };
        let mut error = Self::invalid_request(
            "payment_intent_unexpected_state",
            format!(
                "This PaymentIntent's status is {}, but it must be {required} to {action} it.",
                intent.status
            ),
        );
        error.object.payment_intent = Some(Box::new(intent.clone()));
        error
    }

    /// A 402: the card was declined; the (stored) intent is in the body.
    pub(crate) fn declined(intent: &PaymentIntent) -> Self {
        let mut error = Self::new(
            StatusCode::PAYMENT_REQUIRED,
            ErrorType::CardError,
            "card_declined",
            "Your card was declined.",
        );
        error.object.decline_code = Some("generic_decline".to_owned());
        error.object.payment_intent = Some(Box::new(intent.clone()));
        error
    }

    pub(crate) fn unauthorized(message: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorType::InvalidRequestError,
            "api_key_invalid",
            message,
        )
    }

    /// A 400: the Idempotency-Key was first used with another request.
    pub(crate) fn idempotency_mismatch(key: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorType::IdempotencyError,
            "idempotency_key_reused",
            format!(
                "Keys for idempotent requests can only be used with the same parameters they were first used with. The key '{key}' was first used with another request."
            ),
        )
    }

    /// A 409: the first request with this Idempotency-Key is still running.
    pub(crate) fn idempotency_in_use(key: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            ErrorType::IdempotencyError,
            "idempotency_key_in_use",
            format!(
                "There is currently another in-progress request using the Idempotency-Key '{key}'. Retry later."
            ),
        )
    }

    /// A 503 `api_error`: the store failed. The cause is logged, not shown.
    pub(crate) fn unavailable(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(cause = %cause, "provider request failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::ApiError,
            "api_unavailable",
            "The provider could not complete the request; retry it with the same Idempotency-Key.",
        )
    }
}

impl From<StoreError> for ProviderError {
    fn from(e: StoreError) -> Self {
        Self::unavailable(&e)
    }
}

impl IntoResponse for ProviderError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, axum::Json(ErrorBody { error: self.object })).into_response();
        if self.not_executed {
            response.extensions_mut().insert(NotExecuted);
        }
        response
    }
}

/// Marks a response to a request the endpoint refused before running (see
/// [`ProviderError::not_executed`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct NotExecuted;
