//! The operator console (API.md §4a): the admin API's operations as server-rendered pages at
//! `/admin/`, signed in by pasting `ADMIN_TOKEN` once. Sessions, CSRF, forms and pages are
//! decided in `core::console`; every change goes through the same operations the JSON API
//! uses (`crate::admin`), so both validate alike. This module only moves bytes.

use crate::admin;
use crate::app::App;
use crate::connect::{
    cookie_name, cookie_value, csrf_checked, csrf_for, page_response, read_form, set_cookie,
};
use crate::core::config::Encryption;
use crate::core::connect::{form_value, page_csp_with};
use crate::core::console::forms::{self, error, key_body, key_field, upstream_field, Errors, UpstreamForm};
use crate::core::console::pages::{
    self, message_page, notice, overview_page, shown_once_page, subject_href, subject_page, upstream_page,
    SealingState, Settings, SubjectView, DEV_ADMIN_TOKEN,
};
pub use crate::core::console::session::Session;
use crate::core::console::session::{token_binding, SESSION_COOKIE, SESSION_MS};
use crate::core::ids::{SubjectId, UpstreamId};
use crate::core::seal::{Context, Sealed};
use crate::error::Error;
use crate::rt::{now_ms, random_bytes};
use serde_json::json;
use worker::{Headers, Method, Request, Response};

/// The console's CSP: the connect pages' rules, with the stylesheet from the Worker instead of
/// inline styles.
fn csp() -> String {
    page_csp_with("'self'", "'self'")
}

fn page(status: u16, body: String) -> Response {
    page_response(status, body, &csp(), &[])
}

fn see_other(location: &str, cookies: &[String]) -> Response {
    let resp = page_response(303, String::new(), &csp(), cookies);
    let _ = resp.headers().set("Location", location);
    resp
}

/// `GET /admin/console.css`.
pub fn stylesheet() -> Response {
    let headers = Headers::new();
    let _ = headers.set("Content-Type", "text/css; charset=utf-8");
    let _ = headers.set("X-Content-Type-Options", "nosniff");
    let _ = headers.set("Cache-Control", "max-age=300");
    Response::builder().with_headers(headers).fixed(pages::CSS.as_bytes().to_vec())
}

/// `GET /admin`: the console is at `/admin/`.
pub fn to_console() -> Response {
    see_other("/admin/", &[])
}

fn binding(app: &App) -> Result<String, Error> {
    Ok(token_binding(app.config.admin_token.as_ref().ok_or(Error::AdminDisabled)?))
}

/// The live session the request's cookie holds, if any (forged, expired, or signed in with
/// another `ADMIN_TOKEN`: none).
pub fn session(app: &App, req: &Request) -> Option<Session> {
    let value = cookie_value(req, &cookie_name(app, SESSION_COOKIE))?;
    let plain = app.keyring().ok()?.open_secret(&Context::ConsoleSession, &Sealed::stored(value)).ok()?;
    Session::open(plain.expose(), &binding(app).ok()?, now_ms())
}

/// A request without a session: a page is the sign-in page's to show; a form is refused.
pub fn signed_out(method: &Method) -> Response {
    if *method == Method::Get {
        return see_other("/admin/sign-in", &[]);
    }
    let text = "Your console session has ended or is not valid, so nothing was changed. Sign in again.";
    page(403, message_page(None, "Signed out", text, Some(("/admin/sign-in", "Sign in"))))
}

/// An error as a page (the admin API's status and message; internal details only in the log).
pub fn error_page(e: &Error) -> Response {
    if let Error::Internal { detail } = e {
        worker::console_error!("mcp-authbridge internal error: {detail}");
    }
    let (status, _, text) = e.describe();
    let resp = page(status, message_page(None, "Not done", &text, Some(("/admin/", "Back to the console"))));
    for (name, value) in e.extra_headers() {
        if name != "WWW-Authenticate" {
            let _ = resp.headers().set(name, &value);
        }
    }
    resp
}

/// `GET /admin/sign-in`.
pub fn sign_in_page(app: &App, req: &Request) -> Response {
    let (csrf, cookie) = csrf_for(app, req);
    page_response(200, pages::sign_in_page(&csrf, None), &csp(), &[cookie])
}

