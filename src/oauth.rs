//! OAuth at the edge, the HTTP half (the rules are in `core::oauth`): discovering an upstream's
//! authorization server, the gateway's client identity there, sending the user off with PKCE,
//! finishing the callback, and the token endpoint calls the subject stores make to refresh and
//! revoke.

use crate::app::{call, now_ms, random_bytes, App, Store};
use crate::core::config::Config;
use crate::core::encoding::{ct_eq, hex};
use crate::core::keys;
use crate::core::oauth::discovery::{
    authorization_server_urls, parse_authorization_server, parse_protected_resource, protected_resource_urls,
    resource_metadata_from_challenge, AuthServer,
};
use crate::core::oauth::flow::{
    authorization_url, check_callback, client_metadata_url, parse_registration, redirect_uri,
    registration_request, scopes, AuthorizationRequest, Callback, CallbackError,
};
use crate::core::oauth::pkce;
use crate::core::oauth::token::{
    revocation_request, token_request, AuthMethod, ClientAuth, Grant, TokenOutcome, TokenRequest, Tokens,
};
use crate::core::policy::check_url;
use crate::core::upstream::Upstream;
use crate::error::Error;
use crate::outbound::{oauth_request, Answer, OutboundError};
use crate::store::kv::{oauth_client_context, registration_context};
use crate::store::protocol::{
    connection_value_context, pending_context, LinkOutcome, OAuthClient, OAuthGrant, Op,
    PendingAuthorization, ACCESS_TOKEN, CLIENT_SECRET, REFRESH_TOKEN,
};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use url::Url;
use worker::Method;

/// Pending authorizations live at most this long (protocol.md: `state` ≤ 10 minutes).
pub const PENDING_MS: u64 = 10 * 60 * 1000;

/// OAuth endpoint calls get at most this long, whatever the upstream timeout (a subject store
/// holds its other requests while it refreshes).
fn oauth_timeout(config: &Config) -> u64 {
    config.upstream_timeout_ms.min(10_000)
}

/// Why a connect could not start; shown to the user in plain words, and logged.
#[derive(Debug)]
pub struct SetupError(pub String);

impl From<Error> for SetupError {
    fn from(e: Error) -> Self {
        match e {
            Error::Internal { detail } => SetupError(detail),
            e => SetupError(e.describe().2),
        }
    }
}

async fn get_json(config: &Config, url: &str) -> Result<Answer, SetupError> {
    oauth_request(Method::Get, url, None, None, None, config.allow_private_upstreams, oauth_timeout(config))
        .await
        .map_err(|e| SetupError(format!("could not fetch {url}: {e:?}")))
}

