//! Legacy HTTP+SSE (MCP 2024-11-05): rewrite the upstream's `endpoint` event so the client posts
//! its messages back to the gateway, and the sealed message URL that rewrite hands out. Events
//! before the endpoint pass as they came; after it, bytes pass as they arrive, never a whole
//! event buffered: only the first few bytes of each line are held, to neutralise a later
//! `event: endpoint` line.
//!
//! Event framing follows the HTML SSE spec (§9.2.6): lines end in CRLF, LF or CR; a blank line
//! ends an event; `event:` names it, `data:` lines are joined with LF.

use serde::{Deserialize, Serialize};

/// A stream before its endpoint event may hold at most this much unparsed text.
pub const MAX_PENDING: usize = 64 * 1024;

/// The `event` lines that name an endpoint event (SSE: one optional space after the colon).
const ENDPOINT_LINES: [&[u8]; 2] = [b"event:endpoint", b"event: endpoint"];
/// What a later endpoint event is renamed to: an event type no MCP client acts on, so it can
/// never point a client (and its key) straight at the upstream.
const DROPPED_ENDPOINT_LINE: &[u8] = b"event: dropped-endpoint";

/// How long a legacy message URL (`/sse/{upstream}/messages?s=…`) may be used: 24 hours.
pub const SESSION_URL_LIFETIME_MS: u64 = 24 * 3600 * 1000;

/// What the sealed `s` parameter of a legacy message URL carries (sealed under
/// `Context::SseSession`): whose session it is, the upstream's real message URL, and until when
/// it may be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionUrl {
    pub subject: String,
    pub url: String,
    pub expires_at: u64,
}

impl SessionUrl {
    pub fn new(subject: &str, url: &str, now_ms: u64) -> SessionUrl {
        SessionUrl { subject: subject.into(), url: url.into(), expires_at: now_ms + SESSION_URL_LIFETIME_MS }
    }

    /// Whether `subject` may post to this session now (the origin is checked by the caller).
    pub fn usable_by(&self, subject: &str, now_ms: u64) -> bool {
        self.subject == subject && now_ms < self.expires_at
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    /// No endpoint event within the first `MAX_PENDING` bytes.
    TooLong,
    /// The endpoint could not be rewritten (the callback refused it).
    Endpoint(String),
}

/// The `event` name of one event's text (`message` when it has none).
fn event_name(event: &[u8]) -> String {
    let text = String::from_utf8_lossy(event);
    let mut name = String::new();
    for line in text.split(['\n', '\r']) {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        if field == "event" {
            name = value.strip_prefix(' ').unwrap_or(value).to_string();
        }
    }
    if name.is_empty() {
        "message".into()
    } else {
        name
    }
}

/// The joined `data` of one event's text.
fn event_data(event: &[u8]) -> String {
    let text = String::from_utf8_lossy(event);
    let data: Vec<&str> = text
        .split(['\n', '\r'])
        .filter_map(|line| line.strip_prefix("data"))
        .filter_map(|rest| if rest.is_empty() { Some("") } else { rest.strip_prefix(':') })
        .map(|v| v.strip_prefix(' ').unwrap_or(v))
        .collect();
    data.join("\n")
}

/// Rewrites the `endpoint` event of a stream: the first one is mapped to the gateway; after it,
/// every byte passes as it came, except that a later `event: endpoint` line is renamed (it could
/// only point a client straight at the upstream).
pub struct EndpointRewriter<F> {
    pending: Vec<u8>,
    /// After the rewrite: whether the current line was found not to be an endpoint line (its
    /// bytes pass until its end); else `pending` holds the start of the line.
    passing: bool,
    /// How far `pending` has been scanned for the end of the current event, and where the
    /// current line began: scanning resumes there, so each byte is looked at once.
    scanned: usize,
    line_start: usize,
    started: bool,
    rewritten: bool,
    rewrite: F,
}

impl<F: FnMut(&str) -> Result<String, String>> EndpointRewriter<F> {
    /// `rewrite` maps the upstream's endpoint (as sent, often relative) to the gateway's.
    pub fn new(rewrite: F) -> Self {
        EndpointRewriter {
            pending: Vec::new(),
            passing: false,
            scanned: 0,
            line_start: 0,
            started: false,
            rewritten: false,
            rewrite,
        }
    }

    /// Whether the endpoint event has been rewritten (a legacy client cannot start without it).
    pub fn rewritten(&self) -> bool {
        self.rewritten
    }

