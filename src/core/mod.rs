//! The pure core: no `worker::` types, no I/O, native unit tests beside each module.
//! Everything the Worker glue decides about bytes, names, URLs and secrets is decided here.

pub mod authorize;
pub mod body;
pub mod cache;
pub mod config;
pub mod connect;
pub mod connect_tool;
pub mod connections;
pub mod console;
pub mod encoding;
pub mod headers;
pub mod ids;
pub mod keys;
pub mod mcp;
pub mod oauth;
pub mod policy;
pub mod request;
pub mod request_log;
pub mod seal;
pub mod secret;
pub mod sse;
pub mod template;
pub mod throttle;
pub mod upstream;
