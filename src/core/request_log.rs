//! The one log line of a proxied request (Workers Logs read JSON lines): when, which upstream,
//! which subject and credential (a key's or a grant's id, never the key or a token), the
//! JSON-RPC method and tool, the gateway's status, the upstream's when it answered, and how long
//! until the answer's headers. Nothing secret can be in it: it is built only from these fields.

use serde::Serialize;
use serde_json::Value;

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
/// 2026-07-28 clients, else, for `tools/call` and `prompts/get`, `params.name` in the body (read
/// only for those methods).
pub fn named(header: Option<&str>, method: Option<&str>, body: Option<&[u8]>) -> Option<String> {
    if let Some(name) = header {
        return Some(name.to_string());
    }
    if !matches!(method, Some("tools/call" | "prompts/get")) {
        return None;
    }
    let v: Value = serde_json::from_slice(body?).ok()?;
    v.pointer("/params/name").and_then(Value::as_str).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let call = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami"}}"#;
        assert_eq!(named(None, Some("tools/call"), Some(call)).as_deref(), Some("whoami"));
        assert_eq!(named(Some("echo"), Some("tools/call"), Some(call)).as_deref(), Some("echo"));
        assert_eq!(named(None, Some("tools/list"), Some(call)), None, "read only for calls");
        assert_eq!(named(None, Some("tools/call"), Some(b"[1")), None);
    }
}
