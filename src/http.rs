//! Small HTTP helpers for the glue: JSON and error responses, bounded body reads.

use crate::core::headers::HeaderList;
use crate::core::mcp::Peek;
use crate::core::request::split_url;
use crate::error::Error;
use crate::plumbing::{self, Declared};
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
fn routed_method(raw: &str) -> Method {
    match Method::from(raw.to_string()) {
        Method::Get if !raw.eq_ignore_ascii_case("GET") => Method::Trace,
        named => named,
    }
}

pub fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

/// A request's method, URL and headers, read in one crossing (src/plumbing.mjs) and kept on the
/// Rust side, so that every header the request path looks at costs no call into the runtime.
pub struct Head {
    /// The method as the route table reads it (`method`).
    pub method: Method,
    /// The method as the client sent it, for the upstream.
    pub method_name: String,
    pub url: String,
    pub headers: HeaderList,
}

impl Head {
    pub fn of(req: &web_sys::Request) -> Head {
        let text = plumbing::head(req);
        let mut parts = text.splitn(3, '\n');
        let method_name = parts.next().unwrap_or_default().to_string();
        let url = parts.next().unwrap_or_default().to_string();
        let headers = HeaderList::parse(parts.next().unwrap_or_default());
        Head { method: routed_method(&method_name), method_name, url, headers }
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(str::to_string)
    }

    /// The origin the request came to.
    pub fn origin(&self) -> &str {
        split_url(&self.url).0
    }

    pub fn path(&self) -> &str {
        split_url(&self.url).1
    }

    /// The first value of the query parameter `name`.
    pub fn query(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(split_url(&self.url).2.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
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
/// `PEEK_BYTES` are kept, and the rest is drained.
pub async fn read_body_or_head(
    req: &web_sys::Request,
    content_length: Option<&str>,
    limit: usize,
) -> Result<Body, Error> {
    let declared = match content_length.and_then(|v| v.trim().parse::<u64>().ok()) {
        Some(len) if len <= limit as u64 => Declared::Within,
        Some(_) => Declared::Over,
        None => Declared::Unknown,
    };
    let (bytes, whole) = plumbing::read_body(req, declared, limit, PEEK_BYTES, DRAIN_BYTES)
        .await
        .map_err(|e| Error::internal(format!("{e:?}")))?;
    Ok(if whole { Body::Whole(bytes) } else { Body::TooLarge { head: bytes } })
}

/// [`read_body_or_head`], where a body over the limit is only an error.
pub async fn read_body(req: &Request, limit: usize) -> Result<Vec<u8>, Error> {
    let length = header(req, "content-length");
    match read_body_or_head(req.inner(), length.as_deref(), limit).await? {
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
