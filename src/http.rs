//! Small HTTP helpers for the glue: JSON and error responses, bounded body reads.

use crate::core::mcp::Peek;
use crate::error::Error;
use futures_util::StreamExt;
use serde_json::Value;
use worker::{Headers, Request, Response};

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
    own(status, Some("application/json")).fixed(value.to_string().into_bytes())
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

pub fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

/// Reads the request body, refusing more than `limit` bytes (by `Content-Length` at once, or
/// while streaming a body without one).
pub async fn read_body(req: &mut Request, limit: usize) -> Result<Vec<u8>, Error> {
    let too_large = Error::BodyTooLarge { limit };
    if let Some(len) = header(req, "content-length").and_then(|v| v.trim().parse::<u64>().ok()) {
        if len > limit as u64 {
            return Err(too_large);
        }
        // The runtime delivers exactly the declared length: read it in one piece.
        return req.bytes().await.map_err(Error::internal);
    }
    if req.inner().body().is_none() {
        return Ok(Vec::new());
    }
    let mut stream = req.stream().map_err(Error::internal)?;
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(Error::internal)?;
        if body.len() + chunk.len() > limit {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

pub fn percent_decode(segment: &str) -> Option<String> {
    percent_encoding::percent_decode_str(segment).decode_utf8().ok().map(|s| s.into_owned())
}
