//! Legacy HTTP+SSE (MCP 2024-11-05): rewrite the upstream's `endpoint` event so the client posts
//! its messages back to the gateway. Everything before that event passes as it came; everything
//! after it passes untouched and unparsed.
//!
//! Event framing follows the HTML SSE spec (§9.2.6): lines end in CRLF, LF or CR; a blank line
//! ends an event; `event:` names it, `data:` lines are joined with LF.

/// A stream before its endpoint event may hold at most this much unparsed text.
pub const MAX_PENDING: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    /// No complete event within `MAX_PENDING` bytes.
    TooLong,
    /// The endpoint could not be rewritten (the callback refused it).
    Endpoint(String),
}

/// Finds the end of the first complete event in `buf`: the index just past its blank line.
/// A CR at the very end is not yet a line end, as an LF may follow in the next chunk.
fn event_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    let mut line_start = 0;
    while i < buf.len() {
        let eol_len = match buf[i] {
            b'\n' => 1,
            b'\r' if i + 1 < buf.len() => 1 + usize::from(buf[i + 1] == b'\n'),
            b'\r' => return None,
            _ => {
                i += 1;
                continue;
            }
        };
        let blank = i == line_start;
        i += eol_len;
        if blank {
            return Some(i);
        }
        line_start = i;
    }
    None
}

/// The `event` name and joined `data` of one event's text.
fn fields(event: &str) -> (String, String) {
    let (mut name, mut data) = (String::from("message"), Vec::new());
    for line in event.split(['\n', '\r']).filter(|l| !l.is_empty()) {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => name = value.to_string(),
            "data" => data.push(value),
            _ => {}
        }
    }
    (name, data.join("\n"))
}

/// Rewrites the first `endpoint` event of a stream, chunk by chunk.
pub struct EndpointRewriter<F> {
    pending: Vec<u8>,
    done: bool,
    rewrite: F,
}

impl<F: FnMut(&str) -> Result<String, String>> EndpointRewriter<F> {
    /// `rewrite` maps the upstream's endpoint (as sent, often relative) to the gateway's.
    pub fn new(rewrite: F) -> Self {
        EndpointRewriter { pending: Vec::new(), done: false, rewrite }
    }

    /// Takes the next chunk from the upstream; returns the bytes to send to the client now.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<u8>, SseError> {
        if self.done {
            return Ok(chunk.to_vec());
        }
        self.pending.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(end) = event_end(&self.pending) {
            let event: Vec<u8> = self.pending.drain(..end).collect();
            let text = String::from_utf8_lossy(&event);
            let (name, data) = fields(&text);
            if name == "endpoint" {
                let url = (self.rewrite)(data.trim()).map_err(SseError::Endpoint)?;
                out.extend_from_slice(format!("event: endpoint\ndata: {url}\n\n").as_bytes());
                out.append(&mut self.pending);
                self.done = true;
                return Ok(out);
            }
            out.extend_from_slice(&event);
        }
        if self.pending.len() > MAX_PENDING {
            return Err(SseError::TooLong);
        }
        Ok(out)
    }

    pub fn rewritten(&self) -> bool {
        self.done
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
        let cr_only = run(&[b"event: endpoint\rdata: /m\r\r", b": ping\r\r"]).unwrap();
        assert_eq!(cr_only, "event: endpoint\ndata: /sse/x/messages?s=</m>\n\n: ping\r\r");
    }

    #[test]
    fn passes_everything_after_the_endpoint_untouched() {
        let mut r = rw();
        r.push(b"event: endpoint\ndata: /m\n\n").unwrap();
        assert!(r.rewritten());
        let later = b"event: endpoint\ndata: /other\n\n";
        assert_eq!(r.push(later).unwrap(), later.to_vec());
    }

    #[test]
    fn refusals_and_limits() {
        assert_eq!(
            run(&[b"event: endpoint\ndata: https://evil.example/m\n\n"]),
            Err(SseError::Endpoint("other origin".into()))
        );
        let long = vec![b'a'; MAX_PENDING + 1];
        assert_eq!(run(&[&long]), Err(SseError::TooLong));
        assert_eq!(run(&[b"data: partial"]).unwrap(), "", "incomplete event is held back");
    }
}
