//! What the gateway publishes about itself as an authorization server: RFC 9728 protected
//! resource metadata for each MCP URL, RFC 8414 authorization server metadata, and the
//! `WWW-Authenticate` challenge that points a client at them (MCP authorization, 2025-06-18).

use serde_json::{json, Value};

/// The one scope the gateway issues: use of the MCP URL the token is for.
pub const SCOPE: &str = "mcp";

/// Where a resource's metadata lives: the well-known prefix inserted before its path (RFC 9728 §3.1).
pub fn protected_resource_metadata_url(public_origin: &str, resource_path: &str) -> String {
    format!("{public_origin}/.well-known/oauth-protected-resource{resource_path}")
}

/// RFC 9728 metadata of the MCP URL `{public_origin}{resource_path}`.
pub fn protected_resource(public_origin: &str, resource_path: &str) -> Value {
    json!({
        "resource": format!("{public_origin}{resource_path}"),
        "authorization_servers": [public_origin],
        "scopes_supported": [SCOPE],
        "bearer_methods_supported": ["header"],
    })
}

/// How a client authenticates at the token and revocation endpoints.
const CLIENT_AUTH_METHODS: [&str; 3] = ["none", "client_secret_post", "client_secret_basic"];

/// RFC 8414 metadata: the issuer is the gateway's origin. Clients register (RFC 7591) or name
/// their Client ID Metadata Document (an https `client_id`).
pub fn authorization_server(public_origin: &str) -> Value {
    json!({
        "issuer": public_origin,
        "authorization_endpoint": format!("{public_origin}/oauth/authorize"),
        "token_endpoint": format!("{public_origin}/oauth/token"),
        "registration_endpoint": format!("{public_origin}/oauth/register"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "revocation_endpoint": format!("{public_origin}/oauth/revoke"),
        "revocation_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "scopes_supported": [SCOPE],
        "client_id_metadata_document_supported": true,
        "authorization_response_iss_parameter_supported": true,
    })
}

/// The challenge of a 401 on an MCP URL with sign-in: names its metadata, and says
/// `invalid_token` when a token was presented but is expired or revoked (RFC 6750 §3).
pub fn challenge(public_origin: &str, resource_path: &str, invalid_token: bool) -> String {
    let metadata = protected_resource_metadata_url(public_origin, resource_path);
    let error = if invalid_token { r#", error="invalid_token""# } else { "" };
    format!(r#"Bearer realm="mcp-authbridge", resource_metadata="{metadata}"{error}"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_name_each_other() {
        let prm = protected_resource("https://gw.example", "/mcp/tickets");
        assert_eq!(prm["resource"], "https://gw.example/mcp/tickets");
        assert_eq!(prm["authorization_servers"][0], "https://gw.example");
        let asm = authorization_server("https://gw.example");
        assert_eq!(asm["issuer"], "https://gw.example");
        assert_eq!(asm["code_challenge_methods_supported"], json!(["S256"]));
        assert!(asm["token_endpoint_auth_methods_supported"].as_array().unwrap().contains(&json!("none")));
        assert_eq!(asm["revocation_endpoint"], "https://gw.example/oauth/revoke");
        assert_eq!(
            asm["revocation_endpoint_auth_methods_supported"],
            asm["token_endpoint_auth_methods_supported"]
        );
        assert_eq!(
            challenge("https://gw.example", "/mcp/tickets", false),
            r#"Bearer realm="mcp-authbridge", resource_metadata="https://gw.example/.well-known/oauth-protected-resource/mcp/tickets""#
        );
        assert!(challenge("https://gw.example", "/sse/t", true).ends_with(r#", error="invalid_token""#));
    }
}
