//! The web apps: a rider app, a driver app and the operations map, as plain HTML, CSS and ES
//! modules on Leaflet, embedded in the binary (`assets/`) and served by the gateway — no Node.js,
//! no build step, nothing fetched from the internet. The map draws tiles from `web.tile_url` when
//! one is set, and otherwise the Dhaka base layer shipped in `assets/map/` (outline and main
//! roads from an open data package; its licence and attribution are beside it).
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the start page: links to the apps and the API docs |
//! | `GET /app/rider`, `/app/driver`, `/app/ops` | the three apps |
//! | `GET /app/config.json` | what the pages need to know of the deployment: the tile layer, the city |
//! | `GET /app/<file>` | the apps' scripts, styles, the vendored Leaflet and the base layer |

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use platform::ApiError;
use platform::config::Section;
use rust_embed::RustEmbed;
use serde::{Deserialize, Serialize};

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// `[web]`: the map the pages draw.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// A raster tile URL template with `{z}`, `{x}` and `{y}` (and optionally `{s}`), e.g.
    /// `https://tile.openstreetmap.org/{z}/{x}/{y}.png`. Unset: the pages draw the base layer
    /// shipped with Rickshaw (Dhaka's outline and main roads), and work offline.
    pub tile_url: Option<String>,
    /// The attribution the tile provider asks for, shown on the map with `tile_url`.
    pub tile_attribution: String,
    /// Where the maps open: `[lat, lng]` (Dhaka by default).
    pub centre: [f64; 2],
    /// The maps' first zoom level (0–19).
    pub zoom: u8,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            tile_url: None,
            tile_attribution: "© OpenStreetMap contributors".to_owned(),
            centre: [23.7808, 90.4067],
            zoom: 13,
        }
    }
}

impl Section for WebConfig {
    const NAME: &'static str = "web";

    fn validate(&self) -> Result<(), String> {
        if let Some(url) = &self.tile_url {
            let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
            let placeholders = ["{z}", "{x}", "{y}"].iter().all(|p| url.contains(p));
            if !scheme_ok || !placeholders || url.chars().any(char::is_control) {
                return Err(format!(
                    "web.tile_url must be an http(s) URL with {{z}}, {{x}} and {{y}}, such as https://tile.openstreetmap.org/{{z}}/{{x}}/{{y}}.png; got {url:?}"
                ));
            }
        }
        let [lat, lng] = self.centre;
        if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lng) {
            return Err(format!(
                "web.centre must be [lat, lng] in degrees; got [{lat}, {lng}]"
            ));
        }
        if self.zoom > 19 {
            return Err(format!("web.zoom must be 0 to 19; got {}", self.zoom));
        }
        Ok(())
    }
}

/// The pages' routes.
pub fn router(config: WebConfig) -> Router {
    Router::new()
        .route("/", get(|s, h| page(s, h, "index.html")))
        .route("/app/rider", get(|s, h| page(s, h, "rider.html")))
        .route("/app/driver", get(|s, h| page(s, h, "driver.html")))
        .route("/app/ops", get(|s, h| page(s, h, "ops.html")))
        .route("/app/config.json", get(config_json))
        .route("/app/{*file}", get(file))
        .with_state(Site::new(config))
}

#[derive(Clone)]
struct Site {
    config: WebConfig,
    /// The pages' Content-Security-Policy: this origin only, and the tile server's images.
    csp: HeaderValue,
}

impl Site {
    fn new(config: WebConfig) -> Self {
        let tiles = config
            .tile_url
            .as_deref()
            .map(tile_origin)
            .unwrap_or_default();
        let csp = format!(
            "default-src 'self'; img-src 'self' data:{tiles}; connect-src 'self' ws: wss:; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
        );
        Self {
            config,
            csp: HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static(
                "default-src 'self'; connect-src 'self' ws: wss:",
            )),
        }
    }
}

/// ` https://*.tile.example.org` for a template on `https://{s}.tile.example.org/…`.
fn tile_origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let host = rest
        .split('/')
        .next()
        .unwrap_or_default()
        .replace("{s}", "*");
    format!(" {scheme}://{host}")
}

