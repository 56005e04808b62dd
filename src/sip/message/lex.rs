//! Lexical helpers shared by the header and URI parsers (wire layer, sans-IO): RFC 3261 §25.1
//! character classes, quoted strings, list splitting and generic `;name=value` parameters.
//!
//! Everything here works on `&str` slices of one header value that has already been unfolded, so
//! "linear white space" is just spaces and tabs.

use super::error::HeaderError;

/// True for the RFC 3261 `token` characters.
pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// True when `s` is a non-empty RFC 3261 `token`.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

/// Trims spaces and tabs (unfolded LWS) from both ends.
pub(crate) fn trim_lws(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// Splits `s` on `sep` where the separator stands outside double quotes (honouring `\` escapes) and
/// outside `<...>`. The pieces are LWS-trimmed; empty pieces are kept so that callers can reject them.
pub(crate) fn split_outside(s: &str, sep: u8) -> Result<Vec<&str>, HeaderError> {
    let bytes = s.as_bytes();
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    // Jump between the octets that matter with memchr: most values have no quotes at all.
    while let Some(off) = memchr::memchr3(sep, b'"', b'<', &bytes[i..]) {
        let at = i + off;
        match bytes[at] {
            b'"' => {
                let mut j = at + 1;
                loop {
                    match memchr::memchr2(b'"', b'\\', &bytes[j..]) {
                        Some(k) if bytes[j + k] == b'\\' => j += k + 2,
                        Some(k) => {
                            j += k + 1;
                            break;
                        }
                        None => return Err(HeaderError::UnbalancedQuote),
                    }
                    if j > bytes.len() {
                        return Err(HeaderError::UnbalancedQuote);
                    }
                }
                i = j;
            }
            b'<' => match memchr::memchr(b'>', &bytes[at + 1..]) {
                Some(k) => i = at + 1 + k + 1,
                None => return Err(HeaderError::UnbalancedAngle),
            },
            _ => {
                parts.push(trim_lws(&s[start..at]));
                start = at + 1;
                i = at + 1;
            }
        }
    }
    parts.push(trim_lws(&s[start..]));
    Ok(parts)
}

/// Splits a comma-separated list header value into its elements. An empty element (`a,,b`) is an
/// error: a list with a bad element is never returned shorter.
pub(crate) fn split_list(s: &str) -> Result<Vec<&str>, HeaderError> {
    let parts = split_outside(s, b',')?;
    if parts.iter().any(|p| p.is_empty()) {
        return Err(HeaderError::EmptyListElement);
    }
    Ok(parts)
}

/// Reads a quoted string at the start of `s` (which must begin with `"`). Returns the unescaped
/// content and the rest after the closing quote.
pub(crate) fn quoted_string(s: &str) -> Result<(String, &str), HeaderError> {
    let bytes = s.as_bytes();
    debug_assert_eq!(bytes.first(), Some(&b'"'));
    let mut out = String::new();
    let mut i = 1;
    let mut run = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                out.push_str(&s[run..i]);
                // A quoted-pair escapes exactly one character (possibly multi-byte in UTF-8).
                let next = s[i + 1..].chars().next().ok_or(HeaderError::UnbalancedQuote)?;
                out.push(next);
                i += 1 + next.len_utf8();
                run = i;
            }
            b'"' => {
                out.push_str(&s[run..i]);
                return Ok((out, &s[i + 1..]));
            }
            _ => i += 1,
        }
    }
    Err(HeaderError::UnbalancedQuote)
}

/// Writes `s` as a quoted string, escaping `"` and `\`.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// One `name[=value]` generic parameter. The value keeps its quotes when it was quoted, so that
/// printing is faithful; [`Param::unquoted`] gives the content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Parameter name as received (compare case-insensitively).
    pub name: String,
    /// Raw value, quotes included; `None` for a flag parameter such as `lr` or `rport`.
    pub value: Option<String>,
}

