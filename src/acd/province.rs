//! Province attribution: which of the region's 19 provinces a call comes from, as far as the trunk
//! tells it (issue 10, point 8). Domain layer, sans-IO: it reads a parsed INVITE and the caller's
//! number, nothing else.
//!
//! Sources, first match wins:
//! 1. the dialled number, when the carrier routes each province to its own access number
//!    (`[provinces] dialled`): the Request-URI's user part, else the To header's;
//! 2. a header the carrier sets (`[provinces] header`), only on INVITEs from the trunk (our trust
//!    domain, as for P-Asserted-Identity): its value is looked up in `[provinces] codes`, else
//!    matched against the province names (any case, with or without diacritics);
//! 3. the caller's landline area code ([`CallerNumber::province`]);
//!
//! else the province is unknown. A mobile number alone tells no province. A [`Province`] can only
//! be one of [`PROVINCES`], so a province label on a metric or a record is bounded by type.

use std::fmt;

use crate::acd::identity::CallerNumber;
use crate::sip::message::{Request, Scheme, Uri};

/// The provinces the regional centre of the Southeast and the Mekong Delta serves: their official
/// names (as records, reports and metric labels write them) and other spellings a carrier header
/// may use (compared without case, spaces or punctuation).
pub const PROVINCES: [(&str, &[&str]); 19] = [
    ("TP. Hồ Chí Minh", &["Hồ Chí Minh", "Ho Chi Minh", "TP Ho Chi Minh", "TPHCM", "HCM"]),
    ("Đồng Nai", &["Dong Nai"]),
    ("Bình Dương", &["Binh Duong"]),
    ("Bình Phước", &["Binh Phuoc"]),
    ("Tây Ninh", &["Tay Ninh"]),
    ("Bà Rịa – Vũng Tàu", &["Ba Ria Vung Tau", "BRVT"]),
    ("Long An", &[]),
    ("Tiền Giang", &["Tien Giang"]),
    ("Bến Tre", &["Ben Tre"]),
    ("Trà Vinh", &["Tra Vinh"]),
    ("Vĩnh Long", &["Vinh Long"]),
    ("Đồng Tháp", &["Dong Thap"]),
    ("An Giang", &[]),
    ("Kiên Giang", &["Kien Giang"]),
    ("Cần Thơ", &["Can Tho"]),
    ("Hậu Giang", &["Hau Giang"]),
    ("Sóc Trăng", &["Soc Trang"]),
    ("Bạc Liêu", &["Bac Lieu"]),
    ("Cà Mau", &["Ca Mau"]),
];

/// What records and metrics say when no source tells the province.
pub const UNKNOWN: &str = "unknown";

/// One of the 19 [`PROVINCES`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Province(u8);

impl Province {
    /// The province officially called `name` (exactly as [`PROVINCES`] writes it).
    pub fn from_name(name: &str) -> Option<Province> {
        PROVINCES.iter().position(|(n, _)| *n == name).map(|i| Province(i as u8))
    }

    /// The province `text` names in any of its spellings: any case, with or without diacritics
    /// (for the spellings listed), spaces and punctuation ignored.
    pub fn matching(text: &str) -> Option<Province> {
        let key = fold(text);
        if key.is_empty() {
            return None;
        }
        PROVINCES
            .iter()
            .position(|(name, other)| {
                fold(name) == key || other.iter().any(|spelling| fold(spelling) == key)
            })
            .map(|i| Province(i as u8))
    }

    /// Its official name.
    pub fn as_str(self) -> &'static str {
        PROVINCES[usize::from(self.0)].0
    }

    /// Every province, in [`PROVINCES`] order.
    pub fn all() -> impl Iterator<Item = Province> {
        (0..PROVINCES.len() as u8).map(Province)
    }
}

impl fmt::Debug for Province {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Province({})", self.as_str())
    }
}

