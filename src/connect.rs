//! Connect links (API.md §3): the pages an end user opens to connect an upstream, and the links
//! that lead there. Header upstreams with `user_fields` get a form; the values are sealed and
//! kept with the subject's connection. The page logic (validation, HTML) is in `core::connect`.

use crate::app::App;
use crate::core::connect::{
    confirm_page, form_page, message_page, page_csp, validate_form, FormErrors, LinkRecord, LinkState,
    PAGE_HEADERS,
};
use crate::core::encoding::{b64url, ct_eq};
use crate::core::ids::{SubjectId, UpstreamId};
use crate::core::keys::{self, KeyHash};
use crate::core::seal::{ConnectionValue, Context};
use crate::core::secret::Secret;
use crate::core::upstream::Upstream;
use crate::error::Error;
use crate::http;
use crate::oauth::{self, Finished};
use crate::rt::{now_ms, random_bytes};
use crate::store::protocol::{CompleteLink, CreateLink, GetLink, LinkOutcome};
use crate::store::stub::SubjectStoreStub;
use std::collections::BTreeMap;
use worker::{Headers, Request, Response};

/// The largest connect form accepted.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Makes a fresh link for `subject` to connect `upstream`; returns its URL (a bearer credential
/// for the subject's account) and expiry.
pub async fn mint_link(
    app: &App,
    store: &SubjectStoreStub,
    routing: &str,
    subject: &SubjectId,
    upstream: &UpstreamId,
    seconds: u64,
) -> Result<(Secret, u64), Error> {
    let token = keys::generate_link(routing, &random_bytes());
    let now = now_ms();
    let link = LinkRecord {
        subject: subject.clone(),
        upstream: upstream.clone(),
        expires_at: now + seconds * 1000,
        used_at: None,
        created_at: now,
    };
    let expires_at = link.expires_at;
    store.call(CreateLink { hash: KeyHash::of(&token), link }).await?;
    Ok((Secret::new(format!("{}/connect/{token}", app.public_origin)), expires_at))
}

fn page_response(status: u16, body: String, csp: &str, cookie: Option<String>) -> Response {
    let headers = Headers::new();
    for (name, value) in PAGE_HEADERS {
        let _ = headers.set(name, value);
    }
    let _ = headers.set("Content-Security-Policy", csp);
    if let Some(cookie) = cookie {
        let _ = headers.set("Set-Cookie", &cookie);
    }
    Response::builder().with_status(status).with_headers(headers).fixed(body.into_bytes())
}

fn html(status: u16, body: String, cookie: Option<String>) -> Response {
    page_response(status, body, &page_csp(false, false), cookie)
}

fn message(status: u16, title: &str, text: &str) -> Response {
    html(status, message_page(title, text), None)
}

/// The page a finished or refused link shows.
fn link_outcome_page(outcome: LinkOutcome, upstream: &str) -> Response {
    match outcome {
        LinkOutcome::Completed => message(
            200,
            "Connected",
            &format!("Your account for {upstream} is connected. You can close this page."),
        ),
        LinkOutcome::Used => Refusal::USED.page(),
        LinkOutcome::Expired => Refusal::EXPIRED.page(),
        LinkOutcome::NotFound => Refusal::NOT_FOUND.page(),
    }
}

/// A link that cannot be used, as the page the user sees.
struct Refusal(u16, &'static str, &'static str);

impl Refusal {
    const NOT_FOUND: Refusal =
        Refusal(404, "Link not found", "This connect link is not valid. Ask whoever sent it for a new one.");
    const EXPIRED: Refusal =
        Refusal(410, "Link expired", "This connect link has expired. Ask whoever sent it for a new one.");
    const USED: Refusal = Refusal(
        410,
        "Link already used",
        "This connect link was already used. If you need to connect again, ask for a new link.",
    );
    const GONE: Refusal =
        Refusal(404, "Service not found", "The service this link was for is no longer set up here.");

    fn page(&self) -> Response {
        message(self.0, self.1, self.2)
    }
}

