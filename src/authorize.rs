//! The gateway as an authorization server for OAuth-only MCP clients (the design contract's
//! §6), the HTTP half; the rules are `core::authorize`. Built so far: the metadata documents,
//! the challenge on `/mcp/{upstream}`, and client registration. The authorization and token
//! endpoints are not yet (docs/API.md "Planned, not built yet").

use crate::app::App;
use crate::core::authorize::client::{
    register as check_registration, CLIENT_ID_PREFIX, MAX_REGISTRATION_BYTES,
};
use crate::core::authorize::metadata;
use crate::core::encoding::b64url;
use crate::core::ids::UpstreamId;
use crate::core::oauth::token::AuthMethod;
use crate::core::seal::Context;
use crate::core::throttle::Verdict;
use crate::core::upstream::Upstream;
use crate::error::Error;
use crate::http;
use crate::rt::{now_ms, random_bytes};
use crate::store::protocol::RegistrationAttempt;
use crate::store::schema::registration_guard_name;
use serde_json::{json, Value};
use worker::{Request, Response};

/// The upstream `{id}` when OAuth-only clients may sign in for it.
async fn signing_in(app: &App, id: &str) -> Result<Option<Upstream>, Error> {
    let Ok(id) = UpstreamId::parse(id) else { return Ok(None) };
    Ok(app.config_store()?.upstream(id.as_str()).await?.filter(|u| !u.sign_in.is_off()))
}

/// `GET /.well-known/oauth-protected-resource/{mcp|sse}/{upstream}` (RFC 9728).
pub async fn protected_resource(app: &App, route: &str, id: &str) -> Result<Response, Error> {
    match signing_in(app, id).await? {
        Some(_) => {
            Ok(http::json(200, &metadata::protected_resource(&app.public_origin, &format!("/{route}/{id}"))))
        }
        None => Err(Error::NotFound { what: format!("protected resource /{route}/{id}") }),
    }
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414).
pub fn authorization_server(app: &App) -> Response {
    http::json(200, &metadata::authorization_server(&app.public_origin))
}

/// The 401 of `/{route}/{upstream}`: with sign-in, a challenge naming the resource's metadata
/// (`invalid_token` when a credential was presented and refused), else the plain one.
pub fn unauthenticated(app: &App, route: &str, upstream: Option<&Upstream>, presented: bool) -> Error {
    match upstream.filter(|u| !u.sign_in.is_off()) {
        Some(u) => Error::SignInRequired {
            challenge: metadata::challenge(&app.public_origin, &format!("/{route}/{}", u.id), presented),
        },
        None => Error::InvalidKey,
    }
}

/// `POST /oauth/register` (RFC 7591): bounded in size, limited per client address, and usable
/// at once from any location: the registration is sealed into the client id itself, so nothing
/// is stored and no eventually consistent read stands between register and authorize.
pub async fn register(app: &App, mut req: Request) -> Result<Response, Error> {
    let client = http::header(&req, "cf-connecting-ip").unwrap_or_default();
    let guard = app.store_for(&registration_guard_name(client.trim()))?;
    if let Verdict::Blocked { retry_after } = guard.call(RegistrationAttempt {}).await? {
        return Err(Error::TooManyRegistrations { retry_after });
    }
    let refused = |description: &str| Error::RegistrationRefused {
        error: "invalid_client_metadata",
        description: description.into(),
    };
    let bytes = http::read_body(&mut req, MAX_REGISTRATION_BYTES).await?;
    let body: Value = serde_json::from_slice(&bytes).map_err(|_| refused("the registration is not JSON"))?;
    let secret = format!("mabcs_{}", b64url(&random_bytes::<32>()));
    let now = now_ms();
    let registration = check_registration(&body, now, Some(&secret))
        .map_err(|e| Error::RegistrationRefused { error: e.error, description: e.description })?;
    let text = serde_json::to_vec(&registration).map_err(Error::internal)?;
    let client_id = format!("{CLIENT_ID_PREFIX}{}", app.seal(&Context::GatewayClient, &text)?.as_str());
    let mut answer = json!({
        "client_id": client_id,
        "client_id_issued_at": now / 1000,
        "client_name": registration.client_name,
        "redirect_uris": registration.redirect_uris,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": registration.auth_method,
    });
    if registration.auth_method != AuthMethod::None {
        answer["client_secret"] = json!(secret);
        answer["client_secret_expires_at"] = json!(0);
    }
    Ok(http::json(201, &answer))
}
