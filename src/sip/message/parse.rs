//! Reading messages (wire layer, sans-IO): the start line, header lines (compact names, folding,
//! any case, LWS before the colon) and the body framed by Content-Length (RFC 3261 §7, §18.3).
//!
//! Parsing is lenient where the meaning is unambiguous (extra spaces in the start line, trailing
//! white space, bare LF line ends, CRLFs before the start line) and strict where a mistake would
//! mis-frame a message (Content-Length). Header values are sliced out of the input `Bytes`
//! without a copy unless they were folded.

use bytes::{Bytes, BytesMut};
use memchr::memchr;

use super::error::{ParseError, ParseErrorKind, RequestHead};
use super::headers::{Header, HeaderName, Headers, name};
use super::lex::is_token;
use super::method::Method;
use super::uri::Uri;
use super::{MAX_HEADERS, MAX_MESSAGE_SIZE, Message, Request, Response};

/// The start line as read.
#[derive(Debug)]
enum StartLine {
    Request { method: Method, uri: Result<Uri, super::error::UriError>, version_ok: bool },
    Response { status: u16, reason: String },
}

/// A parsed head: start line, headers and the length of the head in octets (through the empty
/// line).
#[derive(Debug)]
pub(crate) struct Head {
    start: StartLine,
    headers: Headers,
    /// Octets consumed up to and including the empty line.
    pub(crate) len: usize,
    /// The Content-Length value, when present.
    pub(crate) content_length: Option<usize>,
}

/// Skips the CRLFs that may precede a message (RFC 3261 §7.5).
pub(crate) fn skip_leading_crlf(b: &[u8]) -> usize {
    b.iter().take_while(|&&c| c == b'\r' || c == b'\n').count()
}

/// Finds the end of the header section: the offset just past the empty line, accepting CRLF or
/// bare LF line ends.
pub(crate) fn find_head_end(b: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = memchr(b'\n', &b[from..]) {
        let nl = from + i;
        let next = &b[nl + 1..];
        if next.first() == Some(&b'\n') {
            return Some(nl + 2);
        }
        if next.starts_with(b"\r\n") {
            return Some(nl + 3);
        }
        from = nl + 1;
    }
    None
}

/// Parses a complete datagram (UDP): the body is what Content-Length says, trailing octets are
/// ignored, and without Content-Length the body is the rest of the datagram.
pub fn parse_datagram(datagram: impl Into<Bytes>) -> Result<Message, ParseError> {
    let buf: Bytes = datagram.into();
    if buf.len() > MAX_MESSAGE_SIZE {
        return Err(ParseErrorKind::TooLarge.into());
    }
    let skip = skip_leading_crlf(&buf);
    if skip == buf.len() {
        return Err(ParseErrorKind::Empty.into());
    }
    let buf = buf.slice(skip..);
    let end = find_head_end(&buf).ok_or(ParseErrorKind::IncompleteHead)?;
    let head = parse_head(&buf, end)?;
    let available = buf.len() - head.len;
    let body_len = match head.content_length {
        Some(n) if n > available => return Err(head.into_error(ParseErrorKind::BodyTruncated)),
        Some(n) => n,
        None => available,
    };
    let body = buf.slice(head.len..head.len + body_len);
    head.into_message(body)
}

impl Head {
    /// Turns the head into an error that keeps the request head, so a response can be routed.
    pub(crate) fn into_error(self, kind: ParseErrorKind) -> ParseError {
        let request_head = match self.start {
            StartLine::Request { method, .. } => {
                Some(Box::new(RequestHead { method, headers: self.headers }))
            }
            StartLine::Response { .. } => None,
        };
        ParseError { kind, request_head }
    }

    /// Completes the message with its body, or reports a start-line problem found earlier.
    pub(crate) fn into_message(self, body: Bytes) -> Result<Message, ParseError> {
        match self.start {
            StartLine::Request { method, uri, version_ok } => {
                let kind = match (&uri, version_ok) {
                    (_, false) => Some(ParseErrorKind::UnsupportedVersion),
                    (Err(e), _) => Some(ParseErrorKind::BadRequestUri(e.clone())),
                    _ => None,
                };
                match (kind, uri) {
                    (None, Ok(uri)) => {
                        Ok(Message::Request(Request { method, uri, headers: self.headers, body }))
                    }
                    (kind, _) => Err(ParseError {
                        kind: kind.unwrap_or(ParseErrorKind::BadStartLine),
                        request_head: Some(Box::new(RequestHead { method, headers: self.headers })),
                    }),
                }
            }
            StartLine::Response { status, reason } => {
                Ok(Message::Response(Response { status, reason, headers: self.headers, body }))
            }
        }
    }
}

