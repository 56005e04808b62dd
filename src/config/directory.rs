//! `[[directory]]`: the transfer directory operators hand calls over to — name, a SIP address or a
//! number dialled through the trunk (`[trunk] outbound`), province, kind and an optional short
//! code. Part of the config layer: TOML → [`Directory`] ([`crate::acd::directory`]).

use toml::Spanned;

use super::TrunkConfig;
use super::diag::{self, Diagnostics};
use super::overflow::sip_address;
use super::queue::{FeatureCode, QueueConfig};
use super::read::Section;
use crate::acd::directory::{Destination, Directory, DirectoryEntry, TargetKind};
use crate::acd::province::{Province, names};

/// Reads every `[[directory]]` table; `trunk` and `queue` (when valid) tell whether numbers can be
/// dialled and which codes the agents' feature codes already take.
pub(super) fn read_directory(
    cx: &mut Diagnostics<'_>,
    sections: Vec<Section<'_, '_>>,
    trunk: Option<&TrunkConfig>,
    queue: Option<&QueueConfig>,
) -> Option<Directory> {
    let mut entries: Vec<DirectoryEntry> = Vec::new();
    let mut ok = true;
    for s in sections {
        match read_entry(cx, s, trunk, queue, &entries) {
            Some(e) => entries.push(e),
            None => ok = false,
        }
    }
    ok.then(|| Directory::new(entries))
}

fn read_entry(
    cx: &mut Diagnostics<'_>,
    mut s: Section<'_, '_>,
    trunk: Option<&TrunkConfig>,
    queue: Option<&QueueConfig>,
    earlier: &[DirectoryEntry],
) -> Option<DirectoryEntry> {
    let name: Option<Spanned<String>> = s.required(cx, "name");
    let uri: Option<String> = s.opt(cx, "uri");
    let number: Option<Spanned<String>> = s.opt(cx, "number");
    let province: Option<Spanned<String>> = s.opt(cx, "province");
    let kind: Option<Spanned<String>> = s.required(cx, "kind");
    let code: Option<Spanned<String>> = s.opt(cx, "code");

    let name = name.and_then(|n| {
        if n.get_ref().trim().is_empty() {
            cx.error(
                n.span(),
                &s.key_path("name"),
                "an empty name",
                Some("the name operators see, e.g. name = \"Công an 113\"".into()),
            );
            None
        } else if earlier.iter().any(|e| &e.name == n.get_ref()) {
            cx.error(
                n.span(),
                &s.key_path("name"),
                format!("a second directory entry named `{}`", n.get_ref()),
                Some("directory names must be unique".into()),
            );
            None
        } else {
            Some(n.into_inner())
        }
    });

    let destination = match (uri, number) {
        (Some(text), None) => sip_address(cx, &s, "uri", &text)
            .map(|(uri, address)| Destination::Sip { uri, address }),
        (None, Some(n)) => read_number(cx, &s, n, trunk),
        (Some(_), Some(_)) => {
            cx.error(
                s.span_of("number"),
                &s.key_path("number"),
                "both `uri` and `number`",
                Some(
                    "keep one: `uri` for a SIP address, `number` to dial through the trunk".into(),
                ),
            );
            None
        }
        (None, None) => {
            cx.error(
                s.span(),
                &s.key_path("uri"),
                "neither `uri` nor `number`",
                Some(
                    "add uri = \"sip:…@IP:port\" (reached directly) or number = \"113\" \
                     (dialled through [trunk] outbound)"
                        .into(),
                ),
            );
            None
        }
    };

    let province = match province {
        None => Some(None),
        Some(p) => match Province::from_name(p.get_ref()) {
            Some(found) => Some(Some(found)),
            None => {
                let hint = match Province::matching(p.get_ref()) {
                    Some(near) => {
                        format!("did you mean \"{near}\"? (names are written as in: {})", names())
                    }
                    None => format!("the region's provinces are: {}", names()),
                };
                cx.error(
                    p.span(),
                    &s.key_path("province"),
                    format!("unknown province `{}`", p.get_ref()),
                    Some(hint),
                );
                None
            }
        },
    };

    let kind = kind.and_then(|k| {
        let found = TargetKind::from_name(k.get_ref());
        if found.is_none() {
            let known: Vec<&str> = TargetKind::ALL.iter().map(|k| k.as_str()).collect();
            let hint = match diag::closest(k.get_ref(), &known) {
                Some(near) => format!("did you mean \"{near}\"?"),
                None => format!("one of: {}", known.join(", ")),
            };
            cx.error(
                k.span(),
                &s.key_path("kind"),
                format!("unknown kind `{}`", k.get_ref()),
                Some(hint),
            );
        }
        found
    });

    let code = match code {
        None => Some(None),
        Some(c) => {
            let text = c.get_ref();
            let valid = text.len() >= 2
                && text.starts_with('*')
                && text[1..].bytes().all(|b| b.is_ascii_digit() || b == b'#' || b == b'*');
            let feature = queue.and_then(|q| q.feature_codes.lookup(text));
            let other = earlier.iter().find(|e| e.code.as_deref() == Some(text.as_str()));
            // A supervisor's prefix is followed by an operator's name (`*51op1`): a code that
            // begins with one would be read as a supervision.
            let supervision = queue.and_then(|q| {
                let prefix = |m: &crate::config::SupervisionMode| {
                    text.starts_with(q.feature_codes.supervision_prefix(*m))
                };
                crate::config::SupervisionMode::ALL.iter().find(|m| prefix(m))
            });
            if !valid {
                cx.error(
                    c.span(),
                    &s.key_path("code"),
                    format!("`{text}` is not a short code"),
                    Some("write `*` and digits, e.g. code = \"*31\"".into()),
                );
                None
            } else if let Some(f) = feature {
                cx.error(
                    c.span(),
                    &s.key_path("code"),
                    format!("`{text}` is the agents' `{}` feature code", f.as_str()),
                    Some(format!(
                        "pick a code not in [queue.feature_codes] ({})",
                        feature_codes(queue)
                    )),
                );
                None
            } else if let Some(m) = supervision {
                cx.error(
                    c.span(),
                    &s.key_path("code"),
                    format!("`{text}` begins with the supervisors' `{}` prefix", m.as_str()),
                    Some("pick a code that does not begin with a [queue.feature_codes] supervision prefix (listen, whisper, barge)".into()),
                );
                None
            } else if let Some(e) = other {
                cx.error(
                    c.span(),
                    &s.key_path("code"),
                    format!("`{text}` is also the code of `{}`", e.name),
                    Some("give each directory entry its own code".into()),
                );
                None
            } else {
                Some(Some(c.into_inner()))
            }
        }
    };
    s.finish(cx);
    Some(DirectoryEntry {
        name: name?,
        destination: destination?,
        province: province?,
        kind: kind?,
        code: code?,
    })
}