async fn page(State(site): State<Site>, headers: HeaderMap, name: &str) -> Response {
    let mut response = serve(&headers, name);
    response
        .headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, site.csp.clone());
    response
}

async fn config_json(State(site): State<Site>) -> Response {
    axum::Json(&site.config).into_response()
}

async fn file(headers: HeaderMap, Path(file): Path<String>) -> Response {
    serve(&headers, &file)
}

/// An embedded file, revalidated by its hash (`ETag`), so a new binary's files are seen at once.
fn serve(headers: &HeaderMap, name: &str) -> Response {
    let Some(file) = Assets::get(name) else {
        return ApiError::not_found(format!("no page or file /app/{name}")).into_response();
    };
    let etag = format!("\"{}\"", hex_of(&file.metadata.sha256_hash()[..12]));
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    let mime = file.metadata.mimetype();
    let content_type = if mime.starts_with("text/") || mime.ends_with("javascript") {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_owned()
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache".to_owned()),
            (header::ETAG, etag),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        file.data,
    )
        .into_response()
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(router: &Router, uri: &str, etag: Option<&str>) -> Response {
        let mut request = Request::get(uri);
        if let Some(etag) = etag {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        router
            .clone()
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("response")
    }

    #[tokio::test]
    async fn pages_and_files_are_served_from_the_binary_with_their_types() {
        let router = router(WebConfig::default());
        for (uri, mime) in [
            ("/", "text/html"),
            ("/app/rider", "text/html"),
            ("/app/driver", "text/html"),
            ("/app/ops", "text/html"),
            ("/app/vendor/leaflet/leaflet.js", "text/javascript"),
            ("/app/vendor/leaflet/leaflet.css", "text/css"),
            ("/app/map/dhaka.geojson", "application/geo+json"),
        ] {
            let response = get(&router, uri, None).await;
            assert_eq!(response.status(), StatusCode::OK, "{uri}");
            let content_type = response.headers()[header::CONTENT_TYPE]
                .to_str()
                .expect("ascii");
            assert!(content_type.starts_with(mime), "{uri}: {content_type}");
        }
        let page = get(&router, "/app/rider", None).await;
        let csp = page.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("ascii");
        assert!(csp.starts_with("default-src 'self'"), "{csp}");
        // Revalidation by hash.
        let etag = page.headers()[header::ETAG]
            .to_str()
            .expect("ascii")
            .to_owned();
        let again = get(&router, "/app/rider", Some(&etag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        // Unknown files are a JSON 404.
        let missing = get(&router, "/app/nothing.js", None).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(missing.headers()[header::CONTENT_TYPE], "application/json");
    }

    #[tokio::test]
    async fn the_tile_server_is_allowed_by_the_pages_policy_and_told_to_them() {
        let config = WebConfig {
            tile_url: Some("https://{s}.tile.example.org/{z}/{x}/{y}.png".to_owned()),
            ..WebConfig::default()
        };
        config.validate().expect("valid");
        let router = router(config);
        let page = get(&router, "/app/ops", None).await;
        let csp = page.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("ascii");
        assert!(
            csp.contains("img-src 'self' data: https://*.tile.example.org;"),
            "{csp}"
        );
        let body = axum::body::to_bytes(
            get(&router, "/app/config.json", None).await.into_body(),
            1 << 16,
        )
        .await
        .expect("body");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            json["tile_url"],
            "https://{s}.tile.example.org/{z}/{x}/{y}.png"
        );
        assert_eq!(json["centre"][0], 23.7808);
    }

    #[test]
    fn a_tile_url_without_its_placeholders_is_refused_naming_the_key() {
        for bad in [
            "https://tile.example.org/tiles.png",
            "ftp://tile.example.org/{z}/{x}/{y}.png",
            "javascript:{z}{x}{y}",
        ] {
            let config = WebConfig {
                tile_url: Some(bad.to_owned()),
                ..WebConfig::default()
            };
            let error = config.validate().expect_err(bad);
            assert!(error.contains("web.tile_url"), "{error}");
        }
    }
}
