//! URIs (wire layer, sans-IO): `sip:` and `sips:` (RFC 3261 §19.1), `tel:` (RFC 3966) and any
//! other scheme kept opaque (RFC 4475 §3.3.2–3.3.4). The literal text is kept next to the parsed
//! parts: it is what gets printed, and what digest authentication hashes.
//!
//! Escapes (`%41`) stay as received in the parts; [`unescape`] decodes them when a comparison needs
//! it. An escaped NUL is just three characters here, so it never truncates anything (RFC 4475
//! §3.1.1.4).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::error::UriError;
use super::lex::{Param, is_token_byte};

/// The URI scheme.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `sip:`
    Sip,
    /// `sips:`
    Sips,
    /// `tel:`
    Tel,
    /// Any other scheme, lower-cased.
    Other(String),
}

impl Scheme {
    /// The scheme name as printed (lower case).
    pub fn as_str(&self) -> &str {
        match self {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Tel => "tel",
            Scheme::Other(s) => s,
        }
    }
}

/// A host: a domain name or an IP address (IPv6 written as a `[...]` reference in SIP).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A domain name, as received.
    Domain(String),
    /// A dotted-quad IPv4 address.
    Ipv4(Ipv4Addr),
    /// An IPv6 reference, printed in brackets.
    Ipv6(Ipv6Addr),
}

impl Host {
    /// Parses a host as it appears in a SIP URI or Via sent-by (`[v6]`, v4 or a domain).
    pub fn parse(s: &str) -> Result<Host, UriError> {
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or(UriError::Host)?;
            return inner.parse().map(Host::Ipv6).map_err(|_| UriError::Host);
        }
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
            return Err(UriError::Host);
        }
        if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return s.parse().map(Host::Ipv4).map_err(|_| UriError::Host);
        }
        Ok(Host::Domain(s.to_owned()))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::Ipv4(a) => write!(f, "{a}"),
            Host::Ipv6(a) => write!(f, "[{a}]"),
        }
    }
}

/// Splits `host[:port]`, honouring IPv6 brackets (RFC 5118 §4.4: `[2001:db8::10:5070]` is a host
/// with no port).
pub(crate) fn split_hostport(s: &str) -> Result<(Host, Option<u16>), UriError> {
    let (host, port) = if s.starts_with('[') {
        let close = s.find(']').ok_or(UriError::Host)?;
        let rest = &s[close + 1..];
        let port = match rest.strip_prefix(':') {
            Some(p) => Some(p),
            None if rest.is_empty() => None,
            None => return Err(UriError::Host),
        };
        (&s[..=close], port)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        Some(p) => Some(super::lex::parse_decimal::<u16>(p).ok_or(UriError::Port)?),
        None => None,
    };
    Ok((Host::parse(host)?, port))
}

/// A parsed URI with its literal text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    raw: String,
    scheme: Scheme,
    kind: UriKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum UriKind {
    Sip(SipParts),
    Tel { number: String, params: Vec<Param> },
    Opaque,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct SipParts {
    user: Option<String>,
    password: Option<String>,
    host: Host,
    port: Option<u16>,
    params: Vec<Param>,
    headers: Vec<(String, String)>,
}

fn uri_char_ok(b: u8) -> bool {
    b > b' ' && b < 0x7f && !matches!(b, b'<' | b'>' | b'"' | b'\\' | b'{' | b'}' | b'|' | b'^')
}

impl Uri {
    /// Parses a URI from its literal text.
    pub fn parse(s: &str) -> Result<Uri, UriError> {
        let colon = s.find(':').ok_or(UriError::Scheme)?;
        let scheme_str = &s[..colon];
        let mut chars = scheme_str.bytes();
        let first_ok = chars.next().is_some_and(|b| b.is_ascii_alphabetic());
        if !first_ok || !chars.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) {
            return Err(UriError::Scheme);
        }
        if !s.bytes().all(uri_char_ok) {
            return Err(UriError::BadChar);
        }
        let rest = &s[colon + 1..];
        let is = |n: &str| scheme_str.eq_ignore_ascii_case(n);
        let scheme = if is("sip") {
            Scheme::Sip
        } else if is("sips") {
            Scheme::Sips
        } else if is("tel") {
            Scheme::Tel
        } else {
            Scheme::Other(scheme_str.to_ascii_lowercase())
        };
        let kind = match scheme {
            Scheme::Sip | Scheme::Sips => UriKind::Sip(parse_sip(rest)?),
            Scheme::Tel => {
                let (number, params) = match rest.split_once(';') {
                    Some((n, p)) => (n, uri_params(p)?),
                    None => (rest, Vec::new()),
                };
                let digits = number.strip_prefix('+').unwrap_or(number);
                let ok = !digits.is_empty()
                    && digits.bytes().all(|b| b.is_ascii_hexdigit() || b"-.()*#".contains(&b));
                if !ok {
                    return Err(UriError::Tel);
                }
                UriKind::Tel { number: number.to_owned(), params }
            }
            Scheme::Other(_) => {
                if rest.is_empty() {
                    return Err(UriError::Scheme);
                }
                UriKind::Opaque
            }
        };
        Ok(Uri { raw: s.to_owned(), scheme, kind })
    }

    /// Builds a `sip:` URI from parts; the literal text is composed from them.
    pub fn sip(user: Option<&str>, host: Host, port: Option<u16>) -> Uri {
        let mut raw = String::from("sip:");
        if let Some(u) = user {
            raw.push_str(u);
            raw.push('@');
        }
        raw.push_str(&host.to_string());
        if let Some(p) = port {
            raw.push_str(&format!(":{p}"));
        }
        Uri {
            raw,
            scheme: Scheme::Sip,
            kind: UriKind::Sip(SipParts {
                user: user.map(str::to_owned),
                password: None,
                host,
                port,
                params: Vec::new(),
                headers: Vec::new(),
            }),
        }
    }

    /// The literal text, exactly as received (or composed).
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The scheme.
    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    fn sip_parts(&self) -> Option<&SipParts> {
        match &self.kind {
            UriKind::Sip(p) => Some(p),
            _ => None,
        }
    }

    /// The user part of a sip/sips URI, still escaped.
    pub fn user(&self) -> Option<&str> {
        self.sip_parts()?.user.as_deref()
    }

    /// The password part of a sip/sips URI (deprecated, but legal syntax).
    pub fn password(&self) -> Option<&str> {
        self.sip_parts()?.password.as_deref()
    }

    /// The host of a sip/sips URI.
    pub fn host(&self) -> Option<&Host> {
        Some(&self.sip_parts()?.host)
    }

    /// The explicit port of a sip/sips URI.
    pub fn port(&self) -> Option<u16> {
        self.sip_parts()?.port
    }

    /// URI parameters (`;transport=udp;lr`) of a sip/sips or tel URI.
    pub fn params(&self) -> &[Param] {
        match &self.kind {
            UriKind::Sip(p) => &p.params,
            UriKind::Tel { params, .. } => params,
            UriKind::Opaque => &[],
        }
    }

    /// One URI parameter by name: `Some(None)` for a flag such as `lr`.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        super::lex::find_param(self.params(), name).map(|p| p.value.as_deref())
    }

    /// URI headers (`?Route=%3Csip:x%3E`), names and values still escaped.
    pub fn headers(&self) -> &[(String, String)] {
        self.sip_parts().map_or(&[], |p| &p.headers)
    }

    /// The number of a `tel:` URI, as written (visual separators included).
    pub fn tel_number(&self) -> Option<&str> {
        match &self.kind {
            UriKind::Tel { number, .. } => Some(number),
            _ => None,
        }
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

fn uri_params(s: &str) -> Result<Vec<Param>, UriError> {
    let mut params = Vec::new();
    for piece in s.split(';') {
        let (name, value) = match piece.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (piece, None),
        };
        // RFC 3261 paramchar: unreserved, escaped and `[]/:&+$`.
        let ok = |t: &str| {
            !t.is_empty() && t.bytes().all(|b| is_token_byte(b) || b"[]/:&+$()".contains(&b))
        };
        if !ok(name) || value.is_some_and(|v| !ok(v)) {
            return Err(UriError::Param);
        }
        params.push(Param { name: name.to_owned(), value: value.map(str::to_owned) });
    }
    Ok(params)
}

