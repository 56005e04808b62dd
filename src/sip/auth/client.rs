//! The client side of digest authentication (protocol layer, sans-IO): answering a 401/407 when
//! tongdai itself must authenticate, to a trunk or to the national centre (RFC 7616 §3.4, with
//! RFC 8760's SHA-256 preferred).

use super::{Algorithm, QopAuth, digest_response};
use crate::sip::message::{AuthFields, AuthParam, Challenge, Method, Response, name};

/// Why a challenge cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    /// Not a `Digest` challenge.
    #[error("not a digest challenge")]
    NotDigest,
    /// The challenge lacks `realm` or `nonce`.
    #[error("challenge parameter `{0}` missing")]
    MissingParam(&'static str),
    /// An algorithm we cannot compute.
    #[error("unsupported algorithm")]
    Algorithm,
    /// Only qop values other than `auth` are offered.
    #[error("unsupported qop")]
    Qop,
    /// No usable challenge is for the realm we hold credentials for: answering another realm
    /// would hand our digest to whoever asked.
    #[error("no challenge for our realm")]
    Realm,
}

/// What the client side needs to answer a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAnswer<'a> {
    /// The username.
    pub user: &'a str,
    /// The password.
    pub password: &'a str,
    /// The method of the request being authorised.
    pub method: &'a Method,
    /// The Request-URI, as it will be written in `uri=` and on the request line.
    pub uri: &'a str,
    /// A fresh client nonce (random, from the caller).
    pub cnonce: &'a str,
    /// The nonce count: 1 for a new nonce, one more for each reuse.
    pub nc: u32,
}

/// The challenge to answer among several: the first SHA-256 one, else the first MD5 one (an absent
/// `algorithm` means MD5); digest challenges with other algorithms are skipped.
pub fn preferred_challenge(challenges: &[Challenge]) -> Option<&Challenge> {
    let usable = |want: Algorithm| {
        challenges.iter().find(|c| {
            c.0.is_digest()
                && c.algorithm().map_or(Some(Algorithm::Md5), Algorithm::from_name) == Some(want)
        })
    };
    usable(Algorithm::Sha256).or_else(|| usable(Algorithm::Md5))
}

/// The `Authorization`/`Proxy-Authorization` value answering `challenge` (RFC 7616 §3.4): with
/// `qop=auth`, `nc` and `cnonce` when the challenge offers `auth`, in RFC 2069 form when it
/// offers no qop; `opaque` echoed.
pub fn authorization(
    challenge: &Challenge,
    answer: &ClientAnswer<'_>,
) -> Result<String, ChallengeError> {
    if !challenge.0.is_digest() {
        return Err(ChallengeError::NotDigest);
    }
    let realm = challenge.realm().ok_or(ChallengeError::MissingParam("realm"))?;
    let nonce = challenge.nonce().ok_or(ChallengeError::MissingParam("nonce"))?;
    let algorithm = match challenge.algorithm() {
        None => Algorithm::Md5,
        Some(a) => Algorithm::from_name(a).ok_or(ChallengeError::Algorithm)?,
    };
    let offered = challenge.qop_options();
    let use_qop = if offered.is_empty() {
        false
    } else if offered.iter().any(|q| q.eq_ignore_ascii_case("auth")) {
        true
    } else {
        return Err(ChallengeError::Qop);
    };
    let nc = format!("{:08x}", answer.nc);
    let qop = use_qop.then_some(QopAuth { nc: &nc, cnonce: answer.cnonce });
    let ha1 = algorithm.ha1(answer.user, realm, answer.password);
    let response = digest_response(algorithm, &ha1, nonce, qop, answer.method.as_str(), answer.uri);
    let param = |name: &str, value: &str, quoted: bool| AuthParam {
        name: name.to_owned(),
        value: value.to_owned(),
        quoted,
    };
    let mut params = vec![
        param("username", answer.user, true),
        param("realm", realm, true),
        param("nonce", nonce, true),
        param("uri", answer.uri, true),
        param("response", &response, true),
        param("algorithm", algorithm.name(), false),
    ];
    if use_qop {
        params.push(param("qop", "auth", false));
        params.push(param("nc", &nc, false));
        params.push(param("cnonce", answer.cnonce, true));
    }
    if let Some(opaque) = challenge.opaque() {
        params.push(param("opaque", opaque, true));
    }
    Ok(AuthFields { scheme: "Digest".to_owned(), params }.to_text())
}

/// The credentials answering a 401/407 `challenges` for `realm` only (RFC 7616 §3.4): among the
/// challenges of that realm, the SHA-256 one, else the MD5 one. A challenge from any other realm
/// is never answered, so the password's digest reaches no one but the configured peer — the rule
/// for the trunk registration, the national centre and transfer targets alike.
pub fn authorization_for_realm(
    challenges: &[Challenge],
    realm: &str,
    answer: &ClientAnswer<'_>,
) -> Result<String, ChallengeError> {
    let ours: Vec<Challenge> =
        challenges.iter().filter(|c| c.realm() == Some(realm)).cloned().collect();
    let chosen = preferred_challenge(&ours).ok_or(ChallengeError::Realm)?;
    authorization(chosen, answer)
}

/// The header answering a 401 (`Authorization`) or 407 (`Proxy-Authorization`) `response` for
/// `realm` only (see [`authorization_for_realm`]); `None` when no challenge of that realm can be
/// answered.
pub fn answer_challenge(
    response: &Response,
    realm: &str,
    answer: &ClientAnswer<'_>,
) -> Option<(&'static str, String)> {
    let (header, challenges) = if response.status == 407 {
        (name::PROXY_AUTHORIZATION, response.headers.proxy_authenticate())
    } else {
        (name::AUTHORIZATION, response.headers.www_authenticate())
    };
    let challenges = challenges.unwrap_or_default();
    let value = authorization_for_realm(&challenges, realm, answer).ok()?;
    Some((header, value))
}
