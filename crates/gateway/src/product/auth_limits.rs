//! How hard one client address may push the password checks (each ~150 ms of CPU and ~19 MiB):
//! at most `auth_in_flight_per_address` sign-ups and logins in flight at once, and after
//! `login_free_failures_per_address` failed logins a doubling wait before the next login
//! ([`Backoff`]). The identity service bounds the hashing pool for everyone and each email's
//! failures; this keeps one address from filling that pool with fresh emails.
//!
//! Kept in this instance's memory: behind several gateways an address gets this budget from each.
//! At most `tracked_addresses` addresses are remembered; past that the least recently seen go.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use domain::Timestamp;
use platform::config::HttpConfig;

use crate::GatewayConfig;
use platform::limit::Backoff;
use platform::{ApiError, ErrorCode};

#[derive(Debug)]
struct AddressState {
    in_flight: usize,
    failures: Vec<Timestamp>,
    seen: Timestamp,
}

#[derive(Debug)]
struct Limits {
    in_flight: usize,
    backoff: Backoff,
    tracked: usize,
    client_header: Option<HeaderName>,
    addresses: Mutex<HashMap<IpAddr, AddressState>>,
}

/// The per-address limits of `/v1/auth/signup` and `/v1/auth/login` (cheap to clone).
#[derive(Clone, Debug)]
pub struct AuthLimits(Arc<Limits>);

/// One admitted sign-up or login; gives its in-flight slot back when dropped.
pub struct AuthPermit {
    limits: Arc<Limits>,
    address: IpAddr,
}

impl AuthLimits {
    pub fn new(gateway: &GatewayConfig, http: &HttpConfig) -> Self {
        Self(Arc::new(Limits {
            in_flight: gateway.auth_in_flight_per_address,
            backoff: Backoff {
                free: gateway.login_free_failures_per_address,
                base: Duration::from_millis(gateway.login_backoff_ms),
                max: Duration::from_millis(gateway.login_backoff_max_ms),
                window: Duration::from_secs(gateway.login_window_s),
            },
            tracked: gateway.tracked_addresses,
            client_header: http
                .client_address_header
                .as_deref()
                .and_then(|h| HeaderName::try_from(h).ok()),
            addresses: Mutex::new(HashMap::new()),
        }))
    }

    /// Admits a sign-up (`login: false`) or a login from `address` at `now`, or refuses it with
    /// 429 and `Retry-After`.
    pub fn admit(
        &self,
        address: IpAddr,
        login: bool,
        now: Timestamp,
    ) -> Result<AuthPermit, ApiError> {
        let limits = &self.0;
        let mut addresses = limits
            .addresses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !addresses.contains_key(&address) && addresses.len() >= limits.tracked {
            forget_some(
                &mut addresses,
                limits.tracked,
                limits.backoff.window_start(now),
            );
        }
        let state = addresses.entry(address).or_insert_with(|| AddressState {
            in_flight: 0,
            failures: Vec::new(),
            seen: now,
        });
        state.seen = now;
        if login && let Some(until) = limits.backoff.blocked_until(&state.failures, now) {
            let retry_after_s = Backoff::retry_after_s(until, now);
            metrics::counter!("gateway_auth_refused_total", "why" => "failures").increment(1);
            return Err(ApiError::new(
                ErrorCode::RateLimited,
                format!("too many failed logins from your address; retry in {retry_after_s} s"),
            )
            .with_retry_after(retry_after_s));
        }
        if limits.in_flight > 0 && state.in_flight >= limits.in_flight {
            metrics::counter!("gateway_auth_refused_total", "why" => "in_flight").increment(1);
            return Err(ApiError::new(
                ErrorCode::RateLimited,
                format!(
                    "at most {} sign-ups and logins at once from one address; retry in 1 s",
                    limits.in_flight
                ),
            )
            .with_retry_after(1));
        }
        state.in_flight += 1;
        Ok(AuthPermit {
            limits: self.0.clone(),
            address,
        })
    }

    /// The client's address: the configured proxy header's, else the connection's peer.
    pub fn client_address(&self, parts: &Parts) -> Option<IpAddr> {
        if let Some(header) = &self.0.client_header {
            return parts
                .headers
                .get(header)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.trim().parse().ok());
        }
        parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip())
    }
}

