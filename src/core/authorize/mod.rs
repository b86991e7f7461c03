//! The gateway as an OAuth 2.1 authorization server for MCP clients that take no key
//! (API.md §6 in the design: Claude.ai, ChatGPT, Claude Code, VS Code, mcp-remote): the rules,
//! pure. Metadata documents (RFC 9728, RFC 8414), client registration (RFC 7591, and Client ID
//! Metadata Documents), the authorization request (PKCE S256, `resource`), and the token
//! endpoint's rules (single-use codes, refresh rotation with one retry). The routes that use
//! them are not built yet; see docs/API.md "Planned, not built yet".

pub mod client;
pub mod consent;
pub mod grant;
pub mod metadata;
pub mod request;
