//! Who is calling: the bearer token in the `authorization` metadata, verified again by the
//! receiving service.

use std::sync::Arc;

use platform::auth::Caller;
use platform::{ApiError, ErrorCode};
use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::{Request, Status};

use crate::error::status_of;

/// The metadata key of the caller's access token (`Bearer <token>`).
pub const AUTHORIZATION: &str = "authorization";

const SCHEME: &str = "Bearer";

/// How a service turns a bearer token back into the verified `Caller` (with `token` set):
/// `Err` with `ErrorCode::Unauthorized` for a token that is malformed, forged or expired. The
/// composition root builds it from the identity service's token verifier.
pub type Authenticate = Arc<dyn Fn(&str) -> Result<Caller, ApiError> + Send + Sync>;

fn unauthenticated(message: impl Into<String>) -> Status {
    status_of(ApiError::new(ErrorCode::Unauthorized, message))
}

/// Puts `token` into `metadata` as `authorization: Bearer <token>`. An empty token (an internal
/// caller's) sends nothing, and the service will refuse the call as unauthenticated.
pub fn set_bearer(metadata: &mut MetadataMap, token: &str) -> Result<(), ApiError> {
    if token.is_empty() {
        metadata.remove(AUTHORIZATION);
        return Ok(());
    }
    let value = AsciiMetadataValue::try_from(format!("{SCHEME} {token}")).map_err(|_| {
        ApiError::new(
            ErrorCode::Unauthorized,
            "the access token holds characters that cannot be sent",
        )
    })?;
    metadata.insert(AUTHORIZATION, value);
    Ok(())
}

/// `message` as a request carrying `token` (see [`set_bearer`]).
pub fn with_bearer<T>(message: T, token: &str) -> Result<Request<T>, ApiError> {
    let mut request = Request::new(message);
    set_bearer(request.metadata_mut(), token)?;
    Ok(request)
}

/// The bearer token of a request's metadata; `UNAUTHENTICATED` (code `unauthorized`) if there is
/// none or it is not `Bearer <token>`.
pub fn bearer(metadata: &MetadataMap) -> Result<&str, Status> {
    let value = metadata
        .get(AUTHORIZATION)
        .ok_or_else(|| unauthenticated("missing authorization metadata; send Bearer <token>"))?;
    let value = value
        .to_str()
        .map_err(|_| unauthenticated("the authorization metadata is not ASCII"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| unauthenticated("the authorization metadata is not Bearer <token>"))?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case(SCHEME) || token.is_empty() {
        return Err(unauthenticated(
            "the authorization metadata is not Bearer <token>",
        ));
    }
    Ok(token)
}

/// The verified caller of `request`: its bearer token through `authenticate`.
pub fn caller<T>(request: &Request<T>, authenticate: &Authenticate) -> Result<Caller, Status> {
    let token = bearer(request.metadata())?;
    authenticate(token).map_err(status_of)
}

#[cfg(test)]
mod tests {
    use domain::{AccountId, Role};

    use super::*;
    use crate::error::error_of;

    fn authenticate() -> Authenticate {
        Arc::new(|token: &str| {
            if token == "good" {
                Ok(Caller::new(
                    AccountId::from_uuid(uuid::Uuid::from_u128(1)),
                    Role::Rider,
                    token,
                ))
            } else {
                Err(ApiError::new(ErrorCode::Unauthorized, "bad token"))
            }
        })
    }

    #[test]
    fn a_bearer_token_goes_there_and_back() {
        let request = with_bearer((), "good").expect("sendable");
        assert_eq!(
            request.metadata().get(AUTHORIZATION).expect("set"),
            "Bearer good"
        );
        assert_eq!(bearer(request.metadata()).expect("read"), "good");
        let caller = caller(&request, &authenticate()).expect("authenticated");
        assert_eq!(caller.role, Role::Rider);
        assert_eq!(&*caller.token, "good");
    }

    #[test]
    fn no_token_a_bad_token_and_another_scheme_are_unauthenticated() {
        let mut basic = Request::new(());
        basic.metadata_mut().insert(
            AUTHORIZATION,
            AsciiMetadataValue::from_static("Basic Z29vZA=="),
        );
        for request in [
            with_bearer((), "").expect("sendable"),
            with_bearer((), "forged").expect("sendable"),
            basic,
        ] {
            let status = caller(&request, &authenticate()).expect_err("refused");
            assert_eq!(status.code(), tonic::Code::Unauthenticated);
            assert_eq!(error_of(status).code, ErrorCode::Unauthorized);
        }
        assert!(with_bearer((), "new\nline").is_err());
    }
}
