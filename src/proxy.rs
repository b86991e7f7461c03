//! The request path (ARCHITECTURE.md "Request path"), as a driver of the decisions in
//! `core::request`: authenticate the key, load the upstream, fetch the subject's values in one
//! Durable Object call, render the header templates, forward with the client's credentials
//! stripped, and stream the answer back.

use crate::app::App;
use crate::authorize;
use crate::connect::{mint_link, LinkFor};
use crate::core::connect_tool::{
    answer as own_answer, legacy_endpoint_event, legacy_message_event, needs_link, Answer, Asked, Session,
};
use crate::core::encoding::rfc3339;
use crate::core::headers::{connection_listed, forward_response_header, HeaderList};
use crate::core::ids::{SubjectId, UpstreamId};
use crate::core::keys;
use crate::core::mcp;
use crate::core::policy::{check_url, same_origin, CheckedUrl};
use crate::core::request::{
    self, after_upstream, works_again, ConnectionSeen, ConnectionStatus, Next, Refreshed, RenderFailure,
    Sent, UserValue,
};
use crate::core::request_log::{named, RequestLog};
use crate::core::seal::{ConnectionValue, Context, Keyring, Sealed};
use crate::core::secret::Secret;
use crate::core::sse::{EndpointRewriter, SessionUrl, SseError};
use crate::core::template::Source;
use crate::core::upstream::{HeaderPlan, Transport, Upstream};
use crate::error::Error;
use crate::http::{self, Body, Head};
use crate::outbound::{self, OutboundError};
use crate::plumbing;
use crate::rt::{now_ms, random_bytes};
use crate::store::protocol::{RefreshAfterRejection, Resolve, Resolved, SetConnectionStatus};
use crate::store::stub::SubjectStoreStub;
use futures_util::future::join_all;
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::rc::Rc;
use url::Url;
use worker::{Headers, Method, Response, ResponseBody};

/// Which MCP route a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/mcp/{upstream}`: Streamable HTTP.
    Mcp,
    /// `GET /sse/{upstream}`: legacy event stream.
    SseOpen,
    /// `POST /sse/{upstream}/messages?s=...`: legacy message endpoint.
    SseMessage,
}

pub async fn handle(
    app: &App,
    raw: web_sys::Request,
    req: &Head,
    upstream_id: &str,
    route: Route,
) -> web_sys::Response {
    let started = now_ms();
    let has_body = !matches!(req.method, Method::Get | Method::Delete | Method::Head);
    // Authenticate before reading the body (steps 1–4): a client that fails makes the gateway
    // read no more than it needs to answer a JSON-RPC request with a JSON-RPC error.
    let prepared = prepare(app, req, upstream_id, route).await;
    let limit = if prepared.is_ok() { app.config.max_body_bytes } else { http::PEEK_BYTES };
    let length = req.headers.get("content-length");
    let body = match has_body {
        true => Some(http::read_body_or_head(&raw, length, limit).await),
        false => None,
    };
    let (peek, body) = match body {
        Some(Ok(Body::Whole(bytes))) => (Some(mcp::peek(&bytes)), Some(Ok(bytes))),
        Some(Ok(Body::TooLarge { head })) => {
            (Some(mcp::peek_prefix(&head)), Some(Err(Error::BodyTooLarge { limit })))
        }
        Some(Err(e)) => (None, Some(Err(e))),
        None => (None, None),
    };
    let method = peek.as_ref().and_then(|p| p.method.clone());
    let tool = named(req.headers.get("mcp-name"), peek.as_ref());
    let who = prepared.as_ref().ok().map(|p| (p.subject.to_string(), p.credential.clone()));
    let mut upstream_status = None;
    let result = match (prepared, body) {
        (Err(e), _) => Err(e),
        (Ok(_), Some(Err(e))) => Err(e),
        (Ok(p), body) => forward(app, req, p, body.and_then(Result::ok), &mut upstream_status).await,
    };
    let resp = result.unwrap_or_else(|e| http::error(&e, peek.as_ref()).into());
    if !app.config.request_logs {
        return resp;
    }
    let log = RequestLog {
        time: rfc3339(started),
        upstream: upstream_id,
        subject: who.as_ref().map(|(s, _)| s.as_str()),
        credential: who.as_ref().map(|(_, c)| c.as_str()).filter(|c| !c.is_empty()),
        method: method.as_deref(),
        tool: tool.as_deref(),
        status: resp.status(),
        upstream_status,
        ms: now_ms().saturating_sub(started),
    };
    worker::console_log!("{}", log.line());
    resp
}

