//! Small HTTP helpers for the glue: JSON and error responses, bounded body reads.

use crate::core::mcp::Peek;
use crate::error::Error;
use serde_json::Value;
use worker::{Headers, Method, Request, Response};

/// Headers on every answer the gateway makes itself (JSON, errors, admin API, health; the
/// connect pages carry `PAGE_HEADERS`), never on relayed upstream answers: not sniffed as
/// something else, not cached, never framed or leaking the URL through `Referer`.
const OWN_HEADERS: [(&str, &str); 4] = [
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-store"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
];

fn own(status: u16, content_type: Option<&str>) -> worker::ResponseBuilder {
    let headers = Headers::new();
    for (name, value) in OWN_HEADERS.iter().copied().chain(content_type.map(|t| ("Content-Type", t))) {
        let _ = headers.set(name, value);
    }
    Response::builder().with_status(status).with_headers(headers)
}

pub fn json(status: u16, value: &Value) -> Response {
    json_bytes(status, value.to_string().into_bytes())
}

/// A JSON document already serialized (e.g. one built into the Worker).
pub fn json_bytes(status: u16, body: Vec<u8>) -> Response {
    own(status, Some("application/json")).fixed(body)
}

pub fn text(status: u16, body: &str) -> Response {
    own(status, Some("text/plain; charset=utf-8")).fixed(body.as_bytes().to_vec())
}

pub fn empty(status: u16) -> Response {
    own(status, None).empty()
}

/// Renders an error; internal details go to the log (they never hold secret values).
pub fn error(err: &Error, request: Option<&Peek>) -> Response {
    if let Error::Internal { detail } = err {
        worker::console_error!("mcp-authbridge internal error: {detail}");
    }
    let (status, body) = err.body(request);
    let resp = json(status, &body);
    for (name, value) in err.extra_headers() {
        let _ = resp.headers().set(name, &value);
    }
    resp
}

/// The request's method as the route table reads it. The worker crate reads a method it has no
/// name for (`QUERY`, `PROPFIND`, …) as GET (worker 0.8, `From<String> for Method`), so such a
/// request would be served as one; it is read as TRACE instead, which no route serves, and gets
/// the route's 405 with `Allow`.
pub fn method(req: &Request) -> Method {
    routed_method(&req.inner().method())
}

fn routed_method(raw: &str) -> Method {
    match Method::from(raw.to_string()) {
        Method::Get if !raw.eq_ignore_ascii_case("GET") => Method::Trace,
        named => named,
    }
}

pub fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

/// How much of a body refused for its size is read, only to shape the error (API.md §1: a
/// JSON-RPC request "judged from its first 64 KiB").
pub const PEEK_BYTES: usize = 64 * 1024;

/// How much of a refused body is drained (read and dropped unseen, never copied or kept) after
/// its head, so that the runtime does not reset the connection before the client has read the
/// answer; a client sending more may see its connection cut instead.
const DRAIN_BYTES: usize = 32 * 1024 * 1024;

/// A request body as read: whole, or refused for its size, with at most its first
/// `PEEK_BYTES`.
pub enum Body {
    Whole(Vec<u8>),
    TooLarge { head: Vec<u8> },
}

/// Reads the request body, refusing more than `limit` bytes (by `Content-Length` before any of
/// it is read, or while streaming a body without one); of a refused body, no more than
/// `PEEK_BYTES` are read.
pub async fn read_body_or_head(req: &mut Request, limit: usize) -> Result<Body, Error> {
    let declared = header(req, "content-length").and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len <= limit as u64) {
        // The runtime delivers exactly the declared length: read it in one piece.
        return req.bytes().await.map(Body::Whole).map_err(Error::internal);
    }
    let Some(raw) = req.inner().body() else { return Ok(Body::Whole(Vec::new())) };
    let mut stream = wasm_streams::ReadableStream::from_raw(raw);
    let mut reader = stream.get_reader();
    let mut body = Vec::new();
    let mut too_large = declared.is_some();
    while let Some(chunk) = reader.read().await.map_err(|e| Error::internal(format!("{e:?}")))? {
        let chunk = js_sys::Uint8Array::new(&chunk).to_vec();
        too_large |= body.len() + chunk.len() > limit;
        if too_large {
            let room = PEEK_BYTES.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= PEEK_BYTES {
                drain(&mut reader, body.len()).await;
                break;
            }
        } else {
            body.extend_from_slice(&chunk);
        }
    }
    if too_large {
        body.truncate(PEEK_BYTES);
        return Ok(Body::TooLarge { head: body });
    }
    Ok(Body::Whole(body))
}

/// Reads on to the end of a refused body (at most `DRAIN_BYTES`), dropping each chunk as it
/// comes: the runtime cuts the connection of a request whose body is left half-read, and the
/// client would lose the answer.
async fn drain(reader: &mut wasm_streams::readable::ReadableStreamDefaultReader<'_>, already: usize) {
    let mut read = already;
    while read < DRAIN_BYTES {
        match reader.read().await {
            Ok(Some(chunk)) => read += js_sys::Uint8Array::new(&chunk).length() as usize,
            _ => return,
        }
    }
}

/// [`read_body_or_head`], where a body over the limit is only an error.
pub async fn read_body(req: &mut Request, limit: usize) -> Result<Vec<u8>, Error> {
    match read_body_or_head(req, limit).await? {
        Body::Whole(body) => Ok(body),
        Body::TooLarge { .. } => Err(Error::BodyTooLarge { limit }),
    }
}

pub fn percent_decode(segment: &str) -> Option<String> {
    percent_encoding::percent_decode_str(segment).decode_utf8().ok().map(|s| s.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_without_a_name_is_served_by_no_route() {
        for (raw, method) in [("GET", Method::Get), ("POST", Method::Post), ("DELETE", Method::Delete)] {
            assert_eq!(routed_method(raw), method);
        }
        for raw in ["QUERY", "PROPFIND", "FOO"] {
            assert_eq!(routed_method(raw), Method::Trace, "{raw}");
        }
    }
}
