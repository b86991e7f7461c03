//! The one error type. Every error the gateway answers itself is a variant here, and one
//! exhaustive match gives its status, code and message (API.md §1 error table, §4 errors).
//! Messages never carry a secret: variants hold names, never values.

use crate::core::mcp::{self, Peek};
use crate::core::secret::Secret;
use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub enum Error {
    // --- MCP surface (API.md §1) ---
    /// No key, unknown, expired or revoked key.
    InvalidKey,
    /// The same, on an upstream OAuth-only clients may sign in for: the challenge names its
    /// protected resource metadata, which starts (or renews) the client's OAuth flow.
    SignInRequired {
        challenge: String,
    },
    /// A registration request refused (RFC 7591 §3.2.2: `invalid_redirect_uri`,
    /// `invalid_client_metadata`).
    RegistrationRefused {
        error: &'static str,
        description: String,
    },
    /// The token endpoint refuses (RFC 6749 §5.2: `invalid_request`, `invalid_client`,
    /// `invalid_grant`, `unsupported_grant_type`).
    TokenRefused {
        status: u16,
        error: &'static str,
        description: String,
    },
    /// Too many registrations from this client: try again later.
    TooManyRegistrations {
        retry_after: u64,
    },
    KeyNotAllowed {
        upstream: String,
    },
    UnknownUpstream {
        upstream: String,
    },
    /// The upstream speaks the other transport: `/mcp/` for Streamable HTTP, `/sse/` for legacy.
    WrongTransport {
        upstream: String,
        use_path: String,
    },
    /// The subject has not connected this upstream, or must reconnect.
    ConnectionRequired {
        upstream: String,
        /// A bearer credential for the subject's account: shown to the client, never logged.
        connect_url: Option<Secret>,
    },
    /// A session the gateway made itself, for connecting (`core::connect_tool`), presented after
    /// the subject connected: the client starts a new session, which reaches the upstream.
    OwnSessionEnded {
        upstream: String,
    },
    OriginNotAllowed {
        origin: String,
    },
    BodyTooLarge {
        limit: usize,
    },
    UpstreamUnreachable {
        upstream: String,
    },
    /// The upstream's authorization server failed while a token had to be refreshed.
    AuthorizationServerUnavailable {
        upstream: String,
        retry_after: u64,
    },
    UpstreamTimeout {
        upstream: String,
        after_ms: u64,
    },
    /// The upstream answered 401 to credentials that are not the subject's own.
    UpstreamRejectedCredentials {
        upstream: String,
    },
    /// The upstream sent something the gateway cannot pass on safely (e.g. a bad SSE endpoint).
    UpstreamProtocol {
        upstream: String,
        detail: String,
    },
    /// A template reads an operator value (`secret.*`, `env.*`) that is not set.
    MissingOperatorValue {
        name: String,
    },
    /// A rendered header would not be a valid field value.
    UnsafeHeaderValue {
        header: String,
    },
    /// A legacy SSE message URL that the gateway did not issue, or not for this caller.
    InvalidSessionUrl,
    // --- admin API (API.md §4) ---
    AdminUnauthorized,
    /// Too many wrong admin tokens from this client: its token is not even checked for a while.
    AdminRateLimited {
        retry_after: u64,
    },
    AdminDisabled,
    BadRequest {
        field: String,
        message: String,
    },
    NotFound {
        what: String,
    },
    MethodNotAllowed {
        allow: &'static str,
    },
    /// A subject's Durable Object is briefly unavailable (reset, moved, overloaded): retry.
    StoreUnavailable,
    // --- deployment ---
    EncryptionKeyMissing,
    EncryptionKeyInvalid,
    /// Something failed inside the runtime; the detail goes to the log, not the client.
    Internal {
        detail: String,
    },
}

