//! Caller identity: who is calling, as far as the hotline may know it. Domain layer, sans-IO.
//!
//! The number comes from P-Asserted-Identity (RFC 3325 §9.1) when the INVITE came from the trunk,
//! our trust domain, and from From otherwise. A caller who asked for privacy (`Privacy: id`,
//! `user` or `header`, RFC 3323 §4.2 / RFC 3325 §9.3) or who is anonymous gets no number and no
//! pseudonym: nothing about them is kept. A number is normalised from the Vietnamese forms (`0…`,
//! `84…`, `+84…`, `0084…`, with visual separators) to one E.164 form, so one caller has one
//! pseudonym however the trunk writes them; the pseudonym is HMAC-SHA256(key, E.164), shortened for
//! display. [`CallerNumber`] never prints itself in clear: its `Debug` is redacted and it has no
//! `Display`, so it cannot reach a log line by accident.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::sip::message::{NameAddr, Request, Scheme};

/// Vietnam's country code (E.164).
const VN: &str = "84";

/// The key that turns numbers into pseudonyms (32 bytes from the `[privacy] key_file`).
#[derive(Clone)]
pub struct PseudonymKey([u8; 32]);

impl PseudonymKey {
    /// Wraps the key bytes.
    pub fn new(bytes: [u8; 32]) -> PseudonymKey {
        PseudonymKey(bytes)
    }

    /// The pseudonym of `number`: HMAC-SHA256 over its E.164 text.
    pub fn pseudonym(&self, number: &CallerNumber) -> Pseudonym {
        // HMAC takes a key of any length; 32 bytes always fit.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
        mac.update(number.0.as_bytes());
        Pseudonym(mac.finalize().into_bytes().into())
    }
}

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PseudonymKey(<secret>)")
    }
}

/// A caller's number in E.164 form (`+84…`), or the digits as received when they fit no
/// Vietnamese form (short codes). Never printed in clear.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CallerNumber(String);

impl CallerNumber {
    /// Normalises a dialled or presented number: visual separators (RFC 3966 §5.1.1) dropped,
    /// `0…` (national), `84…` and `0084…` (international without `+`), a bare 9–10 digit
    /// national significant number and `+84…` all become `+84…`; other `+` numbers keep their
    /// country code. `None` when there are no digits or anything but digits and separators.
    pub fn normalise(raw: &str) -> Option<CallerNumber> {
        let raw = raw.trim();
        let (plus, rest) = match raw.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        let mut digits = String::with_capacity(rest.len());
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                '-' | '.' | '(' | ')' | ' ' => {}
                _ => return None,
            }
        }
        if digits.is_empty() {
            return None;
        }
        let international = if plus {
            Some(digits.as_str())
        } else if let Some(d) = digits.strip_prefix("00") {
            Some(d)
        } else if digits.starts_with(VN) && (11..=12).contains(&digits.len()) {
            Some(digits.as_str())
        } else {
            None
        };
        let e164 = match international {
            Some(d) => format!("+{d}"),
            None => match digits.strip_prefix('0') {
                Some(nsn) if (9..=10).contains(&nsn.len()) => format!("+{VN}{nsn}"),
                None if (9..=10).contains(&digits.len()) => format!("+{VN}{digits}"),
                _ => digits,
            },
        };
        Some(CallerNumber(e164))
    }

    /// The number itself, for the few places policy allows it (the agent's INVITE when
    /// `show_number_to_agents`, a callback). Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The national significant number when this is a Vietnamese number.
    fn national(&self) -> Option<&str> {
        self.0.strip_prefix("+84")
    }

    /// The province of a Vietnamese landline number (its area code), for the 19 provinces this
    /// regional centre serves; `None` for mobiles and other areas.
    pub fn province(&self) -> Option<&'static str> {
        let nsn = self.national()?;
        if nsn.starts_with("28") {
            return Some("TP. Hồ Chí Minh");
        }
        let code = nsn.get(..3)?;
        AREA_CODES.iter().find(|(c, _)| *c == code).map(|(_, p)| *p)
    }
}

