//! `Debug` of the identity messages that hold a password or a token: never the secret itself.

use std::fmt;

use crate::identity::v1::{LogInRequest, LogOutRequest, RefreshRequest, SignUpRequest, Tokens};

const REDACTED: &str = "<redacted>";

impl fmt::Debug for SignUpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignUpRequest")
            .field("email", &self.email)
            .field("password", &REDACTED)
            .field("name", &self.name)
            .field("role", &self.role())
            .finish()
    }
}

impl fmt::Debug for LogInRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogInRequest")
            .field("email", &self.email)
            .field("password", &REDACTED)
            .finish()
    }
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("access_token", &REDACTED)
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &REDACTED)
            .field("refresh_expires_in", &self.refresh_expires_in)
            .field("account", &self.account)
            .finish()
    }
}

impl fmt::Debug for RefreshRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshRequest")
            .field("refresh_token", &REDACTED)
            .finish()
    }
}

impl fmt::Debug for LogOutRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogOutRequest")
            .field("refresh_token", &REDACTED)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let text = format!(
            "{:?} {:?} {:?} {:?} {:?}",
            SignUpRequest {
                email: "ana@example.com".into(),
                password: "hunter2-secret".into(),
                name: "Ana".into(),
                role: 1,
            },
            LogInRequest {
                email: "ana@example.com".into(),
                password: "hunter2-secret".into(),
            },
            Tokens {
                access_token: "access-secret".into(),
                refresh_token: "refresh-secret".into(),
                ..Default::default()
            },
            RefreshRequest {
                refresh_token: "refresh-secret".into(),
            },
            LogOutRequest {
                refresh_token: "refresh-secret".into(),
            },
        );
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("ana@example.com"), "{text}");
    }
}