impl fmt::Display for Province {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The official names, for a configuration hint.
pub fn names() -> String {
    PROVINCES.iter().map(|(n, _)| format!("\"{n}\"")).collect::<Vec<_>>().join(", ")
}

/// A name or code as compared: lower case, letters and digits only.
fn fold(text: &str) -> String {
    text.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// A dialled number as compared: the E.164 form of a Vietnamese number (so `02513822111`,
/// `842513822111` and `+842513822111` are one key), else the digits with visual separators
/// dropped (short codes such as `1110251`, numbers with `*` or `#`).
pub fn dialled_key(raw: &str) -> String {
    match CallerNumber::normalise(raw) {
        Some(n) => n.expose().to_string(),
        None => raw.chars().filter(|c| !matches!(c, '-' | '.' | '(' | ')' | ' ')).collect(),
    }
}

/// How this centre attributes calls to provinces (`[provinces]`); the default knows only area
/// codes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProvinceMap {
    /// Per-province access numbers: [`dialled_key`] → province.
    dialled: Vec<(String, Province)>,
    /// The carrier's header naming the caller's province.
    header: Option<String>,
    /// The header's codes, folded (lower case, letters and digits) → province.
    codes: Vec<(String, Province)>,
}

impl ProvinceMap {
    /// A map from per-province access numbers (`dialled`, as configured), a carrier `header`
    /// and its `codes`.
    pub fn new(
        dialled: impl IntoIterator<Item = (String, Province)>,
        header: Option<String>,
        codes: impl IntoIterator<Item = (String, Province)>,
    ) -> ProvinceMap {
        ProvinceMap {
            dialled: dialled.into_iter().map(|(n, p)| (dialled_key(&n), p)).collect(),
            header,
            codes: codes.into_iter().map(|(c, p)| (fold(&c), p)).collect(),
        }
    }

    /// The province of a trunk INVITE whose caller's number is `caller` (none when withheld);
    /// `trusted` when it came from the trunk, whose header alone is believed.
    pub fn of_invite(
        &self,
        invite: &Request,
        trusted: bool,
        caller: Option<&CallerNumber>,
    ) -> Option<Province> {
        let to = invite.headers.to().ok();
        let dialled = [dialled_user(&invite.uri), to.as_ref().and_then(|t| dialled_user(&t.uri))];
        let header = match (&self.header, trusted) {
            (Some(name), true) => invite.headers.get(name).map(|v| String::from_utf8_lossy(v)),
            _ => None,
        };
        self.attribute(dialled.iter().flatten().map(String::as_str), header.as_deref(), caller)
    }

    /// The province told by the `dialled` numbers (Request-URI user first), the carrier header's
    /// value, or the caller's landline number, in that order.
    pub fn attribute<'a>(
        &self,
        dialled: impl IntoIterator<Item = &'a str>,
        header: Option<&str>,
        caller: Option<&CallerNumber>,
    ) -> Option<Province> {
        if !self.dialled.is_empty() {
            for number in dialled {
                let key = dialled_key(number);
                if let Some((_, p)) = self.dialled.iter().find(|(k, _)| *k == key) {
                    return Some(*p);
                }
            }
        }
        if let Some(p) = header.and_then(|value| self.header_value(value)) {
            return Some(p);
        }
        caller.and_then(CallerNumber::province).and_then(Province::from_name)
    }

    /// The province a header value names: a configured code, else a province's name; a value
    /// with parameters (`X;a=b`) is tried whole, then without them.
    fn header_value(&self, value: &str) -> Option<Province> {
        let whole = value.trim();
        let bare = whole.split(';').next().unwrap_or(whole).trim();
        [whole, bare].into_iter().find_map(|v| {
            let key = fold(v);
            let code = self.codes.iter().find(|(c, _)| *c == key).map(|(_, p)| *p);
            code.or_else(|| Province::matching(v))
        })
    }
}