impl fmt::Debug for CallerNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CallerNumber(<redacted>)")
    }
}

/// Landline area codes (without the trunk prefix 0) of the Southeast and the Mekong Delta, as
/// renumbered in 2017; Hồ Chí Minh City's `28` is matched separately.
const AREA_CODES: [(&str, &str); 18] = [
    ("251", "Đồng Nai"),
    ("254", "Bà Rịa – Vũng Tàu"),
    ("270", "Vĩnh Long"),
    ("271", "Bình Phước"),
    ("272", "Long An"),
    ("273", "Tiền Giang"),
    ("274", "Bình Dương"),
    ("275", "Bến Tre"),
    ("276", "Tây Ninh"),
    ("277", "Đồng Tháp"),
    ("290", "Cà Mau"),
    ("291", "Bạc Liêu"),
    ("292", "Cần Thơ"),
    ("293", "Hậu Giang"),
    ("294", "Trà Vinh"),
    ("296", "An Giang"),
    ("297", "Kiên Giang"),
    ("299", "Sóc Trăng"),
];

/// A pseudonymous caller id: HMAC-SHA256(key, E.164 number).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pseudonym([u8; 32]);

impl Pseudonym {
    /// The whole value in hex (64 characters), for records.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The first 8 hex digits, for the agent's display: enough to recognise a repeat caller
    /// within a shift, too short to be worth reversing.
    pub fn short(&self) -> String {
        self.0[..4].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pseudonym(#{})", self.short())
    }
}

impl fmt::Display for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.short())
    }
}

/// Who is calling.
#[derive(Clone, PartialEq, Eq)]
pub enum CallerIdentity {
    /// No number: the caller asked for privacy, or presented none (anonymous, withheld).
    Withheld,
    /// A number, with its pseudonym.
    Known {
        /// The normalised number.
        number: CallerNumber,
        /// Its pseudonym.
        pseudonym: Pseudonym,
    },
}

impl fmt::Debug for CallerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallerIdentity::Withheld => f.write_str("Withheld"),
            CallerIdentity::Known { pseudonym, .. } => write!(f, "Known({pseudonym})"),
        }
    }
}

impl CallerIdentity {
    /// The identity of the caller of a trunk `invite`. `trust_asserted` when the INVITE came from
    /// the trunk and `[privacy] trust_asserted_identity` is on: P-Asserted-Identity is used then.
    pub fn of_invite(invite: &Request, trust_asserted: bool, key: &PseudonymKey) -> Self {
        let h = &invite.headers;
        // An unreadable Privacy header is taken as a request for privacy: the safe reading.
        let privacy = h.privacy().unwrap_or_else(|_| vec!["id".into()]);
        if privacy.iter().any(|p| matches!(p.as_str(), "id" | "user" | "header" | "critical")) {
            return CallerIdentity::Withheld;
        }
        let asserted = trust_asserted
            .then(|| h.p_asserted_identity().ok())
            .flatten()
            .and_then(|ids| ids.iter().find_map(number_of));
        let number = asserted.or_else(|| h.from().ok().as_ref().and_then(number_of));
        match number {
            Some(number) => {
                let pseudonym = key.pseudonym(&number);
                CallerIdentity::Known { number, pseudonym }
            }
            None => CallerIdentity::Withheld,
        }
    }

    /// The number, if any.
    pub fn number(&self) -> Option<&CallerNumber> {
        match self {
            CallerIdentity::Known { number, .. } => Some(number),
            CallerIdentity::Withheld => None,
        }
    }

    /// The pseudonym, if any.
    pub fn pseudonym(&self) -> Option<Pseudonym> {
        match self {
            CallerIdentity::Known { pseudonym, .. } => Some(*pseudonym),
            CallerIdentity::Withheld => None,
        }
    }

