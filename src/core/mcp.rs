//! The little the gateway reads of an MCP body: a JSON-RPC request's `id` and `method`, to shape
//! its own errors, and `params.name`, for the request log. Bodies are forwarded as the exact bytes
//! that came in.

use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Peek {
    /// The body is a single JSON-RPC request or notification (or a batch of them).
    pub jsonrpc: bool,
    /// The request's `id` (`None` for notifications and batches).
    pub id: Option<Value>,
    pub method: Option<String>,
    /// `params.name` (the tool of a `tools/call`, the prompt of a `prompts/get`), when a string.
    pub name: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    jsonrpc: Option<String>,
    id: Option<Value>,
    method: Option<String>,
    #[serde(default)]
    params: Option<ParamsName>,
}

/// `params.name`, read in the envelope's one pass: every other member is skipped unread (no
/// copy of the arguments), and `params` of any other shape is simply no name, never a failure.
struct ParamsName(Option<String>);

impl<'de> Deserialize<'de> for ParamsName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NameVisitor)
    }
}

struct NameVisitor;

impl<'de> Visitor<'de> for NameVisitor {
    type Value = ParamsName;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON-RPC params")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ParamsName, A::Error> {
        let mut name = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "name" {
                name = map.next_value::<Value>()?.as_str().map(str::to_string);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(ParamsName(name))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ParamsName, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(ParamsName(None))
    }

    fn visit_bool<E>(self, _: bool) -> Result<ParamsName, E> {
        Ok(ParamsName(None))
    }
    fn visit_i64<E>(self, _: i64) -> Result<ParamsName, E> {
        Ok(ParamsName(None))
    }
    fn visit_u64<E>(self, _: u64) -> Result<ParamsName, E> {
        Ok(ParamsName(None))
    }
    fn visit_f64<E>(self, _: f64) -> Result<ParamsName, E> {
        Ok(ParamsName(None))
    }
    fn visit_str<E>(self, _: &str) -> Result<ParamsName, E> {
        Ok(ParamsName(None))
    }
    fn visit_unit<E>(self) -> Result<ParamsName, E> {
        Ok(ParamsName(None))
    }
}

pub fn peek(body: &[u8]) -> Peek {
    let first = body.iter().find(|c| !c.is_ascii_whitespace());
    match first {
        Some(b'{') => match serde_json::from_slice::<Envelope>(body) {
            Ok(env) if env.jsonrpc.as_deref() == Some("2.0") => Peek {
                jsonrpc: true,
                id: env.id.filter(|id| id.is_string() || id.is_number()),
                method: env.method,
                name: env.params.and_then(|p| p.0),
            },
            _ => Peek::default(),
        },
        Some(b'[') => Peek { jsonrpc: serde_json::from_slice::<Vec<Value>>(body).is_ok(), ..Peek::default() },
        _ => Peek::default(),
    }
}

/// The same, judged from the first bytes of a body too large to read whole (API.md §1: "judged
/// from its first 64 KiB"): the top-level members of a JSON-RPC object (or of a batch's first
/// element) are read in order until the text ends, so a request that names `jsonrpc` and `id`
/// before its large `params`, as clients write them, gets its `id` back.
pub fn peek_prefix(head: &[u8]) -> Peek {
    let Some(start) = head.iter().position(|c| !c.is_ascii_whitespace()) else { return Peek::default() };
    let (object, batch) = match head[start] {
        b'{' => (&head[start..], false),
        b'[' => match head[start + 1..].iter().position(|c| !c.is_ascii_whitespace()) {
            Some(i) if head[start + 1 + i] == b'{' => (&head[start + 1 + i..], true),
            _ => return Peek::default(),
        },
        _ => return Peek::default(),
    };
    let mut found = Partial::default();
    let _ = serde::Deserializer::deserialize_map(
        &mut serde_json::Deserializer::from_slice(object),
        PartialVisitor(&mut found),
    );
    if found.jsonrpc.as_deref() != Some("2.0") {
        return Peek::default();
    }
    if batch {
        return Peek { jsonrpc: true, ..Peek::default() };
    }
    Peek {
        jsonrpc: true,
        id: found.id.filter(|id| id.is_string() || id.is_number()),
        method: found.method,
        name: None,
    }
}

/// What `peek_prefix` found before the text ended.
#[derive(Default)]
struct Partial {
    jsonrpc: Option<String>,
    id: Option<Value>,
    method: Option<String>,
}

/// Reads an object's members into a `Partial` as they come, so what was read before an error
/// (the end of the prefix) is kept.
struct PartialVisitor<'a>(&'a mut Partial);

impl<'de> serde::de::Visitor<'de> for PartialVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON-RPC object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "jsonrpc" => self.0.jsonrpc = map.next_value::<Option<String>>()?,
                "id" => self.0.id = Some(map.next_value()?),
                "method" => self.0.method = map.next_value::<Option<String>>()?,
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(())
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
        assert_eq!(
            p,
            Peek { jsonrpc: true, id: Some(json!(7)), method: Some("tools/list".into()), name: None }
        );
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
    fn a_prefix_of_a_large_request_still_gives_its_id() {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":"big-1","method":"tools/call","params":{{"pad":"{}"}}}}"#,
            "x".repeat(1000)
        );
        let head = &body.as_bytes()[..200];
        assert_eq!(
            peek_prefix(head),
            Peek { jsonrpc: true, id: Some(json!("big-1")), method: Some("tools/call".into()), name: None }
        );
        assert_eq!(peek_prefix(body.as_bytes()), peek(body.as_bytes()), "a whole body reads the same");
        // `id` after the large part is not reached: a JSON-RPC error with a null id.
        let late = format!(r#"{{"jsonrpc":"2.0","params":{{"pad":"{}"}},"id":3}}"#, "x".repeat(1000));
        assert_eq!(
            peek_prefix(&late.as_bytes()[..100]),
            Peek { jsonrpc: true, id: None, method: None, name: None }
        );
        let batch = format!(r#" [ {{"jsonrpc":"2.0","id":1,"params":"{}"#, "x".repeat(100));
        assert_eq!(peek_prefix(batch.as_bytes()), Peek { jsonrpc: true, id: None, method: None, name: None });
        for head in
            [&b""[..], b"   ", b"xx", br#"{"jsonrpc":"1.0","id":1"#, br#"{"id":1,"#, b"[1,", b"{\"jsonr"]
        {
            assert!(!peek_prefix(head).jsonrpc, "{}", String::from_utf8_lossy(head));
        }
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
