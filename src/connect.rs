//! Connect links (API.md §3): the pages an end user opens to connect an upstream, and the links
//! that lead there. Header upstreams with `user_fields` get a form; the values are sealed and
//! kept with the subject's connection. The page logic (validation, HTML) is in `core::connect`.

use crate::app::App;
use crate::core::authorize::grant::ClientReturn;
use crate::core::connect::{
    confirm_page, connected_text, form_page, form_value, message_page, oauth_binding_cookie, page_csp,
    validate_form, Claim, ConnectedWith, FormErrors, LinkRecord, LinkState, Refusal,
    CONNECTION_REQUIRED_LINK_SECONDS, MAX_LINK_SECONDS, PAGE_HEADERS,
};
use crate::core::encoding::{b64url, ct_eq};
use crate::core::ids::{SubjectId, UpstreamId};
use crate::core::keys::{self, KeyHash};
use crate::core::oauth::flow::Callback;
use crate::core::seal::{ConnectionValue, Context, Sealed};
use crate::core::secret::Secret;
use crate::core::upstream::Upstream;
use crate::error::Error;
use crate::http;
use crate::oauth::{self, Finished};
use crate::rt::{now_ms, random_bytes};
use crate::store::protocol::{CompleteLink, CreateLink, LinkOutcome, OpenLink as OpenLinkOp};
use crate::store::stub::SubjectStoreStub;
use std::collections::BTreeMap;
use url::Url;
use worker::{Headers, Request, Response};

/// The largest connect form accepted.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Who a link is for, which decides its lifetime and whether it is handed out again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkFor {
    /// `POST /admin/v1/links`: a new link every time, for `seconds`.
    Operator { seconds: u64 },
    /// A `connection_required` answer: short-lived, and the live one is handed out again
    /// (`core::connect::reusable_link`), so a retrying client never deletes the link its user
    /// is looking at.
    ConnectionRequired,
}

/// A link for `subject` to connect `upstream`: its URL (a bearer credential for the subject's
/// account) and expiry.
pub async fn mint_link(
    app: &App,
    store: &SubjectStoreStub,
    routing: &str,
    subject: &SubjectId,
    upstream: &UpstreamId,
    kind: LinkFor,
) -> Result<(Secret, u64), Error> {
    let token = keys::generate_link(routing, &random_bytes());
    let context = Context::LinkToken { subject: subject.as_str(), upstream: upstream.as_str() };
    let (seconds, sealed) = match kind {
        LinkFor::Operator { seconds } => (seconds, None),
        LinkFor::ConnectionRequired => {
            (CONNECTION_REQUIRED_LINK_SECONDS, Some(app.seal(&context, token.as_bytes())?))
        }
    };
    let now = now_ms();
    let link = LinkRecord {
        subject: subject.clone(),
        upstream: upstream.clone(),
        expires_at: now + seconds * 1000,
        used_at: None,
        created_at: now,
        token: sealed,
        browser_hash: None,
    };
    let expires_at = link.expires_at;
    let url = |token: &str| Secret::new(format!("{}/connect/{token}", app.public_origin));
    let Some(live) = store.call(CreateLink { hash: KeyHash::of(&token), link: link.clone() }).await? else {
        return Ok((url(&token), expires_at));
    };
    match live
        .token
        .as_ref()
        .map(|sealed| app.keyring()?.open_secret(&context, sealed).map_err(Error::internal))
    {
        Some(Ok(reused)) => Ok((url(reused.expose()), live.expires_at)),
        // A live link whose token no key opens (should not happen): a plain new one instead.
        _ => {
            let plain = LinkRecord { token: None, ..link };
            store.call(CreateLink { hash: KeyHash::of(&token), link: plain }).await?;
            Ok((url(&token), expires_at))
        }
    }
}

pub(crate) fn page_response(status: u16, body: String, csp: &str, cookies: &[String]) -> Response {
    let headers = Headers::new();
    for (name, value) in PAGE_HEADERS {
        let _ = headers.set(name, value);
    }
    let _ = headers.set("Content-Security-Policy", csp);
    for cookie in cookies {
        let _ = headers.append("Set-Cookie", cookie);
    }
    Response::builder().with_status(status).with_headers(headers).fixed(body.into_bytes())
}

