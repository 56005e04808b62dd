//! Authentication header values (wire layer, sans-IO): Authorization / Proxy-Authorization
//! credentials and WWW-Authenticate / Proxy-Authenticate challenges (RFC 3261 §20.7, §20.27,
//! §20.28, §20.44; RFC 7616 / RFC 8760 parameters).
//!
//! Parameter values are kept literally between their quotes: the digest computation must hash the
//! `uri=` text exactly as the client wrote it, not a re-printed URI.

use super::error::HeaderError;
use super::lex::{is_token, quoted_string, trim_lws};

/// One `name=value` authentication parameter; the value is unquoted (quoted-pairs resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthParam {
    /// Parameter name as received.
    pub name: String,
    /// The value, without quotes.
    pub value: String,
    /// Whether the value was quoted on the wire.
    pub quoted: bool,
}

/// The scheme and parameters shared by credentials and challenges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFields {
    /// The scheme (`Digest`, or anything else; compare case-insensitively).
    pub scheme: String,
    /// Parameters in order.
    pub params: Vec<AuthParam>,
}

impl AuthFields {
    /// Parses `scheme param=value, param="value", …`.
    pub fn parse(s: &str) -> Result<AuthFields, HeaderError> {
        let s = trim_lws(s);
        let (scheme, mut rest) = match s.find([' ', '\t']) {
            Some(i) => (&s[..i], trim_lws(&s[i..])),
            None => (s, ""),
        };
        if !is_token(scheme) {
            return Err(HeaderError::Syntax("auth scheme"));
        }
        let mut params = Vec::new();
        while !rest.is_empty() {
            let eq = rest.find('=').ok_or(HeaderError::BadParam)?;
            let name = trim_lws(&rest[..eq]);
            if !is_token(name) {
                return Err(HeaderError::BadParam);
            }
            let after = trim_lws(&rest[eq + 1..]);
            let (value, quoted, tail) = if after.starts_with('"') {
                let (v, tail) = quoted_string(after)?;
                (v, true, tail)
            } else {
                let end = after.find([',', ' ', '\t']).unwrap_or(after.len());
                let v = &after[..end];
                if v.is_empty() {
                    return Err(HeaderError::BadParam);
                }
                (v.to_owned(), false, &after[end..])
            };
            params.push(AuthParam { name: name.to_owned(), value, quoted });
            let tail = trim_lws(tail);
            rest = match tail.strip_prefix(',') {
                Some(t) => trim_lws(t),
                None if tail.is_empty() => tail,
                None => return Err(HeaderError::Syntax("auth params are comma-separated")),
            };
        }
        Ok(AuthFields { scheme: scheme.to_owned(), params })
    }

    /// One parameter value by case-insensitive name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|p| p.name.eq_ignore_ascii_case(name)).map(|p| p.value.as_str())
    }

    /// True for the `Digest` scheme.
    pub fn is_digest(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("Digest")
    }

    /// Canonical text: `Scheme a="b", c=d`.
    pub fn to_text(&self) -> String {
        let mut out = self.scheme.clone();
        for (i, p) in self.params.iter().enumerate() {
            out.push_str(if i == 0 { " " } else { ", " });
            out.push_str(&p.name);
            out.push('=');
            if p.quoted {
                out.push_str(&super::lex::quote(&p.value));
            } else {
                out.push_str(&p.value);
            }
        }
        out
    }
}

/// Authorization / Proxy-Authorization credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials(pub AuthFields);

impl Credentials {
    /// Parses one credentials header value.
    pub fn parse(s: &str) -> Result<Credentials, HeaderError> {
        let f = AuthFields::parse(s)?;
        let c = Credentials(f);
        if c.0.is_digest() && c.0.param("nc").is_some() && c.nc().is_none() {
            return Err(HeaderError::BadNumber);
        }
        Ok(c)
    }

    /// `username`.
    pub fn username(&self) -> Option<&str> {
        self.0.param("username")
    }
    /// `realm`.
    pub fn realm(&self) -> Option<&str> {
        self.0.param("realm")
    }
    /// `nonce`.
    pub fn nonce(&self) -> Option<&str> {
        self.0.param("nonce")
    }
    /// `uri`, literally as the client wrote it (hash this, never a re-printed URI).
    pub fn uri(&self) -> Option<&str> {
        self.0.param("uri")
    }
    /// `response`.
    pub fn response(&self) -> Option<&str> {
        self.0.param("response")
    }
    /// `algorithm` (absent means MD5).
    pub fn algorithm(&self) -> Option<&str> {
        self.0.param("algorithm")
    }
    /// `cnonce`.
    pub fn cnonce(&self) -> Option<&str> {
        self.0.param("cnonce")
    }
    /// `opaque`.
    pub fn opaque(&self) -> Option<&str> {
        self.0.param("opaque")
    }
    /// `qop` (a single value in credentials).
    pub fn qop(&self) -> Option<&str> {
        self.0.param("qop")
    }
    /// `nc`: eight hex digits (RFC 7616 §3.4).
    pub fn nc(&self) -> Option<u32> {
        let nc = self.0.param("nc")?;
        if nc.len() != 8 {
            return None;
        }
        u32::from_str_radix(nc, 16).ok()
    }
}

/// WWW-Authenticate / Proxy-Authenticate challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge(pub AuthFields);

impl Challenge {
    /// Parses one challenge header value.
    pub fn parse(s: &str) -> Result<Challenge, HeaderError> {
        AuthFields::parse(s).map(Challenge)
    }

    /// `realm`.
    pub fn realm(&self) -> Option<&str> {
        self.0.param("realm")
    }
    /// `nonce`.
    pub fn nonce(&self) -> Option<&str> {
        self.0.param("nonce")
    }
    /// `algorithm`.
    pub fn algorithm(&self) -> Option<&str> {
        self.0.param("algorithm")
    }
    /// `opaque`.
    pub fn opaque(&self) -> Option<&str> {
        self.0.param("opaque")
    }
    /// `stale=true`.
    pub fn stale(&self) -> bool {
        self.0.param("stale").is_some_and(|s| s.eq_ignore_ascii_case("true"))
    }
    /// The `qop` options list (`"auth,auth-int"`).
    pub fn qop_options(&self) -> Vec<&str> {
        self.0
            .param("qop")
            .map(|q| q.split(',').map(trim_lws).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_credentials() {
        let c = Credentials::parse(
            r#"Digest username="1001",realm="tongdai", nonce="abc", uri="sip:127.0.0.1:5060;transport=udp", response="00ff", algorithm=MD5, qop=auth, nc=0000000a, cnonce="x""#,
        )
        .unwrap();
        assert_eq!(c.uri(), Some("sip:127.0.0.1:5060;transport=udp"));
        assert_eq!(c.nc(), Some(10));
        assert_eq!(c.qop(), Some("auth"));
        let ch =
            Challenge::parse(r#"Digest realm="r", nonce="n", qop="auth,auth-int", stale=TRUE"#)
                .unwrap();
        assert_eq!(ch.qop_options(), vec!["auth", "auth-int"]);
        assert!(ch.stale());
        assert!(Credentials::parse("Digest nc=zz").is_err());
    }
}
