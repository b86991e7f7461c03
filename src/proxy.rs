//! The request path (ARCHITECTURE.md "Request path"): authenticate the key, load the upstream,
//! fetch the subject's values in one Durable Object call, render the header templates, forward
//! with the client's credentials stripped, and stream the answer back.

use crate::app::{call, random_bytes, App};
use crate::core::encoding::{b64url, b64url_decode, hex};
use crate::core::headers::{connection_listed, forward_request_header, forward_response_header};
use crate::core::keys;
use crate::core::mcp;
use crate::core::policy::{check_url, same_origin};
use crate::core::seal::Keyring;
use crate::core::sse::EndpointRewriter;
use crate::core::template::{HeaderTemplate, RenderError, Source};
use crate::core::upstream::{Transport, Upstream};
use crate::error::Error;
use crate::http;
use crate::store::protocol::{ConnectionStatus, Op, Resolved, SealedValue};
use futures_util::future::{join_all, select, Either};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;
use url::Url;
use worker::{
    AbortController, Delay, Fetch, Headers, Method, Request, RequestInit, RequestRedirect, Response,
};

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

/// What the sealed `s` parameter of a legacy message URL carries.
#[derive(Serialize, Deserialize)]
struct SessionUrl {
    subject: String,
    url: String,
}

fn session_context(upstream: &str) -> String {
    format!("sse-session:{upstream}")
}

pub async fn handle(app: &App, mut req: Request, upstream_id: &str, route: Route) -> Response {
    // The body is read first (bounded) so that every error the gateway makes can answer a
    // JSON-RPC request with a JSON-RPC error.
    let body = match req.method() {
        Method::Get | Method::Delete | Method::Head => None,
        _ => match http::read_body(&mut req, app.config.max_body_bytes).await {
            Ok(b) => Some(b),
            Err(e) => return http::error(&e, None),
        },
    };
    let peek = body.as_deref().map(mcp::peek);
    match forward(app, &req, upstream_id, route, body).await {
        Ok(resp) => resp,
        Err(e) => http::error(&e, peek.as_ref()),
    }
}

struct Caller {
    subject: String,
    values: BTreeMap<String, SealedValue>,
    status: Option<ConnectionStatus>,
    store: worker::Stub,
}

/// Steps 1–2 and the Durable Object half of 4: the key, its scope, and the sealed user values.
async fn authenticate(
    app: &App,
    req: &Request,
    upstream_id: &str,
    upstream: Option<&Upstream>,
    user_names: Vec<String>,
) -> Result<Caller, Error> {
    let key = http::header(req, "authorization")
        .and_then(|v| keys::from_authorization(&v))
        .ok_or(Error::InvalidKey)?;
    let store = app.store_at(&key.routing)?.ok_or(Error::InvalidKey)?;
    let op = Op::Resolve { key_hash: hex(&key.hash), upstream: upstream_id.to_string(), user: user_names };
    match call::<Resolved>(&store, &op).await? {
        Resolved::InvalidKey => Err(Error::InvalidKey),
        Resolved::NotAllowed if upstream.is_none() => {
            Err(Error::UnknownUpstream { upstream: upstream_id.into() })
        }
        Resolved::NotAllowed => Err(Error::KeyNotAllowed { upstream: upstream_id.into() }),
        Resolved::Ok { subject, values, status } => Ok(Caller { subject, values, status, store }),
    }
}

