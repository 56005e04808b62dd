//! The typed reader over a spanned TOML document: it turns raw values into types that cannot hold bad
//! values (`Duration`, `SocketAddr`, `IpNet`, `NonZeroU32`, …) and records every problem with its
//! position instead of stopping at the first. Part of the config layer.
//!
//! Why not `serde` with `deny_unknown_fields`: serde stops at the first error, and an operator fixing
//! a config on a live hotline wants all of them at once, each with `file:line:col`.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diag::{Diagnostics, closest};

/// What was wrong with one value, before it is given a position.
pub(crate) struct Problem {
    /// A narrower span than the whole value (an array element), if any.
    pub span: Option<Range<usize>>,
    pub message: String,
    pub hint: Option<String>,
}

impl Problem {
    pub fn new(message: impl Into<String>) -> Self {
        Problem { span: None, message: message.into(), hint: None }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// A value that can be read from one TOML value.
pub(crate) trait FromToml: Sized {
    fn from_toml(value: &Spanned<DeValue<'_>>) -> Result<Self, Problem>;
}

fn wrong_type(expected: &str, value: &DeValue<'_>) -> Problem {
    Problem::new(format!("expected {expected}, found {}", value.type_str()))
}

impl FromToml for String {
    fn from_toml(value: &Spanned<DeValue<'_>>) -> Result<Self, Problem> {
        value
            .get_ref()
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| wrong_type("a string", value.get_ref()))
    }
}

impl FromToml for bool {
    fn from_toml(value: &Spanned<DeValue<'_>>) -> Result<Self, Problem> {
        value.get_ref().as_bool().ok_or_else(|| wrong_type("true or false", value.get_ref()))
    }
}

fn integer(value: &Spanned<DeValue<'_>>) -> Result<i128, Problem> {
    let int =
        value.get_ref().as_integer().ok_or_else(|| wrong_type("an integer", value.get_ref()))?;
    i128::from_str_radix(int.as_str(), int.radix())
        .map_err(|_| Problem::new("integer out of range"))
}

macro_rules! from_toml_uint {
    ($($t:ty),*) => {$(
        impl FromToml for $t {
            fn from_toml(value: &Spanned<DeValue<'_>>) -> Result<Self, Problem> {
                let n = integer(value)?;
                <$t>::try_from(n).map_err(|_| {
                    Problem::new(format!("{n} is out of range (0 to {})", <$t>::MAX))
                })
            }
        }
    )*};
}
from_toml_uint!(u16, u32, u64);

impl FromToml for NonZeroU32 {
    fn from_toml(value: &Spanned<DeValue<'_>>) -> Result<Self, Problem> {
        NonZeroU32::new(u32::from_toml(value)?).ok_or_else(|| Problem::new("must be at least 1"))
    }
}

impl FromToml for Duration {
    fn from_toml(value: &Spanned<DeValue<'_>>) -> Result<Self, Problem> {
        let text = value
            .get_ref()
            .as_str()
            .ok_or_else(|| wrong_type("a duration string", value.get_ref()).hint(DURATION_HINT))?;
        parse_duration(text)
            .ok_or_else(|| Problem::new(format!("`{text}` is not a duration")).hint(DURATION_HINT))
    }
}

const DURATION_HINT: &str =
    "write a number and a unit: \"500ms\", \"30s\", \"10m\", \"2h\", \"7d\"";

/// Parses `500ms`, `30s`, `10m`, `2h`, `7d`.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(digits);
    let n: u64 = number.parse().ok()?;
    let millis = match unit.trim() {
        "ms" => n,
        "s" => n.checked_mul(1_000)?,
        "m" | "min" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        "d" => n.checked_mul(86_400_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(millis))
}

impl FromToml for SocketAddr {
    fn from_toml(value: &Spanned<DeValue<'_>>) -> Result<Self, Problem> {
        let text = String::from_toml(value)?;
        text.parse().map_err(|_| {
            Problem::new(format!("`{text}` is not an address with a port")).hint(
                "write IP:PORT, e.g. \"127.0.0.1:5060\" or \"[::1]:5060\"; names are not resolved",
            )
        })
    }
}

impl FromToml for IpNet {
    fn from_toml(value: &Spanned<DeValue<'_>>) -> Result<Self, Problem> {
        let text = String::from_toml(value)?;
        if let Ok(net) = text.parse::<IpNet>() {
            return Ok(net.trunc());
        }
        text.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
            Problem::new(format!("`{text}` is not an IP address or CIDR network"))
                .hint("write e.g. \"203.0.113.10\", \"203.0.113.0/24\" or \"2001:db8::/32\"")
        })
    }
}

impl FromToml for PathBuf {
    fn from_toml(value: &Spanned<DeValue<'_>>) -> Result<Self, Problem> {
        String::from_toml(value).map(PathBuf::from)
    }
}

impl<T: FromToml> FromToml for Vec<T> {
    fn from_toml(value: &Spanned<DeValue<'_>>) -> Result<Self, Problem> {
        let array =
            value.get_ref().as_array().ok_or_else(|| wrong_type("an array", value.get_ref()))?;
        array
            .iter()
            .map(|item| {
                T::from_toml(item).map_err(|mut p| {
                    p.span.get_or_insert(item.span());
                    p
                })
            })
            .collect()
    }
}

