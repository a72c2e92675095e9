//! `/v1/auth/*` and `/v1/me`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::{Email, PersonName, Role};
use identity::IdentityError;
use identity::{Account, SignUp, Tokens};
use platform::http::JsonBody;
use platform::{ApiError, clock};
use serde::Serialize;
use serde_json::Value;

use super::auth_limits::ClientAddress;
use super::{Authenticated, ProductServices, body, openapi};

/// Create an account. The answer is the same whether or not the email had an account already
/// (202, and as long): sign-up never tells who has one. Log in with the password to use it.
#[utoipa::path(post, path = "/v1/auth/signup", tag = "accounts",
    request_body = openapi::SignUpRequest,
    responses(
        (status = 202, description = "Taken in: log in with this email and password (the same answer when the email had an account)", body = openapi::SignUpAccepted),
        (status = 403, description = "The admin role is never granted by sign-up", body = openapi::ErrorBody),
        (status = 422, description = "A field is invalid (named in `error.field`)", body = openapi::ErrorBody),
        (status = 429, description = "Too many sign-ups and logins in flight from this address (`Retry-After`)", body = openapi::ErrorBody),
        (status = 503, description = "Too many password checks waiting already (`Retry-After`)", body = openapi::ErrorBody),
    ))]
pub async fn sign_up(
    State(services): State<ProductServices>,
    ClientAddress(address): ClientAddress,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<SignUpAccepted>), ApiError> {
    let email = Email::parse(body::string(&body, "email")?)
        .map_err(|e| ApiError::invalid_field("email", e))?;
    let password = body::string(&body, "password")?.to_owned();
    let name = PersonName::parse(body::string(&body, "name")?)
        .map_err(|e| ApiError::invalid_field("name", e.to_string()))?;
    let role: Role = body::string(&body, "role")?
        .parse()
        .map_err(|e: String| ApiError::invalid_field("role", e))?;
    let _permit = services.auth_limits.admit(address, false, clock::now())?;
    let answer = SignUpAccepted {
        email: email.as_str().to_owned(),
        message: "Log in with this email and password (POST /v1/auth/login). If the email \
                  already had an account, its own password still applies."
            .to_owned(),
    };
    match services
        .identity
        .sign_up(SignUp {
            email,
            password,
            name,
            role,
        })
        .await
    {
        Ok(_) | Err(IdentityError::EmailTaken(_)) => Ok((StatusCode::ACCEPTED, Json(answer))),
        Err(e) => Err(e.into()),
    }
}

/// What sign-up answers, whether or not the email had an account.
#[derive(Debug, Serialize)]
pub struct SignUpAccepted {
    email: String,
    message: String,
}

/// Log in: an access token (short-lived) and a refresh token.
#[utoipa::path(post, path = "/v1/auth/login", tag = "accounts",
    request_body = openapi::LogInRequest,
    responses(
        (status = 200, description = "Tokens", body = openapi::TokensView),
        (status = 401, description = "Wrong email or password", body = openapi::ErrorBody),
        (status = 429, description = "Too many failed logins for this email or from this address, or too many in flight from this address (`Retry-After`)", body = openapi::ErrorBody),
        (status = 503, description = "Too many password checks waiting already (`Retry-After`)", body = openapi::ErrorBody),
    ))]
pub async fn log_in(
    State(services): State<ProductServices>,
    ClientAddress(address): ClientAddress,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Tokens>, ApiError> {
    let email = Email::parse(body::string(&body, "email")?)
        .map_err(|e| ApiError::invalid_field("email", e))?;
    let password = body::string(&body, "password")?.to_owned();
    let permit = services.auth_limits.admit(address, true, clock::now())?;
    match services.identity.log_in(email, password).await {
        Ok(tokens) => Ok(Json(tokens)),
        Err(e) => {
            if e == IdentityError::InvalidCredentials {
                permit.failed(clock::now());
            }
            Err(e.into())
        }
    }
}

/// Exchange a refresh token for new tokens (the old refresh token stops working).
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "accounts",
    request_body = openapi::RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = openapi::TokensView),
        (status = 401, description = "The refresh token is unknown, expired or revoked", body = openapi::ErrorBody),
    ))]
pub async fn refresh(
    State(services): State<ProductServices>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Tokens>, ApiError> {
    let token = body::string(&body, "refresh_token")?.to_owned();
    Ok(Json(services.identity.refresh(token).await?))
}

/// Revoke a refresh token (idempotent).
#[utoipa::path(post, path = "/v1/auth/logout", tag = "accounts",
    request_body = openapi::RefreshRequest,
    responses((status = 204, description = "Revoked")))]
pub async fn log_out(
    State(services): State<ProductServices>,
    JsonBody(body): JsonBody<Value>,
) -> Result<StatusCode, ApiError> {
    let token = body::string(&body, "refresh_token")?.to_owned();
    services.identity.log_out(token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's account.
#[utoipa::path(get, path = "/v1/me", tag = "accounts", security(("bearer" = [])),
    responses(
        (status = 200, description = "The account", body = openapi::AccountView),
        (status = 401, description = "No or an invalid access token", body = openapi::ErrorBody),
    ))]
pub async fn me(
    State(services): State<ProductServices>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Account>, ApiError> {
    Ok(Json(services.identity.account(&caller).await?))
}