async fn forward(
    app: &App,
    req: &Request,
    upstream_id: &str,
    route: Route,
    body: Option<Vec<u8>>,
) -> Result<Response, Error> {
    if let Some(origin) = http::header(req, "origin") {
        if !app.config.origin_allowed(&origin) {
            return Err(Error::OriginNotAllowed { origin });
        }
    }
    let upstream = app.config_store()?.upstream(upstream_id).await?;
    let templates: Vec<(String, HeaderTemplate)> = upstream
        .as_ref()
        .map(|u| u.templates().map(|(n, t)| (n.to_string(), t)).collect())
        .unwrap_or_default();
    let mut user_names: Vec<String> = templates
        .iter()
        .flat_map(|(_, t)| t.sources())
        .filter_map(|s| match s {
            Source::User(n) => Some(n.clone()),
            _ => None,
        })
        .collect();
    user_names.sort();
    user_names.dedup();

    let caller = authenticate(app, req, upstream_id, upstream.as_ref(), user_names).await?;
    let upstream = upstream.ok_or_else(|| Error::UnknownUpstream { upstream: upstream_id.into() })?;
    let wanted = match route {
        Route::Mcp => Transport::StreamableHttp,
        Route::SseOpen | Route::SseMessage => Transport::Sse,
    };
    if upstream.transport != wanted {
        let use_path = match upstream.transport {
            Transport::Sse => format!("/sse/{upstream_id}"),
            Transport::StreamableHttp => format!("/mcp/{upstream_id}"),
        };
        return Err(Error::WrongTransport { upstream: upstream_id.into(), use_path });
    }

    let target = match route {
        Route::Mcp | Route::SseOpen => upstream.url.clone(),
        Route::SseMessage => session_target(app, req, &upstream, &caller.subject)?,
    };
    let target = check_url(&target, app.config.allow_private_upstreams).map_err(|e| {
        worker::console_error!("mcp-authbridge: upstream '{upstream_id}' URL refused by policy: {e}");
        Error::UpstreamUnreachable { upstream: upstream_id.into() }
    })?;

    let rendered = render_headers(app, upstream_id, &templates, &caller).await?;
    let uses_user_values = templates.iter().flat_map(|(_, t)| t.sources()).any(Source::is_per_user);

    let out = Headers::new();
    let listed = connection_listed(http::header(req, "connection").as_deref());
    for (name, value) in req.headers().entries() {
        if forward_request_header(&name, &listed) {
            out.append(&name, &value).map_err(Error::internal)?;
        }
    }
    for (name, value) in &rendered {
        out.set(name, value).map_err(Error::internal)?;
    }

    let resp = send(app, req.method(), target.as_str(), out, body, upstream_id).await?;

    if resp.status_code() == 401 {
        if uses_user_values {
            let op = Op::SetConnectionStatus {
                upstream: upstream_id.into(),
                status: ConnectionStatus::ConnectionRequired,
            };
            call::<serde_json::Value>(&caller.store, &op).await?;
            return Err(Error::ConnectionRequired { upstream: upstream_id.into(), connect_url: None });
        }
        return Err(Error::UpstreamRejectedCredentials { upstream: upstream_id.into() });
    }
    if uses_user_values && caller.status == Some(ConnectionStatus::ConnectionRequired) {
        // The values work again (e.g. the operator replaced a subject secret): say so.
        let store = caller.store;
        let op =
            Op::SetConnectionStatus { upstream: upstream_id.into(), status: ConnectionStatus::Connected };
        app.ctx.wait_until(async move {
            let _ = call::<serde_json::Value>(&store, &op).await;
        });
    }

    let is_event_stream = resp
        .headers()
        .get("content-type")
        .ok()
        .flatten()
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("text/event-stream"));
    if route == Route::SseOpen && resp.status_code() == 200 && is_event_stream {
        let rewrite = EndpointRewrite {
            keyring: Rc::new(app.keyring()?),
            upstream_id: upstream_id.to_string(),
            upstream_url: target,
            subject: caller.subject,
        };
        return relay_rewritten(resp, rewrite);
    }
    Ok(relay(resp))
}

/// Steps 4–5: collect every value the templates read, then render them.
async fn render_headers(
    app: &App,
    upstream_id: &str,
    templates: &[(String, HeaderTemplate)],
    caller: &Caller,
) -> Result<Vec<(String, String)>, Error> {
    let sources: Vec<&Source> = templates.iter().flat_map(|(_, t)| t.sources()).collect();
    let mut values: BTreeMap<Source, String> = BTreeMap::new();
    values.insert(Source::Subject, caller.subject.clone());

    let needs_keyring = sources.iter().any(|s| matches!(s, Source::Secret(_)))
        || sources.iter().any(|s| matches!(s, Source::User(n) if caller.values.contains_key(n)));
    let keyring = if needs_keyring { Some(app.keyring()?) } else { None };

    let mut secret_names: Vec<&String> =
        sources.iter().filter_map(|s| if let Source::Secret(n) = s { Some(n) } else { None }).collect();
    secret_names.sort();
    secret_names.dedup();
    if !secret_names.is_empty() {
        let config = app.config_store()?;
        let sealed = join_all(secret_names.iter().map(|n| config.secret(n))).await;
        for (name, sealed) in secret_names.into_iter().zip(sealed) {
            if let (Some(sealed), Some(ring)) = (sealed?, &keyring) {
                let plain = open(ring, &crate::store::kv::secret_context(name), &sealed)?;
                values.insert(Source::Secret(name.clone()), plain);
            }
        }
    }
    for source in &sources {
        match source {
            Source::Env(name) => {
                if let Some(v) = app.env_value(name) {
                    values.insert((*source).clone(), v);
                }
            }
            Source::User(name) => {
                if let (Some(v), Some(ring)) = (caller.values.get(name), &keyring) {
                    values.insert((*source).clone(), open(ring, &v.context, &v.sealed)?);
                }
            }
            // OAuth tokens arrive with connect links; until then `{{oauth.access_token}}` is
            // always missing, which answers `connection_required`.
            Source::OAuthAccessToken | Source::Secret(_) | Source::Subject => {}
        }
    }
    templates
        .iter()
        .map(|(name, t)| match t.render(|s| values.get(s).map(String::as_str)) {
            Ok(v) => Ok((name.clone(), v)),
            Err(RenderError::Missing(s)) if s.is_per_user() => {
                Err(Error::ConnectionRequired { upstream: upstream_id.into(), connect_url: None })
            }
            Err(RenderError::Missing(s)) => Err(Error::MissingOperatorValue { name: s.to_string() }),
            Err(RenderError::Unsafe) => Err(Error::UnsafeHeaderValue { header: name.clone() }),
        })
        .collect()
}

