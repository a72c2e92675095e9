//! Webhook signatures, as Stripe signs them: the `Stripe-Signature` header is
//! `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, keyed with the endpoint's signing
//! secret. The provider signs with [`sign`]; a receiver checks with [`verify`].
//!
//! A receiver may hold several secrets at once (the old and the new during a rotation), and a
//! header may carry several `v1` signatures (a sender signing with both): one match of any
//! signature with any secret is enough. The timestamp is signed too, so a captured request cannot
//! be replayed beyond the tolerance.

use hmac::digest::Key;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The block size of SHA-256: HMAC keys are hashed down to fit it, then zero-padded to it.
const BLOCK: usize = 64;

/// Why a `Stripe-Signature` header was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Not `t=<integer>,v1=<hex>[,v1=<hex>…]`: no timestamp, two of them, no `v1`, bad hex.
    #[error("malformed Stripe-Signature header: {0}")]
    Malformed(String),
    /// Signed correctly, but too long before (or after) the receiver's clock: a replay, or a
    /// clock far off.
    #[error(
        "the signature's timestamp {timestamp} is {skew_s} s from now, beyond the {tolerance_s} s tolerance"
    )]
    Stale {
        timestamp: i64,
        skew_s: i64,
        tolerance_s: i64,
    },
    /// No `v1` signature is the HMAC of this body under any of the secrets.
    #[error("no v1 signature matches the body under any signing secret")]
    Mismatch,
}

/// The `Stripe-Signature` header value for `body` sent at `timestamp` (unix seconds).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let digest = mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(digest))
}

/// Checks a `Stripe-Signature` header against `body`: accepted if any `v1` signature matches
/// under any of `secrets` (compared in constant time) and its timestamp is within `tolerance_s`
/// of `now_unix`, before or after.
pub fn verify(
    header: &str,
    body: &[u8],
    secrets: &[String],
    now_unix: i64,
    tolerance_s: i64,
) -> Result<(), SignatureError> {
    let (timestamp, signatures) = parse(header)?;
    let matched = secrets.iter().any(|secret| {
        signatures
            .iter()
            .any(|signature| mac(secret, timestamp, body).verify_slice(signature).is_ok())
    });
    if !matched {
        return Err(SignatureError::Mismatch);
    }
    let skew_s = now_unix.saturating_sub(timestamp).saturating_abs();
    if skew_s > tolerance_s {
        return Err(SignatureError::Stale {
            timestamp,
            skew_s,
            tolerance_s,
        });
    }
    Ok(())
}

