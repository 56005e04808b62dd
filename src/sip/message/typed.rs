//! Typed access to headers (wire layer, sans-IO). Each accessor parses the raw values on demand
//! and returns `Result<_, HeaderError>`: a malformed element makes the whole header an error,
//! never a silently shorter list. Headers that may appear once report duplicates.

use std::borrow::Cow;

use super::auth::{Challenge, Credentials};
use super::error::HeaderError;
use super::headers::{Headers, name};
use super::lex::{is_token, parse_decimal, split_list, split_params, trim_lws};
use super::method::Method;
use super::values::{
    CSeq, Contact, Contacts, MediaType, NameAddr, RAck, Replaces, RetryAfter, SessionExpires, Via,
};

/// A value as text: borrowed when it is UTF-8 (the fast, common case), else with replacements.
fn text(v: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(v) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(v),
    }
}

impl Headers {
    /// The single value of `name` as text; `Ok(None)` when absent, an error when repeated.
    pub fn single(&self, name: &'static str) -> Result<Option<Cow<'_, str>>, HeaderError> {
        let mut it = self.get_all(name);
        let first = it.next();
        if it.next().is_some() {
            return Err(HeaderError::Duplicate(name));
        }
        Ok(first.map(|v| text(v)))
    }

    fn required(&self, name: &'static str) -> Result<Cow<'_, str>, HeaderError> {
        self.single(name)?.ok_or(HeaderError::Missing(name))
    }

    /// Every element of a list header across all its lines, each parsed with `f`.
    pub fn list<T>(
        &self,
        name: &'static str,
        f: impl Fn(&str) -> Result<T, HeaderError>,
    ) -> Result<Vec<T>, HeaderError> {
        let mut out = Vec::new();
        for v in self.get_all(name) {
            for el in split_list(&text(v))? {
                out.push(f(el)?);
            }
        }
        Ok(out)
    }

    /// All Via elements, top first.
    pub fn via(&self) -> Result<Vec<Via>, HeaderError> {
        self.list(name::VIA, Via::parse)
    }

    /// The top Via element (the first element of the first Via line), which routes responses.
    pub fn top_via(&self) -> Result<Via, HeaderError> {
        let first = self.get(name::VIA).ok_or(HeaderError::Missing(name::VIA))?;
        let first = text(first);
        let el = split_list(&first)?;
        Via::parse(el[0])
    }

    /// From.
    pub fn from(&self) -> Result<NameAddr, HeaderError> {
        NameAddr::parse(&self.required(name::FROM)?)
    }

    /// To.
    pub fn to(&self) -> Result<NameAddr, HeaderError> {
        NameAddr::parse(&self.required(name::TO)?)
    }

    /// Call-ID (`word[@word]`, any printable ASCII but white space).
    pub fn call_id(&self) -> Result<&str, HeaderError> {
        let mut it = self.get_all(name::CALL_ID);
        let v = it.next().ok_or(HeaderError::Missing(name::CALL_ID))?;
        if it.next().is_some() {
            return Err(HeaderError::Duplicate(name::CALL_ID));
        }
        let s = std::str::from_utf8(v).map_err(|_| HeaderError::NotUtf8)?;
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(HeaderError::Syntax("Call-ID"));
        }
        Ok(s)
    }

    /// CSeq.
    pub fn cseq(&self) -> Result<CSeq, HeaderError> {
        CSeq::parse(&self.required(name::CSEQ)?)
    }

    /// Max-Forwards (0..=255); `None` when absent (RFC 2543 peers omit it).
    pub fn max_forwards(&self) -> Result<Option<u8>, HeaderError> {
        self.number(name::MAX_FORWARDS)
    }

    fn number<T: std::str::FromStr>(&self, name: &'static str) -> Result<Option<T>, HeaderError> {
        match self.single(name)? {
            Some(v) => parse_decimal(trim_lws(&v)).map(Some).ok_or(HeaderError::BadNumber),
            None => Ok(None),
        }
    }

    /// Content-Length as written (framing has already used and checked it).
    pub fn content_length(&self) -> Result<Option<usize>, HeaderError> {
        self.number(name::CONTENT_LENGTH)
    }

    /// Content-Type.
    pub fn content_type(&self) -> Result<Option<MediaType>, HeaderError> {
        self.single(name::CONTENT_TYPE)?.map(|v| MediaType::parse(&v)).transpose()
    }

    /// Contact: `*` or the list of contacts (empty when there is no Contact header).
    pub fn contacts(&self) -> Result<Contacts, HeaderError> {
        let values: Vec<_> = self.get_all(name::CONTACT).collect();
        if values.iter().any(|v| trim_lws(&text(v)) == "*") {
            if values.len() != 1 {
                return Err(HeaderError::Syntax("Contact: * must stand alone"));
            }
            return Ok(Contacts::Wildcard);
        }
        self.list(name::CONTACT, Contact::parse).map(Contacts::List)
    }

    /// Expires in seconds.
    pub fn expires(&self) -> Result<Option<u32>, HeaderError> {
        self.number(name::EXPIRES)
    }

    /// Min-Expires in seconds.
    pub fn min_expires(&self) -> Result<Option<u32>, HeaderError> {
        self.number(name::MIN_EXPIRES)
    }

    /// Route set, in order.
    pub fn route(&self) -> Result<Vec<NameAddr>, HeaderError> {
        self.list(name::ROUTE, NameAddr::parse)
    }

    /// Record-Route set, in order.
    pub fn record_route(&self) -> Result<Vec<NameAddr>, HeaderError> {
        self.list(name::RECORD_ROUTE, NameAddr::parse)
    }

    fn tokens(&self, name: &'static str) -> Result<Vec<String>, HeaderError> {
        self.list(name, self_token)
    }

    /// Require option tags.
    pub fn require(&self) -> Result<Vec<String>, HeaderError> {
        self.tokens(name::REQUIRE)
    }

    /// Proxy-Require option tags.
    pub fn proxy_require(&self) -> Result<Vec<String>, HeaderError> {
        self.tokens(name::PROXY_REQUIRE)
    }

    /// Supported option tags (an empty Supported header is legal).
    pub fn supported(&self) -> Result<Vec<String>, HeaderError> {
        self.empty_or_list(name::SUPPORTED, self_token)
    }

    fn empty_or_list<T>(
        &self,
        name: &'static str,
        f: impl Fn(&str) -> Result<T, HeaderError>,
    ) -> Result<Vec<T>, HeaderError> {
        let mut out = Vec::new();
        for v in self.get_all(name) {
            let v = text(v);
            if trim_lws(&v).is_empty() {
                continue;
            }
            for el in split_list(&v)? {
                out.push(f(el)?);
            }
        }
        Ok(out)
    }

    /// Allow (an empty Allow header is legal).
    pub fn allow(&self) -> Result<Vec<Method>, HeaderError> {
        self.empty_or_list(name::ALLOW, |m| {
            let m = Method::from_token(m);
            if m.is_valid() { Ok(m) } else { Err(HeaderError::Syntax("Allow method")) }
        })
    }

    /// Accept media ranges; `Ok(None)` when there is no Accept header, `Ok(Some(vec![]))` for an
    /// empty one (RFC 3261 §20.1).
    pub fn accept(&self) -> Result<Option<Vec<MediaType>>, HeaderError> {
        if self.get(name::ACCEPT).is_none() {
            return Ok(None);
        }
        self.empty_or_list(name::ACCEPT, MediaType::parse).map(Some)
    }

    /// RSeq (RFC 3262).
    pub fn rseq(&self) -> Result<Option<u32>, HeaderError> {
        self.number(name::RSEQ)
    }

    /// RAck (RFC 3262).
    pub fn rack(&self) -> Result<Option<RAck>, HeaderError> {
        let Some(v) = self.single(name::RACK)? else {
            return Ok(None);
        };
        let mut it = v.split_ascii_whitespace();
        let (Some(r), Some(c), Some(m), None) = (it.next(), it.next(), it.next(), it.next()) else {
            return Err(HeaderError::Syntax("RAck is `rseq cseq method`"));
        };
        let method = Method::from_token(m);
        if !method.is_valid() {
            return Err(HeaderError::Syntax("RAck method"));
        }
        Ok(Some(RAck {
            rseq: parse_decimal(r).ok_or(HeaderError::BadNumber)?,
            cseq: parse_decimal(c).ok_or(HeaderError::BadNumber)?,
            method,
        }))
    }

    /// Session-Expires (RFC 4028).
    pub fn session_expires(&self) -> Result<Option<SessionExpires>, HeaderError> {
        let Some(v) = self.single(name::SESSION_EXPIRES)? else {
            return Ok(None);
        };
        let (delta, params) = split_params(&v);
        let params = super::lex::parse_params(params)?;
        let refresher = super::lex::find_param(&params, "refresher")
            .and_then(|p| p.value.as_deref())
            .map(str::to_ascii_lowercase);
        Ok(Some(SessionExpires {
            delta: parse_decimal(trim_lws(delta)).ok_or(HeaderError::BadNumber)?,
            refresher,
        }))
    }

    /// Min-SE (RFC 4028), parameters ignored.
    pub fn min_se(&self) -> Result<Option<u32>, HeaderError> {
        let Some(v) = self.single(name::MIN_SE)? else {
            return Ok(None);
        };
        let (delta, _) = split_params(&v);
        parse_decimal(trim_lws(delta)).map(Some).ok_or(HeaderError::BadNumber)
    }

    /// P-Asserted-Identity (RFC 3325): one or two identities.
    pub fn p_asserted_identity(&self) -> Result<Vec<NameAddr>, HeaderError> {
        self.list(name::P_ASSERTED_IDENTITY, NameAddr::parse)
    }

    /// Privacy values (RFC 3323), `;`-separated, lower-cased.
    pub fn privacy(&self) -> Result<Vec<String>, HeaderError> {
        let mut out = Vec::new();
        for v in self.get_all(name::PRIVACY) {
            for p in text(v).split(';') {
                let p = trim_lws(p);
                if !is_token(p) {
                    return Err(HeaderError::Syntax("Privacy value"));
                }
                out.push(p.to_ascii_lowercase());
            }
        }
        Ok(out)
    }

    /// Authorization credentials, one per header line.
    pub fn authorization(&self) -> Result<Vec<Credentials>, HeaderError> {
        self.get_all(name::AUTHORIZATION).map(|v| Credentials::parse(&text(v))).collect()
    }

    /// Proxy-Authorization credentials, one per header line.
    pub fn proxy_authorization(&self) -> Result<Vec<Credentials>, HeaderError> {
        self.get_all(name::PROXY_AUTHORIZATION).map(|v| Credentials::parse(&text(v))).collect()
    }

    /// WWW-Authenticate challenges, one per header line.
    pub fn www_authenticate(&self) -> Result<Vec<Challenge>, HeaderError> {
        self.get_all(name::WWW_AUTHENTICATE).map(|v| Challenge::parse(&text(v))).collect()
    }

    /// Proxy-Authenticate challenges, one per header line.
    pub fn proxy_authenticate(&self) -> Result<Vec<Challenge>, HeaderError> {
        self.get_all(name::PROXY_AUTHENTICATE).map(|v| Challenge::parse(&text(v))).collect()
    }

    /// User-Agent as text (non-UTF-8 octets replaced).
    pub fn user_agent(&self) -> Option<Cow<'_, str>> {
        self.get(name::USER_AGENT).map(|v| text(v))
    }

    /// Retry-After.
    pub fn retry_after(&self) -> Result<Option<RetryAfter>, HeaderError> {
        self.single(name::RETRY_AFTER)?.map(|v| RetryAfter::parse(&v)).transpose()
    }

    /// Refer-To (RFC 3515).
    pub fn refer_to(&self) -> Result<Option<NameAddr>, HeaderError> {
        self.single(name::REFER_TO)?.map(|v| NameAddr::parse(&v)).transpose()
    }

    /// Replaces (RFC 3891).
    pub fn replaces(&self) -> Result<Option<Replaces>, HeaderError> {
        self.single(name::REPLACES)?.map(|v| Replaces::parse(&v)).transpose()
    }
}

fn self_token(t: &str) -> Result<String, HeaderError> {
    if is_token(t) { Ok(t.to_owned()) } else { Err(HeaderError::Syntax("option tag")) }
}
