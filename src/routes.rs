//! The one route table: every URL the product answers, top to bottom.

use crate::admin;
use crate::app::App;
use crate::authorize;
use crate::console;
use crate::core::headers::is_token;
use crate::error::Error;
use crate::http::{self, Head};
use crate::proxy::{self, Route};
use futures_util::future::{FutureExt, LocalBoxFuture};
use std::future::Future;
use worker::{Method, Request, Response};

const MCP_ALLOW: &str = "GET, POST, DELETE, OPTIONS";

/// Every request. The MCP surface is served straight from the runtime's request (its method,
/// URL and headers read once, `http::Head`), and answers the runtime's response; the pages and
/// the APIs below it take the worker crate's types.
pub async fn handle(app: &App, raw: web_sys::Request, head: Head) -> web_sys::Response {
    let segments: Option<Vec<String>> =
        head.path().trim_start_matches('/').split('/').map(http::percent_decode).collect();
    let Some(segments) = segments else {
        return http::error(&Error::NotFound { what: "route".into() }, None).into();
    };
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = head.method.clone();
    let origin = head.header("origin");

    let result: Result<web_sys::Response, Error> = match (method.clone(), segs.as_slice()) {
        // MCP surface (API.md §1)
        (Method::Options, ["mcp" | "sse", ..]) => Ok(preflight(app, &head, origin.as_deref()).into()),
        (Method::Post | Method::Get | Method::Delete, ["mcp", upstream]) => {
            Ok(proxy::handle(app, raw, &head, upstream, Route::Mcp).await)
        }
        (_, ["mcp", _]) => Err(Error::MethodNotAllowed { allow: MCP_ALLOW }),
        (Method::Get, ["sse", upstream]) => {
            Ok(proxy::handle(app, raw, &head, upstream, Route::SseOpen).await)
        }
        (_, ["sse", _]) => Err(Error::MethodNotAllowed { allow: "GET, OPTIONS" }),
        (Method::Post, ["sse", upstream, "messages"]) => {
            Ok(proxy::handle(app, raw, &head, upstream, Route::SseMessage).await)
        }
        (_, ["sse", _, "messages"]) => Err(Error::MethodNotAllowed { allow: "POST, OPTIONS" }),
        _ => cold(pages_and_apis(app, Request::from(raw), method, &segs)).await.map(Into::into),
    };
    let resp = result.unwrap_or_else(|e| http::error(&e, None).into());
    if segs.first().is_some_and(|s| *s == "mcp" || *s == "sse") {
        with_cors(app, resp, origin.as_deref())
    } else {
        resp
    }
}

/// The rest of the table: health, connect links, the authorization server and the admin API.
async fn pages_and_apis(app: &App, req: Request, method: Method, segs: &[&str]) -> Result<Response, Error> {
    match (method.clone(), segs) {
        (Method::Get, ["healthz"]) => Ok(http::text(200, "ok")),

        // Connect links (API.md §3)
        (Method::Get, ["connect", token]) => cold(crate::connect::page(app, &req, token)).await,
        (Method::Post, ["connect", token]) => cold(crate::connect::submit(app, req, token)).await,
        (_, ["connect", _]) => Err(Error::MethodNotAllowed { allow: "GET, POST" }),
        (Method::Get, ["oauth", "callback"] | ["oauth", "callback", _]) => {
            cold(crate::connect::callback(app, &req)).await
        }
        (Method::Get, ["oauth", "client-metadata.json"]) => Ok(crate::connect::client_metadata(app)),

        // The gateway as an authorization server for OAuth-only MCP clients
        (Method::Get, [".well-known", "oauth-protected-resource", route @ ("mcp" | "sse"), upstream]) => {
            cold(authorize::protected_resource(app, route, upstream)).await
        }
        (Method::Get, [".well-known", "oauth-authorization-server"]) => {
            Ok(authorize::authorization_server(app))
        }
        (Method::Post, ["oauth", "register"]) => cold(authorize::register(app, req)).await,
        (Method::Get, ["oauth", "authorize"]) => cold(authorize::authorize_page(app, &req)).await,
        (Method::Post, ["oauth", "authorize"]) => cold(authorize::authorize_submit(app, req)).await,
        (_, ["oauth", "authorize"]) => Err(Error::MethodNotAllowed { allow: "GET, POST" }),
        (Method::Post, ["oauth", "token"]) => cold(authorize::token(app, req)).await,
        (_, ["oauth", "token"]) => Err(Error::MethodNotAllowed { allow: "POST" }),
        (Method::Post, ["oauth", "revoke"]) => cold(authorize::revoke(app, req)).await,
        (_, ["oauth", "revoke"]) => Err(Error::MethodNotAllowed { allow: "POST" }),
        (_, ["oauth", "register"]) => Err(Error::MethodNotAllowed { allow: "POST" }),

        // Admin API (API.md §4). Its OpenAPI document is public: it holds nothing secret, and
        // fetching it should neither need the token nor count toward the wrong-token limit.
        (Method::Get, ["admin", "v1", "openapi.json"]) => Ok(admin::openapi()),
        (_, ["admin", "v1", "openapi.json"]) => Err(Error::MethodNotAllowed { allow: "GET" }),
        (_, ["admin", "v1", ..]) => {
            cold(async {
                admin::authorize(app, &req).await?;
                admin_route(app, req, method, &segs[2..]).await
            })
            .await
        }

        // Operator console (API.md §4a): pages for the operations above, signed in once.
        (_, ["admin", ..]) => Ok(cold(console_route(app, req, method, &segs[1..])).await),

        _ => Err(Error::NotFound { what: "route".into() }),
    }
}