/// `POST /admin/sign-in`: the pasted token, checked like the API's bearer token and under the
/// same wrong-token limit, then a sealed session cookie. The form's CSRF check comes first, so
/// a page of another site cannot spend the operator's wrong-token allowance.
pub async fn sign_in(app: &App, mut req: Request) -> Result<Response, Error> {
    let form = read_form(&mut req).await?;
    let Some(csrf) = csrf_checked(app, &req, &form) else {
        let text = "This form could not be verified (it was sent from another page, or the browser blocked its cookie).";
        return Ok(page(
            403,
            message_page(None, "Please try again", text, Some(("/admin/sign-in", "Sign in"))),
        ));
    };
    let token = form_value(&form, "token").unwrap_or("").trim();
    let refused = |status: u16, why: &str| page(status, pages::sign_in_page(csrf, Some(why)));
    match admin::check_token(app, &req, token).await {
        Ok(()) => {}
        Err(Error::AdminUnauthorized) => {
            return Ok(refused(401, "That is not this deployment's admin token."))
        }
        Err(Error::AdminRateLimited { retry_after }) => {
            let why = format!("Too many wrong tokens from this address: try again in {retry_after} seconds.");
            let resp = refused(429, &why);
            let _ = resp.headers().set("Retry-After", &retry_after.to_string());
            return Ok(resp);
        }
        Err(e) => return Err(e),
    }
    let session = Session::new(now_ms(), &random_bytes());
    let sealed = app.seal(&Context::ConsoleSession, session.plaintext(&binding(app)?).as_bytes())?;
    let cookie = set_cookie(app, SESSION_COOKIE, sealed.as_str(), "Strict", SESSION_MS / 1000);
    Ok(see_other("/admin/", &[cookie]))
}

/// A console form, read and CSRF-checked against `session`; `Err` is the refusal page.
async fn checked_form(
    req: &mut Request,
    session: &Session,
) -> Result<Result<Vec<(String, String)>, Response>, Error> {
    let form = read_form(req).await?;
    if session.csrf_ok(form_value(&form, "csrf")) {
        return Ok(Ok(form));
    }
    let text =
        "This form could not be verified (it was sent from another page, or from before you signed in \
                again). Nothing was changed: open the page again and resubmit.";
    Ok(Err(page(403, message_page(Some(session), "Please try again", text, Some(("/admin/", "Overview"))))))
}

/// Reads the form or answers with its refusal.
macro_rules! form_or_refusal {
    ($req:expr, $session:expr) => {
        match checked_form(&mut $req, $session).await? {
            Ok(form) => form,
            Err(refusal) => return Ok(refusal),
        }
    };
}

/// `POST /admin/sign-out`.
pub async fn sign_out(app: &App, mut req: Request, session: &Session) -> Result<Response, Error> {
    form_or_refusal!(req, session);
    let cookie = set_cookie(app, SESSION_COOKIE, "", "Strict", 0);
    Ok(see_other("/admin/sign-in", &[cookie]))
}

fn done(req: &Request) -> Option<&'static str> {
    let url = req.url().ok()?;
    let value = url.query_pairs().find(|(k, _)| k == "done")?.1.into_owned();
    notice(&value)
}

/// `GET /admin/`: the deployment's settings that matter, and the upstreams.
pub async fn overview(app: &App, req: &Request, session: &Session) -> Result<Response, Error> {
    let upstreams = app.config_store()?.upstreams().await?;
    let ring = app.keyring();
    let key_id = ring.as_ref().map(|r| r.primary_id().to_string()).unwrap_or_default();
    let sealing = match (&app.config.encryption, &ring) {
        (Encryption::Development, _) => SealingState::Development,
        (Encryption::Missing, _) => SealingState::Missing,
        (Encryption::Key(_), Ok(_)) => SealingState::Key { id: &key_id },
        (Encryption::Key(_), Err(_)) => SealingState::Invalid,
    };
    let settings = Settings {
        sealing,
        dev_admin_token: app.config.admin_token.as_ref().is_some_and(|t| t.ct_eq(DEV_ADMIN_TOKEN)),
        allow_private_upstreams: app.config.allow_private_upstreams,
        public_url: app.config.public_url.as_deref(),
        origin: &app.public_origin,
        allowed_origins: &app.config.allowed_origins,
    };
    Ok(page(200, overview_page(session, &settings, &upstreams, done(req))))
}

