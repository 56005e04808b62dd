//! The SIP message layer (wire, sans-IO): parse leniently, print strictly.
//!
//! [`parse_datagram`] reads one UDP datagram; [`StreamFramer`] splits a TCP/TLS byte stream.
//! Both yield a [`Message`]: a [`Request`] or a [`Response`] whose [`Headers`] keep every header's
//! raw value (digest authentication needs the literal `uri=`), with typed accessors such as
//! [`Headers::top_via`] or [`Headers::contacts`] that parse on demand and report a malformed
//! header as a [`HeaderError`]. Printing ([`Message::to_bytes`], `Display`) is canonical: long
//! header names, `Name: value` with CRLF, and a Content-Length that always matches the body, so
//! `parse(print(m)) == m` for any message whose Content-Length is already right.

mod auth;
mod error;
mod framer;
mod headers;
mod lex;
mod method;
mod parse;
mod typed;
mod uri;
mod values;

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

pub use auth::{AuthFields, AuthParam, Challenge, Credentials};
pub use error::{HeaderError, ParseError, ParseErrorKind, RequestHead, UriError};
pub use framer::{Frame, StreamFramer};
pub use headers::{Header, HeaderName, Headers, canonical_name, name};
pub use lex::Param;
pub use method::Method;
pub use parse::parse_datagram;
pub use uri::{Host, Scheme, Uri, unescape};
pub use values::{
    CSeq, Contact, Contacts, MediaType, NameAddr, RAck, Replaces, RetryAfter, SessionExpires, Via,
};

/// Largest message accepted, head and body together (a UDP datagram or one framed TCP message).
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;

/// Most header lines accepted in one message.
pub const MAX_HEADERS: usize = 128;

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The Request-URI (its literal text is kept).
    pub uri: Uri,
    /// Header lines in order.
    pub headers: Headers,
    /// The body (exactly Content-Length octets).
    pub body: Bytes,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code, 100..=699.
    pub status: u16,
    /// Reason phrase (octets that are not UTF-8 are replaced).
    pub reason: String,
    /// Header lines in order.
    pub headers: Headers,
    /// The body.
    pub body: Bytes,
}

/// A request or a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

/// True when a datagram holds nothing but line ends: an RFC 5626 keep-alive, not a message.
pub fn is_keep_alive(datagram: &[u8]) -> bool {
    !datagram.is_empty() && datagram.iter().all(|&b| b == b'\r' || b == b'\n')
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: Method, uri: Uri) -> Request {
        Request { method, uri, headers: Headers::new(), body: Bytes::new() }
    }

    /// Canonical wire form.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(256 + self.body.len());
        out.put_slice(self.method.as_str().as_bytes());
        out.put_u8(b' ');
        out.put_slice(self.uri.as_str().as_bytes());
        out.put_slice(b" SIP/2.0\r\n");
        print_rest(&mut out, &self.headers, &self.body);
        out.freeze()
    }
}

impl Response {
    /// A response to `request` per RFC 3261 §8.2.6: Via (all, in order), From, To, Call-ID and
    /// CSeq copied; `to_tag` added to To when given and To has no tag yet. The reason phrase is
    /// the standard one for `status`.
    pub fn for_request(request: &Request, status: u16, to_tag: Option<&str>) -> Response {
        Response::for_headers(&request.headers, status, to_tag)
    }

    /// Like [`Response::for_request`], from a request's headers alone (for a request whose head
    /// was read but that did not parse, see [`RequestHead`]).
    pub fn for_headers(request: &Headers, status: u16, to_tag: Option<&str>) -> Response {
        let mut headers = Headers::with_capacity(8);
        for h in request.iter() {
            let copy = [name::VIA, name::FROM, name::TO, name::CALL_ID, name::CSEQ]
                .iter()
                .any(|n| h.name.is(n));
            if !copy {
                continue;
            }
            let mut value = h.value.clone();
            if h.name.is(name::TO)
                && let Some(tag) = to_tag
                && request.to().is_ok_and(|t| t.tag().is_none())
            {
                let mut v = BytesMut::from(&h.value[..]);
                v.put_slice(b";tag=");
                v.put_slice(tag.as_bytes());
                value = v.freeze();
            }
            headers.push_header(Header { name: h.name.clone(), value });
        }
        Response { status, reason: reason_phrase(status).to_owned(), headers, body: Bytes::new() }
    }

    /// Canonical wire form.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(256 + self.body.len());
        out.put_slice(format!("SIP/2.0 {} ", self.status).as_bytes());
        out.put_slice(self.reason.as_bytes());
        out.put_slice(b"\r\n");
        print_rest(&mut out, &self.headers, &self.body);
        out.freeze()
    }
}

/// Headers, Content-Length (at the position of the first one, or last), empty line, body.
fn print_rest(out: &mut BytesMut, headers: &Headers, body: &Bytes) {
    let mut length_done = false;
    for h in headers {
        if h.name.is(name::CONTENT_LENGTH) {
            if !length_done {
                out.put_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
                length_done = true;
            }
            continue;
        }
        out.put_slice(h.name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(&h.value);
        out.put_slice(b"\r\n");
    }
    if !length_done {
        out.put_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.put_slice(b"\r\n");
    out.put_slice(body);
}

impl Message {
    /// The headers of either kind.
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }

    /// The headers of either kind, to change them.
    pub fn headers_mut(&mut self) -> &mut Headers {
        match self {
            Message::Request(r) => &mut r.headers,
            Message::Response(r) => &mut r.headers,
        }
    }

    /// The body of either kind.
    pub fn body(&self) -> &Bytes {
        match self {
            Message::Request(r) => &r.body,
            Message::Response(r) => &r.body,
        }
    }

    /// Canonical wire form.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        }
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

/// The standard reason phrase for a status code (RFC 3261 §21 and extensions); the one table of
/// them in the crate.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        199 => "Early Dialog Terminated",
        200 => "OK",
        202 => "Accepted",
        204 => "No Notification",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        412 => "Conditional Request Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        417 => "Unknown Resource-Priority",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        428 => "Use Identity Header",
        429 => "Provide Referrer Identity",
        433 => "Anonymity Disallowed",
        439 => "First Hop Lacks Outbound Support",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        494 => "Security Agreement Required",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        580 => "Precondition Failure",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        607 => "Unwanted",
        s if (100..200).contains(&s) => "Trying",
        s if (200..300).contains(&s) => "OK",
        s if (300..400).contains(&s) => "Redirected",
        s if (400..500).contains(&s) => "Client Error",
        s if (500..600).contains(&s) => "Server Error",
        _ => "Global Failure",
    }
}