fn open(ring: &Keyring, context: &str, sealed: &str) -> Result<String, Error> {
    ring.open_string(context, sealed)
        .map_err(|e| Error::internal(format!("cannot open value sealed for {context}: {e}")))
}

/// The upstream message URL a legacy client was given, checked: sealed by us, for this
/// upstream, for this subject, on the upstream's own origin.
fn session_target(app: &App, req: &Request, upstream: &Upstream, subject: &str) -> Result<String, Error> {
    let url = req.url().map_err(Error::internal)?;
    let sealed = url
        .query_pairs()
        .find(|(k, _)| k == "s")
        .map(|(_, v)| v.into_owned())
        .ok_or(Error::InvalidSessionUrl)?;
    let plain =
        b64url_decode(&sealed).and_then(|b| String::from_utf8(b).ok()).ok_or(Error::InvalidSessionUrl)?;
    let bytes =
        app.keyring()?.open(&session_context(&upstream.id), &plain).map_err(|_| Error::InvalidSessionUrl)?;
    let session: SessionUrl = serde_json::from_slice(&bytes).map_err(|_| Error::InvalidSessionUrl)?;
    let base = Url::parse(&upstream.url).map_err(Error::internal)?;
    let target = Url::parse(&session.url).map_err(|_| Error::InvalidSessionUrl)?;
    if session.subject != subject || !same_origin(&base, &target) {
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
    /// Maps the upstream's endpoint (usually relative) to `/sse/{upstream}/messages?s=<sealed>`.
    fn rewrite(&self, endpoint: &str) -> Result<String, String> {
        let target = self.upstream_url.join(endpoint).map_err(|_| "endpoint is not a URL".to_string())?;
        if !same_origin(&self.upstream_url, &target) {
            return Err("endpoint is on another origin than the upstream".into());
        }
        let session = SessionUrl { subject: self.subject.clone(), url: target.to_string() };
        let json = serde_json::to_vec(&session).map_err(|e| e.to_string())?;
        let sealed = self.keyring.seal(&session_context(&self.upstream_id), &json, random_bytes());
        Ok(format!("/sse/{}/messages?s={}", self.upstream_id, b64url(sealed.as_bytes())))
    }
}

/// Step 7: the upstream call, with a deadline for its response headers and no redirects
/// followed (a redirect is passed to the client as it came).
async fn send(
    app: &App,
    method: Method,
    url: &str,
    headers: Headers,
    body: Option<Vec<u8>>,
    upstream_id: &str,
) -> Result<Response, Error> {
    let mut init = RequestInit::new();
    init.with_method(method).with_headers(headers).with_redirect(RequestRedirect::Manual);
    if let Some(body) = body {
        init.with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
    }
    let request = Request::new_with_init(url, &init).map_err(Error::internal)?;
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(request);
    let sending = std::pin::pin!(fetch.send_with_signal(&signal));
    let timeout_ms = app.config.upstream_timeout_ms;
    let deadline = std::pin::pin!(Delay::from(Duration::from_millis(timeout_ms)));
    match select(sending, deadline).await {
        Either::Left((Ok(resp), _)) => Ok(resp),
        Either::Left((Err(_), _)) => Err(Error::UpstreamUnreachable { upstream: upstream_id.into() }),
        Either::Right(_) => {
            controller.abort();
            Err(Error::UpstreamTimeout { upstream: upstream_id.into(), after_ms: timeout_ms })
        }
    }
}

fn response_headers(upstream: &Response) -> Headers {
    let out = Headers::new();
    let listed = connection_listed(upstream.headers().get("connection").ok().flatten().as_deref());
    for (name, value) in upstream.headers().entries() {
        if name != "content-length" && forward_response_header(&name, &listed) {
            let _ = out.append(&name, &value);
        }
    }
    out
}

/// Step 7 for Streamable HTTP: status and body pass through untouched, the body as the same
/// stream (no buffering, no copy into the Worker).
fn relay(upstream: Response) -> Response {
    let status = upstream.status_code();
    let headers = response_headers(&upstream);
    let builder = Response::builder().with_status(status).with_headers(headers);
    match status {
        101 | 103 | 204 | 205 | 304 => builder.empty(),
        _ => builder.body(upstream.body().clone()),
    }
}

/// Legacy SSE: the same, with the endpoint event rewritten on the way.
fn relay_rewritten(mut upstream: Response, rewrite: EndpointRewrite) -> Result<Response, Error> {
    let headers = response_headers(&upstream);
    let stream = upstream.stream().map_err(Error::internal)?;
    let mut rewriter = EndpointRewriter::new(move |e: &str| rewrite.rewrite(e));
    let rewritten = stream.map(move |chunk| {
        let chunk = chunk?;
        rewriter.push(&chunk).map_err(|e| {
            worker::console_error!("mcp-authbridge: legacy SSE stream closed: {e:?}");
            worker::Error::RustError("upstream SSE stream refused".into())
        })
    });
    Response::builder().with_status(200).with_headers(headers).from_stream(rewritten).map_err(Error::internal)
}
