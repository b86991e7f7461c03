//! The gateway as an OAuth client of an upstream's authorization server (protocol.md "OAuth,
//! client side"): discovery, PKCE, the authorization request and callback, token requests and
//! responses, and when to refresh. Pure: the Worker glue does the HTTP.

pub mod discovery;
pub mod flow;
pub mod grant;
pub mod pkce;
pub mod token;
