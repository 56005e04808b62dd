//! `[provinces]`: how a call is attributed to one of the region's 19 provinces — per-province
//! access numbers, a carrier header and its codes (the area code of a landline needs no
//! configuration). Part of the config layer: TOML → [`ProvinceMap`] ([`crate::acd::province`]).

use std::ops::Range;

use toml::Spanned;
use toml::de::DeValue;

use super::diag::Diagnostics;
use super::read::Section;
use crate::acd::province::{Province, ProvinceMap, dialled_key, names};

/// Reads `[provinces]`; `trunk` (when valid) tells which access numbers can reach us in the
/// Request-URI (`numbers`) and whom a carrier header is believed from (`allow`).
pub(super) fn read_provinces(
    cx: &mut Diagnostics<'_>,
    mut s: Section<'_, '_>,
    trunk: Option<&super::TrunkConfig>,
) -> Option<ProvinceMap> {
    let trunk_numbers = trunk.map(|t| t.numbers.as_slice());
    let dialled = entries(cx, &mut s, "dialled");
    let mut keys: Vec<String> = Vec::new();
    for (number, span, _) in &dialled {
        let digits = number.strip_prefix('+').unwrap_or(number);
        let ok = digits.bytes().any(|b| b.is_ascii_digit())
            && digits.bytes().all(|b| b.is_ascii_digit() || b"*#-.() ".contains(&b));
        if !ok {
            cx.error(
                span.clone(),
                &s.key_path("dialled"),
                format!("`{number}` is not a dialled number"),
                Some("use the digits the trunk sends, e.g. \"1110251\" = \"Đồng Nai\"".into()),
            );
            continue;
        }
        let key = dialled_key(number);
        if keys.contains(&key) {
            cx.error(
                span.clone(),
                &s.key_path("dialled"),
                format!("`{number}` is listed twice (in another form)"),
                Some("each access number names one province".into()),
            );
        }
        let ours = trunk_numbers.is_none_or(|ns| ns.iter().any(|n| dialled_key(n) == key));
        if !ours {
            cx.warning(
                span.clone(),
                &s.key_path("dialled"),
                format!("`{number}` is not in [trunk] numbers: only a To header can carry it"),
                Some(format!("a Request-URI to {number} gets 404; add it to [trunk] numbers")),
            );
        }
        keys.push(key);
    }
    let header: Option<Spanned<String>> = s.opt(cx, "header");
    if let Some(h) = &header {
        let token = |b: u8| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b);
        if h.get_ref().is_empty() || !h.get_ref().bytes().all(token) {
            cx.error(
                h.span(),
                &s.key_path("header"),
                format!("`{}` is not a SIP header name", h.get_ref()),
                Some("e.g. header = \"X-Province\"".into()),
            );
        } else if trunk.is_some_and(|t| t.allow.is_empty()) {
            cx.warning(
                h.span(),
                &s.key_path("header"),
                "the header is believed only from [trunk] allow, which is empty: it is never used",
                Some("list the provider SBC's addresses in [trunk] allow".into()),
            );
        }
    }
    let codes = entries(cx, &mut s, "codes");
    if header.is_none() && !codes.is_empty() {
        cx.warning(
            s.span_of("codes"),
            &s.key_path("codes"),
            "codes without a header are never used",
            Some("name the carrier's header, e.g. header = \"X-Province\"".into()),
        );
    }
    s.finish(cx);
    let valid = |list: Vec<(String, Range<usize>, Option<Province>)>| {
        list.into_iter().filter_map(|(k, _, p)| Some((k, p?))).collect::<Vec<_>>()
    };
    Some(ProvinceMap::new(valid(dialled), header.map(Spanned::into_inner), valid(codes)))
}

/// The entries of the inline table `key` (`{ "1110251" = "Đồng Nai", … }`): each key with its
/// span and its province, `None` (and an error) when the value names none of the 19.
fn entries(
    cx: &mut Diagnostics<'_>,
    s: &mut Section<'_, '_>,
    key: &'static str,
) -> Vec<(String, Range<usize>, Option<Province>)> {
    let path = s.key_path(key);
    let Some(value) = s.raw(key) else { return Vec::new() };
    let Some(table) = value.get_ref().as_table() else {
        cx.error(
            value.span(),
            &path,
            format!("expected a table, found {}", value.get_ref().type_str()),
            Some(format!("write {key} = {{ \"…\" = \"Đồng Nai\", … }}")),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, v) in table.iter() {
        let name: &str = k.get_ref().as_ref();
        out.push((name.to_string(), k.span(), province(cx, &format!("{path}.{name}"), v)));
    }
    out
}

/// The province a configured value names, exactly as officially written.
fn province(
    cx: &mut Diagnostics<'_>,
    path: &str,
    value: &Spanned<DeValue<'_>>,
) -> Option<Province> {
    let Some(text) = value.get_ref().as_str() else {
        cx.error(
            value.span(),
            path,
            format!("expected a province name, found {}", value.get_ref().type_str()),
            Some(format!("one of: {}", names())),
        );
        return None;
    };
    let found = Province::from_name(text);
    if found.is_none() {
        let hint = match Province::matching(text) {
            Some(p) => format!("did you mean \"{p}\"? (names are written as in: {})", names()),
            None => format!("the region's provinces are: {}", names()),
        };
        cx.error(value.span(), path, format!("unknown province `{text}`"), Some(hint));
    }
    found
}
