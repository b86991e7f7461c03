//! The gateway as an authorization server for OAuth-only MCP clients (the design contract's
//! §6), the HTTP half; the rules are `core::authorize`: the metadata documents, the challenge on
//! `/mcp/{upstream}`, client registration, the authorization (sign-in `self` or `link`, the
//! connect step by form or by the upstream's own OAuth, consent), the token endpoint and
//! revocation (RFC 7009).

use crate::app::App;
use crate::connect::{
    csrf_checked, csrf_for, link_outcome_page, message, open_pasted_link, page_response, read_form,
    seal_values, to_sign_in,
};
use crate::core::authorize::client::{
    classify_client_id, metadata_document, register as check_registration, ClientId, Registration,
    CLIENT_ID_PREFIX, MAX_REGISTRATION_BYTES,
};
use crate::core::authorize::consent::{consent_page, pasted_link, LinkRef, Session, Step, SESSION_MS};
use crate::core::authorize::grant::ACCESS_TOKEN_S;
use crate::core::authorize::metadata;
use crate::core::authorize::request::{check, client_of, wants_json, Refused};
use crate::core::connect::{
    form_value, page_csp, page_csp_redirecting_to, validate_form, FormErrors, LinkRecord,
};
use crate::core::encoding::{b64_decode, b64url, hex};
use crate::core::ids::{SubjectId, UpstreamId};
use crate::core::keys::{self, KeyHash, ACCESS_PREFIX, CODE_PREFIX, REFRESH_PREFIX};
use crate::core::oauth::token::AuthMethod;
use crate::core::seal::{Context, Sealed};
use crate::core::throttle::Verdict;
use crate::core::upstream::{SignIn, Upstream};
use crate::error::Error;
use crate::http;
use crate::oauth_client::oauth_timeout;
use crate::outbound::{oauth_request, OAuthRequest};
use crate::rt::{cached_client_document, now_ms, random_bytes, remember_client_document};
use crate::store::protocol::{
    CompleteLink, CreateLink, IssuedCode, LinkOutcome, RedeemCode, Redeemed, RegistrationAttempt,
    RevokeToken, RotateRefresh, Rotated,
};
use crate::store::schema::registration_guard_name;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use worker::{Method, Request, Response};

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
pub async fn register(app: &App, req: Request) -> Result<Response, Error> {
    let client = http::header(&req, "cf-connecting-ip").unwrap_or_default();
    let guard = app.store_for(&registration_guard_name(client.trim()))?;
    if let Verdict::Blocked { retry_after } = guard.call(RegistrationAttempt {}).await? {
        return Err(Error::TooManyRegistrations { retry_after });
    }
    let refused = |description: &str| Error::RegistrationRefused {
        error: "invalid_client_metadata",
        description: description.into(),
    };
    let bytes = http::read_body(&req, MAX_REGISTRATION_BYTES).await?;
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

/// A client's registration: opened from a client id registered here, or the Client ID Metadata
/// Document its URL serves (fetched under the SSRF policy, redirects not followed, bounded in
/// time and size, kept 5 minutes per isolate); `None` for any other id, or a document that does
/// not check out (`core::authorize::client::metadata_document`).
async fn registration_of(app: &App, client_id: &str) -> Result<Option<Registration>, Error> {
    match classify_client_id(client_id, app.config.allow_private_upstreams) {
        ClientId::Registered(sealed) => {
            let opened = app.keyring()?.open(&Context::GatewayClient, &Sealed::stored(sealed.to_string()));
            Ok(opened.ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()))
        }
        ClientId::MetadataDocument(_) => Ok(client_document(app, client_id).await),
        ClientId::Unknown => Ok(None),
    }
}

async fn client_document(app: &App, url: &str) -> Option<Registration> {
    if let Some(client) = cached_client_document(url) {
        return Some(client);
    }
    let request =
        OAuthRequest { method: Method::Get, url, content_type: None, authorization: None, body: None };
    let fetched =
        oauth_request(request, app.config.allow_private_upstreams, oauth_timeout(&app.config)).await;
    let checked = match fetched {
        Ok(answer) if answer.status == 200 => {
            metadata_document(&answer.body, url, now_ms()).map_err(|e| e.description)
        }
        Ok(answer) => Err(format!("it answered {}", answer.status)),
        Err(e) => Err(e.to_string()),
    };
    match checked {
        Ok(client) => {
            remember_client_document(url, client.clone());
            Some(client)
        }
        Err(why) => {
            worker::console_warn!("mcp-authbridge: client metadata document {url} refused: {why}");
            None
        }
    }
}

/// A refusal before the redirect URI is trusted: a page, never a redirect.
fn refused_page(why: &str) -> Response {
    message(400, "Cannot continue", &format!("{why} Go back to the application and try connecting again."))
}