/// Makes room for at least one more address: first those with nothing in flight and no failure
/// in the window, then (still full) the least recently seen tenth.
fn forget_some(
    addresses: &mut HashMap<IpAddr, AddressState>,
    tracked: usize,
    window_start: Timestamp,
) {
    addresses.retain(|_, s| s.in_flight > 0 || s.failures.iter().any(|at| *at > window_start));
    if addresses.len() < tracked {
        return;
    }
    let mut seen: Vec<(Timestamp, IpAddr)> = addresses.iter().map(|(a, s)| (s.seen, *a)).collect();
    seen.sort_unstable();
    for (_, address) in seen.into_iter().take(tracked.div_ceil(10)) {
        addresses.remove(&address);
    }
}

impl AuthPermit {
    /// The login failed (wrong email or password): it counts toward the address's backoff.
    pub fn failed(&self, now: Timestamp) {
        let mut addresses = self
            .limits
            .addresses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(state) = addresses.get_mut(&self.address) {
            let window_start = self.limits.backoff.window_start(now);
            state.failures.retain(|at| *at > window_start);
            // A key's failures past the ceiling's doublings change nothing: keep a bounded list.
            if state.failures.len() < 64 {
                state.failures.push(now);
            } else if let Some(oldest) = state.failures.iter_mut().min() {
                *oldest = now;
            }
        }
    }
}

impl Drop for AuthPermit {
    fn drop(&mut self) {
        let mut addresses = self
            .limits
            .addresses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(state) = addresses.get_mut(&self.address) {
            state.in_flight = state.in_flight.saturating_sub(1);
        }
    }
}

/// The client address of a request, as [`AuthLimits::client_address`] finds it.
pub struct ClientAddress(pub IpAddr);

impl FromRequestParts<super::ProductServices> for ClientAddress {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        services: &super::ProductServices,
    ) -> Result<Self, Self::Rejection> {
        services
            .auth_limits
            .client_address(parts)
            .map(ClientAddress)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidInput,
                    "cannot tell the client's address (the proxy header is missing or malformed)",
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(in_flight: usize, free: u32, tracked: usize) -> AuthLimits {
        AuthLimits::new(
            &GatewayConfig {
                auth_in_flight_per_address: in_flight,
                login_free_failures_per_address: free,
                login_backoff_ms: 1_000,
                login_backoff_max_ms: 60_000,
                login_window_s: 900,
                tracked_addresses: tracked,
            },
            &HttpConfig::default(),
        )
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 3));

    #[test]
    fn an_address_has_a_few_in_flight_and_gets_them_back() {
        let limits = limits(2, 0, 100);
        let now = Timestamp::from_millis(1_000_000);
        let first = limits.admit(A, true, now).expect("first");
        let _second = limits.admit(A, false, now).expect("second");
        let refused = limits.admit(A, true, now).err().expect("third");
        assert_eq!(refused.code, ErrorCode::RateLimited);
        assert_eq!(refused.retry_after_s(), Some(1));
        limits.admit(B, true, now).expect("another address");
        drop(first);
        limits.admit(A, true, now).expect("a slot came back");
    }

    #[test]
    fn failed_logins_from_an_address_make_its_next_login_wait_but_not_its_sign_ups() {
        let limits = limits(0, 2, 100);
        let now = Timestamp::from_millis(1_000_000);
        for _ in 0..2 {
            limits.admit(A, true, now).expect("free").failed(now);
        }
        let refused = limits.admit(A, true, now).err().expect("waits");
        assert_eq!(refused.code, ErrorCode::RateLimited);
        assert_eq!(refused.retry_after_s(), Some(1));
        assert!(limits.admit(A, false, now).is_ok(), "a sign-up is no login");
        assert!(limits.admit(B, true, now).is_ok(), "another address");
        assert!(
            limits.admit(A, true, now.plus_millis(1_000)).is_ok(),
            "after the wait"
        );
    }

    #[test]
    fn the_table_of_addresses_stays_bounded() {
        let limits = limits(4, 2, 10);
        let now = Timestamp::from_millis(1_000_000);
        let mut held = Vec::new();
        for i in 0..50u8 {
            let address = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, i));
            let permit = limits.admit(address, true, now).expect("admitted");
            permit.failed(now);
            held.push(permit);
            let size = limits.0.addresses.lock().expect("lock").len();
            assert!(size <= 10, "{size} addresses tracked");
        }
    }
}