/// The link a token names, with its store and upstream, if it can still be used.
struct OpenLink {
    hash: KeyHash,
    store: SubjectStoreStub,
    link: LinkRecord,
    upstream: Upstream,
}

async fn open_link(app: &App, token: &str) -> Result<Result<OpenLink, Refusal>, Error> {
    let Some(presented) = keys::parse_link(token) else { return Ok(Err(Refusal::NOT_FOUND)) };
    let Some(store) = app.store_at(&presented.routing)? else { return Ok(Err(Refusal::NOT_FOUND)) };
    let hash = presented.hash;
    let Some(link) = store.call(GetLink { hash: hash.clone() }).await? else {
        return Ok(Err(Refusal::NOT_FOUND));
    };
    match link.state(now_ms()) {
        LinkState::Expired => return Ok(Err(Refusal::EXPIRED)),
        LinkState::Used => return Ok(Err(Refusal::USED)),
        LinkState::Usable => {}
    }
    let Some(upstream) = app.config_store()?.upstream(link.upstream.as_str()).await? else {
        return Ok(Err(Refusal::GONE));
    };
    Ok(Ok(OpenLink { hash, store, link, upstream }))
}

/// The double-submit CSRF cookie of the connect forms.
const CSRF_COOKIE: &str = "mab_csrf";
/// Binds an OAuth callback to the browser that pressed "Continue" (login CSRF, RFC 6749
/// §10.12): `Lax`, because the authorization server sends the browser back cross-site.
const OAUTH_COOKIE: &str = "mab_oauth";

/// A cookie's name: `__Host-` on https, where browsers enforce its rules.
fn cookie_name(app: &App, base: &str) -> String {
    if app.public_origin.starts_with("https://") {
        format!("__Host-{base}")
    } else {
        base.to_string()
    }
}

fn set_cookie(app: &App, base: &str, value: &str, same_site: &str, max_age: u64) -> String {
    let secure = if app.public_origin.starts_with("https://") { "; Secure" } else { "" };
    format!(
        "{}={value}; Path=/; HttpOnly; SameSite={same_site}; Max-Age={max_age}{secure}",
        cookie_name(app, base)
    )
}

