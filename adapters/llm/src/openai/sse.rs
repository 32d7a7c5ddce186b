//! Server-sent events, decoded from the raw bytes of a streaming response. Our own small decoder
//! rather than a crate: model servers bend the format (CRLF endings, comment keep-alives, no blank
//! line before EOF), and the chat client needs to see every such case to stay tolerant.
//!
//! Follows the WHATWG event-stream rules that matter here: lines end with `\n`, `\r\n` or `\r`;
//! a line starting with `:` is a comment; `data:` lines accumulate, joined by `\n`; a blank line
//! dispatches the event. At EOF a pending event is dispatched too.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event:` field, when the server named the event (`error` on some servers).
    pub event: Option<String>,
    pub data: String,
}

/// Turns byte chunks into events. Bytes are kept until a whole line has arrived, so a multi-byte
/// character split across chunks is decoded whole.
#[derive(Debug, Default)]
pub(crate) struct SseDecoder {
    buffer: Vec<u8>,
    /// Data lines of the event being read; `None` until its first `data:` line.
    data: Option<String>,
    event: Option<String>,
}

impl SseDecoder {
    /// Feeds a chunk and returns the events it completed, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i < self.buffer.len() {
            match self.buffer[i] {
                b'\n' => {
                    self.line(start, i, &mut events);
                    start = i + 1;
                }
                b'\r' => {
                    // A lone `\r` at the end of the chunk may be the first half of `\r\n`: wait.
                    if i + 1 == self.buffer.len() {
                        break;
                    }
                    self.line(start, i, &mut events);
                    if self.buffer[i + 1] == b'\n' {
                        i += 1;
                    }
                    start = i + 1;
                }
                _ => {}
            }
            i += 1;
        }
        self.buffer.drain(..start);
        events
    }

    /// The stream ended: a last line without its ending and an event without its blank line still
    /// count.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let mut events = Vec::new();
        if !self.buffer.is_empty() {
            let end = if self.buffer.last() == Some(&b'\r') { self.buffer.len() - 1 } else { self.buffer.len() };
            self.line(0, end, &mut events);
            self.buffer.clear();
        }
        self.dispatch(&mut events);
        events.pop()
    }

    fn line(&mut self, start: usize, end: usize, events: &mut Vec<SseEvent>) {
        let line = String::from_utf8_lossy(&self.buffer[start..end]).into_owned();
        if line.is_empty() {
            self.dispatch(events);
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_str(), ""),
        };
        match field {
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            "event" => self.event = Some(value.to_owned()),
            // `id` and `retry` only matter to a client that reconnects; a reply is never resumed.
            _ => {}
        }
    }

    fn dispatch(&mut self, events: &mut Vec<SseEvent>) {
        let event = self.event.take();
        if let Some(data) = self.data.take() {
            events.push(SseEvent { event, data });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(events: &[SseEvent]) -> Vec<&str> {
        events.iter().map(|e| e.data.as_str()).collect()
    }

    #[test]
    fn events_are_split_on_blank_lines_and_comments_are_skipped() {
        let mut decoder = SseDecoder::default();
        let events = decoder.push(b": keep-alive\n\ndata: {\"a\":1}\n\ndata:{\"b\":2}\n\n");
        assert_eq!(data(&events), vec!["{\"a\":1}", "{\"b\":2}"]);
    }

    #[test]
    fn crlf_and_lone_cr_line_endings_are_lines_too_even_split_across_chunks() {
        let mut decoder = SseDecoder::default();
        let mut events = decoder.push(b"data: one\r");
        events.extend(decoder.push(b"\n\r\ndata: two\r\r"));
        events.extend(decoder.push(b": ping\r\n\r\n"));
        assert_eq!(data(&events), vec!["one", "two"]);
    }

    #[test]
    fn multi_line_data_is_joined_with_newlines() {
        let mut decoder = SseDecoder::default();
        let events = decoder.push(b"event: message\ndata: {\"x\":\ndata: 1}\n\n");
        assert_eq!(events, vec![SseEvent { event: Some("message".into()), data: "{\"x\":\n1}".into() }]);
    }

    #[test]
    fn a_character_split_between_chunks_arrives_whole() {
        let bytes = "data: 🚚\n\n".as_bytes();
        let mut decoder = SseDecoder::default();
        let mut events = decoder.push(&bytes[..8]);
        assert!(events.is_empty());
        events.extend(decoder.push(&bytes[8..]));
        assert_eq!(data(&events), vec!["🚚"]);
    }

    #[test]
    fn a_last_event_without_its_blank_line_is_dispatched_at_eof() {
        let mut decoder = SseDecoder::default();
        assert!(decoder.push(b"data: [DONE]").is_empty());
        assert_eq!(decoder.finish().map(|e| e.data), Some("[DONE]".to_owned()));
        assert_eq!(decoder.finish(), None);
    }
}
