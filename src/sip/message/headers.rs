//! The header list of a message (wire layer, sans-IO): ordered `(name, raw value)` pairs.
//!
//! Names are normalised to their canonical long form on the way in (`v`, `VIA` and `via` all
//! become `Via`, RFC 3261 §7.3.3); unknown names are kept as received and compared without regard
//! to case. Values are the raw octets with folding replaced by one space, sliced out of the
//! received buffer without a copy when the line was not folded. Typed access lives in
//! the `typed` module, as inherent methods on [`Headers`].

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;

/// Canonical header names this crate knows, long form, as printed.
pub mod name {
    #![allow(missing_docs)]
    pub const ACCEPT: &str = "Accept";
    pub const ACCEPT_ENCODING: &str = "Accept-Encoding";
    pub const ALLOW: &str = "Allow";
    pub const ALLOW_EVENTS: &str = "Allow-Events";
    pub const AUTHORIZATION: &str = "Authorization";
    pub const CALL_ID: &str = "Call-ID";
    pub const CONTACT: &str = "Contact";
    pub const CONTENT_ENCODING: &str = "Content-Encoding";
    pub const CONTENT_LENGTH: &str = "Content-Length";
    pub const CONTENT_TYPE: &str = "Content-Type";
    pub const CSEQ: &str = "CSeq";
    pub const DATE: &str = "Date";
    pub const EVENT: &str = "Event";
    pub const EXPIRES: &str = "Expires";
    pub const FROM: &str = "From";
    pub const MAX_FORWARDS: &str = "Max-Forwards";
    pub const MIN_EXPIRES: &str = "Min-Expires";
    pub const MIN_SE: &str = "Min-SE";
    pub const P_ASSERTED_IDENTITY: &str = "P-Asserted-Identity";
    pub const PRIVACY: &str = "Privacy";
    pub const PROXY_AUTHENTICATE: &str = "Proxy-Authenticate";
    pub const PROXY_AUTHORIZATION: &str = "Proxy-Authorization";
    pub const PROXY_REQUIRE: &str = "Proxy-Require";
    pub const RACK: &str = "RAck";
    pub const RECORD_ROUTE: &str = "Record-Route";
    pub const REFER_TO: &str = "Refer-To";
    pub const REFERRED_BY: &str = "Referred-By";
    pub const REPLACES: &str = "Replaces";
    pub const REQUIRE: &str = "Require";
    pub const RETRY_AFTER: &str = "Retry-After";
    pub const ROUTE: &str = "Route";
    pub const RSEQ: &str = "RSeq";
    pub const SERVER: &str = "Server";
    pub const SESSION_EXPIRES: &str = "Session-Expires";
    pub const SUBJECT: &str = "Subject";
    pub const SUPPORTED: &str = "Supported";
    pub const TO: &str = "To";
    pub const UNSUPPORTED: &str = "Unsupported";
    pub const USER_AGENT: &str = "User-Agent";
    pub const VIA: &str = "Via";
    pub const WARNING: &str = "Warning";
    pub const WWW_AUTHENTICATE: &str = "WWW-Authenticate";
}

/// The canonical form of a header name: the long known spelling, or `None` when unknown. Compact
/// forms (RFC 3261 §7.3.3 and the extensions' registrations) map to their long names.
pub fn canonical_name(raw: &str) -> Option<&'static str> {
    // Lower-case into a stack buffer and match: no allocation, and the compiler turns the match
    // into length and word comparisons, which matters on the per-header hot path.
    let mut buf = [0u8; 24];
    let lower = buf.get_mut(..raw.len())?;
    lower.copy_from_slice(raw.as_bytes());
    lower.make_ascii_lowercase();
    Some(match &*lower {
        b"i" | b"call-id" => name::CALL_ID,
        b"m" | b"contact" => name::CONTACT,
        b"e" | b"content-encoding" => name::CONTENT_ENCODING,
        b"l" | b"content-length" => name::CONTENT_LENGTH,
        b"c" | b"content-type" => name::CONTENT_TYPE,
        b"f" | b"from" => name::FROM,
        b"s" | b"subject" => name::SUBJECT,
        b"k" | b"supported" => name::SUPPORTED,
        b"t" | b"to" => name::TO,
        b"v" | b"via" => name::VIA,
        b"o" | b"event" => name::EVENT,
        b"r" | b"refer-to" => name::REFER_TO,
        b"u" | b"allow-events" => name::ALLOW_EVENTS,
        b"x" | b"session-expires" => name::SESSION_EXPIRES,
        b"b" | b"referred-by" => name::REFERRED_BY,
        b"y" | b"identity" => "Identity",
        b"n" | b"identity-info" => "Identity-Info",
        b"a" | b"accept-contact" => "Accept-Contact",
        b"j" | b"reject-contact" => "Reject-Contact",
        b"d" | b"request-disposition" => "Request-Disposition",
        b"accept" => name::ACCEPT,
        b"accept-encoding" => name::ACCEPT_ENCODING,
        b"allow" => name::ALLOW,
        b"authorization" => name::AUTHORIZATION,
        b"cseq" => name::CSEQ,
        b"date" => name::DATE,
        b"expires" => name::EXPIRES,
        b"max-forwards" => name::MAX_FORWARDS,
        b"min-expires" => name::MIN_EXPIRES,
        b"min-se" => name::MIN_SE,
        b"p-asserted-identity" => name::P_ASSERTED_IDENTITY,
        b"privacy" => name::PRIVACY,
        b"proxy-authenticate" => name::PROXY_AUTHENTICATE,
        b"proxy-authorization" => name::PROXY_AUTHORIZATION,
        b"proxy-require" => name::PROXY_REQUIRE,
        b"rack" => name::RACK,
        b"record-route" => name::RECORD_ROUTE,
        b"replaces" => name::REPLACES,
        b"require" => name::REQUIRE,
        b"retry-after" => name::RETRY_AFTER,
        b"route" => name::ROUTE,
        b"rseq" => name::RSEQ,
        b"server" => name::SERVER,
        b"unsupported" => name::UNSUPPORTED,
        b"user-agent" => name::USER_AGENT,
        b"warning" => name::WARNING,
        b"www-authenticate" => name::WWW_AUTHENTICATE,
        _ => return None,
    })
}

