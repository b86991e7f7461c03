//! Which headers cross the gateway, in each direction (API.md §1, RFC 9110 §5, §7.6.1).

/// RFC 9110 §5.6.2 `token`.
pub fn is_token(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

/// A header value the gateway will send: RFC 9110 §5.5 `field-value` without `obs-text`, i.e.
/// visible ASCII, spaces and tabs; never CR, LF, NUL or other controls. Non-ASCII is refused too:
/// the runtime's `Headers` are byte strings, so "é" would leave as some other byte (or fail).
pub fn is_field_value(value: &str) -> bool {
    value.bytes().all(|c| c == b'\t' || (b' '..=b'~').contains(&c))
}

/// RFC 9110 §7.6.1 hop-by-hop fields and their relatives: never forwarded, never configured.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// Headers the MCP transport defines: the client's own, forwarded untouched, never configured.
const MCP_HEADERS: [&str; 6] =
    ["mcp-session-id", "mcp-protocol-version", "last-event-id", "mcp-method", "mcp-name", "accept"];

fn is_mcp_header(lower: &str) -> bool {
    MCP_HEADERS.contains(&lower) || lower == "content-type" || lower.starts_with("mcp-param-")
}

fn is_hop_by_hop(lower: &str) -> bool {
    HOP_BY_HOP.contains(&lower)
}

/// Why a configured header name is refused.
pub fn configured_name_error(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if !is_token(name) {
        Some("is not a valid header name (RFC 9110 token)")
    } else if is_mcp_header(&lower) {
        Some("is an MCP transport header: the client's value always passes untouched")
    } else if is_hop_by_hop(&lower) || lower.starts_with("proxy-") {
        Some("is a hop-by-hop or framing header the gateway manages")
    } else if lower.starts_with("cf-") && !lower.starts_with("cf-access-") {
        // Cloudflare sets these itself; CF-Access-Client-Id/-Secret (service tokens for an
        // upstream behind Cloudflare Access) are the operator's to send.
        Some("is reserved by Cloudflare")
    } else {
        None
    }
}

/// Whether a header of the client's request goes on to the upstream. `listed` holds the
/// (lower-case) names the request's `Connection` header declared hop-by-hop.
pub fn forward_request_header(lower: &str, listed: &[String]) -> bool {
    !(lower == "authorization"
        || lower == "cookie"
        || lower == "origin"
        || lower.starts_with("proxy-")
        || lower.starts_with("cf-")
        || lower.starts_with("x-forwarded-")
        || lower == "x-real-ip"
        || is_hop_by_hop(lower)
        || listed.iter().any(|l| l == lower))
}

/// Whether a header of the upstream's response goes back to the client.
pub fn forward_response_header(lower: &str, listed: &[String]) -> bool {
    !(lower == "www-authenticate"
        || lower == "set-cookie"
        || lower.starts_with("proxy-")
        || lower.starts_with("access-control-")
        || is_hop_by_hop(lower)
        || listed.iter().any(|l| l == lower))
}

/// The names a `Connection` header lists, lower-cased.
pub fn connection_listed(value: Option<&str>) -> Vec<String> {
    value.unwrap_or("").split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_field_values() {
        assert!(is_token("X-API-KEY"));
        assert!(is_token("x_tenant.id"));
        assert!(!is_token(""));
        assert!(!is_token("X API"));
        assert!(!is_token("X:API"));
        assert!(!is_token("Ä"));
        assert!(is_field_value("Bearer abc=="));
        assert!(is_field_value("a\tb"));
        assert!(!is_field_value("a\r\nb"));
        assert!(!is_field_value("a\0b"));
        assert!(!is_field_value("a\x7fb"));
        assert!(!is_field_value("café"));
    }

    #[test]
    fn configured_names() {
        for ok in ["X-API-KEY", "Authorization", "X-Tenant-ID", "Cookie", "CF-Access-Client-Secret"] {
            assert_eq!(configured_name_error(ok), None, "{ok}");
        }
        for bad in [
            "Mcp-Session-Id",
            "MCP-Protocol-Version",
            "Last-Event-ID",
            "Mcp-Method",
            "Mcp-Name",
            "Mcp-Param-Region",
            "Accept",
            "Content-Type",
            "Host",
            "Content-Length",
            "Transfer-Encoding",
            "Connection",
            "Proxy-Authorization",
            "CF-Connecting-IP",
            "Bad Name",
            "",
        ] {
            assert!(configured_name_error(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn request_headers_lose_client_credentials_and_hop_by_hop() {
        let listed = connection_listed(Some("Keep-Alive, X-Custom-Hop"));
        assert_eq!(listed, ["keep-alive", "x-custom-hop"]);
        for dropped in [
            "authorization",
            "cookie",
            "proxy-authorization",
            "connection",
            "te",
            "upgrade",
            "host",
            "content-length",
            "x-custom-hop",
            "cf-connecting-ip",
            "x-forwarded-for",
            "origin",
        ] {
            assert!(!forward_request_header(dropped, &listed), "{dropped}");
        }
        for kept in [
            "mcp-session-id",
            "mcp-protocol-version",
            "last-event-id",
            "mcp-method",
            "mcp-name",
            "mcp-param-x",
            "accept",
            "content-type",
            "user-agent",
        ] {
            assert!(forward_request_header(kept, &listed), "{kept}");
        }
    }

    #[test]
    fn response_headers_never_relay_upstream_auth_or_cookies() {
        for dropped in ["www-authenticate", "set-cookie", "connection", "transfer-encoding"] {
            assert!(!forward_response_header(dropped, &[]), "{dropped}");
        }
        for kept in ["mcp-session-id", "content-type", "cache-control", "allow", "retry-after"] {
            assert!(forward_response_header(kept, &[]), "{kept}");
        }
    }
}