/// A handler off the MCP hot path, behind a boxed future: its code is a function of its own,
/// which the runtime compiles when first used, instead of part of the one every request's
/// first call compiles (the cold first request; bench/RESULTS.md).
fn cold<'a, T>(handler: impl Future<Output = T> + 'a) -> LocalBoxFuture<'a, T> {
    handler.boxed_local()
}

async fn admin_route(app: &App, req: Request, method: Method, path: &[&str]) -> Result<Response, Error> {
    match (method, path) {
        (Method::Get, ["upstreams"]) => admin::list_upstreams(app).await,
        (Method::Put, ["upstreams", id]) => admin::put_upstream(app, req, id).await,
        (Method::Get, ["upstreams", id]) => admin::get_upstream(app, id).await,
        (Method::Delete, ["upstreams", id]) => admin::delete_upstream(app, id).await,
        (Method::Put, ["secrets", name]) => admin::put_secret(app, req, name).await,
        (Method::Put, ["subjects", subject, "secrets", name]) => {
            admin::put_subject_secret(app, req, subject, name).await
        }
        (Method::Post, ["keys"]) => admin::create_key(app, req).await,
        (Method::Get, ["keys"]) => admin::list_keys(app, &req).await,
        (Method::Delete, ["keys", id]) => admin::revoke_key(app, id).await,
        (Method::Get, ["connections"]) => admin::list_connections(app, &req).await,
        (Method::Get, ["grants"]) => admin::list_grants(app, &req).await,
        (Method::Delete, ["grants", id]) => admin::revoke_grant(app, id).await,
        (Method::Post, ["links"]) => admin::create_link(app, req).await,
        (Method::Post, ["reseal"]) => admin::reseal(app, req).await,
        (Method::Delete, ["subjects", subject, "connections", upstream]) => {
            admin::delete_connection(app, subject, upstream).await
        }
        (_, ["upstreams"]) => Err(Error::MethodNotAllowed { allow: "GET" }),
        (_, ["upstreams", _]) => Err(Error::MethodNotAllowed { allow: "GET, PUT, DELETE" }),
        (_, ["secrets", _]) | (_, ["subjects", _, "secrets", _]) => {
            Err(Error::MethodNotAllowed { allow: "PUT" })
        }
        (_, ["keys"]) => Err(Error::MethodNotAllowed { allow: "GET, POST" }),
        (_, ["keys", _]) => Err(Error::MethodNotAllowed { allow: "DELETE" }),
        (_, ["connections"] | ["grants"]) => Err(Error::MethodNotAllowed { allow: "GET" }),
        (_, ["grants", _]) => Err(Error::MethodNotAllowed { allow: "DELETE" }),
        (_, ["links"] | ["reseal"]) => Err(Error::MethodNotAllowed { allow: "POST" }),
        (_, ["subjects", _, "connections", _]) => Err(Error::MethodNotAllowed { allow: "DELETE" }),
        _ => Err(Error::NotFound { what: "admin route".into() }),
    }
}

/// The console's routes: the sign-in page and the stylesheet open to anyone, the rest only with
/// a live session. Errors are pages, not JSON.
async fn console_route(app: &App, req: Request, method: Method, path: &[&str]) -> Response {
    let result = match (method.clone(), path) {
        (Method::Get, []) => Ok(console::to_console()),
        (Method::Get, ["console.css"]) => Ok(console::stylesheet()),
        (Method::Get, ["sign-in"]) => Ok(console::sign_in_page(app, &req)),
        (Method::Post, ["sign-in"]) => console::sign_in(app, req).await,
        (_, ["sign-in"]) => Err(Error::MethodNotAllowed { allow: "GET, POST" }),
        _ => match console::session(app, &req) {
            Some(session) => console_page(app, req, method, path, &session).await,
            None => Ok(console::signed_out(&method)),
        },
    };
    result.unwrap_or_else(|e| console::error_page(&e))
}