impl<T: FromToml> FromToml for Spanned<T> {
    fn from_toml(value: &Spanned<DeValue<'_>>) -> Result<Self, Problem> {
        T::from_toml(value).map(|v| Spanned::new(value.span(), v))
    }
}

/// One table of the document being read, tracking which keys were asked for so that the rest can be
/// reported as unknown.
pub(crate) struct Section<'t, 'i> {
    path: String,
    span: Range<usize>,
    table: Option<&'t DeTable<'i>>,
    known: Vec<&'static str>,
}

impl<'t, 'i> Section<'t, 'i> {
    /// The document's top level.
    pub fn root(table: &'t Spanned<DeTable<'i>>) -> Self {
        Section { path: String::new(), span: 0..0, table: Some(table.get_ref()), known: Vec::new() }
    }

    /// The dotted path of `key` in this section.
    pub fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_string() } else { format!("{}.{key}", self.path) }
    }

    /// Where this section starts, for problems about the section as a whole.
    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    /// The raw value of `key`, marking it as known.
    pub fn raw(&mut self, key: &'static str) -> Option<&'t Spanned<DeValue<'i>>> {
        self.known.push(key);
        self.table?.iter().find(|(k, _)| k.get_ref() == key).map(|(_, v)| v)
    }

    /// The span of `key`'s value, or of the section when the key is absent.
    pub fn span_of(&self, key: &str) -> Range<usize> {
        self.table
            .and_then(|t| t.iter().find(|(k, _)| k.get_ref() == key))
            .map_or(self.span.clone(), |(_, v)| v.span())
    }

    /// `key` read as `T`; `None` when absent, or when invalid (the problem is recorded).
    pub fn opt<T: FromToml>(&mut self, cx: &mut Diagnostics<'_>, key: &'static str) -> Option<T> {
        let value = self.raw(key)?;
        match T::from_toml(value) {
            Ok(v) => Some(v),
            Err(p) => {
                cx.error(p.span.unwrap_or(value.span()), &self.key_path(key), p.message, p.hint);
                None
            }
        }
    }

    /// `key` read as `T`, or `default` when absent (or invalid, after recording the problem).
    pub fn or<T: FromToml>(
        &mut self,
        cx: &mut Diagnostics<'_>,
        key: &'static str,
        default: T,
    ) -> T {
        self.opt(cx, key).unwrap_or(default)
    }

    /// `key` read as `T`; a missing key is an error.
    pub fn required<T: FromToml>(
        &mut self,
        cx: &mut Diagnostics<'_>,
        key: &'static str,
    ) -> Option<T> {
        if self.table.is_some_and(|t| t.iter().any(|(k, _)| k.get_ref() == key)) {
            self.opt(cx, key)
        } else {
            self.known.push(key);
            cx.error(self.span(), &self.key_path(key), "missing", Some(format!("add `{key} = …`")));
            None
        }
    }

    /// The sub-table `key`; an absent table reads as empty (all defaults).
    pub fn table(&mut self, cx: &mut Diagnostics<'_>, key: &'static str) -> Section<'t, 'i> {
        let path = self.key_path(key);
        match self.raw(key) {
            None => Section { path, span: self.span.clone(), table: None, known: Vec::new() },
            Some(v) => match v.get_ref().as_table() {
                Some(t) => Section { path, span: v.span(), table: Some(t), known: Vec::new() },
                None => {
                    let p = wrong_type("a table", v.get_ref()).hint(format!("write `[{path}]`"));
                    cx.error(v.span(), &path, p.message, p.hint);
                    Section { path, span: v.span(), table: None, known: Vec::new() }
                }
            },
        }
    }

    /// The array of tables `key` (`[[key]]`); absent reads as empty.
    pub fn tables(&mut self, cx: &mut Diagnostics<'_>, key: &'static str) -> Vec<Section<'t, 'i>> {
        let path = self.key_path(key);
        let Some(v) = self.raw(key) else {
            return Vec::new();
        };
        let Some(array) = v.get_ref().as_array() else {
            let p =
                wrong_type("an array of tables", v.get_ref()).hint(format!("write `[[{path}]]`"));
            cx.error(v.span(), &path, p.message, p.hint);
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in array.iter().enumerate() {
            let path = format!("{path}[{i}]");
            match item.get_ref().as_table() {
                Some(t) => {
                    out.push(Section { path, span: item.span(), table: Some(t), known: Vec::new() })
                }
                None => {
                    let p = wrong_type("a table", item.get_ref());
                    cx.error(item.span(), &path, p.message, p.hint);
                }
            }
        }
        out
    }

    /// Reports every key of this section that was not asked for, with the nearest known name.
    pub fn finish(self, cx: &mut Diagnostics<'_>) {
        let Some(table) = self.table else { return };
        for (key, _) in table.iter() {
            let name = key.get_ref().as_ref();
            if self.known.contains(&name) {
                continue;
            }
            let hint = match closest(name, &self.known) {
                Some(near) => format!("did you mean `{near}`?"),
                None => format!("known keys here: {}", self.known.join(", ")),
            };
            cx.error(key.span(), &self.key_path(name), "unknown key", Some(hint));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("30"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("99999999999999999999s"), None);
    }
}
