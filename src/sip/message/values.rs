//! Typed header values (wire layer, sans-IO): name-addr forms (From, To, Contact, Route, …), Via,
//! CSeq, media types and the small RFC 3262/4028/3891 values. Each type parses from one unfolded
//! list element and prints back in canonical form.

use std::fmt;
use std::net::IpAddr;

use super::error::HeaderError;
use super::lex::{
    Param, find_param, parse_decimal, parse_params, print_params, quote, quoted_string,
    split_params, trim_lws,
};
use super::method::Method;
use super::uri::{Host, Uri, split_hostport};

/// `[display-name] <uri>;params` or `uri;params` (RFC 3261 §20.10, §20.20, §20.39).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name, unquoted and unescaped.
    pub display_name: Option<String>,
    /// The URI.
    pub uri: Uri,
    /// Header parameters (`tag`, `expires`, `+sip.instance`, …).
    pub params: Vec<Param>,
}

impl NameAddr {
    /// A bare `<uri>` with no display name and no parameters.
    pub fn new(uri: Uri) -> NameAddr {
        NameAddr { display_name: None, uri, params: Vec::new() }
    }

    /// Parses one element.
    pub fn parse(s: &str) -> Result<NameAddr, HeaderError> {
        let s = trim_lws(s);
        let (display_name, rest) = if s.starts_with('"') {
            let (dn, rest) = quoted_string(s)?;
            let rest = trim_lws(rest);
            if !rest.starts_with('<') {
                return Err(HeaderError::Syntax("quoted display name without <URI>"));
            }
            (Some(dn), rest)
        } else {
            let lt = s.find('<');
            let colon = s.find(':');
            match (lt, colon) {
                (Some(lt), c) if c.is_none_or(|c| lt < c) => {
                    let dn = trim_lws(&s[..lt]);
                    if dn.contains('"') {
                        return Err(HeaderError::UnbalancedQuote);
                    }
                    ((!dn.is_empty()).then(|| dn.to_owned()), &s[lt..])
                }
                _ => (None, s),
            }
        };
        if let Some(inner) = rest.strip_prefix('<') {
            let gt = inner.find('>').ok_or(HeaderError::UnbalancedAngle)?;
            let uri = Uri::parse(&inner[..gt])?;
            let params = parse_params(&inner[gt + 1..])?;
            return Ok(NameAddr { display_name, uri, params });
        }
        // addr-spec without brackets: parameters after the first `;` belong to the header, and a
        // URI with `?headers`, `,` or `;` would have needed brackets (RFC 3261 §20.10).
        let (uri_str, params) = split_params(rest);
        if uri_str.contains(['?', ',', '>']) {
            return Err(HeaderError::Syntax("URI with ? , or ; must be enclosed in <>"));
        }
        Ok(NameAddr {
            display_name: None,
            uri: Uri::parse(trim_lws(uri_str))?,
            params: parse_params(params)?,
        })
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&str> {
        find_param(&self.params, "tag").and_then(|p| p.value.as_deref())
    }

    /// One parameter by name: `Some(None)` for a flag.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name).map(|p| p.value.as_deref())
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        if let Some(dn) = &self.display_name {
            out.push_str(&quote(dn));
            out.push(' ');
        }
        out.push('<');
        out.push_str(self.uri.as_str());
        out.push('>');
        print_params(&mut out, &self.params);
        f.write_str(&out)
    }
}

/// One Contact element (RFC 3261 §20.10) with its RFC 5626 / RFC 5627 parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// Address and all parameters.
    pub addr: NameAddr,
    /// `q` in thousandths (0..=1000).
    pub q: Option<u16>,
    /// `expires` in seconds.
    pub expires: Option<u32>,
}

impl Contact {
    /// Parses one Contact element and validates `q` and `expires`.
    pub fn parse(s: &str) -> Result<Contact, HeaderError> {
        let addr = NameAddr::parse(s)?;
        let q = match addr.param("q") {
            Some(Some(v)) => Some(parse_qvalue(v).ok_or(HeaderError::BadNumber)?),
            Some(None) => return Err(HeaderError::BadParam),
            None => None,
        };
        let expires = match addr.param("expires") {
            Some(Some(v)) => Some(parse_decimal(v).ok_or(HeaderError::BadNumber)?),
            Some(None) => return Err(HeaderError::BadParam),
            None => None,
        };
        Ok(Contact { addr, q, expires })
    }

    /// The RFC 5626 `+sip.instance` value without its quotes (e.g. `<urn:uuid:…>`).
    pub fn sip_instance(&self) -> Option<String> {
        find_param(&self.addr.params, "+sip.instance").and_then(Param::unquoted)
    }