/// Finds the upstream's authorization server: the operator's setting, else the resource's
/// RFC 9728 metadata (named by its 401, or at its well-known URL). Returns it with the scopes
/// the resource supports.
pub async fn discover(config: &Config, upstream: &Upstream) -> Result<(AuthServer, Vec<String>), SetupError> {
    let configured = upstream.oauth.as_ref().and_then(|o| o.authorization_server.clone());
    let (issuer, supported) = match configured {
        Some(issuer) => (issuer, Vec::new()),
        None => {
            let resource = Url::parse(&upstream.url).map_err(|_| SetupError("bad upstream URL".into()))?;
            // An unauthenticated MCP request: a protected server answers 401 and names its metadata.
            let probe = oauth_request(
                Method::Post,
                &upstream.url,
                Some("application/json"),
                None,
                Some(r#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#.into()),
                config.allow_private_upstreams,
                oauth_timeout(config),
            )
            .await
            .ok();
            let named =
                probe.and_then(|a| a.www_authenticate).and_then(|h| resource_metadata_from_challenge(&h));
            let candidates = named.into_iter().chain(protected_resource_urls(&resource)).collect::<Vec<_>>();
            let mut found = None;
            for url in candidates {
                if let Ok(answer) = get_json(config, &url).await {
                    if answer.status == 200 {
                        if let Ok(prm) = parse_protected_resource(&answer.body, &upstream.url) {
                            found = Some(prm);
                            break;
                        }
                    }
                }
            }
            let prm = found.ok_or_else(|| {
                SetupError(
                    "the service does not say which authorization server protects it (RFC 9728)".into(),
                )
            })?;
            (prm.authorization_servers[0].clone(), prm.scopes_supported)
        }
    };
    let issuer_url = Url::parse(&issuer).map_err(|_| SetupError(format!("issuer {issuer} is not a URL")))?;
    let mut last = String::from("no metadata found");
    for url in authorization_server_urls(&issuer_url) {
        match get_json(config, &url).await {
            Ok(a) if a.status == 200 => match parse_authorization_server(&a.body, &issuer) {
                Ok(server) => return Ok((server, supported)),
                Err(e) => last = e.to_string(),
            },
            Ok(a) => last = format!("{url} answered {}", a.status),
            Err(e) => last = e.0,
        }
    }
    Err(SetupError(format!("authorization server {issuer}: {last}")))
}

/// KV key of a dynamic registration, per upstream and issuer.
fn registration_key(upstream: &str, issuer: &str, redirect_uri: &str) -> String {
    // Per redirect URI too: a Worker reachable under two origins registers once for each.
    let digest = Sha256::digest(format!("{issuer}\n{redirect_uri}").as_bytes());
    format!("oauth-registration:{upstream}:{}", hex(&digest[..8]))
}

/// The gateway's client at `server`, with its secret in the clear: the operator's, else the
/// Client ID Metadata Document, else an RFC 7591 registration (made once, kept sealed in KV).
async fn client_identity(
    app: &App,
    upstream: &Upstream,
    server: &AuthServer,
) -> Result<(ClientAuth, Option<String>), SetupError> {
    let oauth = upstream.oauth.clone().unwrap_or_default();
    let configured_method = oauth.token_endpoint_auth_method.as_deref();
    if let Some(client_id) = oauth.client_id {
        let secret = match &oauth.client_secret_sealed {
            Some(sealed) => Some(
                app.keyring()?
                    .open_string(&oauth_client_context(&upstream.id), sealed)
                    .map_err(|e| SetupError(format!("cannot open the client secret: {e}")))?,
            ),
            None => None,
        };
        let method = AuthMethod::choose(
            configured_method,
            None,
            secret.is_some(),
            &server.token_endpoint_auth_methods_supported,
        );
        return Ok((ClientAuth { client_id, client_secret: secret.clone(), method }, secret));
    }
    if server.client_id_metadata_document_supported {
        let client_id = client_metadata_url(&app.public_origin);
        return Ok((ClientAuth { client_id, client_secret: None, method: AuthMethod::None }, None));
    }
    let endpoint = server.registration_endpoint.as_deref().ok_or_else(|| {
        SetupError(
            "the authorization server offers no registration: set oauth.client_id for this upstream".into(),
        )
    })?;
    let store = app.config_store()?;
    let key = registration_key(&upstream.id, &server.issuer, &redirect_uri(&app.public_origin));
    let context = registration_context(&upstream.id);
    let stored = store.raw(&key).await?;
    let registered = match stored.and_then(|sealed| app.keyring().ok()?.open(&context, &sealed).ok()) {
        Some(bytes) => parse_registration(&bytes),
        None => None,
    };
    let registered = match registered {
        Some(r) => r,
        None => {
            let body = registration_request(&app.public_origin).to_string();
            let answer = oauth_request(
                Method::Post,
                endpoint,
                Some("application/json"),
                None,
                Some(body),
                app.config.allow_private_upstreams,
                oauth_timeout(&app.config),
            )
            .await
            .map_err(|e| SetupError(format!("registration failed: {e:?}")))?;
            let registered = (answer.status == 201 || answer.status == 200)
                .then(|| parse_registration(&answer.body))
                .flatten()
                .ok_or_else(|| SetupError(format!("registration answered {}", answer.status)))?;
            store.put_raw(&key, app.seal(&context, &answer.body)?).await?;
            registered
        }
    };
    let method = AuthMethod::choose(
        configured_method,
        registered.token_endpoint_auth_method.as_deref(),
        registered.client_secret.is_some(),
        &server.token_endpoint_auth_methods_supported,
    );
    let secret = registered.client_secret.clone();
    Ok((ClientAuth { client_id: registered.client_id, client_secret: secret.clone(), method }, secret))
}

/// `POST /connect/{token}` for an OAuth upstream: discover, identify, keep a pending
/// authorization in the subject's store, and return where to send the browser.
pub async fn begin(
    app: &App,
    store: &Store,
    link_hash: &str,
    subject: &str,
    upstream: &Upstream,
    browser_hash: String,
) -> Result<String, SetupError> {
    let (server, supported) = discover(&app.config, upstream).await?;
    // The browser goes there with `state` and the PKCE challenge: https only, like any endpoint.
    check_url(&server.authorization_endpoint, app.config.allow_private_upstreams)
        .map_err(|e| SetupError(format!("authorization endpoint {e}")))?;
    let (client, secret) = client_identity(app, upstream, &server).await?;
    let settings = upstream.oauth.clone().unwrap_or_default();
    let resource = settings.resource.then(|| upstream.url.clone());
    let scopes = scopes(settings.scopes.as_deref(), &supported);
    let verifier = pkce::verifier(&random_bytes());
    let routing = app.routing_for(subject)?;
    let state = keys::generate_state(&routing, &random_bytes());
    let redirect = redirect_uri(&app.public_origin);
    let url = authorization_url(
        &server,
        &AuthorizationRequest {
            client_id: &client.client_id,
            redirect_uri: &redirect,
            state: &state,
            code_challenge: &pkce::challenge(&verifier),
            scopes: &scopes,
            resource: resource.as_deref(),
        },
    )
    .map_err(|_| SetupError("the authorization endpoint is not a URL".into()))?;
    let secret_context = connection_value_context(subject, &upstream.id, CLIENT_SECRET);
    let pending = PendingAuthorization {
        link_hash: link_hash.into(),
        upstream: upstream.id.clone(),
        verifier: app.seal(&pending_context(subject, &upstream.id), verifier.as_bytes())?,
        client: OAuthClient {
            issuer: server.issuer.clone(),
            token_endpoint: server.token_endpoint.clone(),
            revocation_endpoint: server.revocation_endpoint.clone(),
            client_id: client.client_id,
            client_secret: secret.map(|s| app.seal(&secret_context, s.as_bytes())).transpose()?,
            method: client.method,
            resource,
        },
        server,
        redirect_uri: redirect,
        scopes,
        expires_at: now_ms() + PENDING_MS,
        browser_hash,
    };
    let op = Op::BeginAuthorization { state_hash: hex(&keys::hash(&state)), pending: Box::new(pending) };
    call::<serde_json::Value>(store, &op).await?;
    Ok(url)
}

/// Calls a token endpoint; `None` when it could not be reached.
pub async fn token_call(
    config: &Config,
    client: &ClientAuth,
    token_endpoint: &str,
    grant: &Grant<'_>,
) -> Option<TokenOutcome> {
    let answer = post_form(config, token_endpoint, token_request(grant, client)).await.ok()?;
    Some(crate::core::oauth::token::parse_token_response(answer.status, &answer.content_type, &answer.body))
}

/// RFC 7009 revocation; true when the server accepted it.
pub async fn revoke(config: &Config, client: &ClientAuth, endpoint: &str, token: &str, hint: &str) -> bool {
    let answer = post_form(config, endpoint, revocation_request(token, hint, client)).await;
    matches!(answer, Ok(a) if a.status == 200)
}

/// A form POST with client authentication to a token or revocation endpoint.
async fn post_form(config: &Config, endpoint: &str, req: TokenRequest) -> Result<Answer, OutboundError> {
    oauth_request(
        Method::Post,
        endpoint,
        Some("application/x-www-form-urlencoded"),
        req.authorization.as_deref(),
        Some(req.body),
        config.allow_private_upstreams,
        oauth_timeout(config),
    )
    .await
}

/// Seals a token response into a grant for `subject` × `upstream`; a response without a new
/// refresh token keeps `previous_refresh` (servers that do not rotate).
pub fn seal_grant(
    keyring: &crate::core::seal::Keyring,
    subject: &str,
    upstream: &str,
    tokens: &Tokens,
    previous_refresh: Option<String>,
    client: OAuthClient,
) -> OAuthGrant {
    let now = now_ms();
    let seal = |name: &str, value: &str| {
        keyring.seal(&connection_value_context(subject, upstream, name), value.as_bytes(), random_bytes())
    };
    OAuthGrant {
        access_token: seal(ACCESS_TOKEN, &tokens.access_token),
        refresh_token: tokens.refresh_token.as_deref().map(|rt| seal(REFRESH_TOKEN, rt)).or(previous_refresh),
        issued_at: now,
        // At most a year: a silly `expires_in` must not overflow into the past.
        expires_at: tokens.expires_in.map(|s| now + s.min(365 * 24 * 3600) * 1000),
        client,
    }
}

/// The outcome of a callback, as the page the user sees.
pub enum Finished {
    Connected(String),
    Denied,
    Refused(&'static str),
    LinkGone(LinkOutcome),
    ServerFailed,
}

/// `GET /oauth/callback`: the pending authorization its `state` names (once), the RFC 9207
/// check, the code exchange, and the connection stored with the link used up.
pub async fn finish(app: &App, url: &Url, browser: Option<&str>) -> Result<Finished, Error> {
    let cb = Callback::from_query(url);
    let Some(state) = cb.state.as_deref().and_then(keys::parse_state) else {
        return Ok(Finished::Refused("This sign-in response is not one this gateway is waiting for."));
    };
    let Some(store) = app.store_at(&state.routing)? else {
        return Ok(Finished::Refused("This sign-in response is not one this gateway is waiting for."));
    };
    let taken: Option<(String, PendingAuthorization)> =
        call(&store, &Op::TakeAuthorization { state_hash: hex(&state.hash) }).await?;
    let Some((subject, pending)) = taken else {
        return Ok(Finished::Refused(
            "This sign-in response was already used, has expired, or was not sent by this gateway. Open your connect link again.",
        ));
    };
    // The browser that pressed "Continue" must be the one coming back: otherwise someone else's
    // sign-in would be stored as this subject's connection.
    let same_browser =
        browser.is_some_and(|b| ct_eq(hex(&keys::hash(b)).as_bytes(), pending.browser_hash.as_bytes()));
    if !same_browser {
        return Ok(Finished::Refused(
            "This sign-in was started in another browser. Open your connect link again in this browser.",
        ));
    }
    let code = match check_callback(&cb, &pending.server) {
        Ok(code) => code,
        Err(CallbackError::Denied(error)) if error == "access_denied" => return Ok(Finished::Denied),
        Err(CallbackError::Denied(error)) => {
            worker::console_error!(
                "mcp-authbridge: authorization for '{}' answered {error}",
                pending.upstream
            );
            return Ok(Finished::ServerFailed);
        }
        Err(CallbackError::MissingCode) => {
            return Ok(Finished::Refused("The sign-in response carries no code."))
        }
        Err(CallbackError::WrongIssuer | CallbackError::MissingIssuer) => {
            return Ok(Finished::Refused("The sign-in response did not come from the expected server."))
        }
    };
    let keyring = app.keyring()?;
    let verifier = keyring
        .open_string(&pending_context(&subject, &pending.upstream), &pending.verifier)
        .map_err(Error::internal)?;
    let client = pending
        .client
        .auth(&keyring, &subject, &pending.upstream)
        .ok_or_else(|| Error::internal("cannot open the pending client secret"))?;
    let grant = Grant::AuthorizationCode {
        code: &code,
        redirect_uri: &pending.redirect_uri,
        verifier: &verifier,
        resource: pending.client.resource.as_deref(),
    };
    let tokens = match token_call(&app.config, &client, &pending.client.token_endpoint, &grant).await {
        Some(TokenOutcome::Issued(t)) => t,
        other => {
            let why = match other {
                Some(TokenOutcome::Failed(e)) => e,
                Some(_) => "the code or client was refused".into(),
                None => "the token endpoint could not be reached".into(),
            };
            worker::console_error!("mcp-authbridge: code exchange for '{}' failed: {why}", pending.upstream);
            return Ok(Finished::ServerFailed);
        }
    };
    let scopes = tokens
        .scope
        .as_ref()
        .map(|s| s.split(' ').map(str::to_string).collect())
        .or(Some(pending.scopes.clone()));
    let grant = seal_grant(&keyring, &subject, &pending.upstream, &tokens, None, pending.client.clone());
    let op = Op::CompleteLink {
        hash: pending.link_hash.clone(),
        values: BTreeMap::new(),
        oauth: Some(grant),
        scopes,
    };
    let outcome: LinkOutcome = call(&store, &op).await?;
    if outcome != LinkOutcome::Completed {
        // Tokens were issued for a link that can no longer take them: give them back.
        if let Some(endpoint) = &pending.client.revocation_endpoint {
            if let Some(rt) = &tokens.refresh_token {
                revoke(&app.config, &client, endpoint, rt, "refresh_token").await;
            }
            revoke(&app.config, &client, endpoint, &tokens.access_token, "access_token").await;
        }
        return Ok(Finished::LinkGone(outcome));
    }
    Ok(Finished::Connected(pending.upstream))
}
