//! OAuth at the edge, the HTTP half of connecting an OAuth upstream (the rules are in
//! `core::oauth`): discovering the upstream's authorization server, the gateway's client
//! identity there, sending the user off with PKCE, and finishing the callback. Token and
//! revocation calls are `oauth_client`.

use crate::app::App;
use crate::core::authorize::grant::ClientReturn;
use crate::core::config::Config;
use crate::core::connect::Refusal;
use crate::core::ids::{SubjectId, UpstreamId};
use crate::core::keys::{self, KeyHash, CODE_PREFIX};
use crate::core::oauth::discovery::{
    authorization_server_urls, parse_authorization_server, parse_protected_resource, protected_resource_urls,
    resource_metadata_from_challenge, AuthServer,
};
use crate::core::oauth::flow::{
    arrived_at, authorization_url, check_callback, client_metadata_url, issuer_redirect_uri,
    parse_registration, redirect_uri, registration_request, scopes, AuthorizationRequest, Callback,
    CallbackError,
};
use crate::core::oauth::grant::{seal_grant, OAuthClient};
use crate::core::oauth::pkce::Verifier;
use crate::core::oauth::token::{AuthMethod, ClientAuth, Grant, TokenOutcome};
use crate::core::policy::check_url;
use crate::core::seal::{ConnectionValue, Context};
use crate::core::upstream::Upstream;
use crate::error::Error;
use crate::oauth_client::{oauth_timeout, revoke, token_call};
use crate::outbound::{oauth_request, Answer, OAuthRequest};
use crate::rt::{now_ms, random_bytes};
use crate::store::protocol::{
    BeginAuthorization, CompleteLink, IssuedCode, LinkOutcome, PendingAuthorization, TakeAuthorization, Taken,
};
use crate::store::schema::registration_key;
use crate::store::stub::SubjectStoreStub;
use std::collections::BTreeMap;
use url::Url;
use worker::Method;

/// Pending authorizations live at most this long (`state` ≤ 10 minutes).
pub const PENDING_MS: u64 = 10 * 60 * 1000;