    /// The end of the event that begins at `start`, if it has fully arrived. A CR at the very
    /// end is not yet a line end, as an LF may follow in the next chunk.
    fn event_end(&mut self) -> Option<usize> {
        let buf = &self.pending;
        let mut i = self.scanned;
        while i < buf.len() {
            let eol_len = match buf[i] {
                b'\n' => 1,
                b'\r' if i + 1 < buf.len() => 1 + usize::from(buf[i + 1] == b'\n'),
                b'\r' => break,
                _ => {
                    i += 1;
                    continue;
                }
            };
            let blank = i == self.line_start;
            i += eol_len;
            self.line_start = i;
            if blank {
                self.scanned = i;
                return Some(i);
            }
        }
        self.scanned = i;
        None
    }

    /// Takes the next chunk from the upstream; returns the bytes to send to the client now.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<u8>, SseError> {
        if self.rewritten {
            let mut out = Vec::with_capacity(chunk.len());
            self.pass(chunk, &mut out);
            return Ok(out);
        }
        self.pending.extend_from_slice(chunk);
        if !self.started {
            // The SSE spec drops one leading UTF-8 BOM; clients do, so must the parser here.
            if self.pending.len() < BOM.len() && BOM.starts_with(&self.pending) {
                return Ok(Vec::new());
            }
            if self.pending.starts_with(BOM) {
                self.pending.drain(..BOM.len());
            }
            self.started = true;
        }
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(end) = self.event_end() {
            let event = &self.pending[start..end];
            start = end;
            if event_name(event) != "endpoint" {
                out.extend_from_slice(event);
            } else {
                let url = (self.rewrite)(event_data(event).trim()).map_err(SseError::Endpoint)?;
                out.extend_from_slice(format!("event: endpoint\ndata: {url}\n\n").as_bytes());
                self.rewritten = true;
                // What came after the endpoint event in this chunk passes like any later bytes.
                let rest = self.pending.split_off(start);
                self.pending.clear();
                self.pass(&rest, &mut out);
                return Ok(out);
            }
        }
        self.pending.drain(..start);
        self.scanned -= start;
        self.line_start -= start;
        if self.pending.len() > MAX_PENDING {
            return Err(SseError::TooLong);
        }
        Ok(out)
    }