/// A request that passed the checks, with everything needed to send it on.
struct Prepared {
    upstream: Upstream,
    plan: HeaderPlan,
    route: Route,
    target: CheckedUrl,
    subject: SubjectId,
    /// The key's or grant's id (the request log).
    credential: String,
    values: BTreeMap<String, UserValue>,
    access_token: Option<Sealed>,
    connection: Option<ConnectionSeen>,
    /// The subject store's id (the routing part of the key), for minting connect links.
    routing: String,
    store: SubjectStoreStub,
    /// For a legacy stream: the keyring that seals its message URLs, taken before connecting.
    keyring: Option<Rc<Keyring>>,
    /// A legacy message to the gateway's own session (`?own=`): its id.
    own: Option<String>,
}

/// Steps 1–4: origin, key, upstream, scope, and the subject's sealed values (one Durable Object
/// call). Errors come in the contract's order: 401 before 404 before 403.
async fn prepare(app: &App, req: &Head, upstream_id: &str, route: Route) -> Result<Prepared, Error> {
    if let Some(origin) = req.header("origin") {
        if !app.config.origin_allowed(&origin, &app.public_origin) {
            return Err(Error::OriginNotAllowed { origin });
        }
    }
    let presented = req.header("authorization");
    let credential = presented.as_deref().and_then(keys::credential_from_authorization);
    let upstream = match UpstreamId::parse(upstream_id) {
        Ok(id) => app.config_store()?.upstream(id.as_str()).await?,
        Err(_) => None,
    };
    let route_name = if route == Route::Mcp { "mcp" } else { "sse" };
    let refused = |presented: bool| authorize::unauthenticated(app, route_name, upstream.as_ref(), presented);
    let Some(credential) = credential else { return Err(refused(presented.is_some())) };
    let access_token = matches!(credential, keys::Credential::AccessToken(_));
    let key = credential.presented().clone();
    let plan = match &upstream {
        Some(u) => u.header_plan().map_err(|e| Error::internal(format!("upstream '{upstream_id}': {e}")))?,
        None => HeaderPlan { templates: Vec::new(), sources: Vec::new() },
    };

    let Some(store) = app.store_at(&key.routing)? else { return Err(refused(true)) };
    let op = Resolve {
        key_hash: key.hash,
        access_token,
        upstream: upstream_id.into(),
        place: upstream.as_ref().map(Upstream::place),
        user: plan.user_names(),
        oauth: plan.uses_oauth(),
    };
    let (subject, credential, values, access_token, connection) = match store.call(op).await? {
        Resolved::InvalidKey => return Err(refused(true)),
        Resolved::NotAllowed if upstream.is_some() => {
            return Err(Error::KeyNotAllowed { upstream: upstream_id.into() })
        }
        Resolved::NotAllowed => return Err(Error::UnknownUpstream { upstream: upstream_id.into() }),
        Resolved::Ok { oauth_unavailable: Some(retry_after), .. } => {
            return Err(Error::AuthorizationServerUnavailable { upstream: upstream_id.into(), retry_after })
        }
        Resolved::Ok { subject, credential, values, access_token, connection, .. } => {
            (subject, credential, values, access_token, connection)
        }
    };
    let upstream = upstream.ok_or_else(|| Error::UnknownUpstream { upstream: upstream_id.into() })?;

    let wanted = if route == Route::Mcp { Transport::StreamableHttp } else { Transport::Sse };
    if upstream.transport != wanted {
        let use_path = match upstream.transport {
            Transport::Sse => format!("/sse/{upstream_id}"),
            Transport::StreamableHttp => format!("/mcp/{upstream_id}"),
        };
        return Err(Error::WrongTransport { upstream: upstream_id.into(), use_path });
    }
    // A legacy message to a session the gateway made itself carries its id, not an upstream URL.
    let own = match route {
        Route::SseMessage => own_session_param(req)?,
        Route::Mcp | Route::SseOpen => None,
    };
    let target = match route {
        Route::SseMessage if own.is_none() => session_target(app, req, &upstream, subject.as_str())?,
        Route::Mcp | Route::SseOpen | Route::SseMessage => upstream.url.clone(),
    };
    let target = check_url(&target, app.config.allow_private_upstreams).map_err(|e| {
        worker::console_error!("mcp-authbridge: upstream '{upstream_id}' URL refused by policy: {e}");
        Error::UpstreamUnreachable { upstream: upstream_id.into() }
    })?;
    let keyring = if route == Route::SseOpen { Some(app.keyring()?) } else { None };
    let routing = key.routing;
    Ok(Prepared {
        upstream,
        plan,
        route,
        target,
        subject,
        credential,
        values,
        access_token,
        connection,
        routing,
        store,
        keyring,
        own,
    })
}

