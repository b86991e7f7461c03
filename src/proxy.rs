//! The request path (ARCHITECTURE.md "Request path"): authenticate the key, load the upstream,
//! fetch the subject's values in one Durable Object call, render the header templates, forward
//! with the client's credentials stripped, and stream the answer back.

use crate::app::{call, random_bytes, App, Store};
use crate::connect::mint_link;
use crate::core::connect::DEFAULT_LINK_SECONDS;
use crate::core::encoding::hex;
use crate::core::headers::{connection_listed, forward_request_header, forward_response_header};
use crate::core::ids::UpstreamId;
use crate::core::keys;
use crate::core::mcp;
use crate::core::policy::{check_url, same_origin};
use crate::core::seal::Keyring;
use crate::core::sse::{EndpointRewriter, SseError};
use crate::core::template::{RenderError, Source};
use crate::core::upstream::{HeaderPlan, Transport, Upstream};
use crate::error::Error;
use crate::http;
use crate::outbound::{self, OutboundError};
use crate::store::protocol::{
    access_token_value, ConnectionSeen, ConnectionStatus, Op, Refreshed, Resolved, SealedValue, ACCESS_TOKEN,
};
use futures_util::future::join_all;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::rc::Rc;
use url::Url;
use worker::{Headers, Method, Request, Response};

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

/// How much of a rejected request's body is read, only to answer a JSON-RPC request with a
/// JSON-RPC error: an unauthenticated client never makes the gateway buffer more.
const PEEK_LIMIT: usize = 64 * 1024;

pub async fn handle(app: &App, mut req: Request, upstream_id: &str, route: Route) -> Response {
    let has_body = !matches!(req.method(), Method::Get | Method::Delete | Method::Head);
    // Authenticate before reading the body (steps 1–4).
    let prepared = prepare(app, &req, upstream_id, route).await;
    let limit = if prepared.is_ok() { app.config.max_body_bytes } else { PEEK_LIMIT };
    let body = if has_body { Some(http::read_body(&mut req, limit).await) } else { None };
    let peek = match &body {
        Some(Ok(bytes)) => Some(mcp::peek(bytes)),
        _ => None,
    };
    let result = match (prepared, body) {
        (Err(e), _) => Err(e),
        (Ok(_), Some(Err(e))) => Err(e),
        (Ok(p), body) => forward(app, &req, p, body.transpose().ok().flatten()).await,
    };
    result.unwrap_or_else(|e| http::error(&e, peek.as_ref()))
}

/// A request that passed the checks, with everything needed to send it on.
struct Prepared {
    upstream: Upstream,
    plan: HeaderPlan,
    route: Route,
    target: Url,
    subject: String,
    values: BTreeMap<String, SealedValue>,
    connection: Option<ConnectionSeen>,
    /// The subject store's id (the routing part of the key), for minting connect links.
    routing: String,
    store: Store,
    /// For a legacy stream: the keyring that seals its message URLs, taken before connecting.
    keyring: Option<Rc<Keyring>>,
}

