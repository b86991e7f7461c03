//! The little the gateway reads of an MCP body: a JSON-RPC request's `id` and `method`, only to
//! shape its own errors. Bodies are forwarded as the exact bytes that came in.

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Peek {
    /// The body is a single JSON-RPC request or notification (or a batch of them).
    pub jsonrpc: bool,
    /// The request's `id` (`None` for notifications and batches).
    pub id: Option<Value>,
    pub method: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    jsonrpc: Option<String>,
    id: Option<Value>,
    method: Option<String>,
}

pub fn peek(body: &[u8]) -> Peek {
    let first = body.iter().find(|c| !c.is_ascii_whitespace());
    match first {
        Some(b'{') => match serde_json::from_slice::<Envelope>(body) {
            Ok(env) if env.jsonrpc.as_deref() == Some("2.0") => Peek {
                jsonrpc: true,
                id: env.id.filter(|id| id.is_string() || id.is_number()),
                method: env.method,
            },
            _ => Peek::default(),
        },
        Some(b'[') => Peek { jsonrpc: serde_json::from_slice::<Vec<Value>>(body).is_ok(), ..Peek::default() },
        _ => Peek::default(),
    }
}

/// A JSON-RPC error response (JSON-RPC 2.0 §5.1) for a request the gateway answers itself.
pub fn error_response(id: Option<&Value>, code: i64, message: &str, data: Value) -> Value {
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": id.cloned().unwrap_or(Value::Null),
        "error": { "code": code, "message": message, "data": data },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn peeks_requests_notifications_and_batches() {
        let p = peek(br#"{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"a":[1,2]}}"#);
        assert_eq!(p, Peek { jsonrpc: true, id: Some(json!(7)), method: Some("tools/list".into()) });
        let p = peek(br#" {"jsonrpc":"2.0","id":"x","method":"tools/call"}"#);
        assert_eq!(p.id, Some(json!("x")));
        let n = peek(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert!(n.jsonrpc && n.id.is_none());
        let b = peek(br#"[{"jsonrpc":"2.0","id":1,"method":"a"}]"#);
        assert!(b.jsonrpc && b.id.is_none());
    }

    #[test]
    fn anything_else_is_not_jsonrpc() {
        for body in [&b""[..], b"hello", b"{", br#"{"id":1}"#, br#"{"jsonrpc":"1.0","id":1}"#, b"[1,"] {
            assert!(!peek(body).jsonrpc, "{}", String::from_utf8_lossy(body));
        }
        let odd = peek(br#"{"jsonrpc":"2.0","id":{"x":1},"method":"m"}"#);
        assert_eq!(odd.id, None, "object ids are not valid JSON-RPC ids");
    }

    #[test]
    fn error_response_shape() {
        let v = error_response(Some(&json!(3)), -32001, "invalid key", json!({"reason": "invalid_key"}));
        assert_eq!(
            v,
            json!({"jsonrpc":"2.0","id":3,"error":{"code":-32001,"message":"invalid key","data":{"reason":"invalid_key"}}})
        );
        assert_eq!(error_response(None, -1, "m", Value::Null)["id"], Value::Null);
    }
}