    /// The RFC 5626 `reg-id`.
    pub fn reg_id(&self) -> Option<u32> {
        self.addr.param("reg-id").flatten().and_then(parse_decimal)
    }
}

/// RFC 3261 `qvalue`: `0[.ddd]` or `1[.000]`, in thousandths.
fn parse_qvalue(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_val = format!("{frac:0<3}").parse::<u16>().ok()?;
    match int {
        "0" => Some(frac_val),
        "1" if frac_val == 0 => Some(1000),
        _ => None,
    }
}

/// The Contact header set: `*` (only in a REGISTER that removes every binding) or a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contacts {
    /// `Contact: *`.
    Wildcard,
    /// Zero or more contacts, in order.
    List(Vec<Contact>),
}

/// One Via element (RFC 3261 §20.42).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Protocol version after `SIP/` (normally `2.0`).
    pub version: String,
    /// Transport, upper-cased (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, …).
    pub transport: String,
    /// The sent-by host.
    pub host: Host,
    /// The sent-by port.
    pub port: Option<u16>,
    /// Parameters (`branch`, `received`, `rport`, …), in order.
    pub params: Vec<Param>,
}

impl Via {
    /// Parses one Via element, allowing LWS around the `/` separators.
    pub fn parse(s: &str) -> Result<Via, HeaderError> {
        let (main, params) = split_params(s);
        let mut parts = main.splitn(3, '/');
        let name = parts.next().map(trim_lws);
        let version = parts.next().map(trim_lws);
        let rest = parts.next().map(trim_lws);
        let (Some(name), Some(version), Some(rest)) = (name, version, rest) else {
            return Err(HeaderError::Syntax("Via sent-protocol"));
        };
        let version_ok = version.split_once('.').is_some_and(|(a, b)| {
            parse_decimal::<u32>(a).is_some() && parse_decimal::<u32>(b).is_some()
        });
        if !name.eq_ignore_ascii_case("SIP") || !version_ok {
            return Err(HeaderError::Syntax("Via sent-protocol"));
        }
        let (transport, sent_by) =
            rest.split_once([' ', '\t']).ok_or(HeaderError::Syntax("Via sent-by"))?;
        let sent_by = trim_lws(sent_by);
        if !super::lex::is_token(transport) || sent_by.contains([' ', '\t']) {
            return Err(HeaderError::Syntax("Via transport or sent-by"));
        }
        let (host, port) = split_hostport(sent_by)?;
        let params = parse_params(params)?;
        let via = Via {
            version: version.to_owned(),
            transport: transport.to_ascii_uppercase(),
            host,
            port,
            params,
        };
        if let Some(Some(p)) = via.param("rport")
            && parse_decimal::<u16>(p).is_none()
        {
            return Err(HeaderError::BadNumber);
        }
        if let Some(b) = via.param("branch")
            && b.is_none_or(str::is_empty)
        {
            return Err(HeaderError::BadParam);
        }
        Ok(via)
    }

    /// One parameter by name: `Some(None)` for a flag.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name).map(|p| p.value.as_deref())
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&str> {
        self.param("branch").flatten()
    }

    /// The raw `received` parameter.
    pub fn received(&self) -> Option<&str> {
        self.param("received").flatten()
    }

    /// The `received` parameter as an address; IPv6 accepted with or without brackets
    /// (RFC 5118 §4.5).
    pub fn received_ip(&self) -> Option<IpAddr> {
        let r = self.received()?;
        let r = r.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(r);
        r.parse().ok()
    }

    /// `rport` (RFC 3581): `None` when absent, `Some(None)` when present without a value.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.param("rport").map(|v| v.and_then(parse_decimal))
    }

    /// True when the branch carries the RFC 3261 magic cookie (`z9hG4bK`), so that
    /// §17.2.3 matching applies instead of the RFC 2543 fallback.
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with("z9hG4bK") && b.len() > 7)
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = format!("SIP/{}/{} {}", self.version, self.transport, self.host);
        if let Some(p) = self.port {
            out.push_str(&format!(":{p}"));
        }
        print_params(&mut out, &self.params);
        f.write_str(&out)
    }
}

/// CSeq (RFC 3261 §20.16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number (RFC 3261 limits it to 2**31 - 1; anything up to 2**32 - 1 is read).
    pub seq: u32,
    /// The method the sequence number belongs to.
    pub method: Method,
}