/// Steps 1–4: origin, key, upstream, scope, and the subject's sealed values (one Durable Object
/// call). Errors come in the contract's order: 401 before 404 before 403.
async fn prepare(app: &App, req: &Request, upstream_id: &str, route: Route) -> Result<Prepared, Error> {
    if let Some(origin) = http::header(req, "origin") {
        if !app.config.origin_allowed(&origin) {
            return Err(Error::OriginNotAllowed { origin });
        }
    }
    let key = http::header(req, "authorization")
        .and_then(|v| keys::from_authorization(&v))
        .ok_or(Error::InvalidKey)?;
    let upstream = match UpstreamId::parse(upstream_id) {
        Ok(id) => app.config_store()?.upstream(id.as_str()).await?,
        Err(_) => None,
    };
    let plan = match &upstream {
        Some(u) => u.header_plan().map_err(|e| Error::internal(format!("upstream '{upstream_id}': {e}")))?,
        None => HeaderPlan { templates: Vec::new(), sources: Vec::new() },
    };

    let store = app.store_at(&key.routing)?.ok_or(Error::InvalidKey)?;
    let op = Op::Resolve {
        key_hash: hex(&key.hash),
        upstream: upstream_id.into(),
        user: plan.user_names(),
        oauth: plan.uses_oauth(),
    };
    let (subject, values, connection) = match call::<Resolved>(&store, &op).await? {
        Resolved::InvalidKey => return Err(Error::InvalidKey),
        Resolved::NotAllowed if upstream.is_some() => {
            return Err(Error::KeyNotAllowed { upstream: upstream_id.into() })
        }
        Resolved::NotAllowed => return Err(Error::UnknownUpstream { upstream: upstream_id.into() }),
        Resolved::Ok { subject, values, connection, oauth_unavailable } => {
            if oauth_unavailable {
                return Err(Error::AuthorizationServerUnavailable { upstream: upstream_id.into() });
            }
            (subject, values, connection)
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
    let target = match route {
        Route::Mcp | Route::SseOpen => upstream.url.clone(),
        Route::SseMessage => session_target(app, req, &upstream, &subject)?,
    };
    let target = check_url(&target, app.config.allow_private_upstreams).map_err(|e| {
        worker::console_error!("mcp-authbridge: upstream '{upstream_id}' URL refused by policy: {e}");
        Error::UpstreamUnreachable { upstream: upstream_id.into() }
    })?;
    let keyring = if route == Route::SseOpen { Some(app.keyring()?) } else { None };
    let routing = key.routing;
    Ok(Prepared { upstream, plan, route, target, subject, values, connection, routing, store, keyring })
}

/// Steps 5–8: render, send, and relay the answer.
async fn forward(
    app: &App,
    req: &Request,
    mut p: Prepared,
    body: Option<Vec<u8>>,
) -> Result<Response, Error> {
    let upstream_id = p.upstream.id.clone();
    let upstream_id = upstream_id.as_str();
    let uses_oauth = p.plan.uses_oauth();
    // With OAuth, a 401 is answered by one refresh and one retry, which needs the body again.
    let mut retry_body = if uses_oauth { body.clone() } else { None };
    let mut body = body;
    let mut retried = false;
    let listed = connection_listed(http::header(req, "connection").as_deref());
    let forwarded: Vec<(String, String)> =
        req.headers().entries().filter(|(name, _)| forward_request_header(name, &listed)).collect();
    let resp = loop {
        let rendered = match render_headers(app, &p).await {
            Err(Error::ConnectionRequired { .. }) => return Err(connection_required(app, &p).await),
            rendered => rendered?,
        };
        let out = Headers::new();
        for (name, value) in &forwarded {
            out.append(name, value).map_err(Error::internal)?;
        }
        for (name, value) in &rendered {
            out.set(name, value).map_err(Error::internal)?;
        }
        let resp = send(app, req.method(), p.target.as_str(), out, body.take(), upstream_id).await?;
        if resp.status_code() != 401 || !uses_oauth || retried {
            break resp;
        }
        // The token was refused: refresh once (or take the token another request refreshed),
        // then retry once.
        let Some(rejected) = p.values.get(ACCESS_TOKEN).map(|v| v.sealed.clone()) else { break resp };
        let op = Op::RefreshAfterRejection { upstream: upstream_id.into(), rejected };
        match call::<Refreshed>(&p.store, &op).await? {
            Refreshed::Token { access_token, updated_at } => {
                p.connection = Some(ConnectionSeen { status: ConnectionStatus::Connected, updated_at });
                p.values
                    .insert(ACCESS_TOKEN.into(), access_token_value(&p.subject, upstream_id, access_token));
            }
            Refreshed::ConnectionRequired => return Err(connection_required(app, &p).await),
            Refreshed::Unavailable => {
                return Err(Error::AuthorizationServerUnavailable { upstream: upstream_id.into() })
            }
        }
        body = retry_body.take();
        retried = true;
    };
    let status = resp.status_code();

    if status == 401 {
        if p.plan.per_user() {
            let op = Op::SetConnectionStatus {
                upstream: upstream_id.into(),
                status: ConnectionStatus::ConnectionRequired,
                seen: p.connection.map(|c| c.updated_at),
            };
            call::<serde_json::Value>(&p.store, &op).await?;
            return Err(connection_required(app, &p).await);
        }
        return Err(Error::UpstreamRejectedCredentials { upstream: upstream_id.into() });
    }
    if (300..400).contains(&status) && status != 304 {
        // Following it would send the subject's credentials somewhere not configured; relaying
        // it would point the client (and its key) past the gateway.
        let location = resp.headers().get("location").ok().flatten().unwrap_or_default();
        worker::console_error!(
            "mcp-authbridge: upstream '{upstream_id}' answered {status} to {location}; set the upstream's url to the final address"
        );
        return Err(Error::UpstreamProtocol {
            upstream: upstream_id.into(),
            detail: format!("answered a redirect ({status}); the operator must update the upstream's URL"),
        });
    }
    let seen = p.connection.filter(|c| c.status == ConnectionStatus::ConnectionRequired);
    if let (true, Some(seen), true) = (p.plan.per_user(), seen, status < 500) {
        // The values work again (e.g. the operator replaced a subject secret): say so.
        let op = Op::SetConnectionStatus {
            upstream: upstream_id.into(),
            status: ConnectionStatus::Connected,
            seen: Some(seen.updated_at),
        };
        let store = p.store;
        app.ctx.wait_until(async move {
            let _ = call::<serde_json::Value>(&store, &op).await;
        });
    }

    match (p.route, p.keyring) {
        (Route::SseOpen, Some(keyring)) if status == 200 => {
            let is_event_stream = resp
                .headers()
                .get("content-type")
                .ok()
                .flatten()
                .is_some_and(|ct| ct.trim().to_ascii_lowercase().starts_with("text/event-stream"));
            if !is_event_stream {
                return Err(Error::UpstreamProtocol {
                    upstream: upstream_id.into(),
                    detail: "the legacy SSE endpoint did not answer with an event stream".into(),
                });
            }
            let rewrite = EndpointRewrite {
                keyring,
                upstream_id: p.upstream.id,
                upstream_url: p.target,
                subject: p.subject,
            };
            relay_rewritten(resp, rewrite, app.config.upstream_timeout_ms).await
        }
        _ => Ok(relay(resp)),
    }
}

/// The `connection_required` answer, with a fresh connect link for this subject and upstream
/// (API.md §1). If the link cannot be made, the answer still goes out, without one.
async fn connection_required(app: &App, p: &Prepared) -> Error {
    let upstream = p.upstream.id.clone();
    let link = mint_link(app, &p.store, &p.routing, &p.subject, &upstream, DEFAULT_LINK_SECONDS).await;
    let connect_url = link
        .map_err(|e| worker::console_error!("mcp-authbridge: could not make a connect link: {e:?}"))
        .ok()
        .map(|(url, _)| url);
    Error::ConnectionRequired { upstream, connect_url }
}

/// Step 5: collect every value the templates read, then render them.
async fn render_headers(app: &App, p: &Prepared) -> Result<Vec<(String, String)>, Error> {
    let upstream_id = p.upstream.id.as_str();
    let mut values: BTreeMap<&Source, String> = BTreeMap::new();
    let secrets: Vec<(&Source, &String)> = p
        .plan
        .sources
        .iter()
        .filter_map(|s| if let Source::Secret(n) = s { Some((s, n)) } else { None })
        .collect();
    let keyring = if secrets.is_empty() && p.values.is_empty() { None } else { Some(app.keyring()?) };

    if let Some(ring) = &keyring {
        let config = app.config_store()?;
        let sealed = join_all(secrets.iter().map(|(_, name)| config.secret(name))).await;
        for ((source, name), sealed) in secrets.into_iter().zip(sealed) {
            if let Some(sealed) = sealed? {
                values.insert(source, open(ring, &crate::store::kv::secret_context(name), &sealed)?);
            }
        }
    }
    for source in &p.plan.sources {
        match source {
            Source::Env(name) => {
                if let Some(v) = app.env_value(name) {
                    values.insert(source, v);
                }
            }
            Source::User(name) => {
                if let (Some(v), Some(ring)) = (p.values.get(name), &keyring) {
                    values.insert(source, open(ring, &v.context, &v.sealed)?);
                }
            }
            Source::OAuthAccessToken => {
                if let (Some(v), Some(ring)) = (p.values.get(ACCESS_TOKEN), &keyring) {
                    values.insert(source, open(ring, &v.context, &v.sealed)?);
                }
            }
            Source::Subject => {
                values.insert(source, p.subject.clone());
            }
            Source::Secret(_) => {}
        }
    }
    p.plan
        .templates
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
    let bytes =
        app.keyring()?.open(&session_context(&upstream.id), &sealed).map_err(|_| Error::InvalidSessionUrl)?;
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
    /// Maps the upstream's endpoint (usually relative) to `/sse/{upstream}/messages?s=<sealed>`;
    /// the sealed form (`v1.<kid>.<base64url>`) is already URL-safe.
    fn rewrite(&self, endpoint: &str) -> Result<String, String> {
        let target = self.upstream_url.join(endpoint).map_err(|_| "endpoint is not a URL".to_string())?;
        if !same_origin(&self.upstream_url, &target) {
            return Err("endpoint is on another origin than the upstream".into());
        }
        let session = SessionUrl { subject: self.subject.clone(), url: target.to_string() };
        let json = serde_json::to_vec(&session).map_err(|e| e.to_string())?;
        let sealed = self.keyring.seal(&session_context(&self.upstream_id), &json, random_bytes());
        Ok(format!("/sse/{}/messages?s={sealed}", self.upstream_id))
    }
}

/// Step 7: the upstream call, with a deadline for its response headers and no redirects
/// followed.
async fn send(
    app: &App,
    method: Method,
    url: &str,
    headers: Headers,
    body: Option<Vec<u8>>,
    upstream_id: &str,
) -> Result<Response, Error> {
    let timeout_ms = app.config.upstream_timeout_ms;
    outbound::send(method, url, headers, body, timeout_ms).await.map_err(|e| match e {
        OutboundError::Timeout => {
            Error::UpstreamTimeout { upstream: upstream_id.into(), after_ms: timeout_ms }
        }
        OutboundError::Unreachable | OutboundError::Refused(_) => {
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
/// stream (no buffering, no copy into the Worker).
fn relay(upstream: Response) -> Response {
    let status = upstream.status_code();
    let builder = Response::builder().with_status(status).with_headers(response_headers(&upstream));
    match status {
        101 | 103 | 204 | 205 | 304 => builder.empty(),
        _ => builder.body(upstream.body().clone()),
    }
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
