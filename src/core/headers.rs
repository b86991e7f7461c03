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

/// Headers as the runtime plumbing passes them (src/plumbing.mjs): one text,
/// `name\nvalue\nname\nvalue…`, in order, names in lower case when the runtime gives them. The
/// runtime allows no line break in a header name or value, so the text cannot be ambiguous.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderList(Vec<(String, String)>);

impl HeaderList {
    pub fn parse(text: &str) -> HeaderList {
        let mut parts = text.split('\n');
        let mut pairs = Vec::new();
        while let (Some(name), Some(value)) = (parts.next(), parts.next()) {
            pairs.push((name.to_string(), value.to_string()));
        }
        HeaderList(pairs)
    }

    /// The first value of `name` (any case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The headers sent upstream: the client's that `forward_request_header` lets through, then
    /// the configured ones, each replacing any of the client's of the same name.
    pub fn outgoing<'a>(&'a self, configured: &'a [(String, String)]) -> String {
        let listed = connection_listed(self.get("connection"));
        let forwarded = self.iter().filter(|(name, _)| {
            forward_request_header(name, &listed)
                && !configured.iter().any(|(c, _)| c.eq_ignore_ascii_case(name))
        });
        list_text(forwarded.chain(configured.iter().map(|(n, v)| (n.as_str(), v.as_str()))))
    }

    /// The names of an upstream response's headers that do not go back to the client
    /// (`forward_response_header`), as a list of names.
    pub fn dropped_from_response(&self) -> String {
        let listed = connection_listed(self.get("connection"));
        let mut out = String::new();
        for (name, _) in self.iter() {
            let lower = name.to_ascii_lowercase();
            if !forward_response_header(&lower, &listed) && !out.split('\n').any(|n| n == lower) {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(&lower);
            }
        }
        out
    }
}

/// The text of a header list.
pub fn list_text<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (name, value) in pairs {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(name);
        out.push('\n');
        out.push_str(value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lists_round_trip_in_order_with_empty_values() {
        let text = "accept\napplication/json\nx-empty\n\nmcp-session-id\nabc";
        let list = HeaderList::parse(text);
        assert_eq!(list.get("Accept"), Some("application/json"));
        assert_eq!(list.get("x-empty"), Some(""));
        assert_eq!(list.get("missing"), None);
        assert_eq!(list_text(list.iter()), text);
        assert_eq!(HeaderList::parse(""), HeaderList::default());
    }

    #[test]
    fn outgoing_headers_drop_client_credentials_and_let_configured_ones_replace() {
        let client = HeaderList::parse(
            "authorization\nBearer mab_x\nconnection\nx-hop\nx-hop\n1\nx-api-key\nclient's\naccept\n*/*\nmcp-session-id\ns1",
        );
        let configured = vec![("X-API-KEY".to_string(), "user's".to_string())];
        assert_eq!(client.outgoing(&configured), "accept\n*/*\nmcp-session-id\ns1\nX-API-KEY\nuser's");
    }

    #[test]
    fn response_drop_list_names_each_refused_header_once() {
        let upstream = HeaderList::parse(
            "content-type\ntext/event-stream\nset-cookie\na=1\nset-cookie\nb=2\nconnection\nx-up-hop\nx-up-hop\n1\nwww-authenticate\nBearer",
        );
        assert_eq!(upstream.dropped_from_response(), "set-cookie\nconnection\nx-up-hop\nwww-authenticate");
        assert_eq!(HeaderList::parse("content-type\napplication/json").dropped_from_response(), "");
    }

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