/// An OAuth request with no body and no credentials.
fn plain(method: Method, url: &str) -> OAuthRequest<'_> {
    OAuthRequest { method, url, content_type: None, authorization: None, body: None }
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
    oauth_request(plain(Method::Get, url), config.allow_private_upstreams, oauth_timeout(config))
        .await
        .map_err(|e| SetupError(format!("could not fetch {url}: {e}")))
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
            let ping = OAuthRequest {
                content_type: Some("application/json"),
                body: Some(r#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#.into()),
                ..plain(Method::Post, &upstream.url)
            };
            let probe = oauth_request(ping, config.allow_private_upstreams, oauth_timeout(config)).await.ok();
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

/// The gateway's client at `server`, with its secret in the clear, and the redirect URI it
/// uses there: the operator's client (at `/oauth/callback`, which the operator registered), else
/// the Client ID Metadata Document (only with servers that send `iss`: one document serves
/// every server, so the callback must learn from `iss` which one answered), else an RFC 7591
/// registration, made once and kept sealed in KV, with a redirect URI of its own per issuer
/// (`/oauth/callback/{tag}`), so a callback tells its server apart even without `iss`
/// (RFC 9207 §1: mix-up).
struct Identity {
    client: ClientAuth,
    operator: bool,
    redirect_uri: String,
}

async fn client_identity(
    app: &App,
    upstream: &Upstream,
    server: &AuthServer,
) -> Result<Identity, SetupError> {
    let oauth = upstream.oauth.clone().unwrap_or_default();
    let configured_method = oauth.token_endpoint_auth_method;
    if let Some(client_id) = oauth.client_id {
        let context = Context::OAuthClientSecret { upstream: upstream.id.as_str() };
        let secret = match &oauth.client_secret_sealed {
            Some(sealed) => Some(
                app.keyring()?
                    .open_secret(&context, sealed)
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
        let client = ClientAuth { client_id, client_secret: secret, method };
        return Ok(Identity { client, operator: true, redirect_uri: redirect_uri(&app.public_origin) });
    }
    if server.client_id_metadata_document_supported && server.iss_parameter_supported {
        let client_id = client_metadata_url(&app.public_origin);
        let client = ClientAuth { client_id, client_secret: None, method: AuthMethod::None };
        return Ok(Identity { client, operator: false, redirect_uri: redirect_uri(&app.public_origin) });
    }
    let endpoint = server.registration_endpoint.as_deref().ok_or_else(|| {
        SetupError(
            "the authorization server offers no registration: set oauth.client_id for this upstream".into(),
        )
    })?;
    let redirect = issuer_redirect_uri(&app.public_origin, &server.issuer);
    let store = app.config_store()?;
    let key = registration_key(upstream.id.as_str(), &server.issuer, &redirect);
    let context = Context::Registration { upstream: upstream.id.as_str() };
    let stored = store.registration(&key).await?;
    let registered = match stored.and_then(|sealed| app.keyring().ok()?.open(&context, &sealed).ok()) {
        Some(bytes) => parse_registration(&bytes).filter(|r| r.usable(now_ms())),
        None => None,
    };
    let registered = match registered {
        Some(r) => r,
        None => {
            let request = OAuthRequest {
                content_type: Some("application/json"),
                body: Some(registration_request(&app.public_origin, &redirect).to_string()),
                ..plain(Method::Post, endpoint)
            };
            let answer =
                oauth_request(request, app.config.allow_private_upstreams, oauth_timeout(&app.config))
                    .await
                    .map_err(|e| SetupError(format!("registration failed: {e}")))?;
            let registered = (answer.status == 201 || answer.status == 200)
                .then(|| parse_registration(&answer.body))
                .flatten()
                .ok_or_else(|| SetupError(format!("registration answered {}", answer.status)))?;
            store.put_registration(&key, &app.seal(&context, &answer.body)?).await?;
            registered
        }
    };
    let method = AuthMethod::choose(
        configured_method,
        registered.token_endpoint_auth_method.as_deref(),
        registered.client_secret.is_some(),
        &server.token_endpoint_auth_methods_supported,
    );
    let client =
        ClientAuth { client_id: registered.client_id, client_secret: registered.client_secret, method };
    Ok(Identity { client, operator: false, redirect_uri: redirect })
}

/// `POST /connect/{token}` for an OAuth upstream: discover, identify, keep a pending
/// authorization in the subject's store, and return where to send the browser, with the hash of
/// the `state` (it names the browser's binding cookie).
pub async fn begin(
    app: &App,
    store: &SubjectStoreStub,
    link_hash: &KeyHash,
    subject: &SubjectId,
    upstream: &Upstream,
    browser_hash: KeyHash,
    then: Option<ClientReturn>,
) -> Result<(String, KeyHash), SetupError> {
    let (server, supported) = discover(&app.config, upstream).await?;
    // The browser goes there with `state` and the PKCE challenge: https only, like any endpoint.
    check_url(&server.authorization_endpoint, app.config.allow_private_upstreams)
        .map_err(|e| SetupError(format!("authorization endpoint {e}")))?;
    let Identity { client, operator, redirect_uri: redirect } =
        client_identity(app, upstream, &server).await?;
    let settings = upstream.oauth.clone().unwrap_or_default();
    let resource = settings.resource.then(|| upstream.url.clone());
    let scopes = scopes(settings.scopes.as_deref(), &supported);
    let verifier = Verifier::generate(&random_bytes());
    let routing = app.routing_for(subject.as_str())?;
    let state = keys::generate_state(&routing, &random_bytes());
    let url = authorization_url(
        &server,
        &AuthorizationRequest {
            client_id: &client.client_id,
            redirect_uri: &redirect,
            state: &state,
            code_challenge: &verifier.challenge(),
            scopes: &scopes,
            resource: resource.as_deref(),
        },
    )
    .map_err(|_| SetupError("the authorization endpoint is not a URL".into()))?;
    let (subject, id) = (subject.as_str(), upstream.id.as_str());
    let secret_context = Context::Connection { subject, upstream: id, value: ConnectionValue::ClientSecret };
    let verifier = verifier.into_secret();
    let pending = PendingAuthorization {
        link_hash: link_hash.clone(),
        upstream: upstream.id.clone(),
        verifier: app
            .seal(&Context::PendingVerifier { subject, upstream: id }, verifier.expose().as_bytes())?,
        client: OAuthClient {
            issuer: server.issuer.clone(),
            token_endpoint: server.token_endpoint.clone(),
            revocation_endpoint: server.revocation_endpoint.clone(),
            client_id: client.client_id,
            client_secret: client
                .client_secret
                .map(|s| app.seal(&secret_context, s.expose().as_bytes()))
                .transpose()?,
            method: client.method,
            resource,
            operator,
        },
        server,
        redirect_uri: redirect,
        scopes,
        expires_at: now_ms() + PENDING_MS,
        browser_hash,
        origin: Some(upstream.place().origin),
        then,
    };
    let state_hash = KeyHash::of(&state);
    store.call(BeginAuthorization { state_hash: state_hash.clone(), pending: Box::new(pending) }).await?;
    Ok((url, state_hash))
}

/// The outcome of a callback, as the page the user sees.
pub enum Finished {
    /// With whose account, and the issuer the person signed in at.
    Connected {
        upstream: UpstreamId,
        subject: SubjectId,
        issuer: String,
    },
    Refused(Refusal),
    LinkGone(LinkOutcome),
    /// Inside an authorization of the gateway's own: the redirect back to its client (with a
    /// code, or an `error`).
    BackToClient(String),
}

/// `GET /oauth/callback`: the pending authorization its `state` names (once), the RFC 9207
/// check, the code exchange, and the connection stored with the link used up.
pub async fn finish(app: &App, url: &Url, browser: Option<&str>) -> Result<Finished, Error> {
    let (store, subject, pending, code) = match accept_callback(app, url, browser).await? {
        Ok(accepted) => accepted,
        Err(finished) => return Ok(finished),
    };
    let keyring = app.keyring()?;
    let (subject, upstream) = (subject.as_str(), pending.upstream.as_str());
    let verifier = keyring
        .open_secret(&Context::PendingVerifier { subject, upstream }, &pending.verifier)
        .map_err(Error::internal)?;
    let client = pending
        .client
        .auth(&keyring, subject, upstream)
        .map_err(|e| Error::internal(format!("cannot open the pending client secret: {e}")))?;
    let grant = Grant::AuthorizationCode {
        code: &code,
        redirect_uri: &pending.redirect_uri,
        verifier: Verifier::opened(verifier),
        resource: pending.client.resource.as_deref(),
    };
    let tokens = match token_call(&app.config, &client, &pending.client.token_endpoint, &grant).await {
        Ok(TokenOutcome::Issued(t)) => t,
        other => {
            let why = match other {
                Ok(TokenOutcome::Failed(e)) => e,
                Ok(TokenOutcome::Refused { error, status }) => {
                    if error == "invalid_client" && !pending.client.operator {
                        // The cached registration is no longer known there: the next connect
                        // registers again.
                        let key = registration_key(upstream, &pending.server.issuer, &pending.redirect_uri);
                        app.config_store()?.delete_registration(&key).await?;
                    }
                    format!("the token endpoint answered {error} ({status})")
                }
                Ok(TokenOutcome::Issued(_)) => unreachable!("matched above"),
                Err(e) => format!("the token endpoint: {e}"),
            };
            worker::console_error!("mcp-authbridge: code exchange for '{upstream}' failed: {why}");
            return Ok(Finished::Refused(Refusal::ServerFailed));
        }
    };
    let scopes = tokens
        .scope
        .as_ref()
        .map(|s| s.split(' ').map(str::to_string).collect())
        .or(Some(pending.scopes.clone()));
    // An operator's client is read from the upstream at every refresh: the grant keeps no copy
    // of its secret.
    let mut kept = pending.client.clone();
    if kept.operator {
        kept.client_secret = None;
    }
    let grant = seal_grant(&keyring, (subject, upstream), &tokens, None, kept, now_ms(), random_bytes);
    // Inside an authorization of the gateway's own, the connection comes with the client's code.
    let code = match &pending.then {
        Some(then) => {
            let routing = app.routing_for(subject)?;
            let code = keys::generate_routed(CODE_PREFIX, &routing, &random_bytes());
            let subject = SubjectId::parse(subject).map_err(Error::internal)?;
            let record = then.code(&pending.upstream, &subject, now_ms());
            Some((code.clone(), IssuedCode { hash: KeyHash::of(&code), record }))
        }
        None => None,
    };
    let op = CompleteLink {
        hash: pending.link_hash.clone(),
        origin: pending.origin.clone().unwrap_or_default(),
        values: BTreeMap::new(),
        oauth: Some(grant),
        scopes,
        code: code.as_ref().map(|(_, issued)| Box::new(issued.clone())),
    };
    let outcome = store.call(op).await?;
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
    Ok(match (&pending.then, code) {
        (Some(then), Some((code, _))) => back_to(app, then, &[("code", &code)])?,
        _ => Finished::Connected {
            upstream: pending.upstream,
            subject: SubjectId::parse(subject).map_err(Error::internal)?,
            issuer: pending.server.issuer,
        },
    })
}

/// The redirect back to the client of an authorization of the gateway's own, with `params`
/// (and its `state` and `iss`).
fn back_to(app: &App, then: &ClientReturn, params: &[(&str, &str)]) -> Result<Finished, Error> {
    then.location(params, &app.public_origin)
        .map(Finished::BackToClient)
        .ok_or_else(|| Error::internal("the client's redirect URI no longer parses"))
}

/// A callback that may finish: the pending authorization its `state` names, started in this
/// browser (checked before it is taken out, once: a callback from another browser leaves it for
/// the right one, since otherwise someone else's sign-in would be stored as this subject's
/// connection), answered by the expected server with a code; else how it ends.
async fn accept_callback(
    app: &App,
    url: &Url,
    browser: Option<&str>,
) -> Result<Result<(SubjectStoreStub, SubjectId, PendingAuthorization, String), Finished>, Error> {
    let cb = Callback::from_query(url);
    let not_ours = Finished::Refused(Refusal::CallbackUnknown);
    let Some(state) = cb.state.as_deref().and_then(keys::parse_state) else { return Ok(Err(not_ours)) };
    let Some(store) = app.store_at(&state.routing)? else { return Ok(Err(not_ours)) };
    let op = TakeAuthorization { state_hash: state.hash, browser: browser.map(KeyHash::of) };
    let (subject, pending) = match store.call(op).await? {
        Taken::Taken { subject, pending } => (subject, *pending),
        Taken::Unknown => return Ok(Err(not_ours)),
        Taken::OtherBrowser => return Ok(Err(Finished::Refused(Refusal::CallbackOtherBrowser))),
    };
    // A registration's callback comes back on its server's own path (mix-up defence).
    if !arrived_at(&pending.redirect_uri, url) {
        return Ok(Err(Finished::Refused(Refusal::CallbackWrongIssuer)));
    }
    let refused = match check_callback(&cb, &pending.server) {
        Ok(code) => return Ok(Ok((store, subject, pending, code))),
        Err(CallbackError::Denied(error)) if error == "access_denied" => Refusal::Denied,
        Err(CallbackError::Denied(error)) => {
            worker::console_error!(
                "mcp-authbridge: authorization for '{}' answered {error}",
                pending.upstream
            );
            Refusal::ServerFailed
        }
        Err(CallbackError::MissingCode) => Refusal::CallbackNoCode,
        Err(CallbackError::WrongIssuer | CallbackError::MissingIssuer) => Refusal::CallbackWrongIssuer,
    };
    // Inside an authorization of the gateway's own, its client hears how it ended
    // (RFC 6749 §4.1.2.1): denied, or failed at the upstream.
    if let Some(then) = &pending.then {
        let (error, description) = match refused {
            Refusal::Denied => ("access_denied", "the person did not allow access at the service"),
            _ => ("server_error", "connecting the service failed"),
        };
        return Ok(Err(back_to(app, then, &[("error", error), ("error_description", description)])?));
    }
    Ok(Err(Finished::Refused(refused)))
}