/// `GET /admin/new-upstream`.
pub fn new_upstream(session: &Session) -> Response {
    let form =
        UpstreamForm { transport: "streamable-http".into(), sign_in: "off".into(), ..Default::default() };
    page(200, upstream_page(session, &form, true, &Errors::new(), None))
}

/// `GET /admin/upstreams/{id}`.
pub async fn edit_upstream(app: &App, req: &Request, session: &Session, id: &str) -> Result<Response, Error> {
    let upstream = admin::find_upstream(app, id).await?;
    Ok(page(200, upstream_page(session, &UpstreamForm::of(&upstream), false, &Errors::new(), done(req))))
}

/// `POST /admin/upstreams` (new, `id` typed) and `POST /admin/upstreams/{id}` (edit): the form
/// as the admin API's body, through its validation; an error re-renders the form as typed
/// (but for the client secret) with the error next to its field.
pub async fn save_upstream(
    app: &App,
    mut req: Request,
    session: &Session,
    id: Option<&str>,
) -> Result<Response, Error> {
    let form = form_or_refusal!(req, session);
    let mut typed = UpstreamForm::submitted(&form);
    let new = id.is_none();
    if let Some(id) = id {
        typed.id = id.to_string();
    }
    let stored = match UpstreamId::parse(&typed.id) {
        Ok(valid) => app.config_store()?.upstream_uncached(valid.as_str()).await?,
        Err(_) => None,
    };
    typed.client_secret_set =
        stored.as_ref().and_then(|u| u.oauth.as_ref()).is_some_and(|o| o.client_secret_sealed.is_some());
    let again = |errors: Errors| page(400, upstream_page(session, &typed, new, &errors, None));
    if new && stored.is_some() {
        return Ok(again(error(
            "id",
            "an upstream with this id exists: open it from the overview to edit it",
        )));
    }
    let secret = form_value(&form, "client_secret").filter(|s| !s.is_empty());
    let body = match typed.body(secret) {
        Ok(body) => body,
        Err(errors) => return Ok(again(errors)),
    };
    match admin::save_upstream(app, &typed.id, &body).await {
        Ok(saved) => Ok(see_other(&format!("/admin/upstreams/{}?done=saved", saved.id), &[])),
        Err(Error::BadRequest { field, message }) => {
            let (field, shown) = upstream_field(&field, &message);
            Ok(again(Errors::from([(field, shown)])))
        }
        Err(e) => Err(e),
    }
}

/// `POST /admin/upstreams/{id}/delete`.
pub async fn delete_upstream(
    app: &App,
    mut req: Request,
    session: &Session,
    id: &str,
) -> Result<Response, Error> {
    form_or_refusal!(req, session);
    admin::remove_upstream(app, id).await?;
    Ok(see_other("/admin/?done=deleted", &[]))
}

/// What a subject page shows besides the stored views: the key form as typed, and errors.
#[derive(Default)]
struct Typed<'a> {
    key_form: &'a [(String, String)],
    key_errors: Errors,
    link_errors: Errors,
}

async fn render_subject(
    app: &App,
    session: &Session,
    subject: &SubjectId,
    status: u16,
    typed: Typed<'_>,
    notice: Option<&str>,
) -> Result<Response, Error> {
    let keys = admin::keys_of(app, subject).await?;
    let connections = admin::connections_of(app, subject).await?;
    let grants = admin::grants_of(app, subject).await?;
    let upstreams = app.config_store()?.upstreams().await?;
    let view = SubjectView {
        subject: subject.as_str(),
        keys: &keys,
        connections: &connections,
        grants: &grants,
        linkable: upstreams.iter().filter(|u| u.connectable()).map(|u| u.id.as_str()).collect(),
        key_form: typed.key_form,
        key_errors: &typed.key_errors,
        link_errors: &typed.link_errors,
        notice,
    };
    Ok(page(status, subject_page(session, &view)))
}

fn subject_of(value: Option<&str>) -> Result<SubjectId, Error> {
    SubjectId::parse(value.unwrap_or("").trim()).map_err(|e| Error::bad_request("subject", e.to_string()))
}