/// The `own` query parameter of a legacy message URL, when it names a session of the gateway's.
fn own_session_param(req: &Head) -> Result<Option<String>, Error> {
    match req.query("own") {
        Some(id) if Session::parse(&id).is_some() => Ok(Some(id)),
        Some(_) => Err(Error::InvalidSessionUrl),
        None => Ok(None),
    }
}

/// Steps 5–8: render, send, and relay the answer, as `core::request::after_upstream` says.
async fn forward(
    app: &App,
    req: &Head,
    mut p: Prepared,
    body: Option<Vec<u8>>,
    upstream_status: &mut Option<u16>,
) -> Result<web_sys::Response, Error> {
    // API.md §7: without a connection, the gateway may answer the session itself.
    let own = p.upstream.connect_tool;
    let kept = if own { body.clone() } else { None };
    let (resp, sent) = match exchange(app, req, &mut p, body).await {
        Err(Error::ConnectionRequired { .. }) if own => {
            return own_session(app, req, &p, kept).await.map(Into::into)
        }
        Err(Error::ConnectionRequired { .. }) => return Err(connection_required(app, &p).await),
        exchanged => exchanged?,
    };
    let status = resp.status();
    *upstream_status = Some(status);
    if let Some(seen) = works_again(sent.per_user, p.connection, status) {
        let op = SetConnectionStatus {
            upstream: p.upstream.id.clone(),
            status: ConnectionStatus::Connected,
            seen: Some(seen),
        };
        let store = p.store.clone();
        app.ctx.wait_until(async move {
            let _ = store.call(op).await;
        });
    }
    match (p.route, p.keyring.take()) {
        (Route::SseOpen, Some(keyring)) if status == 200 => {
            relay_legacy(app, resp.into(), p, keyring).await.map(Into::into)
        }
        _ => relay(&resp),
    }
}