async fn console_page(
    app: &App,
    req: Request,
    method: Method,
    path: &[&str],
    session: &console::Session,
) -> Result<Response, Error> {
    use console::Action;
    match (method, path) {
        (Method::Get, [""]) => console::overview(app, &req, session).await,
        (Method::Post, ["sign-out"]) => console::sign_out(app, req, session).await,
        (Method::Get, ["new-upstream"]) => Ok(console::new_upstream(session)),
        (Method::Post, ["upstreams"]) => console::save_upstream(app, req, session, None).await,
        (Method::Get, ["upstreams", id]) => console::edit_upstream(app, &req, session, id).await,
        (Method::Post, ["upstreams", id]) => console::save_upstream(app, req, session, Some(id)).await,
        (Method::Post, ["upstreams", id, "delete"]) => console::delete_upstream(app, req, session, id).await,
        (Method::Get, ["subjects"]) => console::subject(app, &req, session).await,
        (Method::Post, ["keys"]) => console::mint_key(app, req, session).await,
        (Method::Post, ["links"]) => console::mint_link(app, req, session).await,
        (Method::Post, ["keys", id, "revoke"]) => {
            console::subject_action(app, req, session, Action::RevokeKey(id)).await
        }
        (Method::Post, ["grants", id, "revoke"]) => {
            console::subject_action(app, req, session, Action::RevokeGrant(id)).await
        }
        (Method::Post, ["connections", upstream, "disconnect"]) => {
            console::subject_action(app, req, session, Action::Disconnect(upstream)).await
        }
        (_, [""] | ["new-upstream"] | ["subjects"]) => Err(Error::MethodNotAllowed { allow: "GET" }),
        (_, ["upstreams", _]) => Err(Error::MethodNotAllowed { allow: "GET, POST" }),
        (_, ["sign-out"] | ["upstreams"] | ["keys"] | ["links"])
        | (
            _,
            ["upstreams", _, "delete"] | ["keys" | "grants", _, "revoke"] | ["connections", _, "disconnect"],
        ) => Err(Error::MethodNotAllowed { allow: "POST" }),
        _ => Err(Error::NotFound { what: "console page".into() }),
    }
}

/// Headers a browser client from an allowed origin may send and read (MCP transport headers).
const CORS_ALLOW_HEADERS: &str =
    "Authorization, Content-Type, Accept, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID, Mcp-Method, Mcp-Name";
const CORS_EXPOSE_HEADERS: &str = "Mcp-Session-Id, MCP-Protocol-Version, WWW-Authenticate, Retry-After";

fn preflight(app: &App, head: &Head, origin: Option<&str>) -> Response {
    match origin {
        Some(o) if app.config.origin_allowed(o, &app.public_origin) => {
            let resp = http::empty(204);
            let _ = resp.headers().set("Access-Control-Allow-Methods", MCP_ALLOW);
            // Browsers take `Mcp-Param-*` in this list literally, not as a pattern: echo what the
            // browser asks for when it is a plain list of header names.
            let asked = head
                .header("access-control-request-headers")
                .filter(|h| h.split(',').all(|n| is_token(n.trim())));
            let allow = match asked {
                Some(asked) => format!("{CORS_ALLOW_HEADERS}, {asked}"),
                None => CORS_ALLOW_HEADERS.to_string(),
            };
            let _ = resp.headers().set("Access-Control-Allow-Headers", &allow);
            let _ = resp.headers().set("Access-Control-Max-Age", "600");
            resp
        }
        Some(o) => http::error(&Error::OriginNotAllowed { origin: o.to_string() }, None),
        None => http::empty(204),
    }
}

fn with_cors(app: &App, resp: web_sys::Response, origin: Option<&str>) -> web_sys::Response {
    if let Some(o) = origin.filter(|o| app.config.origin_allowed(o, &app.public_origin)) {
        let headers = resp.headers();
        let _ = headers.set("Access-Control-Allow-Origin", o);
        let _ = headers.set("Access-Control-Expose-Headers", CORS_EXPOSE_HEADERS);
        let _ = headers.append("Vary", "Origin");
    }
    resp
}