impl CSeq {
    /// Parses `number SP method`.
    pub fn parse(s: &str) -> Result<CSeq, HeaderError> {
        let mut it = s.split_ascii_whitespace();
        let (Some(n), Some(m), None) = (it.next(), it.next(), it.next()) else {
            return Err(HeaderError::Syntax("CSeq is `number method`"));
        };
        let seq = parse_decimal(n).ok_or(HeaderError::BadNumber)?;
        let method = Method::from_token(m);
        if !method.is_valid() {
            return Err(HeaderError::Syntax("CSeq method"));
        }
        Ok(CSeq { seq, method })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// A media type or range (Content-Type, Accept), RFC 3261 §20.15.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    /// Top-level type, lower-cased (`*` in a range).
    pub kind: String,
    /// Subtype, lower-cased (`*` in a range).
    pub subtype: String,
    /// Parameters (`charset`, `boundary`, `q`, …).
    pub params: Vec<Param>,
}

impl MediaType {
    /// Parses `type/subtype;params`.
    pub fn parse(s: &str) -> Result<MediaType, HeaderError> {
        let (main, params) = split_params(s);
        let (kind, subtype) =
            main.split_once('/').ok_or(HeaderError::Syntax("media type is type/subtype"))?;
        let (kind, subtype) = (trim_lws(kind), trim_lws(subtype));
        if !super::lex::is_token(kind) || !super::lex::is_token(subtype) {
            return Err(HeaderError::Syntax("media type token"));
        }
        Ok(MediaType {
            kind: kind.to_ascii_lowercase(),
            subtype: subtype.to_ascii_lowercase(),
            params: parse_params(params)?,
        })
    }

    /// `type/subtype`.
    pub fn essence(&self) -> String {
        format!("{}/{}", self.kind, self.subtype)
    }

    /// True when this range covers the concrete type `essence` (`application/sdp`).
    pub fn covers(&self, essence: &str) -> bool {
        let Some((k, s)) = essence.split_once('/') else {
            return false;
        };
        (self.kind == "*" || self.kind.eq_ignore_ascii_case(k))
            && (self.subtype == "*" || self.subtype.eq_ignore_ascii_case(s))
    }
}

/// RAck (RFC 3262 §7.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RAck {
    /// The RSeq of the provisional response being acknowledged.
    pub rseq: u32,
    /// The CSeq number of the request it answered.
    pub cseq: u32,
    /// The CSeq method.
    pub method: Method,
}

/// Session-Expires (RFC 4028 §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionExpires {
    /// Session interval in seconds.
    pub delta: u32,
    /// `refresher=uac` / `uas`, lower-cased.
    pub refresher: Option<String>,
}

/// Retry-After (RFC 3261 §20.33).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryAfter {
    /// Seconds to wait.
    pub seconds: u32,
    /// The optional comment, without parentheses.
    pub comment: Option<String>,
    /// The `duration` parameter.
    pub duration: Option<u32>,
}

impl RetryAfter {
    /// Parses `delta-seconds [(comment)] *(;param)`.
    pub fn parse(s: &str) -> Result<RetryAfter, HeaderError> {
        let s = trim_lws(s);
        let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let seconds = parse_decimal(&s[..end]).ok_or(HeaderError::BadNumber)?;
        let mut rest = trim_lws(&s[end..]);
        let mut comment = None;
        if let Some(c) = rest.strip_prefix('(') {
            let close = c.rfind(')').ok_or(HeaderError::Syntax("Retry-After comment"))?;
            comment = Some(c[..close].to_owned());
            rest = &c[close + 1..];
        }
        let params = parse_params(rest)?;
        let duration = match find_param(&params, "duration") {
            Some(p) => {
                Some(p.value.as_deref().and_then(parse_decimal).ok_or(HeaderError::BadNumber)?)
            }
            None => None,
        };
        Ok(RetryAfter { seconds, comment, duration })
    }
}

/// Replaces (RFC 3891 §6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaces {
    /// The Call-ID of the dialog to replace.
    pub call_id: String,
    /// Its local tag as the sender sees the dialog (`to-tag`).
    pub to_tag: String,
    /// Its remote tag (`from-tag`).
    pub from_tag: String,
    /// `early-only` flag.
    pub early_only: bool,
}

impl Replaces {
    /// Parses `callid;to-tag=…;from-tag=…[;early-only]`.
    pub fn parse(s: &str) -> Result<Replaces, HeaderError> {
        let (call_id, params) = split_params(s);
        let call_id = trim_lws(call_id);
        if call_id.is_empty() {
            return Err(HeaderError::Syntax("Replaces call-id"));
        }
        let params = parse_params(params)?;
        let get = |n| {
            find_param(&params, n)
                .and_then(Param::unquoted)
                .ok_or(HeaderError::Syntax("Replaces needs to-tag and from-tag"))
        };
        Ok(Replaces {
            call_id: call_id.to_owned(),
            to_tag: get("to-tag")?,
            from_tag: get("from-tag")?,
            early_only: find_param(&params, "early-only").is_some(),
        })
    }
}
