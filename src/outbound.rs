//! The one outbound HTTP client: every request the gateway makes goes through `send`, which
//! takes only a `CheckedUrl` (so the SSRF policy has always been applied), gives the response
//! headers a deadline and never follows a redirect. Requests to OAuth endpoints go through
//! `oauth_request` on top of it (the policy check, small bodies read whole and bounded).

use crate::core::headers::list_text;
use crate::core::policy::{check_url, CheckedUrl, PolicyError};
use crate::plumbing::{self, SendError};
use crate::rt::now_ms;
use futures_util::future::{select, Either};
use std::fmt;
use std::future::Future;
use std::time::Duration;
use worker::{Delay, Method, Response};

/// Why an outbound request failed, with its cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundError {
    /// The URL is not allowed by the policy (not https, private, metadata ...).
    Refused(PolicyError),
    /// The runtime could not make the request or read the answer.
    Unreachable(String),
    /// The answer is larger than the gateway reads.
    TooLarge {
        limit: usize,
    },
    Timeout,
}

impl fmt::Display for OutboundError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutboundError::Refused(e) => write!(f, "refused by the URL policy: the URL {e}"),
            OutboundError::Unreachable(cause) => write!(f, "unreachable: {cause}"),
            OutboundError::TooLarge { limit } => write!(f, "answer larger than {limit} bytes"),
            OutboundError::Timeout => f.write_str("no answer in time"),
        }
    }
}

fn unreachable(e: impl fmt::Debug) -> OutboundError {
    OutboundError::Unreachable(format!("{e:?}"))
}

/// Sends a request with the headers of a header list (`core::headers::HeaderList`); `Timeout`
/// when no response headers arrived within `timeout_ms` (the request is then aborted). The
/// deadline is the runtime's own timer and abort signal (src/plumbing.mjs), one crossing for all
/// of it.
pub async fn send(
    method: &str,
    url: &CheckedUrl,
    headers: &str,
    body: Option<&[u8]>,
    timeout_ms: u64,
) -> Result<web_sys::Response, OutboundError> {
    plumbing::send(url.as_str(), method, headers, body, timeout_ms).await.map_err(|e| match e {
        SendError::Timeout => OutboundError::Timeout,
        SendError::Failed(e) => unreachable(e),
    })
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

/// A request to an OAuth endpoint (discovery, registration, token, revocation).
pub struct OAuthRequest<'a> {
    pub method: Method,
    pub url: &'a str,
    pub content_type: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub body: Option<String>,
}

/// Sends an OAuth request: checked against the SSRF policy, answer read whole (bounded), all
/// within `timeout_ms`.
pub async fn oauth_request(
    req: OAuthRequest<'_>,
    allow_private: bool,
    timeout_ms: u64,
) -> Result<Answer, OutboundError> {
    let url = check_url(req.url, allow_private).map_err(OutboundError::Refused)?;
    let headers = [
        ("Accept", Some("application/json")),
        ("Content-Type", req.content_type),
        ("Authorization", req.authorization),
    ];
    let headers = list_text(headers.into_iter().filter_map(|(name, value)| value.map(|v| (name, v))));
    let started = now_ms();
    let body = req.body.as_deref().map(str::as_bytes);
    let mut resp: Response = send(req.method.as_ref(), &url, &headers, body, timeout_ms).await?.into();
    let header = |name: &str| resp.headers().get(name).ok().flatten();
    let content_type = header("content-type").unwrap_or_default();
    let www_authenticate = header("www-authenticate");
    if header("content-length").and_then(|l| l.parse::<usize>().ok()).is_some_and(|l| l > MAX_ANSWER) {
        return Err(OutboundError::TooLarge { limit: MAX_ANSWER });
    }
    // The body shares the deadline: a server that trickles cannot hold a subject store (which
    // waits for its refreshes) past it.
    let left = timeout_ms.saturating_sub(now_ms() - started).max(1);
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
        let chunk = chunk.map_err(unreachable)?;
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(OutboundError::TooLarge { limit: MAX_ANSWER });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
