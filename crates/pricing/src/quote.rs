//! Quotes as signed tokens (JWT, HS256): the preview's route and fares, the rider it was made
//! for and when it expires. Signing with the platform key means a trip instance verifies a quote
//! locally, and nobody can book a fare they were not quoted.

use domain::pricing::{Package, RouteEstimate};
use domain::{AccountId, LatLng, Timestamp};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Quote {
    /// Unique per preview: a trip booked twice with one quote is the same trip.
    pub id: uuid::Uuid,
    pub rider: AccountId,
    pub pickup: LatLng,
    pub dropoff: LatLng,
    pub route: RouteEstimate,
    pub fares: Vec<(Package, u64)>,
    pub expires_at: Timestamp,
}

impl Quote {
    pub fn fare(&self, package: Package) -> Option<u64> {
        self.fares
            .iter()
            .find(|(p, _)| *p == package)
            .map(|(_, fare)| *fare)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QuoteError {
    #[error("the quote has expired; preview the trip again")]
    Expired,
    #[error("the quote is not valid: {0}")]
    Invalid(String),
}

#[derive(Serialize, Deserialize)]
struct QuoteClaims {
    typ: String,
    /// Seconds since the epoch, for JWT tooling; `quote.expires_at` is authoritative.
    exp: i64,
    quote: Quote,
}

const TYP: &str = "quote";

#[derive(Clone)]
pub struct QuoteBook {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for QuoteBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QuoteBook(<key redacted>)")
    }
}

impl QuoteBook {
    pub fn new(key: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
        }
    }

    pub fn sign(&self, quote: &Quote) -> Result<String, jsonwebtoken::errors::Error> {
        let claims = QuoteClaims {
            typ: TYP.to_owned(),
            exp: quote.expires_at.as_millis() / 1_000,
            quote: quote.clone(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    /// The quote behind `token`, if this platform signed it and it has not expired at `now`.
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<Quote, QuoteError> {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked below against the caller's clock (testable), to the millisecond.
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<QuoteClaims>(token, &self.decoding, &validation)
            .map_err(|e| QuoteError::Invalid(e.to_string()))?;
        if data.claims.typ != TYP {
            return Err(QuoteError::Invalid("not a quote".into()));
        }
        if now >= data.claims.quote.expires_at {
            return Err(QuoteError::Expired);
        }
        Ok(data.claims.quote)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quote(expires_at: i64) -> Quote {
        Quote {
            id: uuid::Uuid::from_u128(1),
            rider: AccountId::from_uuid(uuid::Uuid::from_u128(2)),
            pickup: LatLng::new(23.7, 90.4).expect("valid"),
            dropoff: LatLng::new(23.8, 90.4).expect("valid"),
            route: RouteEstimate {
                distance_m: 15_000,
                duration_s: 2_700,
            },
            fares: vec![(Package::Bike, 24_000)],
            expires_at: Timestamp::from_millis(expires_at),
        }
    }

    #[test]
    fn a_quote_verifies_until_it_expires_and_only_with_its_key() {
        let book = QuoteBook::new(b"0123456789abcdef0123456789abcdef");
        let token = book.sign(&quote(10_000)).expect("signs");
        let back = book
            .verify(&token, Timestamp::from_millis(9_999))
            .expect("valid");
        assert_eq!(back, quote(10_000));
        assert_eq!(
            book.verify(&token, Timestamp::from_millis(10_000)),
            Err(QuoteError::Expired)
        );
        let other = QuoteBook::new(b"another key, also thirty-two byte");
        assert!(matches!(
            other.verify(&token, Timestamp::from_millis(0)),
            Err(QuoteError::Invalid(_))
        ));
        // A tampered payload fails the signature.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let flipped = if &parts[1][10..11] == "A" { "B" } else { "A" };
        parts[1].replace_range(10..11, flipped);
        assert!(
            book.verify(&parts.join("."), Timestamp::from_millis(0))
                .is_err()
        );
        assert!(book.verify("garbage", Timestamp::from_millis(0)).is_err());
    }
}