/// A header name: canonical for known headers, as received for others. Equality ignores case.
#[derive(Debug, Clone)]
pub struct HeaderName(Cow<'static, str>);

impl HeaderName {
    /// Normalises a name (compact or any case) to its canonical form.
    pub fn new(raw: &str) -> HeaderName {
        match canonical_name(raw) {
            Some(c) => HeaderName(Cow::Borrowed(c)),
            None => HeaderName(Cow::Owned(raw.to_owned())),
        }
    }

    /// The name as printed.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when this is `name` (compared case-insensitively; `name` should be canonical).
    pub fn is(&self, name: &str) -> bool {
        self.0.len() == name.len() && self.0.eq_ignore_ascii_case(name)
    }
}

impl PartialEq for HeaderName {
    fn eq(&self, other: &Self) -> bool {
        self.is(&other.0)
    }
}
impl Eq for HeaderName {}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for HeaderName {
    fn from(s: &str) -> Self {
        HeaderName::new(s)
    }
}

/// One header line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The (canonical) name.
    pub name: HeaderName,
    /// The raw value: no leading/trailing white space, folds replaced by a single space.
    pub value: Bytes,
}

impl Header {
    /// The value as text, with non-UTF-8 octets replaced (borrowed when the value is UTF-8).
    pub fn value_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.value)
    }
}

/// The ordered header list of a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    list: Vec<Header>,
}

/// The name to compare stored names with: only compact forms need mapping, since stored names
/// are compared without regard to case anyway.
fn canonical_query(name: &str) -> &str {
    if name.len() == 1 { canonical_name(name).unwrap_or(name) } else { name }
}

impl Headers {
    /// An empty list.
    pub fn new() -> Headers {
        Headers::default()
    }

    /// An empty list with room for `n` headers.
    pub fn with_capacity(n: usize) -> Headers {
        Headers { list: Vec::with_capacity(n) }
    }

    /// Number of header lines.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True when there are no header lines.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// All header lines in order.
    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.list.iter()
    }

    /// The raw value of the first header called `name` (any case, compact forms accepted).
    pub fn get(&self, name: &str) -> Option<&Bytes> {
        let name = canonical_query(name);
        self.list.iter().find(|h| h.name.is(name)).map(|h| &h.value)
    }

    /// The raw values of every header called `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Bytes> + 'a {
        let name = canonical_query(name);
        self.list.iter().filter(move |h| h.name.is(name)).map(|h| &h.value)
    }

    /// The number of header lines called `name`.
    pub fn count(&self, name: &str) -> usize {
        let name = canonical_query(name);
        self.list.iter().filter(|h| h.name.is(name)).count()
    }

    /// Appends a header line.
    pub fn push(&mut self, name: impl Into<HeaderName>, value: impl Into<Bytes>) {
        self.list.push(Header { name: name.into(), value: value.into() });
    }

    /// Inserts a header line at the front (for a new top Via or Record-Route).
    pub fn push_front(&mut self, name: impl Into<HeaderName>, value: impl Into<Bytes>) {
        self.list.insert(0, Header { name: name.into(), value: value.into() });
    }

    /// Replaces every header called `name` with one line holding `value`, at the position of the
    /// first one (or at the end when there was none).
    pub fn set(&mut self, name: impl Into<HeaderName>, value: impl Into<Bytes>) {
        let name = name.into();
        let value = value.into();
        match self.list.iter().position(|h| h.name == name) {
            Some(i) => {
                self.list[i].value = value;
                let mut seen = 0;
                self.list.retain(|h| {
                    if h.name == name {
                        seen += 1;
                        seen == 1
                    } else {
                        true
                    }
                });
            }
            None => self.list.push(Header { name, value }),
        }
    }

    /// Removes every header called `name`; returns how many were removed.
    pub fn remove(&mut self, name: &str) -> usize {
        let name = canonical_query(name);
        let before = self.list.len();
        self.list.retain(|h| !h.name.is(name));
        before - self.list.len()
    }

    pub(crate) fn push_header(&mut self, h: Header) {
        self.list.push(h);
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_case() {
        let mut h = Headers::new();
        h.push(HeaderName::new("v"), "SIP/2.0/UDP a");
        h.push(HeaderName::new("VIA"), "SIP/2.0/UDP b");
        h.push(HeaderName::new("X-Thing"), "1");
        assert_eq!(h.count("via"), 2);
        assert_eq!(h.get("x-thing").map(|b| &b[..]), Some(&b"1"[..]));
        assert_eq!(h.iter().next().unwrap().name.as_str(), "Via");
        h.set("Via", "SIP/2.0/UDP c");
        assert_eq!(h.count("v"), 1);
        assert_eq!(h.remove("x-THING"), 1);
    }
}
