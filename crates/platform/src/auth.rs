//! Who is calling a service: the account and role the gateway verified from the access token,
//! and the token itself. In one process services trust the `Caller` they are handed; across
//! processes only the token travels (the `authorization` header of a request, `platform::rpc`),
//! and the receiving service verifies it again and rebuilds the `Caller` — a service never takes
//! a caller's word for who it is.

use std::sync::Arc;

use axum::http::{HeaderMap, header};

use domain::{AccountId, Role};

#[derive(Clone, PartialEq, Eq)]
pub struct Caller {
    pub account: AccountId,
    pub role: Role,
    /// The bearer token this caller was verified from (empty for internal callers).
    pub token: Arc<str>,
}

impl Caller {
    pub fn new(account: AccountId, role: Role, token: impl Into<Arc<str>>) -> Self {
        Self {
            account,
            role,
            token: token.into(),
        }
    }
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("account", &self.account)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// The token of an `Authorization: Bearer <token>` header, if there is one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bearer_authorization_yields_a_token() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, value.parse().expect("header"));
            bearer(&headers).map(str::to_owned)
        };
        assert_eq!(with("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(with("bearer  abc ").as_deref(), Some("abc"));
        assert_eq!(with("Basic abc"), None);
        assert_eq!(with("Bearer"), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
