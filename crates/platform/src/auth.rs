//! Who is calling a service: the account and role the gateway verified from the access token,
//! and the token itself. In one process services trust the `Caller` they are handed; across
//! processes only the token travels (gRPC metadata `authorization`), and the receiving service
//! verifies it again and rebuilds the `Caller` — a service never takes a caller's word for who it is.

use std::sync::Arc;

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