/// The CSRF value of this browser's forms (one per browser, so two open pages do not invalidate
/// each other) and the double-submit cookie that carries it.
pub(crate) fn csrf_for(app: &App, req: &Request) -> (String, String) {
    let csrf = cookie_value(req, &cookie_name(app, CSRF_COOKIE))
        .filter(|v| is_random_token(v))
        .unwrap_or_else(|| b64url(&random_bytes::<32>()));
    let cookie = set_cookie(app, CSRF_COOKIE, &csrf, "Strict", 3600);
    (csrf, cookie)
}

/// A submitted form's CSRF value, when it matches the cookie (double submit).
pub(crate) fn csrf_checked<'a>(app: &App, req: &Request, form: &'a [(String, String)]) -> Option<&'a str> {
    let submitted = form_value(form, "csrf").unwrap_or("");
    let cookie = cookie_value(req, &cookie_name(app, CSRF_COOKIE)).unwrap_or_default();
    (!submitted.is_empty() && ct_eq(submitted.as_bytes(), cookie.as_bytes())).then_some(submitted)
}

/// A submitted page form (`application/x-www-form-urlencoded`, at most `MAX_FORM_BYTES`).
pub(crate) async fn read_form(req: &mut Request) -> Result<Vec<(String, String)>, Error> {
    let body = http::read_body(req, MAX_FORM_BYTES).await?;
    Ok(url::form_urlencoded::parse(&body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
}

pub(crate) fn html(status: u16, body: String, cookies: &[String]) -> Response {
    page_response(status, body, &page_csp(false, false), cookies)
}

pub(crate) fn message(status: u16, title: &str, text: &str) -> Response {
    html(status, message_page(title, text), &[])
}

fn refusal(r: Refusal) -> Response {
    let (status, title, text) = r.page();
    message(status, title, text)
}

/// The page a link refused at its end shows (`Completed` has `connected_page`).
pub(crate) fn link_outcome_page(outcome: LinkOutcome) -> Response {
    match outcome {
        LinkOutcome::Completed => {
            message(200, "Connected", "Your account is connected. You can close this page.")
        }
        LinkOutcome::Used => refusal(Refusal::LinkUsed),
        LinkOutcome::Expired => refusal(Refusal::LinkExpired),
        LinkOutcome::NotFound => refusal(Refusal::LinkNotFound),
    }
}

/// The link a token names, with its store and upstream, if this browser may still use it.
pub(crate) struct OpenLink {
    pub routing: String,
    pub hash: KeyHash,
    pub store: SubjectStoreStub,
    pub link: LinkRecord,
    pub upstream: Upstream,
}

/// `browser`: the value of this browser's `mab_browser` cookie (the first browser that opens a
/// link owns it).
async fn open_link(
    app: &App,
    token: &str,
    browser: Option<&str>,
) -> Result<Result<OpenLink, Refusal>, Error> {
    let Some(presented) = keys::parse_link(token) else { return Ok(Err(Refusal::LinkNotFound)) };
    let Some(store) = app.store_at(&presented.routing)? else { return Ok(Err(Refusal::LinkNotFound)) };
    let hash = presented.hash;
    let op = OpenLinkOp { hash: hash.clone(), browser: browser.map(KeyHash::of) };
    let Some((link, claim)) = store.call(op).await? else {
        return Ok(Err(Refusal::LinkNotFound));
    };
    match link.state(now_ms()) {
        LinkState::Expired => return Ok(Err(Refusal::LinkExpired)),
        LinkState::Used => return Ok(Err(Refusal::LinkUsed)),
        LinkState::Usable => {}
    }
    if claim == Claim::OtherBrowser {
        return Ok(Err(Refusal::OtherBrowser));
    }
    let Some(upstream) = app.config_store()?.upstream(link.upstream.as_str()).await? else {
        return Ok(Err(Refusal::ServiceGone));
    };
    Ok(Ok(OpenLink { routing: presented.routing, hash, store, link, upstream }))
}

/// A link pasted into an authorization of the gateway's own (sign-in `link`), opened as this
/// browser, with the browser cookie that names it.
pub(crate) async fn open_pasted_link(
    app: &App,
    req: &Request,
    token: &str,
) -> Result<(Result<OpenLink, Refusal>, String), Error> {
    let browser = browser_cookie(app, req).unwrap_or_else(|| b64url(&random_bytes::<32>()));
    let opened = open_link(app, token, Some(&browser)).await?;
    Ok((opened, set_cookie(app, BROWSER_COOKIE, &browser, "Lax", MAX_LINK_SECONDS)))
}

/// The double-submit CSRF cookie of the connect forms.
const CSRF_COOKIE: &str = "mab_csrf";
/// An OAuth callback is bound to the browser that pressed "Continue" (login CSRF, RFC 6749
/// §10.12) by a `Lax` cookie (the authorization server sends the browser back cross-site).
/// The cookie's name is per pending authorization: `core::connect::oauth_binding_cookie`.
/// Names this browser to the links it opened first: `Lax`, because links are opened from other
/// sites (a chat, a mail), and as long-lived as the longest link.
const BROWSER_COOKIE: &str = "mab_browser";

/// A cookie's name: `__Host-` on https, where browsers enforce its rules.
pub(crate) fn cookie_name(app: &App, base: &str) -> String {
    if app.public_origin.starts_with("https://") {
        format!("__Host-{base}")
    } else {
        base.to_string()
    }
}

pub(crate) fn set_cookie(app: &App, base: &str, value: &str, same_site: &str, max_age: u64) -> String {
    let secure = if app.public_origin.starts_with("https://") { "; Secure" } else { "" };
    format!(
        "{}={value}; Path=/; HttpOnly; SameSite={same_site}; Max-Age={max_age}{secure}",
        cookie_name(app, base)
    )
}

fn is_random_token(v: &str) -> bool {
    v.len() == 43 && v.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

pub(crate) fn cookie_value(req: &Request, name: &str) -> Option<String> {
    http::header(req, "cookie")?
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// An upstream with nothing for the user to connect.
fn nothing_to_connect(upstream: &Upstream) -> Option<Response> {
    (!upstream.connectable())
        .then(|| message(404, "Nothing to connect", "This service needs nothing from you: you are all set."))
}

/// This browser's `mab_browser` cookie, if it has a well-formed one.
fn browser_cookie(app: &App, req: &Request) -> Option<String> {
    cookie_value(req, &cookie_name(app, BROWSER_COOKIE)).filter(|v| is_random_token(v))
}

/// `GET /connect/{token}`.
pub async fn page(app: &App, req: &Request, token: &str) -> Result<Response, Error> {
    let browser = browser_cookie(app, req).unwrap_or_else(|| b64url(&random_bytes::<32>()));
    let open = match open_link(app, token, Some(&browser)).await? {
        Ok(open) => open,
        Err(r) => return Ok(refusal(r)),
    };
    if let Some(resp) = nothing_to_connect(&open.upstream) {
        return Ok(resp);
    }
    let (csrf, csrf_cookie) = csrf_for(app, req);
    let cookies = [csrf_cookie, set_cookie(app, BROWSER_COOKIE, &browser, "Lax", MAX_LINK_SECONDS)];
    let (subject, id, expires_at) =
        (open.link.subject.as_str(), open.upstream.id.as_str(), open.link.expires_at);
    Ok(if open.upstream.oauth.is_some() {
        let csp = page_csp(true, app.config.allow_private_upstreams);
        page_response(200, confirm_page(subject, id, &csrf, expires_at), &csp, &cookies)
    } else {
        let body =
            form_page(subject, id, &open.upstream.user_fields, &csrf, expires_at, &FormErrors::new(), &[]);
        html(200, body, &cookies)
    })
}

/// `POST /connect/{token}`: the form, checked, sealed and stored; the link used up.
pub async fn submit(app: &App, mut req: Request, token: &str) -> Result<Response, Error> {
    let open = match open_link(app, token, browser_cookie(app, &req).as_deref()).await? {
        Ok(open) => open,
        Err(r) => return Ok(refusal(r)),
    };
    if let Some(resp) = nothing_to_connect(&open.upstream) {
        return Ok(resp);
    }
    let form = read_form(&mut req).await?;
    let Some(submitted_csrf) = csrf_checked(app, &req, &form) else {
        return Ok(refusal(Refusal::FormNotVerified));
    };
    if open.upstream.oauth.is_some() {
        return Ok(to_sign_in(app, &open.store, &open.hash, &open.link.subject, &open.upstream, None).await);
    }
    let values = match validate_form(&open.upstream.user_fields, &form) {
        Ok(values) => values,
        Err(errors) => {
            let body = form_page(
                open.link.subject.as_str(),
                open.upstream.id.as_str(),
                &open.upstream.user_fields,
                submitted_csrf,
                open.link.expires_at,
                &errors,
                &form,
            );
            return Ok(html(400, body, &[]));
        }
    };
    let sealed = seal_values(app, &open.link.subject, &open.link.upstream, values)?;
    let origin = open.upstream.place().origin;
    let op = CompleteLink { hash: open.hash, origin, values: sealed, oauth: None, scopes: None, code: None };
    let outcome = open.store.call(op).await?;
    let labels = open.upstream.user_fields.iter().map(|f| f.label.as_str()).collect();
    Ok(match outcome {
        LinkOutcome::Completed => connected_page(
            open.upstream.id.as_str(),
            open.link.subject.as_str(),
            &ConnectedWith::Fields(labels),
        ),
        outcome => link_outcome_page(outcome),
    })
}

/// The page of a completed link: whose account, connected with what.
pub(crate) fn connected_page(upstream: &str, subject: &str, with: &ConnectedWith<'_>) -> Response {
    message(200, "Connected", &connected_text(upstream, subject, with))
}

/// What a person typed for `upstream`, sealed as `subject`'s connection values.
pub(crate) fn seal_values(
    app: &App,
    subject: &SubjectId,
    upstream: &UpstreamId,
    values: BTreeMap<String, Secret>,
) -> Result<BTreeMap<String, Sealed>, Error> {
    let mut sealed = BTreeMap::new();
    for (name, value) in values {
        let (subject, upstream) = (subject.as_str(), upstream.as_str());
        let context = Context::Connection { subject, upstream, value: ConnectionValue::Field(&name) };
        sealed.insert(name.clone(), app.seal(&context, value.expose().as_bytes())?);
    }
    Ok(sealed)
}

/// Sends the browser to the sign-in page of `upstream`'s authorization server, to connect it
/// with the link `link_hash` (and then, inside an authorization of the gateway's own, back to
/// the client `then`), bound to this browser by a cookie.
pub(crate) async fn to_sign_in(
    app: &App,
    store: &SubjectStoreStub,
    link_hash: &KeyHash,
    subject: &SubjectId,
    upstream: &Upstream,
    then: Option<ClientReturn>,
) -> Response {
    let browser = b64url(&random_bytes::<32>());
    let browser_hash = KeyHash::of(&browser);
    match oauth::begin(app, store, link_hash, subject, upstream, browser_hash, then).await {
        Ok((url, state_hash)) => {
            let name = oauth_binding_cookie(&state_hash);
            let cookie = set_cookie(app, &name, &browser, "Lax", oauth::PENDING_MS / 1000);
            let body = message_page("Continue to sign in", "Continue to the sign-in page.");
            let resp = page_response(303, body, &page_csp(false, false), &[cookie]);
            let _ = resp.headers().set("Location", &url);
            resp
        }
        Err(oauth::SetupError(why)) => {
            worker::console_error!("mcp-authbridge: cannot start OAuth for '{}': {why}", upstream.id);
            refusal(Refusal::ServerFailed)
        }
    }
}

/// `GET /oauth/callback`: the end of an OAuth connect, as a page.
pub async fn callback(app: &App, req: &Request) -> Result<Response, Error> {
    let url = req.url().map_err(Error::internal)?;
    // The binding cookie of the pending authorization this `state` names.
    let state = Callback::from_query(&url).state.as_deref().and_then(keys::parse_state);
    let cookie = state.map(|s| cookie_name(app, &oauth_binding_cookie(&s.hash)));
    let browser = cookie.as_deref().and_then(|name| cookie_value(req, name));
    let resp = match oauth::finish(app, &url, browser.as_deref()).await? {
        Finished::Connected { upstream, subject, issuer } => {
            let host =
                Url::parse(&issuer).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or(issuer);
            connected_page(upstream.as_str(), subject.as_str(), &ConnectedWith::SignIn(&host))
        }
        Finished::Refused(r) => refusal(r),
        Finished::LinkGone(outcome) => link_outcome_page(outcome),
        Finished::BackToClient(location) => {
            let resp = http::empty(302);
            let _ = resp.headers().set("Location", &location);
            resp
        }
    };
    // The binding has done its work, whatever the outcome: the browser may forget it.
    if let (Some(name), Some(_)) = (&cookie, &browser) {
        let secure = if app.public_origin.starts_with("https://") { "; Secure" } else { "" };
        let _ = resp.headers().append("Set-Cookie", &format!("{name}=; Path=/; HttpOnly; Max-Age=0{secure}"));
    }
    Ok(resp)
}

/// `GET /oauth/client-metadata.json`: the gateway's Client ID Metadata Document.
pub fn client_metadata(app: &App) -> Response {
    http::json(200, &crate::core::oauth::flow::client_metadata_document(&app.public_origin))
}