    /// The province the number tells, if any.
    pub fn province(&self) -> Option<&'static str> {
        self.number().and_then(CallerNumber::province)
    }

    /// The display name for the agent's INVITE: `template` with `{province}` (the call's
    /// province as attributed, else `region`) and `{caller}` (`#` and the short pseudonym, else
    /// `anonymous`).
    pub fn agent_display(
        &self,
        template: &str,
        province: Option<&str>,
        region: &str,
        anonymous: &str,
    ) -> String {
        let caller = match self.pseudonym() {
            Some(p) => p.to_string(),
            None => anonymous.to_string(),
        };
        template.replace("{province}", province.unwrap_or(region)).replace("{caller}", &caller)
    }
}

/// The number in a From or P-Asserted-Identity value: a `tel:` URI's number or a sip URI's user
/// part; `None` for anonymous identities (RFC 3323 §4.1.1.3: `anonymous@anonymous.invalid`) and
/// user parts that are not numbers.
fn number_of(id: &NameAddr) -> Option<CallerNumber> {
    let uri = &id.uri;
    let raw = match uri.scheme() {
        Scheme::Tel => uri.tel_number()?.to_string(),
        Scheme::Sip | Scheme::Sips => {
            let user = uri.user()?;
            // `;phone-context` and other user-part parameters (RFC 3261 §19.1.6) are not digits.
            let user = user.split(';').next().unwrap_or(user);
            String::from_utf8_lossy(&crate::sip::message::unescape(user)).into_owned()
        }
        Scheme::Other(_) => return None,
    };
    CallerNumber::normalise(&raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e164(raw: &str) -> Option<String> {
        CallerNumber::normalise(raw).map(|n| n.expose().to_string())
    }

    #[test]
    fn vietnamese_forms_become_one_e164_number() {
        for raw in ["0901234567", "84901234567", "+84901234567", "0084901234567", "901234567"] {
            assert_eq!(e164(raw).as_deref(), Some("+84901234567"), "{raw}");
        }
        assert_eq!(e164("+84 90-123.4567").as_deref(), Some("+84901234567"));
        assert_eq!(e164("(028) 3822 1234").as_deref(), Some("+842838221234"));
        assert_eq!(e164("+1 202 555 0100").as_deref(), Some("+12025550100"));
        assert_eq!(e164("113").as_deref(), Some("113"));
        assert_eq!(e164("anonymous"), None);
        assert_eq!(e164(""), None);
        assert_eq!(e164("+"), None);
    }

    #[test]
    fn landline_area_codes_tell_the_province() {
        let p = |raw: &str| CallerNumber::normalise(raw).and_then(|n| n.province());
        assert_eq!(p("0296 3852 123"), Some("An Giang"));
        assert_eq!(p("02838221234"), Some("TP. Hồ Chí Minh"));
        assert_eq!(p("+84292 3821 000"), Some("Cần Thơ"));
        assert_eq!(p("0901234567"), None, "a mobile tells no province");
        assert_eq!(p("02439421234"), None, "Hà Nội is not served here");
    }

    #[test]
    fn one_caller_one_pseudonym_and_the_key_matters() {
        let key = PseudonymKey::new([7; 32]);
        let a = key.pseudonym(&CallerNumber::normalise("0901234567").unwrap());
        let b = key.pseudonym(&CallerNumber::normalise("+84 901 234 567").unwrap());
        assert_eq!(a, b);
        let other = PseudonymKey::new([8; 32]);
        assert_ne!(a, other.pseudonym(&CallerNumber::normalise("0901234567").unwrap()));
        assert_eq!(a.to_hex().len(), 64);
        assert_eq!(a.to_string().len(), 9);
        assert!(a.to_hex().starts_with(&a.short()));
    }

    #[test]
    fn debug_output_never_shows_the_number() {
        let key = PseudonymKey::new([7; 32]);
        let n = CallerNumber::normalise("0901234567").unwrap();
        let id = CallerIdentity::Known { pseudonym: key.pseudonym(&n), number: n.clone() };
        for text in [format!("{n:?}"), format!("{id:?}"), format!("{key:?}")] {
            assert!(!text.contains("901234567"), "{text}");
        }
    }
}