/// A redirect back to the client (`code`, or `error`), with `iss` (RFC 9207).
fn redirect(location: &str) -> Response {
    let resp = http::empty(302);
    let _ = resp.headers().set("Location", location);
    resp
}

fn answer_refusal(app: &App, r: Refused) -> Response {
    match (&r, r.redirect(&app.public_origin)) {
        (Refused::Page(why), _) => refused_page(why),
        (_, Some(location)) => redirect(&location),
        (_, None) => refused_page("The application's address is not usable."),
    }
}

/// `GET /oauth/authorize`: the request checked (`core::authorize::request`), then the first
/// page: the field for a connect link (sign-in `link`), or consent.
pub async fn authorize_page(app: &App, req: &Request) -> Result<Response, Error> {
    let url = req.url().map_err(Error::internal)?;
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let (client_id, redirect_uri) = match client_of(&query) {
        Ok(pair) => pair,
        Err(r) => return Ok(answer_refusal(app, r)),
    };
    let Some(registration) = registration_of(app, &client_id).await? else {
        if wants_json(http::header(req, "accept").as_deref()) {
            return Err(token_error(
                400,
                "invalid_client",
                "this client is not registered here: register again",
            ));
        }
        return Ok(refused_page("The application is not registered with this gateway."));
    };
    let authorization = match check(&query, &client_id, &redirect_uri, &registration, &app.public_origin) {
        Ok(a) => a,
        Err(r) => return Ok(answer_refusal(app, r)),
    };
    let Some(upstream) = signing_in(app, authorization.upstream.as_str()).await? else {
        let refused = Refused::Redirect {
            redirect_uri,
            state: authorization.state,
            error: "invalid_target",
            description: "this MCP URL does not take sign-in",
        };
        return Ok(answer_refusal(app, refused));
    };
    let session = Session::new(authorization, &registration.client_name, now_ms());
    page(app, req, &session, &upstream, &FormErrors::new(), &[], 200, &[])
}

/// The page the person is on: the link field while sign-in `link` has none yet, else consent.
#[allow(clippy::too_many_arguments)]
fn page(
    app: &App,
    req: &Request,
    session: &Session,
    upstream: &Upstream,
    errors: &FormErrors,
    previous: &[(String, String)],
    status: u16,
    cookies: &[String],
) -> Result<Response, Error> {
    let text = serde_json::to_vec(session).map_err(Error::internal)?;
    let sealed = app.seal(&Context::AuthorizeSession, &text)?;
    let (csrf, cookie) = csrf_for(app, req);
    let oauth = upstream.oauth.is_some();
    let step = match (upstream.sign_in, &session.link) {
        (SignIn::Link, None) => Step::PasteLink,
        _ => Step::Consent { fields: if oauth { &[] } else { &upstream.user_fields }, oauth },
    };
    let body = consent_page(session, &step, sealed.as_str(), &csrf, errors, previous);
    // Browsers apply `form-action` to the redirect that answers the form: consent is answered by
    // a redirect to the client's origin (allowed, and only it) or to the upstream's sign-in page.
    let csp = match step {
        Step::Consent { oauth: true, .. } => page_csp(true, app.config.allow_private_upstreams),
        _ => page_csp_redirecting_to(&session.redirect_origin()),
    };
    let mut all = vec![cookie];
    all.extend_from_slice(cookies);
    Ok(page_response(status, body, &csp, &all))
}

