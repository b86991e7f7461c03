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
pub mod plumbing;
pub mod proxy;
pub mod routes;
pub mod rt;
pub mod store;

pub use store::subject::SubjectStore;

use worker::{event, Context, Env, Result};

/// The runtime's request as it is: the worker crate's `Request` would read every property of it
/// (its `cf` object too) on every request, and its `Response` be copied once more on the way out.
#[event(fetch)]
async fn fetch(req: web_sys::Request, env: Env, ctx: Context) -> Result<web_sys::Response> {
    let head = http::Head::of(&req);
    let app = app::App::new(env, ctx, head.origin().to_string());
    Ok(routes::handle(&app, req, head).await)
}