/// A number dialled through the trunk: digits with an optional leading `+`, and a trunk that
/// says where such calls go.
fn read_number(
    cx: &mut Diagnostics<'_>,
    s: &Section<'_, '_>,
    number: Spanned<String>,
    trunk: Option<&TrunkConfig>,
) -> Option<Destination> {
    let text = number.get_ref();
    let digits = text.strip_prefix('+').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        cx.error(
            number.span(),
            &s.key_path("number"),
            format!("`{text}` is not a number to dial"),
            Some(
                "digits only, `+` allowed in front: e.g. number = \"113\" or \"+842513822111\""
                    .into(),
            ),
        );
        return None;
    }
    if trunk.is_some_and(|t| t.outbound.is_none()) {
        cx.error(
            number.span(),
            &s.key_path("number"),
            format!("`{text}` is dialled through the trunk, but [trunk] outbound is not set"),
            Some(
                "set [trunk] outbound = \"IP:port\" (the provider's SBC), or give this entry a \
                 uri = \"sip:…@IP:port\" instead"
                    .into(),
            ),
        );
        return None;
    }
    Some(Destination::Number(number.into_inner()))
}

/// The configured feature codes, for a hint.
fn feature_codes(queue: Option<&QueueConfig>) -> String {
    let Some(q) = queue else { return String::new() };
    FeatureCode::ALL
        .iter()
        .map(|c| format!("{} = \"{}\"", c.as_str(), q.feature_codes.number(*c)))
        .collect::<Vec<_>>()
        .join(", ")
}