/// `POST /oauth/authorize`: the person's answer. A connect link (sign-in `link`) is checked and
/// named on the consent page that follows. Allowed: the person connects the upstream as the
/// link's subject, or (sign-in `self`) as a new subject, by the form's values or at the
/// upstream's own sign-in page; the client then gets a code for that connection.
pub async fn authorize_submit(app: &App, mut req: Request) -> Result<Response, Error> {
    let form = read_form(&mut req).await?;
    if csrf_checked(app, &req, &form).is_none() {
        return Ok(message(
            403,
            "Please try again",
            "This form could not be verified (it was sent from another page, or your browser blocked its cookie). \
             Go back to the application and start connecting again.",
        ));
    }
    let field = |name: &str| form_value(&form, name);
    let opened = field("session").and_then(|s| {
        let bytes =
            app.keyring().ok()?.open(&Context::AuthorizeSession, &Sealed::stored(s.to_string())).ok()?;
        serde_json::from_slice::<Session>(&bytes).ok()
    });
    let Some(mut session) = opened.filter(|s| s.expires_at > now_ms()) else {
        return Ok(refused_page("This request has expired or is not one of this gateway's."));
    };
    let then = session.client_return();
    let back = |params: &[(&str, &str)]| {
        then.location(params, &app.public_origin)
            .map(|l| redirect(&l))
            .unwrap_or_else(|| refused_page("The application's address is not usable."))
    };
    if field("decision") != Some("allow") {
        return Ok(back(&[
            ("error", "access_denied"),
            ("error_description", "the person did not allow access"),
        ]));
    }
    let Some(upstream) = signing_in(app, session.upstream.as_str()).await? else {
        return Ok(refused_page("This service no longer takes sign-in from here."));
    };
    if upstream.sign_in == SignIn::Link && session.link.is_none() {
        return pasted(app, &req, session, &upstream, field("link").unwrap_or_default()).await;
    }
    let values = match upstream.oauth {
        Some(_) => BTreeMap::new(),
        None => match validate_form(&upstream.user_fields, &form) {
            Ok(values) => values,
            Err(errors) => return page(app, &req, &session, &upstream, &errors, &form, 400, &[]),
        },
    };
    let link = match session.link.take() {
        Some(link) => link,
        None => self_link(app, &upstream.id).await?,
    };
    let store = app.store_at(&link.routing)?.ok_or_else(|| Error::internal("a link's store is gone"))?;
    if upstream.oauth.is_some() {
        return Ok(to_sign_in(app, &store, &link.hash, &link.subject, &upstream, Some(then)).await);
    }
    let code = keys::generate_routed(CODE_PREFIX, &link.routing, &random_bytes());
    let op = CompleteLink {
        hash: link.hash,
        origin: upstream.place().origin,
        values: seal_values(app, &link.subject, &upstream.id, values)?,
        oauth: None,
        scopes: None,
        code: Some(Box::new(IssuedCode {
            hash: KeyHash::of(&code),
            record: then.code(&upstream.id, &link.subject, now_ms()),
        })),
    };
    match store.call(op).await? {
        LinkOutcome::Completed => Ok(back(&[("code", &code)])),
        outcome => Ok(link_outcome_page(outcome)),
    }
}

/// Sign-in `link`: the link the person pasted, opened as this browser (the first browser that
/// opens a link owns it) and checked to be for this upstream; then consent for its subject.
async fn pasted(
    app: &App,
    req: &Request,
    mut session: Session,
    upstream: &Upstream,
    text: &str,
) -> Result<Response, Error> {
    let (opened, browser_cookie) = open_pasted_link(app, req, pasted_link(text)).await?;
    let problem = match opened {
        Ok(open) if open.link.upstream == upstream.id => {
            session.link =
                Some(LinkRef { routing: open.routing, hash: open.hash, subject: open.link.subject });
            return page(app, req, &session, upstream, &FormErrors::new(), &[], 200, &[browser_cookie]);
        }
        Ok(_) => "This connect link is for another service. Ask whoever sent it for the right one.",
        Err(refusal) => refusal.page().2,
    };
    let errors = FormErrors::from([("link".to_string(), problem)]);
    page(app, req, &session, upstream, &errors, &[], 400, &[browser_cookie])
}

/// Sign-in `self`: a subject of its own for each authorization, and a link (never shown) that
/// lets this authorization connect it.
async fn self_link(app: &App, upstream: &UpstreamId) -> Result<LinkRef, Error> {
    let subject =
        SubjectId::parse(&format!("oauth-{}", hex(&random_bytes::<16>()))).map_err(Error::internal)?;
    let routing = app.routing_for(subject.as_str())?;
    let hash = KeyHash::of(&b64url(&random_bytes::<32>()));
    let now = now_ms();
    let link = LinkRecord {
        subject: subject.clone(),
        upstream: upstream.clone(),
        expires_at: now + SESSION_MS,
        used_at: None,
        created_at: now,
        token: None,
        browser_hash: None,
    };
    app.store_for(subject.as_str())?.call(CreateLink { hash: hash.clone(), link }).await?;
    Ok(LinkRef { routing, hash, subject })
}

fn token_error(status: u16, error: &'static str, description: &str) -> Error {
    Error::TokenRefused { status, error, description: description.into() }
}

/// The client of a token request, authenticated: `client_id` (form or HTTP Basic, RFC 6749
/// §2.3.1) naming a registration here, and its secret for a confidential one.
async fn token_client(
    app: &App,
    req: &Request,
    form: &[(String, String)],
) -> Result<(String, Registration), Error> {
    let field = |name: &str| form_value(form, name).map(str::to_string);
    let basic = http::header(req, "authorization").and_then(|h| {
        let (scheme, value) = h.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = String::from_utf8(b64_decode(value.trim())?).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        let unescape = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned())
        };
        Some((unescape(id)?, unescape(secret)?))
    });
    let (client_id, secret) = match basic {
        Some((id, secret)) => (id, Some(secret)),
        None => (field("client_id").unwrap_or_default(), field("client_secret")),
    };
    let invalid = || token_error(401, "invalid_client", "unknown client, or its authentication failed");
    let registration = registration_of(app, &client_id).await?.ok_or_else(invalid)?;
    if let Some(expected) = &registration.secret_hash {
        if !secret.is_some_and(|s| expected.matches(&s)) {
            return Err(invalid());
        }
    }
    Ok((client_id, registration))
}