/// Sends the request with the rendered headers, and once more after a refresh when the
/// upstream refused the access token; answers the response to relay and what was sent.
async fn exchange(
    app: &App,
    req: &Head,
    p: &mut Prepared,
    body: Option<Vec<u8>>,
) -> Result<(web_sys::Response, Sent), Error> {
    let upstream_id = p.upstream.id.to_string();
    let upstream_id = upstream_id.as_str();
    let mut sent = Sent { per_user: p.plan.per_user(), access_token: false, retried: false };
    // With OAuth, a 401 is answered by one refresh and one retry, which needs the body again.
    let mut retry_body = if p.plan.uses_oauth() { body.clone() } else { None };
    let mut body = body;
    // A session the gateway made itself while the subject was not connected has ended now.
    let session = req.headers.get("mcp-session-id");
    let needs_connection = || Error::ConnectionRequired { upstream: upstream_id.into(), connect_url: None };
    loop {
        let rendered = render_headers(app, p).await?;
        if p.own.is_some() || session.is_some_and(|id| Session::parse(id).is_some()) {
            return Err(Error::OwnSessionEnded { upstream: upstream_id.into() });
        }
        let out = req.headers.outgoing(&rendered);
        sent.access_token = p.access_token.is_some() && p.plan.uses_oauth();
        let resp = send(app, &req.method_name, &p.target, &out, body.take().as_deref(), upstream_id).await?;
        match after_upstream(resp.status(), sent) {
            Next::Relay => return Ok((resp, sent)),
            Next::RefreshAndRetry => {}
            Next::Reconnect => {
                let op = SetConnectionStatus {
                    upstream: p.upstream.id.clone(),
                    status: ConnectionStatus::ConnectionRequired,
                    seen: p.connection.map(|c| c.updated_at),
                };
                p.store.call(op).await?;
                return Err(needs_connection());
            }
            Next::OperatorCredentialsRejected => {
                return Err(Error::UpstreamRejectedCredentials { upstream: upstream_id.into() })
            }
            Next::RefuseRedirect => return Err(refuse_redirect(upstream_id, &resp)),
        }
        // The token was refused: refresh once (or take the token another request refreshed),
        // then retry once.
        let Some(rejected) = p.access_token.clone() else { return Err(needs_connection()) };
        match p.store.call(RefreshAfterRejection { upstream: p.upstream.id.clone(), rejected }).await? {
            Refreshed::Token { access_token, updated_at } => {
                p.connection = Some(ConnectionSeen { status: ConnectionStatus::Connected, updated_at });
                p.access_token = Some(access_token);
            }
            Refreshed::ConnectionRequired => return Err(needs_connection()),
            Refreshed::Unavailable { retry_after } => {
                return Err(Error::AuthorizationServerUnavailable {
                    upstream: upstream_id.into(),
                    retry_after,
                })
            }
        }
        body = retry_body.take();
        sent.retried = true;
    }
}

/// A legacy event stream: checked to be one, then relayed with its endpoint rewritten.
async fn relay_legacy(
    app: &App,
    resp: Response,
    p: Prepared,
    keyring: Rc<Keyring>,
) -> Result<Response, Error> {
    let is_event_stream = resp
        .headers()
        .get("content-type")
        .ok()
        .flatten()
        .is_some_and(|ct| ct.trim().to_ascii_lowercase().starts_with("text/event-stream"));
    if !is_event_stream {
        return Err(Error::UpstreamProtocol {
            upstream: p.upstream.id.to_string(),
            detail: "the legacy SSE endpoint did not answer with an event stream".into(),
        });
    }
    let rewrite = EndpointRewrite {
        keyring,
        upstream_id: p.upstream.id.to_string(),
        upstream_url: (*p.target).clone(),
        subject: p.subject.to_string(),
    };
    relay_rewritten(resp, rewrite, app.config.upstream_timeout_ms).await
}

fn refuse_redirect(upstream_id: &str, resp: &web_sys::Response) -> Error {
    let status = resp.status();
    let location = resp.headers().get("location").ok().flatten().unwrap_or_default();
    worker::console_error!(
        "mcp-authbridge: upstream '{upstream_id}' answered {status} to {location}; set the upstream's url to the final address"
    );
    Error::UpstreamProtocol {
        upstream: upstream_id.into(),
        detail: format!("answered a redirect ({status}); the operator must update the upstream's URL"),
    }
}

/// The `connection_required` answer, with a connect link for this subject and upstream (API.md
/// §1): the live one handed out before, else a new one (1 hour). If none can be made, the
/// answer still goes out, without one.
async fn connection_required(app: &App, p: &Prepared) -> Error {
    let link =
        mint_link(app, &p.store, &p.routing, &p.subject, &p.upstream.id, LinkFor::ConnectionRequired).await;
    let connect_url = link
        .map_err(|e| worker::console_error!("mcp-authbridge: could not make a connect link: {e:?}"))
        .ok()
        .map(|(url, _)| url);
    Error::ConnectionRequired { upstream: p.upstream.id.to_string(), connect_url }
}