fn is_random_token(v: &str) -> bool {
    v.len() == 43 && v.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

fn cookie_value(req: &Request, name: &str) -> Option<String> {
    http::header(req, "cookie")?
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// An upstream with nothing for the user to connect.
fn nothing_to_connect(upstream: &Upstream) -> Option<Response> {
    (upstream.user_fields.is_empty() && upstream.oauth.is_none())
        .then(|| message(404, "Nothing to connect", "This service needs nothing from you: you are all set."))
}

/// `GET /connect/{token}`.
pub async fn page(app: &App, req: &Request, token: &str) -> Result<Response, Error> {
    let open = match open_link(app, token).await? {
        Ok(open) => open,
        Err(refusal) => return Ok(refusal.page()),
    };
    if let Some(resp) = nothing_to_connect(&open.upstream) {
        return Ok(resp);
    }
    // One CSRF value per browser, so two open links (or tabs) do not invalidate each other.
    let csrf = cookie_value(req, &cookie_name(app, CSRF_COOKIE))
        .filter(|v| is_random_token(v))
        .unwrap_or_else(|| b64url(&random_bytes::<32>()));
    let cookie = Some(set_cookie(app, CSRF_COOKIE, &csrf, "Strict", 3600));
    let (subject, id, expires_at) =
        (open.link.subject.as_str(), open.upstream.id.as_str(), open.link.expires_at);
    Ok(if open.upstream.oauth.is_some() {
        let csp = page_csp(true, app.config.allow_private_upstreams);
        page_response(200, confirm_page(subject, id, &csrf, expires_at), &csp, cookie)
    } else {
        let body =
            form_page(subject, id, &open.upstream.user_fields, &csrf, expires_at, &FormErrors::new(), &[]);
        html(200, body, cookie)
    })
}

/// `POST /connect/{token}`: the form, checked, sealed and stored; the link used up.
pub async fn submit(app: &App, mut req: Request, token: &str) -> Result<Response, Error> {
    let open = match open_link(app, token).await? {
        Ok(open) => open,
        Err(refusal) => return Ok(refusal.page()),
    };
    if let Some(resp) = nothing_to_connect(&open.upstream) {
        return Ok(resp);
    }
    let body = http::read_body(&mut req, MAX_FORM_BYTES).await?;
    let form: Vec<(String, String)> =
        url::form_urlencoded::parse(&body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let submitted_csrf = form.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str()).unwrap_or("");
    let cookie = cookie_value(&req, &cookie_name(app, CSRF_COOKIE)).unwrap_or_default();
    if submitted_csrf.is_empty() || !ct_eq(submitted_csrf.as_bytes(), cookie.as_bytes()) {
        return Ok(message(
            403,
            "Please try again",
            "This form could not be verified (it was sent from another page, or your browser blocked its cookie). \
             Open the link again and resubmit.",
        ));
    }
    if open.upstream.oauth.is_some() {
        let browser = b64url(&random_bytes::<32>());
        let browser_hash = KeyHash::of(&browser);
        return Ok(
            match oauth::begin(app, &open.store, &open.hash, &open.link.subject, &open.upstream, browser_hash)
                .await
            {
                Ok(url) => {
                    let cookie = set_cookie(app, OAUTH_COOKIE, &browser, "Lax", oauth::PENDING_MS / 1000);
                    let body = message_page("Continue to sign in", "Continue to the sign-in page.");
                    let resp = page_response(303, body, &page_csp(false, false), Some(cookie));
                    let _ = resp.headers().set("Location", &url);
                    resp
                }
                Err(oauth::SetupError(why)) => {
                    worker::console_error!(
                        "mcp-authbridge: cannot start OAuth for '{}': {why}",
                        open.upstream.id
                    );
                    message(
                    502,
                    "Cannot connect right now",
                    "The sign-in service of this provider could not be reached or is not set up for this gateway. \
                     Try the link again later, or tell whoever sent it.",
                )
                }
            },
        );
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
            return Ok(html(400, body, None));
        }
    };
    let mut sealed = BTreeMap::new();
    for (name, value) in values {
        let (subject, upstream) = (open.link.subject.as_str(), open.link.upstream.as_str());
        let context = Context::Connection { subject, upstream, value: ConnectionValue::Field(&name) };
        sealed.insert(name.clone(), app.seal(&context, value.expose().as_bytes())?);
    }
    let origin = open.upstream.place().origin;
    let op = CompleteLink { hash: open.hash, origin, values: sealed, oauth: None, scopes: None };
    let outcome = open.store.call(op).await?;
    Ok(link_outcome_page(outcome, open.upstream.id.as_str()))
}

/// `GET /oauth/callback`: the end of an OAuth connect, as a page.
pub async fn callback(app: &App, req: &Request) -> Result<Response, Error> {
    let url = req.url().map_err(Error::internal)?;
    let browser = cookie_value(req, &cookie_name(app, OAUTH_COOKIE));
    Ok(match oauth::finish(app, &url, browser.as_deref()).await? {
        Finished::Connected(upstream) => link_outcome_page(LinkOutcome::Completed, upstream.as_str()),
        Finished::Denied => message(
            403,
            "Not connected",
            "You did not allow access, so nothing was changed. To connect later, open your connect link again.",
        ),
        Finished::Refused(why) => message(400, "Sign-in not accepted", why),
        Finished::LinkGone(outcome) => link_outcome_page(outcome, ""),
        Finished::ServerFailed => message(
            502,
            "Cannot connect right now",
            "The provider's sign-in service failed to complete the connection. Open your connect link and try again.",
        ),
    })
}

/// `GET /oauth/client-metadata.json`: the gateway's Client ID Metadata Document.
pub fn client_metadata(app: &App) -> Response {
    http::json(200, &crate::core::oauth::flow::client_metadata_document(&app.public_origin))
}
