//! The gateway as an OAuth client of an upstream's authorization server (ARCHITECTURE.md
//! "Connect and OAuth flows"): discovery, PKCE, the authorization request and callback, token
//! requests and responses, when to refresh, and the grant a connection keeps. Pure: the Worker
//! glue does the HTTP.

pub mod discovery;
pub mod flow;
pub mod grant;
pub mod pkce;
pub mod refresh;
pub mod token;
