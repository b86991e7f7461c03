//! mcp-authbridge: a Cloudflare Worker that lets MCP clients which can send only one
//! `Authorization` value reach MCP servers that need other headers or per-user credentials.
//! `lib.rs` only wires; `routes.rs` is the table of contents.

pub mod admin;
pub mod app;
pub mod authorize;
pub mod connect;
pub mod console;
pub mod core;
pub mod error;
pub mod http;
pub mod oauth;
pub mod oauth_client;
pub mod outbound;
pub mod proxy;
pub mod routes;
pub mod rt;
pub mod store;

pub use store::subject::SubjectStore;

use worker::{event, Context, Env, Request, Response, Result};

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let origin = req.url().map(|u| u.origin().ascii_serialization()).unwrap_or_default();
    let app = app::App::new(env, ctx, origin);
    Ok(routes::handle(&app, req).await)
}