    /// After the rewrite: copies `bytes` to `out`, holding back only the start of a line while it
    /// may still be an endpoint line (at most 15 bytes), and renaming one that is.
    fn pass(&mut self, mut bytes: &[u8], out: &mut Vec<u8>) {
        let is_eol = |c: &u8| *c == b'\n' || *c == b'\r';
        while !bytes.is_empty() {
            if self.passing {
                match bytes.iter().position(is_eol) {
                    Some(i) => {
                        out.extend_from_slice(&bytes[..=i]);
                        bytes = &bytes[i + 1..];
                        self.passing = false;
                    }
                    None => {
                        out.extend_from_slice(bytes);
                        return;
                    }
                }
                continue;
            }
            let c = bytes[0];
            bytes = &bytes[1..];
            if is_eol(&c) {
                let line = std::mem::take(&mut self.pending);
                out.extend_from_slice(if ENDPOINT_LINES.contains(&line.as_slice()) {
                    DROPPED_ENDPOINT_LINE
                } else {
                    &line
                });
                out.push(c);
                continue;
            }
            self.pending.push(c);
            if !ENDPOINT_LINES.iter().any(|l| l.starts_with(&self.pending)) {
                out.append(&mut self.pending);
                self.passing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw() -> EndpointRewriter<impl FnMut(&str) -> Result<String, String>> {
        EndpointRewriter::new(|e: &str| {
            if e.contains("evil") {
                Err("other origin".into())
            } else {
                Ok(format!("/sse/x/messages?s=<{e}>"))
            }
        })
    }

    fn run(chunks: &[&[u8]]) -> Result<String, SseError> {
        let mut r = rw();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(r.push(c)?);
        }
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn rewrites_the_endpoint_event() {
        let out = run(&[b"event: endpoint\ndata: /messages?sessionId=abc\n\n"]).unwrap();
        assert_eq!(out, "event: endpoint\ndata: /sse/x/messages?s=</messages?sessionId=abc>\n\n");
        let mut r = rw();
        assert_eq!(r.push(b": hello\n\nevent: endpoint\ndata: /m").unwrap(), b": hello\n\n");
        assert!(!r.rewritten());
        r.push(b"\n\n").unwrap();
        assert!(r.rewritten());
    }

    #[test]
    fn handles_every_line_ending_and_split_point() {
        let stream = b": hello\r\n\r\nevent:endpoint\r\ndata:/m?session_id=1\r\n\r\nevent: message\r\ndata: {}\r\n\r\n";
        let want = ": hello\r\n\r\nevent: endpoint\ndata: /sse/x/messages?s=</m?session_id=1>\n\nevent: message\r\ndata: {}\r\n\r\n";
        for split in 0..stream.len() {
            let (a, b) = stream.split_at(split);
            assert_eq!(run(&[a, b]).unwrap(), want, "split at {split}");
        }
        // A CR at the end of what has arrived may be half of a CRLF: it waits for the next byte.
        assert_eq!(run(&[b"event: endpoint\rdata: /m\r\r"]).unwrap(), "");
        let cr_only = run(&[b"event: endpoint\rdata: /m\r\r", b": ping\r\r:"]).unwrap();
        // After the endpoint, a line that cannot be an endpoint line passes before it ends.
        assert_eq!(cr_only, "event: endpoint\ndata: /sse/x/messages?s=</m>\n\n: ping\r\r:");
    }

    #[test]
    fn later_events_pass_as_they_came_and_a_second_endpoint_is_dropped() {
        let mut r = rw();
        r.push(b"event: endpoint\ndata: /m\n\n").unwrap();
        let message = b"event: message\r\ndata: {\"jsonrpc\":\"2.0\"}\r\nid: 7\r\n\r\n";
        assert_eq!(r.push(message).unwrap(), message.to_vec());
        assert_eq!(
            r.push(b"event: endpoint\ndata: https://upstream.example/m\n\n").unwrap(),
            b"event: dropped-endpoint\ndata: https://upstream.example/m\n\n"
        );
        assert_eq!(r.push(b": keep-alive\n\n").unwrap(), b": keep-alive\n\n");
        // Split anywhere, in any line ending, after data lines: still renamed.
        let mut out = Vec::new();
        for b in b"data: x\r\nevent:endpoint\revent: endpointx\n\n" {
            out.extend(r.push(&[*b]).unwrap());
        }
        assert_eq!(out, b"data: x\r\nevent: dropped-endpoint\revent: endpointx\n\n");
    }

    #[test]
    fn after_the_endpoint_bytes_pass_as_they_arrive() {
        let mut r = rw();
        // The rest of the chunk that held the endpoint event passes at once, half an event too.
        let first = r.push(b"event: endpoint\ndata: /m\n\nevent: message\ndata: {\"id\"").unwrap();
        assert!(first.ends_with(b"event: message\ndata: {\"id\""), "{}", String::from_utf8_lossy(&first));
        // A huge event is never held: each chunk goes out as it came, except a line's first bytes
        // while they may still spell an endpoint line.
        let huge = vec![b'x'; 1024 * 1024];
        assert_eq!(r.push(b":1\n\ndata: ").unwrap(), b":1\n\ndata: ");
        assert_eq!(r.push(&huge).unwrap().len(), huge.len());
        assert_eq!(r.push(b"\neven").unwrap(), b"\n");
        assert_eq!(r.push(b"ts: x\n").unwrap(), b"events: x\n");
    }

    #[test]
    fn session_urls_expire_and_belong_to_one_subject() {
        let s = SessionUrl::new("alice", "https://up.example/messages?sessionId=1", 1_000);
        assert_eq!(s.expires_at, 1_000 + SESSION_URL_LIFETIME_MS);
        assert!(s.usable_by("alice", 1_000));
        assert!(s.usable_by("alice", s.expires_at - 1));
        assert!(!s.usable_by("alice", s.expires_at), "refused once 24 h have passed");
        assert!(!s.usable_by("bob", 1_000));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<SessionUrl>(&json).unwrap(), s);
        // A message URL sealed before URLs carried an expiry does not parse: refused.
        assert!(serde_json::from_str::<SessionUrl>(r#"{"subject":"alice","url":"https://up.example/m"}"#)
            .is_err());
    }

    #[test]
    fn a_leading_bom_is_dropped_so_the_endpoint_is_still_found() {
        let out = run(&[b"\xEF\xBB", b"\xBFevent: endpoint\ndata: /m\n\n"]).unwrap();
        assert_eq!(out, "event: endpoint\ndata: /sse/x/messages?s=</m>\n\n");
    }

    #[test]
    fn byte_by_byte_input_is_scanned_once() {
        let mut r = rw();
        let mut out = Vec::new();
        let event = format!("event: endpoint\ndata: /m{}\n\n", "x".repeat(60_000));
        for b in event.as_bytes() {
            out.extend(r.push(&[*b]).unwrap());
        }
        assert!(String::from_utf8(out)
            .unwrap()
            .starts_with("event: endpoint\ndata: /sse/x/messages?s=</mxxx"));
    }

    #[test]
    fn refusals_and_limits() {
        assert_eq!(
            run(&[b"event: endpoint\ndata: https://evil.example/m\n\n"]),
            Err(SseError::Endpoint("other origin".into()))
        );
        let long = vec![b'a'; MAX_PENDING + 1];
        assert_eq!(run(&[&long]), Err(SseError::TooLong));
        let mut r = rw();
        r.push(b"event: endpoint\ndata: /m\n\n").unwrap();
        assert_eq!(r.push(&long).unwrap(), long, "after the endpoint, nothing builds up");
        assert_eq!(run(&[b"data: partial"]).unwrap(), "", "incomplete event is held back");
    }
}