/// The gateway's own MCP session for a subject that has not connected an upstream with
/// `connect_tool` (API.md §7; the answers are `core::connect_tool`): the connect link is minted
/// only for a tool call. No server stream (GET 405); DELETE ends nothing that needs ending.
async fn own_session(app: &App, req: &Head, p: &Prepared, body: Option<Vec<u8>>) -> Result<Response, Error> {
    match (p.route, req.method.clone()) {
        (Route::SseOpen, _) => return own_legacy_stream(p).await,
        // A message of an upstream's legacy session (its stream is the upstream's, so the
        // gateway cannot answer on it): the connection_required refusal.
        (Route::SseMessage, _) if p.own.is_none() => return Err(connection_required(app, p).await),
        (Route::SseMessage, _) | (Route::Mcp, Method::Post) => {}
        (Route::Mcp, Method::Delete) => return Ok(http::empty(200)),
        (Route::Mcp, _) => return Err(Error::MethodNotAllowed { allow: "POST, DELETE" }),
    }
    let body = body.unwrap_or_default();
    let session = p.own.clone().or_else(|| req.header("mcp-session-id"));
    let version = req.header("mcp-protocol-version");
    let asked = Asked {
        upstream: p.upstream.id.as_str(),
        session: session.as_deref().and_then(Session::parse),
        protocol_version: version.as_deref(),
    };
    let link = match needs_link(&body) {
        true => mint_link(app, &p.store, &p.routing, &p.subject, &p.upstream.id, LinkFor::ConnectionRequired)
            .await
            .map_err(|e| worker::console_error!("mcp-authbridge: could not make a connect link: {e:?}"))
            .ok()
            .map(|(url, _)| url),
        false => None,
    };
    let answer = own_answer(&body, &asked, link.as_ref().map(Secret::expose), &random_bytes());
    if let Some(id) = &p.own {
        // Legacy: the answer goes out on the session's event stream; the POST is accepted.
        if let Answer::Json { body, .. } = &answer {
            if !p.store.push_stream(id, &legacy_message_event(body)).await? {
                return Err(Error::InvalidSessionUrl);
            }
        }
        return Ok(http::empty(202));
    }
    Ok(match answer {
        Answer::Accepted => http::empty(202),
        Answer::Json { status, body, session } => {
            let resp = http::json(status, &body);
            if let Some(id) = session {
                let _ = resp.headers().set("Mcp-Session-Id", &id);
            }
            resp
        }
    })
}

/// `GET /sse/{upstream}` of the gateway's own session: an event stream kept by the subject's
/// store, starting with the endpoint event; its answers come from the POSTs to that endpoint.
async fn own_legacy_stream(p: &Prepared) -> Result<Response, Error> {
    let id = Session::default().id(&random_bytes());
    let stream = p.store.open_stream(&id, &legacy_endpoint_event(p.upstream.id.as_str(), &id)).await?;
    let headers = Headers::new();
    let _ = headers.set("Content-Type", "text/event-stream");
    let _ = headers.set("Cache-Control", "no-store");
    Ok(Response::builder().with_status(200).with_headers(headers).body(ResponseBody::Stream(stream)))
}