fn trim_line(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_wsp(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_wsp(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_wsp(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// `SIP/x.y` with digits; returns whether it is 2.0.
fn sip_version(v: &[u8]) -> Option<bool> {
    let v = std::str::from_utf8(v).ok()?;
    v.get(..4).filter(|p| p.eq_ignore_ascii_case("SIP/"))?;
    let (major, minor) = v[4..].split_once('.')?;
    let num = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !num(major) || !num(minor) {
        return None;
    }
    Some(major.trim_start_matches('0') == "2" && minor.trim_start_matches('0').is_empty())
}

fn parse_start_line(line: &[u8]) -> Result<StartLine, ParseErrorKind> {
    let line = trim_wsp(line);
    let sp = memchr(b' ', line).ok_or(ParseErrorKind::BadStartLine)?;
    let first = &line[..sp];
    let rest = trim_wsp(&line[sp + 1..]);
    if first.len() >= 4 && first[..4].eq_ignore_ascii_case(b"SIP/") {
        sip_version(first).ok_or(ParseErrorKind::BadStartLine)?;
        let (code, reason) = match memchr(b' ', rest) {
            Some(i) => (&rest[..i], trim_wsp(&rest[i + 1..])),
            None => (rest, &b""[..]),
        };
        if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
            return Err(ParseErrorKind::BadStatusCode);
        }
        let status = code.iter().fold(0u16, |a, d| a * 10 + u16::from(d - b'0'));
        if !(100..=699).contains(&status) {
            return Err(ParseErrorKind::BadStatusCode);
        }
        return Ok(StartLine::Response {
            status,
            reason: String::from_utf8_lossy(reason).into_owned(),
        });
    }
    let method = std::str::from_utf8(first).map_err(|_| ParseErrorKind::BadMethod)?;
    if !is_token(method) {
        return Err(ParseErrorKind::BadMethod);
    }
    let last_sp = rest.iter().rposition(|&b| is_wsp(b)).ok_or(ParseErrorKind::BadStartLine)?;
    let version = &rest[last_sp + 1..];
    let uri = trim_wsp(&rest[..last_sp]);
    let version_ok = sip_version(version).ok_or(ParseErrorKind::BadStartLine)?;
    let uri =
        std::str::from_utf8(uri).map_err(|_| super::error::UriError::BadChar).and_then(Uri::parse);
    Ok(StartLine::Request { method: Method::from_token(method), uri, version_ok })
}

/// Joins a folded value: every line end plus the white space after it becomes one space.
fn unfold(raw: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'\r' || b == b'\n' {
            while i < raw.len() && (raw[i] == b'\r' || raw[i] == b'\n' || is_wsp(raw[i])) {
                i += 1;
            }
            while out.last().is_some_and(|&c| is_wsp(c)) {
                out.truncate(out.len() - 1);
            }
            out.extend_from_slice(b" ");
            continue;
        }
        out.extend_from_slice(&[b]);
        i += 1;
    }
    // A fold at either end (an empty first line, a blank continuation) leaves no white space.
    let out = out.freeze();
    let trimmed = trim_wsp(&out);
    out.slice_ref(trimmed)
}

/// Parses the head `buf[..end]` (end is just past the empty line).
pub(crate) fn parse_head(buf: &Bytes, end: usize) -> Result<Head, ParseError> {
    let head = &buf[..end];
    let first_nl = memchr(b'\n', head).ok_or(ParseErrorKind::IncompleteHead)?;
    let start = parse_start_line(trim_line(&head[..first_nl]))?;
    let mut headers = Headers::with_capacity(16);
    let mut content_length: Option<Result<usize, ParseErrorKind>> = None;
    let mut pos = first_nl + 1;
    loop {
        // Find the logical line: it continues while the next physical line starts with WSP.
        let line_start = pos;
        let mut folded = false;
        let line_end = loop {
            let nl = match memchr(b'\n', &head[pos..]) {
                Some(i) => pos + i,
                None => return Err(ParseErrorKind::IncompleteHead.into()),
            };
            pos = nl + 1;
            if head.get(pos).is_some_and(|&b| is_wsp(b)) {
                folded = true;
                continue;
            }
            break nl;
        };
        let line = trim_line(&head[line_start..line_end]);
        if line.is_empty() {
            break;
        }
        if headers.len() >= MAX_HEADERS {
            return Err(ParseErrorKind::TooManyHeaders.into());
        }
        let colon = memchr(b':', line).ok_or(ParseErrorKind::BadHeaderLine)?;
        let name_bytes = trim_wsp(&line[..colon]);
        let name_str =
            std::str::from_utf8(name_bytes).map_err(|_| ParseErrorKind::BadHeaderLine)?;
        if !is_token(name_str) {
            return Err(ParseErrorKind::BadHeaderLine.into());
        }
        let value = trim_wsp(&line[colon + 1..]);
        let value = if folded && value.iter().any(|&b| b == b'\n' || b == b'\r') {
            unfold(value)
        } else {
            buf.slice_ref(value)
        };
        let hname = HeaderName::new(name_str);
        if hname.is(name::CONTENT_LENGTH) {
            content_length = Some(match content_length {
                Some(_) => Err(ParseErrorKind::DuplicateContentLength),
                None => super::lex::parse_decimal::<usize>(
                    std::str::from_utf8(&value).unwrap_or_default(),
                )
                .filter(|&n| n <= MAX_MESSAGE_SIZE)
                .ok_or(ParseErrorKind::BadContentLength),
            });
        }
        headers.push_header(Header { name: hname, value });
    }
    let mut head = Head { start, headers, len: end, content_length: None };
    match content_length {
        Some(Err(kind)) => return Err(head.into_error(kind)),
        Some(Ok(n)) => head.content_length = Some(n),
        None => {}
    }
    Ok(head)
}