fn parse_sip(rest: &str) -> Result<SipParts, UriError> {
    let (userinfo, hostpart) = match memchr::memchr(b'@', rest.as_bytes()) {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let (user, password) = match userinfo {
        Some(ui) => {
            let (u, p) = match ui.split_once(':') {
                Some((u, p)) => (u, Some(p.to_owned())),
                None => (ui, None),
            };
            if u.is_empty() {
                return Err(UriError::Host);
            }
            (Some(u.to_owned()), p)
        }
        None => (None, None),
    };
    let (before_headers, headers_str) = match hostpart.split_once('?') {
        Some((a, h)) => (a, Some(h)),
        None => (hostpart, None),
    };
    let (hostport, params_str) = match before_headers.split_once(';') {
        Some((h, p)) => (h, Some(p)),
        None => (before_headers, None),
    };
    let (host, port) = split_hostport(hostport)?;
    let params = match params_str {
        Some(p) => uri_params(p)?,
        None => Vec::new(),
    };
    let mut headers = Vec::new();
    if let Some(h) = headers_str {
        for piece in h.split('&') {
            let (n, v) = piece.split_once('=').ok_or(UriError::Param)?;
            if n.is_empty() {
                return Err(UriError::Param);
            }
            headers.push((n.to_owned(), v.to_owned()));
        }
    }
    Ok(SipParts { user, password, host, port, params, headers })
}

/// Decodes `%HH` escapes into bytes (invalid escapes are kept literally).
pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uri_parts() {
        let u =
            Uri::parse("sip:alice:pw@[2001:db8::1]:5070;transport=udp;lr?Route=%3Cx%3E").unwrap();
        assert_eq!(u.user(), Some("alice"));
        assert_eq!(u.password(), Some("pw"));
        assert_eq!(u.host(), Some(&Host::Ipv6("2001:db8::1".parse().unwrap())));
        assert_eq!(u.port(), Some(5070));
        assert_eq!(u.param("transport"), Some(Some("udp")));
        assert_eq!(u.param("lr"), Some(None));
        assert_eq!(u.headers()[0], ("Route".into(), "%3Cx%3E".into()));
    }

    #[test]
    fn tel_and_opaque() {
        let t = Uri::parse("tel:+84-28-111;phone-context=+84").unwrap();
        assert_eq!(t.tel_number(), Some("+84-28-111"));
        let o = Uri::parse("soap.beep://192.0.2.103:3002").unwrap();
        assert_eq!(o.scheme(), &Scheme::Other("soap.beep".into()));
        assert!(Uri::parse("<sip:x@y>").is_err());
        assert!(Uri::parse("sip:2001:db8::10").is_err());
        assert!(Uri::parse("sip:user@[2001:db8:::192.0.2.1]").is_err());
    }

    #[test]
    fn unescape_keeps_nul() {
        assert_eq!(unescape("a%00b%4"), b"a\0b%4".to_vec());
    }
}