/// `POST /oauth/token` (RFC 6749 §4.1.3, §6): codes and refresh tokens, redeemed in the
/// subject's store they route to; the answer is never cached.
pub async fn token(app: &App, mut req: Request) -> Result<Response, Error> {
    let form = read_form(&mut req).await?;
    let (client_id, registration) = token_client(app, &req, &form).await?;
    let field = |name: &str| form_value(&form, name).unwrap_or_default().to_string();
    let invalid_grant = |why: &str| token_error(400, "invalid_grant", why);
    let (routing, store, answer) = match field("grant_type").as_str() {
        "authorization_code" => {
            let code = field("code");
            let presented =
                keys::parse_routed(CODE_PREFIX, &code).ok_or_else(|| invalid_grant("unknown code"))?;
            let store = app.store_at(&presented.routing)?.ok_or_else(|| invalid_grant("unknown code"))?;
            (presented.routing, store, Ok(presented.hash))
        }
        "refresh_token" => {
            let token = field("refresh_token");
            let presented = keys::parse_routed(REFRESH_PREFIX, &token)
                .ok_or_else(|| invalid_grant("unknown refresh token"))?;
            let store =
                app.store_at(&presented.routing)?.ok_or_else(|| invalid_grant("unknown refresh token"))?;
            (presented.routing, store, Err(presented.hash))
        }
        _ => return Err(token_error(400, "unsupported_grant_type", "authorization_code or refresh_token")),
    };
    let refresh = keys::generate_routed(REFRESH_PREFIX, &routing, &random_bytes());
    let access = keys::generate_routed(ACCESS_PREFIX, &routing, &random_bytes());
    match answer {
        Ok(code_hash) => {
            let op = RedeemCode {
                code_hash,
                client_id: client_id.clone(),
                client_name: registration.client_name,
                redirect_uri: field("redirect_uri"),
                code_verifier: field("code_verifier"),
                grant_id: keys::key_id(&routing, &random_bytes()),
                refresh: KeyHash::of(&refresh),
                access: KeyHash::of(&access),
            };
            if let Redeemed::Refused(why) = store.call(op).await? {
                worker::console_warn!("mcp-authbridge: code refused at the token endpoint: {why}");
                return Err(invalid_grant("the code is not valid for this request"));
            }
        }
        Err(presented) => {
            let op = RotateRefresh {
                presented,
                client_id: client_id.clone(),
                refresh: KeyHash::of(&refresh),
                access: KeyHash::of(&access),
            };
            match store.call(op).await? {
                Rotated::Issued { .. } => {}
                Rotated::Refused => return Err(invalid_grant("unknown refresh token")),
                Rotated::Revoked => {
                    return Err(invalid_grant("this refresh token was used before: the grant is revoked"))
                }
            }
        }
    }
    Ok(http::json(
        200,
        &json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ACCESS_TOKEN_S,
            "refresh_token": refresh,
            "scope": metadata::SCOPE,
        }),
    ))
}

/// `POST /oauth/revoke` (RFC 7009): the client authenticates as at the token endpoint; `token`
/// is one of its refresh (`mabr_…`) or access (`maba_…`) tokens, which routes to its subject's
/// store, where the grant ends (`core::authorize::grant::revokes`). `token_type_hint` is not
/// needed: the prefix says what a token is, and a hint is only an optimisation (§2.1). Unknown,
/// malformed and other clients' tokens are answered 200 like the rest, with nothing changed
/// (§2.2).
pub async fn revoke(app: &App, mut req: Request) -> Result<Response, Error> {
    let form = read_form(&mut req).await?;
    let (client_id, _) = token_client(app, &req, &form).await?;
    let token =
        form_value(&form, "token").ok_or_else(|| token_error(400, "invalid_request", "token is required"))?;
    let presented =
        keys::parse_routed(REFRESH_PREFIX, token).or_else(|| keys::parse_routed(ACCESS_PREFIX, token));
    if let Some(presented) = presented {
        if let Some(store) = app.store_at(&presented.routing)? {
            store.call(RevokeToken { presented: presented.hash, client_id }).await?;
        }
    }
    Ok(http::empty(200))
}
