//! Route estimates: an OSRM-compatible router when configured (`GET
//! {osrm}/route/v1/driving/{lng},{lat};{lng},{lat}?overview=false`), else — and whenever the router
//! fails or is slow — the straight-line estimate of `domain::pricing`. A preview never fails
//! because the router is down.

use std::time::Duration;

use domain::LatLng;
use domain::pricing::{RouteEstimate, StraightLineRouting};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    #[error("router request failed: {0}")]
    Request(String),
    #[error("router answered {0}")]
    NoRoute(String),
}

#[derive(Clone, Debug)]
pub struct Router {
    fallback: StraightLineRouting,
    osrm: Option<Osrm>,
}

#[derive(Clone, Debug)]
struct Osrm {
    base: String,
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct OsrmResponse {
    code: String,
    #[serde(default)]
    routes: Vec<OsrmRoute>,
}

#[derive(Deserialize)]
struct OsrmRoute {
    distance: f64,
    duration: f64,
}

impl Router {
    pub fn straight_line(fallback: StraightLineRouting) -> Self {
        Self {
            fallback,
            osrm: None,
        }
    }

    /// Routes with the OSRM server at `base` (e.g. `http://osrm:5000`), falling back to
    /// `fallback` when it fails or takes over `timeout`.
    pub fn osrm(base: &str, timeout: Duration, fallback: StraightLineRouting) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .unwrap_or_default();
        Self {
            fallback,
            osrm: Some(Osrm {
                base: base.trim_end_matches('/').to_owned(),
                client,
            }),
        }
    }

    /// The estimate and where it came from (`osrm` or `straight_line`).
    pub async fn route(&self, from: &LatLng, to: &LatLng) -> (RouteEstimate, &'static str) {
        if let Some(osrm) = &self.osrm {
            match osrm.route(from, to).await {
                Ok(route) => return (route, "osrm"),
                Err(e) => {
                    tracing::warn!(error = %e, "the router failed; using the straight-line estimate");
                }
            }
        }
        (self.fallback.estimate(from, to), "straight_line")
    }
}

impl Osrm {
    async fn route(&self, from: &LatLng, to: &LatLng) -> Result<RouteEstimate, RoutingError> {
        let url = format!(
            "{}/route/v1/driving/{},{};{},{}?overview=false",
            self.base,
            from.lng(),
            from.lat(),
            to.lng(),
            to.lat()
        );
        let response: OsrmResponse = self
            .client
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| RoutingError::Request(e.to_string()))?
            .json()
            .await
            .map_err(|e| RoutingError::Request(e.to_string()))?;
        let route = match (response.code.as_str(), response.routes.first()) {
            ("Ok", Some(route)) if route.distance.is_finite() && route.duration.is_finite() => {
                route
            }
            _ => return Err(RoutingError::NoRoute(response.code)),
        };
        Ok(RouteEstimate {
            distance_m: route.distance.max(0.0).round() as u32,
            duration_s: route.duration.max(0.0).round() as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use axum::extract::Path;
    use axum::routing::get;

    use super::*;

    /// A stand-in speaking OSRM's route API (no OSRM server can be installed here), answering
    /// a fixed route for any coordinates and recording the path it was asked.
    async fn fake_osrm(code: &'static str) -> String {
        let app = axum::Router::new().route(
            "/route/v1/driving/{coords}",
            get(move |Path(coords): Path<String>| async move {
                assert!(coords.contains(';'), "{coords}");
                axum::Json(serde_json::json!({
                    "code": code,
                    "routes": [{"distance": 4321.4, "duration": 611.6}]
                }))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn osrm_answers_are_used_and_failures_fall_back() {
        let (a, b) = (
            LatLng::new(23.78, 90.40).expect("valid"),
            LatLng::new(23.75, 90.39).expect("valid"),
        );
        let fallback = StraightLineRouting::default();
        let ok = Router::osrm(&fake_osrm("Ok").await, Duration::from_secs(2), fallback);
        assert_eq!(
            ok.route(&a, &b).await,
            (
                RouteEstimate {
                    distance_m: 4321,
                    duration_s: 612
                },
                "osrm"
            )
        );
        let no_route = Router::osrm(
            &fake_osrm("NoRoute").await,
            Duration::from_secs(2),
            fallback,
        );
        assert_eq!(
            no_route.route(&a, &b).await,
            (fallback.estimate(&a, &b), "straight_line")
        );
        let down = Router::osrm("http://127.0.0.1:1", Duration::from_secs(2), fallback);
        assert_eq!(down.route(&a, &b).await.1, "straight_line");
    }
}
