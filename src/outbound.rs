//! The one outbound HTTP client: every request the gateway makes goes through `send` (a deadline
//! for the response headers, redirects never followed); requests to OAuth endpoints also go
//! through `oauth_request` (SSRF policy, small bodies read whole).

use crate::core::policy::check_url;
use futures_util::future::{select, Either};
use std::future::Future;
use std::time::Duration;
use worker::{
    AbortController, Delay, Fetch, Headers, Method, Request, RequestInit, RequestRedirect, Response,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundError {
    /// The URL is not allowed by the policy (not https, private, metadata ...).
    Refused(String),
    Unreachable,
    Timeout,
}

/// Sends a request; `Timeout` when no response headers arrived within `timeout_ms`.
pub async fn send(
    method: Method,
    url: &str,
    headers: Headers,
    body: Option<Vec<u8>>,
    timeout_ms: u64,
) -> Result<Response, OutboundError> {
    let mut init = RequestInit::new();
    init.with_method(method).with_headers(headers).with_redirect(RequestRedirect::Manual);
    if let Some(body) = body {
        init.with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
    }
    let request = Request::new_with_init(url, &init).map_err(|_| OutboundError::Unreachable)?;
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(request);
    match within(timeout_ms, fetch.send_with_signal(&signal)).await {
        Some(Ok(resp)) => Ok(resp),
        Some(Err(_)) => Err(OutboundError::Unreachable),
        None => {
            controller.abort();
            Err(OutboundError::Timeout)
        }
    }
}

/// What `work` yields, or `None` when `timeout_ms` pass first (`work` is then dropped).
pub async fn within<T>(timeout_ms: u64, work: impl Future<Output = T>) -> Option<T> {
    let work = std::pin::pin!(work);
    let deadline = std::pin::pin!(Delay::from(Duration::from_millis(timeout_ms)));
    match select(work, deadline).await {
        Either::Left((value, _)) => Some(value),
        Either::Right(_) => None,
    }
}

/// What an OAuth endpoint answered.
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub www_authenticate: Option<String>,
    pub body: Vec<u8>,
}

/// Largest answer read from an OAuth endpoint.
const MAX_ANSWER: usize = 256 * 1024;

/// A request to an OAuth endpoint (discovery, registration, token, revocation): checked
/// against the SSRF policy, JSON or form body, answer read whole (bounded).
pub async fn oauth_request(
    method: Method,
    url: &str,
    content_type: Option<&str>,
    authorization: Option<&str>,
    body: Option<String>,
    allow_private: bool,
    timeout_ms: u64,
) -> Result<Answer, OutboundError> {
    let url = check_url(url, allow_private).map_err(|e| OutboundError::Refused(e.to_string()))?;
    let headers = Headers::new();
    let _ = headers.set("Accept", "application/json");
    if let Some(ct) = content_type {
        let _ = headers.set("Content-Type", ct);
    }
    if let Some(a) = authorization {
        let _ = headers.set("Authorization", a);
    }
    let started = js_sys::Date::now() as u64;
    let mut resp = send(method, url.as_str(), headers, body.map(String::into_bytes), timeout_ms).await?;
    let header = |name: &str| resp.headers().get(name).ok().flatten();
    let content_type = header("content-type").unwrap_or_default();
    let www_authenticate = header("www-authenticate");
    if header("content-length").and_then(|l| l.parse::<usize>().ok()).is_some_and(|l| l > MAX_ANSWER) {
        return Err(OutboundError::Unreachable);
    }
    // The body shares the deadline: a server that trickles cannot hold a subject store (which
    // waits for its refreshes) past it.
    let left = timeout_ms.saturating_sub(js_sys::Date::now() as u64 - started).max(1);
    let status = resp.status_code();
    let body = within(left, read_capped(&mut resp)).await.ok_or(OutboundError::Timeout)??;
    Ok(Answer { status, content_type, www_authenticate, body })
}

/// Reads a body of at most `MAX_ANSWER` bytes.
async fn read_capped(resp: &mut Response) -> Result<Vec<u8>, OutboundError> {
    use futures_util::StreamExt;
    let Ok(mut stream) = resp.stream() else { return Ok(Vec::new()) };
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| OutboundError::Unreachable)?;
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(OutboundError::Unreachable);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
