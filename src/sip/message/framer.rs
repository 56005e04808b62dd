//! Message framing on stream transports (wire layer, sans-IO): TCP and TLS carry messages back to
//! back, delimited only by Content-Length (RFC 3261 §18.3). The transport pushes what it read and
//! pops whole messages; CRLF keep-alives (RFC 5626 §3.5.1) are reported so that it can answer a
//! ping with a pong.
//!
//! An error from [`StreamFramer::pop`] means the byte stream can no longer be split into messages
//! (a bad, duplicate or missing Content-Length, an oversized or unreadable head): the connection
//! must be closed. A message that is framed correctly but whose start line is bad comes out as
//! [`Frame::Invalid`] and the stream goes on.

use bytes::BytesMut;

use super::error::{ParseError, ParseErrorKind};
use super::parse::{Head, find_head_end, parse_head};
use super::{MAX_MESSAGE_SIZE, Message};

/// One item taken from the stream.
// A frame is moved once, from the framer to the transaction layer: boxing the message would cost an
// allocation per message to save a copy of a few hundred bytes.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete message.
    Message(Message),
    /// A framed message that does not parse (bad Request-URI, unsupported version): answer it if
    /// a response can be routed; the stream stays usable.
    Invalid(ParseError),
    /// A double-CRLF keep-alive ping: answer with a single CRLF pong (RFC 5626 §4.4.1).
    Ping,
    /// A single-CRLF pong (the answer to our ping).
    Pong,
}

/// Splits a byte stream into SIP messages. Bounded: at most one message of
/// [`MAX_MESSAGE_SIZE`] is buffered.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: BytesMut,
    failed: Option<ParseErrorKind>,
    /// How far the search for the end of the head has got, so that a head trickling in one octet
    /// at a time is scanned once, not once per octet.
    scanned: usize,
    /// The head of the message being received and its total length, while its body is incomplete.
    pending: Option<(Head, usize)>,
}

impl StreamFramer {
    /// An empty framer for a new connection.
    pub fn new() -> StreamFramer {
        StreamFramer::default()
    }

    /// Appends octets read from the connection. Call [`StreamFramer::pop`] until it returns
    /// `Ok(None)` after each push.
    pub fn push(&mut self, data: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(data);
        }
    }

    /// Octets buffered but not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Takes the next complete item, `Ok(None)` when more octets are needed, or an error when the
    /// connection is unusable (every later call returns the same error).
    pub fn pop(&mut self) -> Result<Option<Frame>, ParseError> {
        if let Some(kind) = &self.failed {
            return Err(ParseError::new(kind.clone()));
        }
        match self.pop_inner() {
            Err(e) => {
                self.failed = Some(e.kind.clone());
                self.buf.clear();
                Err(e)
            }
            ok => ok,
        }
    }

    fn pop_inner(&mut self) -> Result<Option<Frame>, ParseError> {
        const PING: &[u8] = b"\r\n\r\n";
        if self.buf.starts_with(PING) {
            let _ = self.buf.split_to(4);
            return Ok(Some(Frame::Ping));
        }
        if !self.buf.is_empty() && PING.starts_with(&self.buf) {
            // Part of a ping (or a pong): wait until the next octet tells which.
            return Ok(None);
        }
        if self.buf.starts_with(b"\r\n") {
            let _ = self.buf.split_to(2);
            return Ok(Some(Frame::Pong));
        }
        if self.buf.first().is_some_and(|&b| b == b'\n' || b == b'\r') {
            // Stray line ends before a start line (RFC 3261 §7.5): skip them.
            let n = super::parse::skip_leading_crlf(&self.buf);
            let _ = self.buf.split_to(n);
            return self.pop_inner();
        }
        if self.buf.is_empty() {
            return Ok(None);
        }
        if self.pending.is_none() {
            let from = self.scanned.saturating_sub(3);
            let Some(rel) = find_head_end(&self.buf[from..]) else {
                self.scanned = self.buf.len();
                if self.buf.len() > MAX_MESSAGE_SIZE {
                    return Err(ParseErrorKind::TooLarge.into());
                }
                return Ok(None);
            };
            let end = from + rel;
            // Parse the head from a frozen copy so that values can be sliced without another copy.
            let head_bytes = self.buf[..end].to_vec().into();
            let head = parse_head(&head_bytes, end)?;
            let Some(body_len) = head.content_length else {
                return Err(head.into_error(ParseErrorKind::MissingContentLength));
            };
            if end + body_len > MAX_MESSAGE_SIZE {
                return Err(head.into_error(ParseErrorKind::TooLarge));
            }
            self.pending = Some((head, end + body_len));
        }
        match self.pending.take() {
            Some((head, total)) if self.buf.len() >= total => {
                self.scanned = 0;
                let mut msg = self.buf.split_to(total);
                let body = msg.split_off(head.len).freeze();
                Ok(Some(match head.into_message(body) {
                    Ok(m) => Frame::Message(m),
                    Err(e) => Frame::Invalid(e),
                }))
            }
            waiting => {
                self.pending = waiting;
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\
        Content-Length: 4\r\n\r\nbody";

    #[test]
    fn frames_back_to_back_and_keepalives() {
        let mut f = StreamFramer::new();
        let mut all = b"\r\n\r\n".to_vec();
        all.extend_from_slice(OPTIONS);
        all.extend_from_slice(OPTIONS);
        all.extend_from_slice(b"\r\nO");
        for chunk in all.chunks(7) {
            f.push(chunk);
        }
        assert_eq!(f.pop().unwrap(), Some(Frame::Ping));
        assert!(matches!(f.pop().unwrap(), Some(Frame::Message(_))));
        assert!(matches!(f.pop().unwrap(), Some(Frame::Message(_))));
        assert_eq!(f.pop().unwrap(), Some(Frame::Pong));
        assert_eq!(f.pop().unwrap(), None);
        assert_eq!(f.buffered(), 1);
    }

    #[test]
    fn bad_length_poisons_the_stream() {
        let mut f = StreamFramer::new();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n");
        assert_eq!(f.pop().unwrap_err().kind, ParseErrorKind::BadContentLength);
        f.push(OPTIONS);
        assert!(f.pop().is_err());
    }
}
