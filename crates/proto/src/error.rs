//! One mapping between `platform::ErrorCode` and gRPC status codes.
//!
//! | `ErrorCode` | gRPC code |
//! |---|---|
//! | `invalid_json`, `invalid_input`, `unsupported_media_type` | `INVALID_ARGUMENT` |
//! | `unauthorized` | `UNAUTHENTICATED` |
//! | `forbidden` | `PERMISSION_DENIED` |
//! | `not_found` | `NOT_FOUND` |
//! | `method_not_allowed` | `UNIMPLEMENTED` |
//! | `conflict` | `ABORTED` (google.rpc.Code's HTTP mapping for 409: a state or concurrency conflict the caller resolves at a higher level; used for every 409, illegal transitions and taken emails alike) |
//! | `payload_too_large`, `rate_limited` | `RESOURCE_EXHAUSTED` |
//! | `unavailable` | `UNAVAILABLE` |
//! | `internal` | `INTERNAL` |
//!
//! Several codes share a gRPC code, so the exact `ErrorCode` travels as the `x-rickshaw-error-code`
//! metadata (its snake_case name) and the offending field as `x-rickshaw-error-field`: a status
//! from a Rickshaw service turns back into the very `ApiError` it was made from. A status without
//! that metadata (a transport failure, a proxy, a foreign server) is read from its gRPC code.

use platform::{ApiError, ErrorCode};
use tonic::metadata::{AsciiMetadataValue, BinaryMetadataValue, MetadataMap};
use tonic::{Code, Status};

/// Metadata key of the exact `ErrorCode` (snake_case, as in the HTTP error body).
pub const ERROR_CODE: &str = "x-rickshaw-error-code";
/// Metadata key of the field an error names, when it names one.
pub const ERROR_FIELD: &str = "x-rickshaw-error-field";
/// The same, base64-encoded, for a field name that is not visible ASCII.
const ERROR_FIELD_BIN: &str = "x-rickshaw-error-field-bin";
/// Metadata key of the error's details (a JSON object, as bytes): a 409's state and command, a
/// 429's or 503's `retry_after_s`.
pub const ERROR_DETAILS_BIN: &str = "x-rickshaw-error-details-bin";

const CODES: [ErrorCode; 12] = [
    ErrorCode::InvalidJson,
    ErrorCode::InvalidInput,
    ErrorCode::Unauthorized,
    ErrorCode::Forbidden,
    ErrorCode::NotFound,
    ErrorCode::MethodNotAllowed,
    ErrorCode::Conflict,
    ErrorCode::PayloadTooLarge,
    ErrorCode::UnsupportedMediaType,
    ErrorCode::RateLimited,
    ErrorCode::Unavailable,
    ErrorCode::Internal,
];

/// The snake_case name of `code` (its `serde` spelling).
fn name(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::InvalidJson => "invalid_json",
        ErrorCode::InvalidInput => "invalid_input",
        ErrorCode::Unauthorized => "unauthorized",
        ErrorCode::Forbidden => "forbidden",
        ErrorCode::NotFound => "not_found",
        ErrorCode::MethodNotAllowed => "method_not_allowed",
        ErrorCode::Conflict => "conflict",
        ErrorCode::PayloadTooLarge => "payload_too_large",
        ErrorCode::UnsupportedMediaType => "unsupported_media_type",
        ErrorCode::RateLimited => "rate_limited",
        ErrorCode::Unavailable => "unavailable",
        ErrorCode::Internal => "internal",
    }
}

fn named(s: &str) -> Option<ErrorCode> {
    CODES.into_iter().find(|&c| name(c) == s)
}

/// The gRPC code an `ErrorCode` is sent as.
pub fn grpc_code(code: ErrorCode) -> Code {
    match code {
        ErrorCode::InvalidJson | ErrorCode::InvalidInput | ErrorCode::UnsupportedMediaType => {
            Code::InvalidArgument
        }
        ErrorCode::Unauthorized => Code::Unauthenticated,
        ErrorCode::Forbidden => Code::PermissionDenied,
        ErrorCode::NotFound => Code::NotFound,
        ErrorCode::MethodNotAllowed => Code::Unimplemented,
        ErrorCode::Conflict => Code::Aborted,
        ErrorCode::PayloadTooLarge | ErrorCode::RateLimited => Code::ResourceExhausted,
        ErrorCode::Unavailable => Code::Unavailable,
        ErrorCode::Internal => Code::Internal,
    }
}

/// The `ErrorCode` of a status that does not say it (not from a Rickshaw service).
fn code_of(code: Code) -> ErrorCode {
    match code {
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
            ErrorCode::InvalidInput
        }
        Code::Unauthenticated => ErrorCode::Unauthorized,
        Code::PermissionDenied => ErrorCode::Forbidden,
        Code::NotFound => ErrorCode::NotFound,
        Code::AlreadyExists | Code::Aborted => ErrorCode::Conflict,
        Code::ResourceExhausted => ErrorCode::RateLimited,
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
            ErrorCode::Unavailable
        }
        Code::Ok | Code::Unimplemented | Code::Internal | Code::DataLoss => ErrorCode::Internal,
    }
}

