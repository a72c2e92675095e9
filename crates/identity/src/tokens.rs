//! Access tokens (HS256 JWTs, checked locally by every service) and refresh tokens (random text
//! the client holds; the store keeps their SHA-256). Time is always an argument, so tests can
//! issue and check tokens at any instant.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::{AccountId, Role, Timestamp};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use platform::auth::Caller;
use serde::{Deserialize, Serialize};

use crate::{Claims, IdentityError, SigningKey};

/// The `iss` of every access token.
pub const ISSUER: &str = "rickshaw";

/// The `typ` claim of an access token (a token of any other type is refused as one).
const ACCESS: &str = "access";

/// The JWT payload of an access token.
#[derive(Serialize, Deserialize)]
struct AccessClaims {
    iss: String,
    sub: AccountId,
    role: Role,
    /// Issued at, seconds since the epoch.
    iat: u64,
    /// Refused from this second on.
    exp: u64,
    typ: String,
}

/// 32 random bytes as 43 base64url characters (refresh tokens, generated keys).
pub(crate) fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whole seconds since the epoch (the JWT `NumericDate`); instants before 1970 count as 0.
fn unix_seconds(t: Timestamp) -> u64 {
    u64::try_from(t.as_millis().div_euclid(1000)).unwrap_or(0)
}

fn from_unix_seconds(s: u64) -> Timestamp {
    Timestamp::from_millis(i64::try_from(s).unwrap_or(i64::MAX).saturating_mul(1000))
}

/// Signs access tokens (the identity service holds the only one).
#[derive(Clone)]
pub struct TokenIssuer {
    key: EncodingKey,
    header: Header,
    ttl_s: u64,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("key", &"<redacted>")
            .field("ttl_s", &self.ttl_s)
            .finish()
    }
}

impl TokenIssuer {
    /// Issues tokens valid for `access_ttl_s` seconds.
    pub fn new(key: &SigningKey, access_ttl_s: u64) -> Self {
        Self {
            key: EncodingKey::from_secret(key.bytes()),
            header: Header::new(Algorithm::HS256),
            ttl_s: access_ttl_s,
        }
    }

    /// How long an access token is valid, in seconds.
    pub fn ttl_s(&self) -> u64 {
        self.ttl_s
    }

    /// An access token for `account`, issued at `now`.
    pub fn issue(
        &self,
        account: AccountId,
        role: Role,
        now: Timestamp,
    ) -> Result<String, IdentityError> {
        let iat = unix_seconds(now);
        let claims = AccessClaims {
            iss: ISSUER.to_owned(),
            sub: account,
            role,
            iat,
            exp: iat.saturating_add(self.ttl_s),
            typ: ACCESS.to_owned(),
        };
        jsonwebtoken::encode(&self.header, &claims, &self.key)
            .map_err(|e| IdentityError::Store(format!("signing an access token: {e}")))
    }
}

/// Verifies access tokens locally (no call to the identity service): the gateway and every
/// service hold one.
#[derive(Clone)]
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenVerifier { key: <redacted> }")
    }
}