/// The timestamp and every `v1` signature of a header; other schemes (`v0`) are ignored, as
/// Stripe's libraries do.
fn parse(header: &str) -> Result<(i64, Vec<Vec<u8>>), SignatureError> {
    let malformed = |why: &str| SignatureError::Malformed(why.to_owned());
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for element in header.split(',') {
        let (key, value) = element
            .trim()
            .split_once('=')
            .ok_or_else(|| malformed("an element is not key=value"))?;
        match key {
            "t" => {
                let t = value
                    .parse::<i64>()
                    .map_err(|_| malformed("t is not an integer"))?;
                if timestamp.replace(t).is_some() {
                    return Err(malformed("t appears twice"));
                }
            }
            "v1" => signatures.push(hex::decode(value).map_err(|_| malformed("a v1 is not hex"))?),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or_else(|| malformed("no t"))?;
    if signatures.is_empty() {
        return Err(malformed("no v1 signature"));
    }
    Ok((timestamp, signatures))
}

/// HMAC-SHA256 of `"<timestamp>.<body>"` under `secret`.
fn mac(secret: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new(&block_key(secret.as_bytes()));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The key as HMAC uses it (RFC 2104): hashed if longer than the block, zero-padded to it. Done
/// here so that keying cannot fail (`new_from_slice` returns a `Result` for other MACs' sake).
fn block_key(secret: &[u8]) -> Key<HmacSha256> {
    let mut block = [0u8; BLOCK];
    if secret.len() > BLOCK {
        let digest = Sha256::digest(secret);
        block[..digest.len()].copy_from_slice(&digest);
    } else {
        block[..secret.len()].copy_from_slice(secret);
    }
    Key::<HmacSha256>::from(block)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test";
    const BODY: &[u8] = br#"{"id":"evt_1","object":"event"}"#;
    const NOW: i64 = 1_700_000_000;

    fn secrets(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    /// RFC 4231 test cases 2 (a short key) and 6 (a key longer than the block), through the
    /// same keying as the signatures.
    #[test]
    fn the_mac_is_hmac_sha256() {
        let short = HmacSha256::new(&block_key(b"Jefe"))
            .chain_update(b"what do ya want for nothing?")
            .finalize()
            .into_bytes();
        assert_eq!(
            hex::encode(short),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let long = HmacSha256::new(&block_key(&[0xaa; 131]))
            .chain_update(b"Test Using Larger Than Block-Size Key - Hash Key First")
            .finalize()
            .into_bytes();
        assert_eq!(
            hex::encode(long),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn a_signed_body_verifies() {
        let header = sign(SECRET, NOW, BODY);
        assert!(header.starts_with(&format!("t={NOW},v1=")));
        assert_eq!(verify(&header, BODY, &secrets(&[SECRET]), NOW, 300), Ok(()));
        assert_eq!(
            verify(&header, BODY, &secrets(&[SECRET]), NOW + 300, 300),
            Ok(()),
            "the tolerance is inclusive"
        );
    }

    #[test]
    fn a_tampered_body_does_not_verify() {
        let header = sign(SECRET, NOW, BODY);
        let tampered = br#"{"id":"evt_2","object":"event"}"#;
        assert_eq!(
            verify(&header, tampered, &secrets(&[SECRET]), NOW, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_changed_timestamp_does_not_verify() {
        let header = sign(SECRET, NOW, BODY).replace(&format!("t={NOW}"), "t=1700000001");
        assert_eq!(
            verify(&header, BODY, &secrets(&[SECRET]), NOW, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn the_wrong_secret_does_not_verify() {
        let header = sign("whsec_other", NOW, BODY);
        assert_eq!(
            verify(&header, BODY, &secrets(&[SECRET]), NOW, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&header, BODY, &[], NOW, 300),
            Err(SignatureError::Mismatch),
            "no secret, no match"
        );
    }

    #[test]
    fn any_secret_and_any_signature_match_during_a_rotation() {
        // The receiver knows the old and the new secret; the sender signs with the new one.
        let header = sign("whsec_new", NOW, BODY);
        assert_eq!(
            verify(
                &header,
                BODY,
                &secrets(&["whsec_old", "whsec_new"]),
                NOW,
                300
            ),
            Ok(())
        );
        // The sender signs with both; the receiver knows only the old one.
        let old = sign("whsec_old", NOW, BODY);
        let v1_old = old.split_once(",v1=").map(|(_, v)| v).unwrap_or_default();
        let both = format!("{},v1={v1_old}", sign("whsec_new", NOW, BODY));
        assert_eq!(
            verify(&both, BODY, &secrets(&["whsec_old"]), NOW, 300),
            Ok(())
        );
        assert_eq!(
            verify(&both, BODY, &secrets(&["whsec_unrelated"]), NOW, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn an_old_or_future_timestamp_is_stale() {
        let header = sign(SECRET, NOW, BODY);
        assert_eq!(
            verify(&header, BODY, &secrets(&[SECRET]), NOW + 301, 300),
            Err(SignatureError::Stale {
                timestamp: NOW,
                skew_s: 301,
                tolerance_s: 300
            })
        );
        assert!(matches!(
            verify(&header, BODY, &secrets(&[SECRET]), NOW - 301, 300),
            Err(SignatureError::Stale { skew_s: 301, .. })
        ));
    }

    #[test]
    fn malformed_headers_are_named() {
        let v1 = "v1=".to_owned() + &"ab".repeat(32);
        for header in [
            String::new(),
            "garbage".to_owned(),
            v1.clone(),
            format!("t=soon,{v1}"),
            format!("t=1,t=2,{v1}"),
            format!("t={NOW}"),
            format!("t={NOW},v0=abcd"),
            format!("t={NOW},v1=not-hex"),
        ] {
            assert!(
                matches!(
                    verify(&header, BODY, &secrets(&[SECRET]), NOW, 300),
                    Err(SignatureError::Malformed(_))
                ),
                "{header:?} is malformed"
            );
        }
        // Unknown schemes next to a valid v1 are ignored.
        let header = format!("{},v0=abcd", sign(SECRET, NOW, BODY));
        assert_eq!(verify(&header, BODY, &secrets(&[SECRET]), NOW, 300), Ok(()));
    }
}
