//! Legacy HTTP+SSE (MCP 2024-11-05): rewrite the upstream's `endpoint` event so the client posts
//! its messages back to the gateway. Everything before that event passes as it came; everything
//! after it passes untouched and unparsed.
//!
//! Event framing follows the HTML SSE spec (§9.2.6): lines end in CRLF, LF or CR; a blank line
//! ends an event; `event:` names it, `data:` lines are joined with LF.

/// A stream before its endpoint event may hold at most this much unparsed text.
pub const MAX_PENDING: usize = 64 * 1024;
/// After it, one event (a JSON-RPC message) may be at most this large.
pub const MAX_EVENT: usize = 16 * 1024 * 1024;

const BOM: &[u8] = b"\xEF\xBB\xBF";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    /// An event grew past the limit without ending.
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

/// Rewrites the `endpoint` event of a stream, event by event: the first one is mapped to the
/// gateway, any later one is dropped (it could only point a client straight at the upstream),
/// every other event passes as the exact bytes it came in.
pub struct EndpointRewriter<F> {
    pending: Vec<u8>,
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
            if event_name(event) != "endpoint" {
                out.extend_from_slice(event);
            } else if !self.rewritten {
                let url = (self.rewrite)(event_data(event).trim()).map_err(SseError::Endpoint)?;
                out.extend_from_slice(format!("event: endpoint\ndata: {url}\n\n").as_bytes());
                self.rewritten = true;
            }
            start = end;
        }
        self.pending.drain(..start);
        self.scanned -= start;
        self.line_start -= start;
        let limit = if self.rewritten { MAX_EVENT } else { MAX_PENDING };
        if self.pending.len() > limit {
            return Err(SseError::TooLong);
        }
        Ok(out)
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
        assert_eq!(cr_only, "event: endpoint\ndata: /sse/x/messages?s=</m>\n\n: ping\r\r");
    }

    #[test]
    fn later_events_pass_as_they_came_and_a_second_endpoint_is_dropped() {
        let mut r = rw();
        r.push(b"event: endpoint\ndata: /m\n\n").unwrap();
        let message = b"event: message\r\ndata: {\"jsonrpc\":\"2.0\"}\r\nid: 7\r\n\r\n";
        assert_eq!(r.push(message).unwrap(), message.to_vec());
        assert_eq!(r.push(b"event: endpoint\ndata: https://upstream.example/m\n\n").unwrap(), b"");
        assert_eq!(r.push(b": keep-alive\n\n").unwrap(), b": keep-alive\n\n");
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
        assert_eq!(r.push(&long).unwrap(), b"", "after the endpoint, large events may build up");
        assert_eq!(run(&[b"data: partial"]).unwrap(), "", "incomplete event is held back");
    }
}
