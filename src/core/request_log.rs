//! The one log line of a proxied request (Workers Logs read JSON lines): when, which upstream,
//! which subject and credential (a key's or a grant's id, never the key or a token), the
//! JSON-RPC method and tool, the gateway's status, the upstream's when it answered, and how long
//! until the answer's headers. Nothing secret can be in it: it is built only from these fields.

use super::mcp::Peek;
use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct RequestLog<'a> {
    /// RFC 3339, UTC.
    pub time: String,
    pub upstream: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<&'a str>,
    /// The id of the key or grant that authenticated the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<&'a str>,
    pub status: u16,
    /// Absent when the gateway answered without the upstream (a refusal, its own session).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_status: Option<u16>,
    pub ms: u64,
}

impl RequestLog<'_> {
    /// The line, prefixed so an operator can filter the gateway's request lines.
    pub fn line(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        format!("{{\"request\":{json}}}")
    }
}

/// The tool (or prompt, or resource template) a request names: the `Mcp-Name` header of
/// 2026-07-28 clients, else, for `tools/call` and `prompts/get`, the body's `params.name` as the
/// peek read it (`core::mcp::Peek::name`).
pub fn named(header: Option<&str>, peek: Option<&Peek>) -> Option<String> {
    if let Some(name) = header {
        return Some(name.to_string());
    }
    let peek = peek?;
    match peek.method.as_deref() {
        Some("tools/call" | "prompts/get") => peek.name.clone(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn the_line_holds_only_its_fields() {
        let log = RequestLog {
            time: "2026-12-01T00:00:00Z".into(),
            upstream: "tickets",
            subject: Some("alice"),
            credential: Some("r-0123456789abcdef"),
            method: Some("tools/call"),
            tool: Some("whoami"),
            status: 200,
            upstream_status: Some(200),
            ms: 12,
        };
        let line: Value = serde_json::from_str(&log.line()).unwrap();
        assert_eq!(line["request"]["tool"], "whoami");
        assert_eq!(line["request"]["upstream_status"], 200);
        let refused = RequestLog { upstream: "tickets", status: 401, ..RequestLog::default() };
        let line: Value = serde_json::from_str(&refused.line()).unwrap();
        assert!(line["request"].get("subject").is_none() && line["request"].get("upstream_status").is_none());
    }

    #[test]
    fn the_tool_comes_from_the_header_or_the_body() {
        use crate::core::mcp::peek;
        let call = peek(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"a":[1,{"name":"x"}]},"name":"whoami"}}"#);
        assert_eq!(named(None, Some(&call)).as_deref(), Some("whoami"));
        assert_eq!(named(Some("echo"), Some(&call)).as_deref(), Some("echo"));
        let list = peek(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"name":"whoami"}}"#);
        assert_eq!(named(None, Some(&list)), None, "only for calls");
        assert_eq!(named(None, Some(&peek(b"[1"))), None);
        assert_eq!(named(None, None), None);
        // Params of another shape: no name, and the request is still read as JSON-RPC.
        for params in [r#"[1,2]"#, r#""s""#, "3", "null", r#"{"name":7}"#] {
            let body = format!(r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{params}}}"#);
            let p = peek(body.as_bytes());
            assert!(p.jsonrpc && p.id == Some(serde_json::json!(2)), "{params}");
            assert_eq!(named(None, Some(&p)), None, "{params}");
        }
    }
}