/// Step 5: open every value the templates read, then render them (`core::request::render`).
async fn render_headers(app: &App, p: &Prepared) -> Result<Vec<(String, String)>, Error> {
    let (subject, upstream) = (p.subject.as_str(), p.upstream.id.as_str());
    let mut values: BTreeMap<Source, Secret> = BTreeMap::new();
    let secrets: Vec<(&Source, &String)> = p
        .plan
        .sources
        .iter()
        .filter_map(|s| if let Source::Secret(n) = s { Some((s, n)) } else { None })
        .collect();
    let sealed_values = !secrets.is_empty() || !p.values.is_empty() || p.access_token.is_some();
    let keyring = if sealed_values { Some(app.keyring()?) } else { None };

    if let Some(ring) = &keyring {
        let config = app.config_store()?;
        let sealed = join_all(secrets.iter().map(|(_, name)| config.secret(name))).await;
        for ((source, name), sealed) in secrets.into_iter().zip(sealed) {
            if let Some(sealed) = sealed? {
                values.insert(source.clone(), open(ring, &Context::OperatorSecret { name }, &sealed)?);
            }
        }
    }
    for source in &p.plan.sources {
        let opened = match (source, &keyring) {
            (Source::Env(name), _) => app.env_value(name).map(Secret::new),
            (Source::User(name), Some(ring)) => match p.values.get(name) {
                Some(v) => Some(open(ring, &v.context(subject, upstream, name), &v.sealed)?),
                None => None,
            },
            (Source::OAuthAccessToken, Some(ring)) => match &p.access_token {
                Some(sealed) => {
                    let context =
                        Context::Connection { subject, upstream, value: ConnectionValue::AccessToken };
                    Some(open(ring, &context, sealed)?)
                }
                None => None,
            },
            (Source::Subject, _) => Some(Secret::new(subject)),
            _ => None,
        };
        if let Some(v) = opened {
            values.insert(source.clone(), v);
        }
    }
    request::render(&p.plan, &values).map_err(|e| match e {
        RenderFailure::ConnectionRequired => {
            Error::ConnectionRequired { upstream: upstream.into(), connect_url: None }
        }
        RenderFailure::MissingOperatorValue(name) => Error::MissingOperatorValue { name },
        RenderFailure::Unsafe { header } => Error::UnsafeHeaderValue { header },
    })
}

fn open(ring: &Keyring, context: &Context, sealed: &Sealed) -> Result<Secret, Error> {
    ring.open_secret(context, sealed)
        .map_err(|e| Error::internal(format!("cannot open value sealed for {context}: {e}")))
}

/// The upstream message URL a legacy client was given, checked: sealed by us, for this
/// upstream, for this subject, not expired (24 h), on the upstream's own origin.
fn session_target(app: &App, req: &Head, upstream: &Upstream, subject: &str) -> Result<String, Error> {
    let sealed = req.query("s").ok_or(Error::InvalidSessionUrl)?;
    let context = Context::SseSession { upstream: upstream.id.as_str() };
    let bytes =
        app.keyring()?.open(&context, &Sealed::stored(sealed)).map_err(|_| Error::InvalidSessionUrl)?;
    let session: SessionUrl = serde_json::from_slice(&bytes).map_err(|_| Error::InvalidSessionUrl)?;
    let base = Url::parse(&upstream.url).map_err(Error::internal)?;
    let target = Url::parse(&session.url).map_err(|_| Error::InvalidSessionUrl)?;
    if !session.usable_by(subject, now_ms()) || !same_origin(&base, &target) {
        return Err(Error::InvalidSessionUrl);
    }
    Ok(session.url)
}

struct EndpointRewrite {
    keyring: Rc<Keyring>,
    upstream_id: String,
    upstream_url: Url,
    subject: String,
}

impl EndpointRewrite {
    /// Maps the upstream's endpoint (usually relative) to `/sse/{upstream}/messages?s=<sealed>`;
    /// the sealed form (`v1.<kid>.<base64url>`) is already URL-safe.
    fn rewrite(&self, endpoint: &str) -> Result<String, String> {
        let target = self.upstream_url.join(endpoint).map_err(|_| "endpoint is not a URL".to_string())?;
        if !same_origin(&self.upstream_url, &target) {
            return Err("endpoint is on another origin than the upstream".into());
        }
        let session = SessionUrl::new(&self.subject, target.as_str(), now_ms());
        let json = serde_json::to_vec(&session).map_err(|e| e.to_string())?;
        let context = Context::SseSession { upstream: &self.upstream_id };
        let sealed = self.keyring.seal(&context, &json, random_bytes());
        Ok(format!("/sse/{}/messages?s={}", self.upstream_id, sealed.as_str()))
    }
}