/// The status a service answers for `e`: the mapped gRPC code, the message, and the exact code
/// and field as metadata.
pub fn status_of(e: ApiError) -> Status {
    let mut metadata = MetadataMap::new();
    metadata.insert(ERROR_CODE, AsciiMetadataValue::from_static(name(e.code)));
    if let Some(field) = &e.field {
        // A header value may hold bytes above 0x7f, but `to_str` would refuse them: only
        // visible ASCII goes as text.
        let ascii = field
            .bytes()
            .all(|b| b == b' ' || b.is_ascii_graphic())
            .then(|| AsciiMetadataValue::try_from(field.as_str()).ok())
            .flatten();
        match ascii {
            Some(value) => {
                metadata.insert(ERROR_FIELD, value);
            }
            None => {
                metadata.insert_bin(
                    ERROR_FIELD_BIN,
                    BinaryMetadataValue::from_bytes(field.as_bytes()),
                );
            }
        }
    }
    if let Some(details) = &e.details
        && let Ok(json) = serde_json::to_vec(details)
    {
        metadata.insert_bin(ERROR_DETAILS_BIN, BinaryMetadataValue::from_bytes(&json));
    }
    Status::with_metadata(grpc_code(e.code), e.message, metadata)
}

fn carried_details(status: &Status) -> Option<serde_json::Map<String, serde_json::Value>> {
    status
        .metadata()
        .get_bin(ERROR_DETAILS_BIN)
        .and_then(|v| v.to_bytes().ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
}

fn carried_code(status: &Status) -> Option<ErrorCode> {
    status
        .metadata()
        .get(ERROR_CODE)
        .and_then(|v| v.to_str().ok())
        .and_then(named)
}

fn carried_field(status: &Status) -> Option<String> {
    let metadata = status.metadata();
    if let Some(field) = metadata.get(ERROR_FIELD).and_then(|v| v.to_str().ok()) {
        return Some(field.to_owned());
    }
    metadata
        .get_bin(ERROR_FIELD_BIN)
        .and_then(|v| v.to_bytes().ok())
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
}

/// The `ApiError` a status stands for: exactly the one [`status_of`] was given when the status
/// came from a Rickshaw service, else the closest `ErrorCode` to its gRPC code.
pub fn error_of(status: Status) -> ApiError {
    ApiError {
        code: carried_code(&status).unwrap_or_else(|| code_of(status.code())),
        message: status.message().to_owned(),
        field: carried_field(&status),
        details: carried_details(&status),
    }
}

/// What a client of `service` makes of a failed call: the service's own error when it answered
/// one (see [`error_of`]); when it did not (connection refused or reset, a timeout, a proxy or a
/// server that is not a Rickshaw service), the error names `service`, and a failure to reach it
/// is `ErrorCode::Unavailable`.
pub fn remote_error(service: &str, status: Status) -> ApiError {
    if carried_code(&status).is_some() {
        return error_of(status);
    }
    let code = code_of(status.code());
    let message = match code {
        ErrorCode::Unavailable => format!(
            "the {service} service is unreachable: {}",
            describe(&status)
        ),
        _ => format!("the {service} service: {}", describe(&status)),
    };
    ApiError {
        code,
        message,
        field: None,
        details: None,
    }
}

/// The status's message and, for a transport failure, its causes.
fn describe(status: &Status) -> String {
    let mut parts: Vec<String> = vec![status.message().to_owned()];
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.retain(|p| !p.is_empty());
    if parts.is_empty() {
        return format!("{:?}", status.code());
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_code_survives_the_round_trip() {
        for code in CODES {
            for field in [None, Some("dropoff"), Some("poste_restante_é")] {
                let mut error = ApiError {
                    code,
                    message: format!("ünïcode message for {}", name(code)),
                    field: field.map(str::to_owned),
                    details: None,
                };
                if field.is_some() {
                    error = error
                        .with_detail("state", "cancelled")
                        .with_retry_after(7)
                        .with_detail("ünïcode", serde_json::json!({"nested": [1, 2]}));
                }
                let status = status_of(error.clone());
                assert_eq!(status.code(), grpc_code(code));
                assert_eq!(error_of(status.clone()), error);
                assert_eq!(remote_error("trip", status), error);
            }
        }
    }

    #[test]
    fn names_are_the_serde_spelling() {
        for code in CODES {
            let json = serde_json::to_string(&code).expect("serialises");
            assert_eq!(json, format!("\"{}\"", name(code)));
        }
    }

    #[test]
    fn a_foreign_status_is_read_from_its_code_and_names_the_service() {
        let e = remote_error("pricing", Status::unavailable("tcp connect error"));
        assert_eq!(e.code, ErrorCode::Unavailable);
        assert!(e.message.contains("pricing"), "{}", e.message);
        assert!(e.message.contains("tcp connect error"), "{}", e.message);
        assert_eq!(
            error_of(Status::permission_denied("no")).code,
            ErrorCode::Forbidden
        );
        assert_eq!(
            error_of(Status::already_exists("taken")).code,
            ErrorCode::Conflict
        );
        assert_eq!(
            remote_error("trip", Status::unimplemented("no such method")).code,
            ErrorCode::Internal
        );
    }
}