impl Error {
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Error::Internal { detail: detail.to_string() }
    }

    pub fn bad_request(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::BadRequest { field: field.into(), message: message.into() }
    }

    /// Status, stable code and human message.
    pub fn describe(&self) -> (u16, &'static str, String) {
        match self {
            Error::InvalidKey | Error::SignInRequired { .. } => {
                (401, "invalid_key", "missing, unknown, expired or revoked gateway key".into())
            }
            Error::RegistrationRefused { error, description } => (400, error, description.clone()),
            Error::TokenRefused { status, error, description } => (*status, error, description.clone()),
            Error::TooManyRegistrations { retry_after } => (
                429,
                "too_many_registrations",
                format!("too many client registrations from this address: try again in {retry_after} s"),
            ),
            Error::KeyNotAllowed { upstream } => {
                (403, "key_not_allowed", format!("this key is not allowed for upstream '{upstream}'"))
            }
            Error::UnknownUpstream { upstream } => (404, "unknown_upstream", format!("no upstream named '{upstream}'")),
            Error::WrongTransport { upstream, use_path } => (
                404,
                "wrong_transport",
                format!("upstream '{upstream}' speaks another MCP transport: use {use_path}"),
            ),
            Error::ConnectionRequired { upstream, .. } => (
                403,
                "connection_required",
                format!("connect your account for upstream '{upstream}' first, using the connect link"),
            ),
            Error::OwnSessionEnded { upstream } => (
                404,
                "session_ended",
                format!("the account for upstream '{upstream}' is connected now: start a new session"),
            ),
            Error::OriginNotAllowed { origin } => {
                (403, "origin_not_allowed", format!("origin '{origin}' is not in ALLOWED_ORIGINS"))
            }
            Error::BodyTooLarge { limit } => {
                (413, "body_too_large", format!("request body is larger than the limit of {limit} bytes"))
            }
            Error::UpstreamUnreachable { upstream } => {
                (502, "upstream_unreachable", format!("upstream '{upstream}' could not be reached"))
            }
            Error::UpstreamTimeout { upstream, after_ms } => {
                (504, "upstream_timeout", format!("upstream '{upstream}' did not answer within {after_ms} ms"))
            }
            Error::AuthorizationServerUnavailable { upstream, .. } => (
                503,
                "authorization_server_unavailable",
                format!("the authorization server of upstream '{upstream}' is unavailable; your connection is kept, try again shortly"),
            ),
            Error::UpstreamRejectedCredentials { upstream } => (
                502,
                "upstream_rejected_credentials",
                format!("upstream '{upstream}' rejected the operator-configured credentials"),
            ),
            Error::UpstreamProtocol { upstream, detail } => {
                (502, "upstream_protocol_error", format!("upstream '{upstream}': {detail}"))
            }
            Error::MissingOperatorValue { name } => (
                500,
                "missing_operator_value",
                format!("the upstream's header template needs {{{{{name}}}}}, which is not set"),
            ),
            Error::UnsafeHeaderValue { header } => (
                500,
                "unsafe_header_value",
                format!("the value rendered for header '{header}' contains characters not allowed in a header"),
            ),
            Error::InvalidSessionUrl => (400, "invalid_session_url", "this message URL was not issued for this key".into()),
            Error::AdminUnauthorized => (401, "unauthorized", "missing or wrong admin token".into()),
            Error::AdminRateLimited { retry_after } => (
                429,
                "too_many_attempts",
                format!("too many wrong admin tokens from this client: try again in {retry_after} s"),
            ),
            Error::AdminDisabled => (503, "admin_disabled", "ADMIN_TOKEN is not set: run `wrangler secret put ADMIN_TOKEN`".into()),
            Error::BadRequest { field, message } => (400, "invalid_request", format!("{field}: {message}")),
            Error::NotFound { what } => (404, "not_found", format!("{what} not found")),
            Error::MethodNotAllowed { allow } => (405, "method_not_allowed", format!("allowed methods: {allow}")),
            Error::StoreUnavailable => (
                503,
                "store_unavailable",
                "the gateway's store for this user is briefly unavailable; nothing was changed, try again".into(),
            ),
            Error::EncryptionKeyMissing => (
                503,
                "encryption_key_missing",
                "ENCRYPTION_KEY is not set, so secrets cannot be stored or read: run `wrangler secret put ENCRYPTION_KEY` with 32 random bytes in base64".into(),
            ),
            Error::EncryptionKeyInvalid => (
                500,
                "encryption_key_invalid",
                "ENCRYPTION_KEY must be 32 bytes, base64-encoded, or a comma-separated list of such keys".into(),
            ),
            Error::Internal { .. } => (500, "internal_error", "internal error".into()),
        }
    }

    /// Extra machine-readable facts for clients.
    fn data(&self, code: &str) -> Value {
        let mut data = json!({ "reason": code });
        match self {
            Error::KeyNotAllowed { upstream }
            | Error::UnknownUpstream { upstream }
            | Error::WrongTransport { upstream, .. }
            | Error::OwnSessionEnded { upstream } => data["upstream"] = json!(upstream),
            Error::ConnectionRequired { upstream, connect_url } => {
                data["upstream"] = json!(upstream);
                data["connect_url"] = json!(connect_url.as_ref().map(Secret::expose));
            }
            Error::BodyTooLarge { limit } => data["limit"] = json!(limit),
            Error::BadRequest { field, .. } => data["field"] = json!(field),
            Error::MissingOperatorValue { name } => data["name"] = json!(name),
            _ => {}
        }
        data
    }

    /// JSON-RPC error code: -32001 authentication, -32002 authorization/connection, -32003
    /// upstream trouble, -32600 bad request, -32603 internal (JSON-RPC 2.0 §5.1 server range).
    fn rpc_code(&self, status: u16) -> i64 {
        match status {
            401 => -32001,
            403 => -32002,
            400 | 404 | 405 | 413 => -32600,
            502..=504 => -32003,
            _ => -32603,
        }
    }

    /// Headers the response must carry besides `Content-Type`.
    pub fn extra_headers(&self) -> Vec<(&'static str, String)> {
        match self {
            Error::InvalidKey => vec![("WWW-Authenticate", r#"Bearer realm="mcp-authbridge""#.into())],
            Error::SignInRequired { challenge } => vec![("WWW-Authenticate", challenge.clone())],
            Error::TooManyRegistrations { retry_after } => vec![("Retry-After", retry_after.to_string())],
            Error::AdminUnauthorized => {
                vec![("WWW-Authenticate", r#"Bearer realm="mcp-authbridge-admin""#.into())]
            }
            Error::MethodNotAllowed { allow } => vec![("Allow", (*allow).into())],
            Error::AuthorizationServerUnavailable { retry_after, .. } => {
                vec![("Retry-After", retry_after.to_string())]
            }
            Error::StoreUnavailable => vec![("Retry-After", "1".into())],
            Error::AdminRateLimited { retry_after } => vec![("Retry-After", retry_after.to_string())],
            _ => vec![],
        }
    }

    /// The JSON body: a JSON-RPC error when the request was JSON-RPC, else `{"error": {...}}`.
    pub fn body(&self, request: Option<&Peek>) -> (u16, Value) {
        let (status, code, message) = self.describe();
        let data = self.data(code);
        let body = match (self, request) {
            // OAuth endpoints answer in their RFCs' shape (RFC 7591 §3.2.2, RFC 6749 §5.2).
            (Error::RegistrationRefused { error, description }, _)
            | (Error::TokenRefused { error, description, .. }, _) => {
                json!({ "error": error, "error_description": description })
            }
            (_, Some(p)) if p.jsonrpc => {
                mcp::error_response(p.id.as_ref(), self.rpc_code(status), &message, data)
            }
            _ => json!({ "error": { "code": code, "message": message, "data": data } }),
        };
        (status, body)
    }
}

impl From<crate::core::upstream::FieldError> for Error {
    fn from(e: crate::core::upstream::FieldError) -> Self {
        Error::BadRequest { field: e.field, message: e.message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::mcp::peek;

    #[test]
    fn contract_statuses() {
        let up = || "svc".to_string();
        let cases = [
            (Error::InvalidKey, 401),
            (Error::KeyNotAllowed { upstream: up() }, 403),
            (Error::UnknownUpstream { upstream: up() }, 404),
            (Error::WrongTransport { upstream: up(), use_path: "/sse/svc".into() }, 404),
            (Error::ConnectionRequired { upstream: up(), connect_url: None }, 403),
            (Error::OriginNotAllowed { origin: "https://x".into() }, 403),
            (Error::OwnSessionEnded { upstream: up() }, 404),
            (Error::BodyTooLarge { limit: 10 }, 413),
            (Error::UpstreamUnreachable { upstream: up() }, 502),
            (Error::UpstreamTimeout { upstream: up(), after_ms: 5 }, 504),
            (Error::UpstreamRejectedCredentials { upstream: up() }, 502),
            (Error::MissingOperatorValue { name: "secret.x".into() }, 500),
            (Error::AdminUnauthorized, 401),
            (Error::AdminRateLimited { retry_after: 5 }, 429),
            (Error::bad_request("url", "is required"), 400),
            (Error::StoreUnavailable, 503),
            (Error::internal("boom"), 500),
        ];
        for (err, status) in cases {
            assert_eq!(err.describe().0, status, "{err:?}");
        }
    }

    #[test]
    fn jsonrpc_requests_get_jsonrpc_errors() {
        let p = peek(br#"{"jsonrpc":"2.0","id":4,"method":"tools/list"}"#);
        let err = Error::ConnectionRequired {
            upstream: "gh".into(),
            connect_url: Some(Secret::new("https://gw/connect/mabl_t")),
        };
        let (status, body) = err.body(Some(&p));
        assert_eq!(status, 403);
        assert_eq!(body["id"], 4);
        assert_eq!(body["error"]["data"]["reason"], "connection_required");
        assert_eq!(body["error"]["data"]["connect_url"], "https://gw/connect/mabl_t");
        assert!(!format!("{err:?}").contains("mabl_t"), "Debug never shows a link");
        let (_, plain) = err.body(None);
        assert_eq!(plain["error"]["code"], "connection_required");
        assert_eq!(plain["error"]["data"]["reason"], "connection_required");
    }

    #[test]
    fn internal_details_stay_out_of_the_body() {
        let (_, body) = Error::internal("sealed v1.abcd secret-ish detail").body(None);
        assert!(!body.to_string().contains("abcd"));
        assert_eq!(Error::InvalidKey.extra_headers()[0].1, r#"Bearer realm="mcp-authbridge""#);
    }
}