/// The dialled number in a Request-URI or To URI: a `tel:` number or a sip user part (unescaped,
/// without user parameters such as `;phone-context`).
fn dialled_user(uri: &Uri) -> Option<String> {
    match uri.scheme() {
        Scheme::Tel => uri.tel_number().map(str::to_string),
        Scheme::Sip | Scheme::Sips => {
            let user = uri.user()?;
            let user = user.split(';').next().unwrap_or(user);
            Some(String::from_utf8_lossy(&crate::sip::message::unescape(user)).into_owned())
        }
        Scheme::Other(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str) -> Province {
        Province::from_name(name).unwrap()
    }

    fn number(raw: &str) -> CallerNumber {
        CallerNumber::normalise(raw).unwrap()
    }

    fn map() -> ProvinceMap {
        ProvinceMap::new(
            [("1110251".to_string(), p("Đồng Nai")), ("0292 3111 111".to_string(), p("Cần Thơ"))],
            Some("X-Province".into()),
            [("DNI".to_string(), p("Đồng Nai")), ("65".to_string(), p("Cần Thơ"))],
        )
    }

    #[test]
    fn every_name_the_area_codes_give_is_one_of_the_nineteen() {
        let mut seen = std::collections::BTreeSet::new();
        for code in (200..300).map(|c| c.to_string()).chain(["28".to_string()]) {
            if let Some(name) = number(&format!("0{code}3822123")).province() {
                assert!(Province::from_name(name).is_some(), "{name} is not in PROVINCES");
                seen.insert(name);
            }
        }
        assert_eq!(seen.len(), 19, "{seen:?}");
        assert_eq!(Province::all().count(), 19);
    }

    #[test]
    fn names_match_in_any_case_with_or_without_diacritics() {
        assert_eq!(Province::matching("Đồng Nai"), Some(p("Đồng Nai")));
        assert_eq!(Province::matching("DONG NAI"), Some(p("Đồng Nai")));
        assert_eq!(Province::matching("dong-nai"), Some(p("Đồng Nai")));
        assert_eq!(Province::matching("Ba Ria - Vung Tau"), Some(p("Bà Rịa – Vũng Tàu")));
        assert_eq!(Province::matching("tp.hcm"), Some(p("TP. Hồ Chí Minh")));
        assert_eq!(Province::matching("Hà Nội"), None);
        assert_eq!(Province::matching(" - "), None);
        assert_eq!(Province::from_name("Dong Nai"), None, "configs use the official name");
    }

    #[test]
    fn the_dialled_number_comes_first_then_the_header_then_the_area_code() {
        let m = map();
        let landline = number("0296 3852 123"); // An Giang
        let dn = Some(p("Đồng Nai"));
        assert_eq!(m.attribute(["1110251"], Some("65"), Some(&landline)), dn);
        // The Request-URI says 111, the To header the access number.
        assert_eq!(m.attribute(["111", "1110251"], None, None), dn);
        // Access numbers compare in any Vietnamese form.
        assert_eq!(m.attribute(["+842923111111"], None, None), Some(p("Cần Thơ")));
        assert_eq!(m.attribute(["111"], Some("65"), Some(&landline)), Some(p("Cần Thơ")));
        assert_eq!(m.attribute(["111"], Some("dni;src=hlr"), None), dn);
        assert_eq!(m.attribute(["111"], Some("Dong Nai"), None), dn);
        // An unknown header value falls through to the area code.
        assert_eq!(m.attribute(["111"], Some("HN"), Some(&landline)), Some(p("An Giang")));
        assert_eq!(m.attribute(["111"], None, Some(&landline)), Some(p("An Giang")));
        // A mobile number alone tells nothing; nor does nothing.
        assert_eq!(m.attribute(["111"], None, Some(&number("0901234567"))), None);
        assert_eq!(ProvinceMap::default().attribute(["1110251"], Some("DNI"), None), None);
    }

    fn invite(uri: &str, to: &str, extra: &str) -> Request {
        let text = format!(
            "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n\
             From: <sip:0901234567@10.0.0.1>;tag=a\r\nTo: <{to}>\r\nCall-ID: c1\r\n\
             CSeq: 1 INVITE\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        match crate::sip::message::parse_datagram(text.into_bytes()).unwrap() {
            crate::sip::message::Message::Request(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_invite_gives_its_request_uri_to_and_header_but_the_header_only_from_the_trunk() {
        let m = map();
        let dn = Some(p("Đồng Nai"));
        let r = invite("sip:1110251@tongdai", "sip:1110251@tongdai", "");
        assert_eq!(m.of_invite(&r, false, None), dn);
        let r = invite("sip:111@tongdai", "tel:111-0251", "");
        assert_eq!(m.of_invite(&r, false, None), dn);
        let r = invite("sip:111@tongdai", "sip:111@tongdai", "x-province: DNI\r\n");
        assert_eq!(m.of_invite(&r, true, None), dn);
        assert_eq!(m.of_invite(&r, false, None), None, "a header from outside the trunk");
    }
}