impl TokenVerifier {
    pub fn new(key: &SigningKey) -> Self {
        // HS256 only (no `none`, no other algorithm); the issuer must be ours. Expiry is checked
        // against the caller's `now`, not the library's clock, and without leeway.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        Self {
            key: DecodingKey::from_secret(key.bytes()),
            validation,
        }
    }

    /// The caller a valid access token proves (the token kept as its proof), for the gateway, the
    /// WebSocket and every service answering calls from other processes alike; errors as [`TokenVerifier::verify`].
    pub fn caller(
        &self,
        token: &str,
        now: Timestamp,
    ) -> Result<(Caller, Timestamp), IdentityError> {
        let claims = self.verify(token, now)?;
        Ok((
            Caller::new(claims.account, claims.role, token),
            claims.expires_at,
        ))
    }

    /// The claims of a valid access token; `InvalidToken` if it is malformed, signed with
    /// another key or algorithm, not an access token, or expired at `now`.
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<Claims, IdentityError> {
        let data = jsonwebtoken::decode::<AccessClaims>(token, &self.key, &self.validation)
            .map_err(|e| {
                IdentityError::InvalidToken(match e.kind() {
                    ErrorKind::InvalidSignature => {
                        "the access token's signature is not valid".into()
                    }
                    ErrorKind::InvalidAlgorithm => {
                        "the access token is not signed with HS256".into()
                    }
                    ErrorKind::InvalidIssuer => {
                        format!("the access token was not issued by {ISSUER}")
                    }
                    ErrorKind::MissingRequiredClaim(claim) => {
                        format!("the access token has no {claim:?} claim")
                    }
                    _ => "malformed access token".into(),
                })
            })?;
        let claims = data.claims;
        if claims.typ != ACCESS {
            return Err(IdentityError::InvalidToken(
                "not an access token".to_owned(),
            ));
        }
        if unix_seconds(now) >= claims.exp {
            return Err(IdentityError::InvalidToken(
                "the access token has expired; refresh it or log in again".to_owned(),
            ));
        }
        Ok(Claims {
            account: claims.sub,
            role: claims.role,
            expires_at: from_unix_seconds(claims.exp),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(fill: char) -> SigningKey {
        SigningKey::from_bytes(fill.to_string().repeat(32)).expect("32 bytes")
    }

    fn account() -> AccountId {
        AccountId::from_uuid(uuid::Uuid::from_u128(7))
    }

    const NOW: Timestamp = Timestamp::from_millis(1_800_000_000_500);

    #[test]
    fn a_token_is_valid_until_its_expiry_second() {
        let issuer = TokenIssuer::new(&key('a'), 900);
        let verifier = TokenVerifier::new(&key('a'));
        let token = issuer.issue(account(), Role::Driver, NOW).expect("signed");
        let claims = verifier.verify(&token, NOW).expect("valid");
        assert_eq!(
            claims,
            Claims {
                account: account(),
                role: Role::Driver,
                expires_at: Timestamp::from_millis(1_800_000_900_000),
            }
        );
        let last_valid = Timestamp::from_millis(1_800_000_899_999);
        assert!(verifier.verify(&token, last_valid).is_ok());
        let expired = verifier
            .verify(&token, claims.expires_at)
            .expect_err("expired at exp");
        assert!(matches!(expired, IdentityError::InvalidToken(m) if m.contains("expired")));
    }

    #[test]
    fn tampered_foreign_and_odd_tokens_are_refused() {
        let verifier = TokenVerifier::new(&key('a'));
        let foreign = TokenIssuer::new(&key('b'), 900)
            .issue(account(), Role::Rider, NOW)
            .expect("signed");
        assert!(matches!(
            verifier.verify(&foreign, NOW),
            Err(IdentityError::InvalidToken(m)) if m.contains("signature")
        ));
        let ours = TokenIssuer::new(&key('a'), 900)
            .issue(account(), Role::Rider, NOW)
            .expect("signed");
        // Promote the rider to driver in the payload, keeping the signature.
        let parts: Vec<&str> = ours.split('.').collect();
        let payload = URL_SAFE_NO_PAD.decode(parts[1]).expect("base64");
        let forged = String::from_utf8(payload)
            .expect("json")
            .replace("\"rider\"", "\"driver\"");
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(forged),
            parts[2]
        );
        assert!(verifier.verify(&forged, NOW).is_err(), "tampered payload");
        for garbage in ["", "abc", "a.b.c", &random_token()] {
            assert!(
                matches!(
                    verifier.verify(garbage, NOW),
                    Err(IdentityError::InvalidToken(_))
                ),
                "{garbage:?}"
            );
        }
    }

    fn signed(claims: &serde_json::Value, algorithm: Algorithm) -> String {
        jsonwebtoken::encode(
            &Header::new(algorithm),
            claims,
            &EncodingKey::from_secret(key('a').bytes()),
        )
        .expect("signed")
    }

    #[test]
    fn only_access_tokens_of_our_issuer_signed_with_hs256_pass() {
        let verifier = TokenVerifier::new(&key('a'));
        let good = serde_json::json!({
            "iss": ISSUER, "sub": account(), "role": "rider",
            "iat": 1_800_000_000u64, "exp": 1_800_000_900u64, "typ": "access",
        });
        assert!(
            verifier
                .verify(&signed(&good, Algorithm::HS256), NOW)
                .is_ok()
        );
        let mut other_type = good.clone();
        other_type["typ"] = "refresh".into();
        let mut other_issuer = good.clone();
        other_issuer["iss"] = "someone-else".into();
        let mut no_expiry = good.clone();
        no_expiry.as_object_mut().expect("object").remove("exp");
        for (bad, why) in [
            (signed(&other_type, Algorithm::HS256), "typ"),
            (signed(&other_issuer, Algorithm::HS256), "iss"),
            (signed(&no_expiry, Algorithm::HS256), "exp"),
            (signed(&good, Algorithm::HS512), "alg"),
        ] {
            assert!(
                matches!(
                    verifier.verify(&bad, NOW),
                    Err(IdentityError::InvalidToken(_))
                ),
                "{why}"
            );
        }
    }

    #[test]
    fn random_tokens_are_long_and_distinct() {
        let a = random_token();
        assert_eq!(a.len(), 43);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(a, random_token());
    }
}