impl Param {
    /// The value without surrounding quotes and with quoted-pairs resolved.
    pub fn unquoted(&self) -> Option<String> {
        let v = self.value.as_deref()?;
        if v.starts_with('"') { quoted_string(v).ok().map(|(s, _)| s) } else { Some(v.to_owned()) }
    }
}

/// Finds a parameter by case-insensitive name.
pub(crate) fn find_param<'a>(params: &'a [Param], name: &str) -> Option<&'a Param> {
    params.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

/// Parses `;a=b;c;d="x y"` (the text after the element's main part). `s` must be empty or begin
/// with `;` after optional LWS. Empty parameters (`;;`) and non-token names are errors.
pub(crate) fn parse_params(s: &str) -> Result<Vec<Param>, HeaderError> {
    let s = trim_lws(s);
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = s.strip_prefix(';') else {
        return Err(HeaderError::Syntax("text after value where a `;` parameter belongs"));
    };
    let mut params = Vec::new();
    for piece in split_outside(rest, b';')? {
        let (name, value) = match piece.find('=') {
            Some(eq) => (trim_lws(&piece[..eq]), Some(trim_lws(&piece[eq + 1..]))),
            None => (piece, None),
        };
        if !is_token(name) {
            return Err(HeaderError::BadParam);
        }
        if let Some(v) = value {
            let ok = if v.starts_with('"') {
                matches!(quoted_string(v), Ok((_, tail)) if tail.is_empty())
            } else {
                // Tokens, plus `[`, `]` and `:` for IPv6 `received=` values (RFC 5118 §4.5).
                !v.is_empty() && v.bytes().all(|b| is_token_byte(b) || b"[]:".contains(&b))
            };
            if !ok {
                return Err(HeaderError::BadParam);
            }
        }
        params.push(Param { name: name.to_owned(), value: value.map(str::to_owned) });
    }
    Ok(params)
}

/// Prints parameters back as `;name=value`.
pub(crate) fn print_params(out: &mut String, params: &[Param]) {
    for p in params {
        out.push(';');
        out.push_str(&p.name);
        if let Some(v) = &p.value {
            out.push('=');
            out.push_str(v);
        }
    }
}

/// Splits a string at the first `;` that is outside quotes and `<>`: the main part and the
/// parameter tail (which starts with `;`, or is empty).
pub(crate) fn split_params(s: &str) -> (&str, &str) {
    let bytes = s.as_bytes();
    let mut in_quotes = false;
    let mut in_angle = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_quotes => i += 1,
            b'"' if !in_angle => in_quotes = !in_quotes,
            b'<' if !in_quotes => in_angle = true,
            b'>' if !in_quotes => in_angle = false,
            b';' if !in_quotes && !in_angle => return (&s[..i], &s[i..]),
            _ => {}
        }
        i += 1;
    }
    (s, "")
}

/// Parses a decimal number made only of ASCII digits (no sign, no spaces), failing on overflow.
pub(crate) fn parse_decimal<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_outside_quotes_and_angles() {
        let v = split_list(r#""a, b" <sip:x;y=1,2>;p="q,\"r", c"#).unwrap();
        assert_eq!(v, vec![r#""a, b" <sip:x;y=1,2>;p="q,\"r""#, "c"]);
        assert_eq!(split_list("a,,b"), Err(HeaderError::EmptyListElement));
    }

    #[test]
    fn quoted_string_unescapes() {
        let (s, rest) = quoted_string(r#""J \"R\" \\" tail"#).unwrap();
        assert_eq!(s, r#"J "R" \"#);
        assert_eq!(rest, " tail");
    }

    #[test]
    fn params_with_lws() {
        let p = parse_params(" ;  tag    = 1918 ; lr").unwrap();
        assert_eq!(p[0].name, "tag");
        assert_eq!(p[0].value.as_deref(), Some("1918"));
        assert_eq!(p[1].value, None);
        assert!(parse_params(";;").is_err());
    }
}
