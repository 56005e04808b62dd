//! Errors of the message layer (wire, sans-IO): [`ParseError`] for a message that cannot be read or
//! framed, [`HeaderError`] for one header whose typed value is malformed. A message parses even
//! when some header values are bad; the typed accessors report those lazily, so the caller decides
//! whether a bad header matters (RFC 3261 §16.3 lets elements ignore headers they do not need).

use super::{Headers, Method};

/// Why a header's typed value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The header is mandatory for this access but absent.
    #[error("header {0} is missing")]
    Missing(&'static str),
    /// A header that may appear once appears several times (RFC 3261 §7.3.1).
    #[error("header {0} appears more than once")]
    Duplicate(&'static str),
    /// The value is not valid UTF-8 where text is needed.
    #[error("header value is not UTF-8")]
    NotUtf8,
    /// A `"` without its partner.
    #[error("unbalanced double quote")]
    UnbalancedQuote,
    /// A `<` without its `>`.
    #[error("unbalanced angle bracket")]
    UnbalancedAngle,
    /// A list header with an empty element (`a,,b`).
    #[error("empty element in a list header")]
    EmptyListElement,
    /// A malformed `;name=value` parameter.
    #[error("malformed header parameter")]
    BadParam,
    /// A number that is not decimal digits or does not fit its type.
    #[error("bad or out-of-range number")]
    BadNumber,
    /// A URI that does not parse.
    #[error("bad URI: {0}")]
    Uri(#[from] UriError),
    /// Any other syntax problem, with what was expected.
    #[error("syntax error: {0}")]
    Syntax(&'static str),
}

/// Why a URI could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    /// No `scheme:` prefix, or a scheme with characters RFC 3986 does not allow.
    #[error("missing or invalid scheme")]
    Scheme,
    /// White space, control characters, quotes or angle brackets inside the URI.
    #[error("character not allowed in a URI")]
    BadChar,
    /// Host missing or malformed (including bad IPv6 references, RFC 5118).
    #[error("bad host")]
    Host,
    /// Port not a decimal number up to 65535.
    #[error("bad port")]
    Port,
    /// Malformed `;param` or `?header` part.
    #[error("bad URI parameter or header")]
    Param,
    /// A `tel:` URI without a valid number.
    #[error("bad telephone number")]
    Tel,
}

/// What went wrong while reading or framing a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    /// Nothing but white space.
    #[error("empty message")]
    Empty,
    /// The header section does not end with an empty line.
    #[error("incomplete header section")]
    IncompleteHead,
    /// The start line is neither a request line nor a status line.
    #[error("malformed start line")]
    BadStartLine,
    /// The method is not an RFC 3261 token.
    #[error("malformed method")]
    BadMethod,
    /// The Request-URI does not parse.
    #[error("malformed Request-URI: {0}")]
    BadRequestUri(UriError),
    /// A well-formed SIP version other than 2.0 (answered with 505).
    #[error("unsupported SIP version")]
    UnsupportedVersion,
    /// A status code that is not three digits in 100..=699.
    #[error("bad status code")]
    BadStatusCode,
    /// A header line without a colon or with a bad name.
    #[error("malformed header line")]
    BadHeaderLine,
    /// Content-Length is negative, not a number or too large.
    #[error("bad Content-Length")]
    BadContentLength,
    /// Content-Length appears more than once.
    #[error("duplicate Content-Length")]
    DuplicateContentLength,
    /// Content-Length is missing on a stream transport, where it is mandatory (RFC 3261 §18.3).
    #[error("Content-Length missing on a stream transport")]
    MissingContentLength,
    /// Content-Length announces more octets than the datagram holds.
    #[error("body shorter than Content-Length")]
    BodyTruncated,
    /// The message exceeds [`super::MAX_MESSAGE_SIZE`].
    #[error("message too large")]
    TooLarge,
    /// More than [`super::MAX_HEADERS`] header lines.
    #[error("too many headers")]
    TooManyHeaders,
}

/// The request line and headers of a request whose framing or start line failed, kept so that the
/// caller can still route a 400 or 505 back along its Via (RFC 3261 §8.2.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The request method.
    pub method: Method,
    /// All header lines, as parsed.
    pub headers: Headers,
}

/// A message that could not be parsed or framed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct ParseError {
    /// What went wrong.
    pub kind: ParseErrorKind,
    /// For a request whose header section was read, its head; `None` otherwise.
    pub request_head: Option<Box<RequestHead>>,
}

impl ParseError {
    pub(crate) fn new(kind: ParseErrorKind) -> Self {
        ParseError { kind, request_head: None }
    }
}

impl From<ParseErrorKind> for ParseError {
    fn from(kind: ParseErrorKind) -> Self {
        ParseError::new(kind)
    }
}