/// Step 7: the upstream call, with a deadline for its response headers and no redirects
/// followed.
async fn send(
    app: &App,
    method: &str,
    url: &CheckedUrl,
    headers: &str,
    body: Option<&[u8]>,
    upstream_id: &str,
) -> Result<web_sys::Response, Error> {
    let timeout_ms = app.config.upstream_timeout_ms;
    outbound::send(method, url, headers, body, timeout_ms).await.map_err(|e| match e {
        OutboundError::Timeout => {
            Error::UpstreamTimeout { upstream: upstream_id.into(), after_ms: timeout_ms }
        }
        e => {
            worker::console_error!("mcp-authbridge: upstream '{upstream_id}': {e}");
            Error::UpstreamUnreachable { upstream: upstream_id.into() }
        }
    })
}

fn response_headers(upstream: &Response) -> Headers {
    let out = Headers::new();
    let listed = connection_listed(upstream.headers().get("connection").ok().flatten().as_deref());
    for (name, value) in upstream.headers().entries() {
        if forward_response_header(&name, &listed) {
            let _ = out.append(&name, &value);
        }
    }
    out
}

/// Step 7 for Streamable HTTP: status and body pass through untouched, the body as the same
/// stream (no buffering, no copy into the Worker); of the headers, those
/// `forward_response_header` refuses are dropped.
fn relay(upstream: &web_sys::Response) -> Result<web_sys::Response, Error> {
    let drop = HeaderList::parse(&plumbing::header_list(&upstream.headers())).dropped_from_response();
    let empty = matches!(upstream.status(), 101 | 103 | 204 | 205 | 304);
    plumbing::relay(upstream, &drop, empty)
        .map_err(|e| Error::internal(format!("relaying the answer: {e:?}")))
}

/// Legacy SSE: the same, event by event, with the endpoint event rewritten on the way. The
/// answer waits for that event (a legacy server sends it first, and a client cannot start
/// without it): an endpoint that cannot be rewritten, or a stream that ends or stalls before
/// it, is a 502 or 504 with a reason, not a 200 whose stream then breaks.
async fn relay_rewritten(
    mut upstream: Response,
    rewrite: EndpointRewrite,
    timeout_ms: u64,
) -> Result<Response, Error> {
    let headers = response_headers(&upstream);
    let upstream_id = rewrite.upstream_id.clone();
    let refused = |detail: String| {
        worker::console_error!(
            "mcp-authbridge: upstream '{upstream_id}' legacy SSE stream refused: {detail}"
        );
        Error::UpstreamProtocol { upstream: upstream_id.clone(), detail }
    };
    let mut stream = upstream.stream().map_err(Error::internal)?;
    let mut rewriter = EndpointRewriter::new(move |e: &str| rewrite.rewrite(e));
    let head = outbound::within(timeout_ms, async {
        let mut head = Vec::new();
        while !rewriter.rewritten() {
            let Some(Ok(chunk)) = stream.next().await else {
                return Err(refused("the stream ended before its endpoint event".into()));
            };
            head.extend(rewriter.push(&chunk).map_err(|e| {
                refused(match e {
                    SseError::Endpoint(reason) => reason,
                    SseError::TooLong => "no endpoint event in the first 64 KiB of the stream".into(),
                })
            })?);
        }
        Ok(head)
    })
    .await
    .ok_or_else(|| Error::UpstreamTimeout { upstream: upstream_id.clone(), after_ms: timeout_ms })??;
    let rest = stream.map(move |chunk| {
        let chunk = chunk?;
        rewriter.push(&chunk).map_err(|e| {
            worker::console_error!("mcp-authbridge: legacy SSE stream closed: {e:?}");
            worker::Error::RustError("upstream SSE stream refused".into())
        })
    });
    let body = futures_util::stream::once(async move { Ok(head) }).chain(rest);
    Response::builder().with_status(200).with_headers(headers).from_stream(body).map_err(Error::internal)
}
