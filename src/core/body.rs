//! Admin API request bodies (API.md §4): one JSON object each.

use super::upstream::FieldError;
use serde_json::{Map, Value};

/// The body as a JSON object. An empty body is `{}`, so the answer names the field that is
/// missing; anything but an object is a 400 naming `body` (an array or a string has no fields,
/// and must not pass for a body that set none).
pub fn json_object(bytes: &[u8]) -> Result<Value, FieldError> {
    if bytes.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_slice(bytes) {
        Ok(object @ Value::Object(_)) => Ok(object),
        Ok(_) => Err(FieldError::new("body", "must be a JSON object")),
        Err(e) => Err(FieldError::new("body", format!("is not valid JSON ({e})"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_body_is_one_json_object() {
        assert_eq!(json_object(b"").unwrap(), json!({}));
        assert_eq!(json_object(br#"{"subjects": ["alice"]}"#).unwrap(), json!({"subjects": ["alice"]}));
        for bad in [&b"[null, null]"[..], b"null", b"\"AAA\"", b"0", b"false", b"{", b"{} {}"] {
            let err = json_object(bad).unwrap_err();
            assert_eq!(err.field, "body", "{}", String::from_utf8_lossy(bad));
        }
    }
}