/// `GET /admin/subjects?subject=`.
pub async fn subject(app: &App, req: &Request, session: &Session) -> Result<Response, Error> {
    let url = req.url().map_err(Error::internal)?;
    let asked = url.query_pairs().find(|(k, _)| k == "subject").map(|(_, v)| v.into_owned());
    let subject = subject_of(asked.as_deref())?;
    render_subject(app, session, &subject, 200, Typed::default(), done(req)).await
}

/// `POST /admin/keys`: mints a key (shown once) through the admin API's operation.
pub async fn mint_key(app: &App, mut req: Request, session: &Session) -> Result<Response, Error> {
    let form = form_or_refusal!(req, session);
    let subject = subject_of(form_value(&form, "subject"))?;
    let again = |key_errors: Errors| Typed { key_form: &form, key_errors, ..Default::default() };
    let body = match key_body(subject.as_str(), &form) {
        Ok(body) => body,
        Err(errors) => return render_subject(app, session, &subject, 400, again(errors), None).await,
    };
    let view = match admin::mint_key(app, &body).await {
        Ok(view) => view,
        Err(Error::BadRequest { field, message }) => {
            let errors = Errors::from([(key_field(&field), message)]);
            return render_subject(app, session, &subject, 400, again(errors), None).await;
        }
        Err(e) => return Err(e),
    };
    let what = format!(
        "The key for {}, shown only now: give it to the client (Authorization: Bearer). Only its hash is kept.",
        subject.as_str()
    );
    let expires = view["expires_at"].as_str().unwrap_or("never");
    let key = view["key"].as_str().unwrap_or("");
    Ok(page(
        200,
        shown_once_page(session, "Key minted", &what, key, expires, &subject_href(subject.as_str(), None)),
    ))
}

/// `POST /admin/links`: mints a connect link (shown once) through the admin API's operation.
pub async fn mint_link(app: &App, mut req: Request, session: &Session) -> Result<Response, Error> {
    let form = form_or_refusal!(req, session);
    let subject = subject_of(form_value(&form, "subject"))?;
    let body =
        json!({ "subject": subject.as_str(), "upstream": form_value(&form, "upstream").unwrap_or("") });
    let link = match admin::mint_operator_link(app, &body).await {
        Ok(link) => link,
        Err(Error::BadRequest { field, message }) => {
            let field = if field == "upstream" { "upstream" } else { "" };
            let typed = Typed { link_errors: forms::error(field, message), ..Default::default() };
            return render_subject(app, session, &subject, 400, typed, None).await;
        }
        Err(e) => return Err(e),
    };
    let text = |name: &str| link[name].as_str().unwrap_or("").to_string();
    let what = format!(
        "The connect link for {} to connect {}, shown only now: send it to them. It works once.",
        subject.as_str(),
        text("upstream")
    );
    let back = subject_href(subject.as_str(), None);
    Ok(page(
        200,
        shown_once_page(session, "Connect link minted", &what, &text("url"), &text("expires_at"), &back),
    ))
}

/// `POST /admin/keys/{id}/revoke`, `/admin/grants/{id}/revoke` and
/// `/admin/connections/{upstream}/disconnect`: the admin API's operation, then back to the
/// subject's page with what was done.
pub async fn subject_action(
    app: &App,
    mut req: Request,
    session: &Session,
    action: Action<'_>,
) -> Result<Response, Error> {
    let form = form_or_refusal!(req, session);
    let subject = subject_of(form_value(&form, "subject"))?;
    let done = match action {
        Action::RevokeKey(id) => admin::drop_key(app, id).await.map(|()| "key-revoked"),
        Action::RevokeGrant(id) => admin::drop_grant(app, id).await.map(|()| "grant-revoked"),
        Action::Disconnect(upstream) => admin::disconnect(app, subject.as_str(), upstream)
            .await
            .map(|revoked| if revoked { "disconnected-revoked" } else { "disconnected" }),
    }?;
    Ok(see_other(&subject_href(subject.as_str(), Some(done)), &[]))
}

/// What a subject page's one-button forms do.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    RevokeKey(&'a str),
    RevokeGrant(&'a str),
    Disconnect(&'a str),
}
