//! Digest authentication (protocol layer, sans-IO): RFC 3261 §22 with the RFC 7616 parameters and the
//! RFC 8760 algorithms (SHA-256 first, MD5 for old softphones).
//!
//! The server side ([`DigestServer`]) keeps no state per challenge. A nonce carries its own issue
//! time (relative to an epoch the runtime gives once) and a serial number, sealed with an
//! HMAC-SHA-256 over them and the realm under a random key the runtime passes at start-up; any
//! nonce that comes back is checked by recomputing that seal, and its age by reading the time it
//! carries. The only table is the nonce-count record that stops replays (RFC 7616 §3.4), bounded:
//! when it is full the oldest nonce is dropped, and a dropped nonce answers `stale=true`, which
//! costs an honest client one round trip and an attacker everything.
//!
//! Unknown users and wrong passwords take the same path: an unknown user is checked against a
//! dummy password, so the peer sees the same answer after the same work ([`AuthFailure::answer`]).
//! The response is always computed over the literal `uri=` text of the header, never a re-printed
//! URI, and compared in constant time.
//!
//! What to offer is chosen per request ([`DigestServer::algorithms_for_request`]): a user with only
//! an MD5 HA1 gets MD5 alone, and so do softphones that give up on a whole 401 as soon as it holds
//! a challenge they cannot compute (baresip 1.0 does; SIPp reads only the first challenge).
//!
//! Two companions live in submodules: the client side ([`authorization`]) answers a 401/407 when
//! tongdai itself must authenticate (to a trunk or to the national centre), and [`AuthBans`] bans
//! repeated guesses per (source, user) with one fail2ban-friendly log line per ban.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};

use super::message::{
    AuthFields, AuthParam, Credentials, HeaderError, Method, Request, Response, name,
};
use crate::config::Credential;

mod ban;
mod client;

pub use ban::{AuthBans, Ban, BanConfig};
pub use client::{
    ChallengeError, ClientAnswer, answer_challenge, authorization, authorization_for_realm,
    preferred_challenge,
};

/// How long a nonce stays fresh unless configured otherwise.
pub const DEFAULT_NONCE_LIFETIME: Duration = Duration::from_secs(300);

/// How many nonces the replay table follows unless configured otherwise: far more than the agents
/// of one centre can hold at once, small enough (about 100 KiB) to survive a challenge flood.
pub const DEFAULT_NONCE_TABLE_SIZE: usize = 4096;

/// A digest algorithm (RFC 7616 §3.3, RFC 8760 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5`: what every softphone and SIPp speak.
    Md5,
    /// `SHA-256` (RFC 8760): preferred when the peer offers it.
    Sha256,
}

impl Algorithm {
    /// The algorithm's name as written in `algorithm=`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Reads an `algorithm=` value (case-insensitive); `None` for any other algorithm, including
    /// the `-sess` variants, which tongdai never offers.
    pub fn from_name(s: &str) -> Option<Algorithm> {
        if s.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if s.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    /// `H(data)` as lower-case hex.
    pub fn hash_hex(self, data: &[u8]) -> String {
        match self {
            Algorithm::Md5 => hex(&Md5::digest(data)),
            Algorithm::Sha256 => hex(&Sha256::digest(data)),
        }
    }

    /// `HA1 = H(username ":" realm ":" password)` (RFC 7616 §3.4.2).
    pub fn ha1(self, user: &str, realm: &str, password: &str) -> String {
        self.hash_hex(format!("{user}:{realm}:{password}").as_bytes())
    }
}

/// The `qop=auth` inputs of a response: the nonce count as written (eight hex digits) and the
/// client nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QopAuth<'a> {
    /// `nc`, literally as sent (its text is hashed, not its value).
    pub nc: &'a str,
    /// `cnonce`.
    pub cnonce: &'a str,
}

/// The digest `response` (RFC 7616 §3.4.1; RFC 2069 form when `qop` is `None`):
/// `H(HA1:nonce:nc:cnonce:auth:HA2)` or `H(HA1:nonce:HA2)`, with `HA2 = H(method:uri)`. `uri` must
/// be the literal `uri=` text.
pub fn digest_response(
    algorithm: Algorithm,
    ha1: &str,
    nonce: &str,
    qop: Option<QopAuth<'_>>,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = algorithm.hash_hex(format!("{method}:{uri}").as_bytes());
    let data = match qop {
        Some(q) => format!("{ha1}:{nonce}:{}:{}:auth:{ha2}", q.nc, q.cnonce),
        None => format!("{ha1}:{nonce}:{ha2}"),
    };
    algorithm.hash_hex(data.as_bytes())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.as_bytes();
    if s.len() != N * 2 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; N];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// Equality that takes the same time wherever the first difference is (lengths are public).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Which pair of headers a challenge uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    /// A user agent server (the registrar): 401 with `WWW-Authenticate`, answered in
    /// `Authorization`.
    Www,
    /// A proxy: 407 with `Proxy-Authenticate`, answered in `Proxy-Authorization`.
    Proxy,
}

impl ChallengeKind {
    /// 401 or 407.
    pub fn status(self) -> u16 {
        match self {
            ChallengeKind::Www => 401,
            ChallengeKind::Proxy => 407,
        }
    }

    /// The header a challenge goes in.
    pub fn challenge_header(self) -> &'static str {
        match self {
            ChallengeKind::Www => name::WWW_AUTHENTICATE,
            ChallengeKind::Proxy => name::PROXY_AUTHENTICATE,
        }
    }

    /// The header the credentials come back in.
    pub fn credentials_header(self) -> &'static str {
        match self {
            ChallengeKind::Www => name::AUTHORIZATION,
            ChallengeKind::Proxy => name::PROXY_AUTHORIZATION,
        }
    }
}

/// Settings of a [`DigestServer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestServerConfig {
    /// The realm (`[sip] realm`).
    pub realm: String,
    /// How long a nonce stays fresh; an older one answers `stale=true`.
    pub nonce_lifetime: Duration,
    /// Algorithms offered, in order of preference: one challenge each, in this order (RFC 8760
    /// §2.4: the preferred one first). `[Md5]` alone serves softphones that stop at the first
    /// challenge they cannot read.
    pub algorithms: Vec<Algorithm>,
    /// An `opaque` value to send and require back, if any.
    pub opaque: Option<String>,
    /// How many nonces the replay table follows (at least 1).
    pub nonce_table_size: usize,
    /// Accept RFC 2069 answers without `qop` (old softphones); each such nonce is then good for
    /// one request only, since without a nonce count a second use cannot be told from a replay.
    pub allow_rfc2069: bool,
    /// `User-Agent` prefixes (case-insensitive) challenged with MD5 alone. Some softphones give up
    /// on a 401 that holds any challenge they cannot compute instead of skipping it: baresip 1.0
    /// answers "Register: Function not implemented" as soon as a SHA-256 challenge is present,
    /// first or second (`tests/sip_registrar_peers.rs`), so its prefix is `baresip v1.`.
    pub md5_only_user_agents: Vec<String>,
}

impl DigestServerConfig {
    /// The defaults: SHA-256 then MD5, nonces fresh for 300 s, no opaque, RFC 2069 answers
    /// accepted once per nonce, no MD5-only user agents.
    pub fn new(realm: impl Into<String>) -> DigestServerConfig {
        DigestServerConfig {
            realm: realm.into(),
            nonce_lifetime: DEFAULT_NONCE_LIFETIME,
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            opaque: None,
            nonce_table_size: DEFAULT_NONCE_TABLE_SIZE,
            allow_rfc2069: true,
            md5_only_user_agents: Vec::new(),
        }
    }
}

/// Who passed a digest check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedUser {
    /// The digest `username`, as the lookup knew it.
    pub user: String,
    /// The algorithm the client used.
    pub algorithm: Algorithm,
}

/// Why credentials are malformed (answered 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadCredentials {
    /// The credentials header itself does not parse.
    #[error("credentials do not parse: {0}")]
    Syntax(#[from] HeaderError),
    /// A required parameter is absent.
    #[error("digest parameter `{0}` missing")]
    MissingParam(&'static str),
    /// An algorithm this server does not offer.
    #[error("algorithm not offered")]
    Algorithm,
    /// A `qop` other than `auth`, or none where `qop` is required.
    #[error("qop not offered")]
    Qop,
}

/// Why a request is not authenticated. [`AuthFailure::answer`] says how to reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// No digest credentials for our realm: the first request of every exchange.
    #[error("no credentials for the realm")]
    Missing,
    /// The username is not an agent (answered exactly like [`AuthFailure::WrongPassword`]).
    #[error("unknown user")]
    UnknownUser,
    /// The response does not match the agent's password.
    #[error("wrong password")]
    WrongPassword,
    /// The agent's configured HA1 does not cover the algorithm the client chose.
    #[error("no HA1 for the algorithm")]
    NoCredentialForAlgorithm,
    /// The password is right but the nonce is too old, was not ours, or was dropped from the replay
    /// table: answer a fresh challenge with `stale=true` so the client retries silently.
    #[error("stale nonce")]
    Stale,
    /// The password is right but the nonce count did not increase: a replayed request.
    #[error("replayed nonce count")]
    Replay,
    /// The credentials are malformed.
    #[error("bad credentials: {0}")]
    BadRequest(#[from] BadCredentials),
}

/// How to reply to an [`AuthFailure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthAnswer {
    /// 401/407 with a fresh challenge (`stale` says whether to mark it `stale=true`).
    Challenge {
        /// Mark the challenge `stale=true`.
        stale: bool,
    },
    /// 400: the credentials are malformed.
    BadRequest,
}

impl AuthFailure {
    /// How to reply. Unknown user and wrong password give the same answer, by construction.
    pub fn answer(&self) -> AuthAnswer {
        match self {
            AuthFailure::Missing
            | AuthFailure::UnknownUser
            | AuthFailure::WrongPassword
            | AuthFailure::NoCredentialForAlgorithm => AuthAnswer::Challenge { stale: false },
            AuthFailure::Stale | AuthFailure::Replay => AuthAnswer::Challenge { stale: true },
            AuthFailure::BadRequest(_) => AuthAnswer::BadRequest,
        }
    }

    /// A bounded label for `tongdai_auth_failures_total{reason}` and the ban log line.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::UnknownUser => "unknown_user",
            AuthFailure::WrongPassword => "wrong_password",
            AuthFailure::NoCredentialForAlgorithm => "algorithm",
            AuthFailure::Stale => "stale",
            AuthFailure::Replay => "replay",
            AuthFailure::BadRequest(_) => "bad_request",
        }
    }

    /// True for the failures that prove nothing about the password (a stale nonce, a first
    /// request), which a ban counter must not count.
    pub fn is_guess(&self) -> bool {
        matches!(
            self,
            AuthFailure::UnknownUser
                | AuthFailure::WrongPassword
                | AuthFailure::NoCredentialForAlgorithm
        )
    }
}

/// What a nonce's seal and clock say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NonceState {
    /// Ours and young enough; `serial` orders it in the replay table.
    Fresh { serial: u64, issued: Duration },
    /// Ours but too old, or not ours at all (forged, or from before a restart).
    Stale,
}

/// The nonce-count record of one nonce.
#[derive(Debug, Clone, Copy)]
struct NonceUse {
    issued: Duration,
    last_nc: u32,
}

/// Length of a nonce's seal (truncated HMAC-SHA-256): 128 bits.
const SEAL_LEN: usize = 16;

/// Nonce text: hex of issue time (ms since the epoch, u64), serial (u64) and seal.
const NONCE_LEN: usize = 8 + 8 + SEAL_LEN;

/// The digest server: issues challenges and verifies credentials (see the module docs).
pub struct DigestServer {
    config: DigestServerConfig,
    key: [u8; 32],
    epoch: Instant,
    next_serial: u64,
    /// Nonces seen in credentials, by serial (so by issue time).
    uses: BTreeMap<u64, NonceUse>,
    /// Every valid nonce with a lower serial that is not in `uses` was dropped from it.
    floor: u64,
    /// Nonces dropped from (or refused by) a full table since [`DigestServer::take_dropped`].
    dropped: u64,
    /// Stands in for an unknown user's password, so the work done is the same.
    dummy_password: String,
}

impl std::fmt::Debug for DigestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestServer")
            .field("config", &self.config)
            .field("nonces_followed", &self.uses.len())
            .finish_non_exhaustive()
    }
}

impl DigestServer {
    /// A server sealing nonces with `key` (random, from the runtime) and measuring their age from
    /// `epoch` (the runtime's start).
    pub fn new(config: DigestServerConfig, key: [u8; 32], epoch: Instant) -> DigestServer {
        let mut mac = hmac_with(&key);
        mac.update(b"tongdai dummy password");
        let dummy_password = hex(&mac.finalize().into_bytes()[..12]);
        DigestServer {
            config,
            key,
            epoch,
            next_serial: 0,
            uses: BTreeMap::new(),
            floor: 0,
            dropped: 0,
            dummy_password,
        }
    }

    /// The settings.
    pub fn config(&self) -> &DigestServerConfig {
        &self.config
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.config.realm
    }

    /// How many nonces the replay table follows now.
    pub fn nonces_followed(&self) -> usize {
        self.uses.len()
    }

    /// How many nonces a full replay table dropped (or refused as older than all it follows)
    /// since the last call: each answers `stale=true`, so its client retries with a new one.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    /// The algorithms to offer a user with `credential` (`None`: unknown user, offered everything),
    /// in the configured order: a user with only an MD5 HA1 is challenged with MD5 alone.
    pub fn algorithms_for(&self, credential: Option<&Credential>) -> Vec<Algorithm> {
        self.config
            .algorithms
            .iter()
            .copied()
            .filter(|a| match credential {
                Some(Credential::Ha1 { md5, sha256 }) => match a {
                    Algorithm::Md5 => md5.is_some(),
                    Algorithm::Sha256 => sha256.is_some(),
                },
                _ => true,
            })
            .collect()
    }

    /// The algorithms to offer in answer to `request` from a user with `credential`:
    /// [`DigestServer::algorithms_for`], narrowed to MD5 when the request's `User-Agent` starts with
    /// one of the configured MD5-only prefixes (and MD5 is offered at all).
    pub fn algorithms_for_request(
        &self,
        request: &Request,
        credential: Option<&Credential>,
    ) -> Vec<Algorithm> {
        let mut algorithms = self.algorithms_for(credential);
        let legacy = request.headers.user_agent().is_some_and(|ua| {
            self.config.md5_only_user_agents.iter().any(|prefix| {
                ua.get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix))
            })
        });
        if legacy && algorithms.contains(&Algorithm::Md5) {
            algorithms.retain(|a| *a == Algorithm::Md5);
        }
        algorithms
    }

    /// The challenge values, one per algorithm in the order given (normally
    /// [`DigestServer::algorithms_for`]), each with a new nonce and `qop="auth"`; `stale` marks
    /// them `stale=true`. Each value goes in its own `WWW-Authenticate`/`Proxy-Authenticate` line.
    pub fn challenge(
        &mut self,
        now: Instant,
        algorithms: &[Algorithm],
        stale: bool,
    ) -> Vec<String> {
        algorithms.iter().map(|&a| self.challenge_one(now, a, stale)).collect()
    }

    fn challenge_one(&mut self, now: Instant, algorithm: Algorithm, stale: bool) -> String {
        let param = |name: &str, value: &str, quoted: bool| AuthParam {
            name: name.to_owned(),
            value: value.to_owned(),
            quoted,
        };
        let mut params = vec![
            param("realm", &self.config.realm, true),
            param("nonce", &self.new_nonce(now), true),
            param("algorithm", algorithm.name(), false),
            param("qop", "auth", true),
        ];
        if let Some(opaque) = &self.config.opaque {
            params.push(param("opaque", opaque, true));
        }
        if stale {
            params.push(param("stale", "true", false));
        }
        AuthFields { scheme: "Digest".to_owned(), params }.to_text()
    }

    /// A 401 (or 407) answer to `request` carrying [`DigestServer::challenge`] values.
    pub fn challenge_response(
        &mut self,
        now: Instant,
        request: &Request,
        kind: ChallengeKind,
        algorithms: &[Algorithm],
        stale: bool,
        to_tag: Option<&str>,
    ) -> Response {
        let mut response = Response::for_request(request, kind.status(), to_tag);
        for value in self.challenge(now, algorithms, stale) {
            response.headers.push(kind.challenge_header(), value);
        }
        response
    }

    fn new_nonce(&mut self, now: Instant) -> String {
        let issued = now.saturating_duration_since(self.epoch);
        let issued_ms = u64::try_from(issued.as_millis()).unwrap_or(u64::MAX);
        let serial = self.next_serial;
        self.next_serial += 1;
        let mut body = [0u8; NONCE_LEN];
        body[..8].copy_from_slice(&issued_ms.to_be_bytes());
        body[8..16].copy_from_slice(&serial.to_be_bytes());
        let seal = self.seal(&body[..16]);
        body[16..].copy_from_slice(&seal);
        hex(&body)
    }

    fn seal(&self, body: &[u8]) -> [u8; SEAL_LEN] {
        let mut mac = hmac_with(&self.key);
        mac.update(self.config.realm.as_bytes());
        mac.update(b"\0");
        mac.update(body);
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; SEAL_LEN];
        out.copy_from_slice(&full[..SEAL_LEN]);
        out
    }

    fn nonce_state(&self, now: Instant, nonce: &str) -> NonceState {
        let Some(body) = unhex::<NONCE_LEN>(nonce) else {
            return NonceState::Stale;
        };
        if !constant_time_eq(&self.seal(&body[..16]), &body[16..]) {
            return NonceState::Stale;
        }
        let mut ms = [0u8; 8];
        ms.copy_from_slice(&body[..8]);
        let mut serial = [0u8; 8];
        serial.copy_from_slice(&body[8..16]);
        let issued = Duration::from_millis(u64::from_be_bytes(ms));
        let age = now.saturating_duration_since(self.epoch).checked_sub(issued);
        match age {
            Some(age) if age <= self.config.nonce_lifetime => {
                NonceState::Fresh { serial: u64::from_be_bytes(serial), issued }
            }
            // Too old, or issued "in the future" (a key reused across epochs): not fresh.
            _ => NonceState::Stale,
        }
    }

    /// Checks the digest credentials of `request` in the header `kind` names: the first `Digest`
    /// credentials for our realm are verified with [`DigestServer::verify`]; none gives
    /// [`AuthFailure::Missing`].
    pub fn verify_request<'c>(
        &mut self,
        now: Instant,
        request: &Request,
        kind: ChallengeKind,
        lookup: impl FnOnce(&str) -> Option<&'c Credential>,
    ) -> Result<VerifiedUser, AuthFailure> {
        let all = match kind {
            ChallengeKind::Www => request.headers.authorization(),
            ChallengeKind::Proxy => request.headers.proxy_authorization(),
        }
        .map_err(BadCredentials::from)?;
        let ours = all.iter().find(|c| c.0.is_digest() && c.realm() == Some(self.realm()));
        match ours {
            Some(c) => self.verify(now, &request.method, c, lookup),
            None => Err(AuthFailure::Missing),
        }
    }

    /// The username `request` claims in its first `Digest` credentials for our realm (for ban
    /// counting and logs, before or after [`DigestServer::verify_request`]); `None` when there are
    /// none or they do not parse.
    pub fn claimed_user(&self, request: &Request, kind: ChallengeKind) -> Option<String> {
        let all = match kind {
            ChallengeKind::Www => request.headers.authorization(),
            ChallengeKind::Proxy => request.headers.proxy_authorization(),
        }
        .ok()?;
        let ours = all.iter().find(|c| c.0.is_digest() && c.realm() == Some(self.realm()))?;
        ours.username().map(str::to_owned)
    }

    /// Verifies one set of digest credentials for a request with `method`. `lookup` maps the
    /// username to the agent's credential. Checks, in order: scheme and realm, the parameters,
    /// the algorithm and qop, the response (over the literal `uri=`, in constant time, against a
    /// dummy password for an unknown user), then the nonce's seal and age, then the nonce count.
    /// The replay table changes only for a correct response.
    pub fn verify<'c>(
        &mut self,
        now: Instant,
        method: &Method,
        credentials: &Credentials,
        lookup: impl FnOnce(&str) -> Option<&'c Credential>,
    ) -> Result<VerifiedUser, AuthFailure> {
        let c = credentials;
        if !c.0.is_digest() || c.realm() != Some(self.realm()) {
            return Err(AuthFailure::Missing);
        }
        let user = need(c.username(), "username")?;
        let nonce = need(c.nonce(), "nonce")?;
        let uri = need(c.uri(), "uri")?;
        let given = need(c.response(), "response")?;
        let algorithm = match c.algorithm() {
            None => Algorithm::Md5,
            Some(a) => Algorithm::from_name(a).ok_or(BadCredentials::Algorithm)?,
        };
        if !self.config.algorithms.contains(&algorithm) {
            return Err(BadCredentials::Algorithm.into());
        }
        let qop = match c.qop() {
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                let nc = need(c.0.param("nc"), "nc")?;
                let cnonce = need(c.cnonce(), "cnonce")?;
                Some((QopAuth { nc, cnonce }, c.nc().ok_or(BadCredentials::MissingParam("nc"))?))
            }
            Some(_) => return Err(BadCredentials::Qop.into()),
            None if self.config.allow_rfc2069 => None,
            None => return Err(BadCredentials::Qop.into()),
        };

        // One path for every user: exactly one HA1 hash is computed whoever asks (a missing user
        // or HA1 hashes the dummy password, a stored HA1 hashes it and discards the result), so
        // neither the answer nor its timing tells an unknown user from a wrong password.
        let realm = &self.config.realm;
        let dummy = self.dummy_password.as_str();
        let (ha1, miss) = match lookup(user) {
            Some(Credential::Password(p)) => (algorithm.ha1(user, realm, p.expose()), None),
            Some(Credential::Ha1 { md5, sha256 }) => {
                let stored = match algorithm {
                    Algorithm::Md5 => md5,
                    Algorithm::Sha256 => sha256,
                };
                let decoy = algorithm.ha1(user, realm, dummy);
                match stored {
                    Some(h) => {
                        std::hint::black_box(decoy);
                        (h.expose().to_ascii_lowercase(), None)
                    }
                    None => (decoy, Some(AuthFailure::NoCredentialForAlgorithm)),
                }
            }
            None => (algorithm.ha1(user, realm, dummy), Some(AuthFailure::UnknownUser)),
        };
        let expected =
            digest_response(algorithm, &ha1, nonce, qop.map(|q| q.0), method.as_str(), uri);
        let given = given.to_ascii_lowercase();
        let matches = constant_time_eq(expected.as_bytes(), given.as_bytes());
        if let Some(failure) = miss {
            return Err(failure);
        }
        if !matches {
            return Err(AuthFailure::WrongPassword);
        }

        let opaque_ok = match &self.config.opaque {
            Some(o) => c.opaque() == Some(o.as_str()),
            None => true,
        };
        let NonceState::Fresh { serial, issued } = self.nonce_state(now, nonce) else {
            return Err(AuthFailure::Stale);
        };
        if !opaque_ok {
            return Err(AuthFailure::Stale);
        }
        // Without qop there is no count: the nonce is good once (count 0 after "none").
        let nc = qop.map_or(0, |q| q.1);
        self.record_use(now, serial, issued, nc)?;
        Ok(VerifiedUser { user: user.to_owned(), algorithm })
    }

    /// Records `nc` for the nonce `serial`; the count must rise. A nonce below the floor that is not
    /// followed any more was dropped: stale.
    fn record_use(
        &mut self,
        now: Instant,
        serial: u64,
        issued: Duration,
        nc: u32,
    ) -> Result<(), AuthFailure> {
        if let Some(entry) = self.uses.get_mut(&serial) {
            if nc <= entry.last_nc {
                return Err(AuthFailure::Replay);
            }
            entry.last_nc = nc;
            return Ok(());
        }
        if serial < self.floor {
            return Err(AuthFailure::Stale);
        }
        self.purge(now);
        if self.uses.len() >= self.config.nonce_table_size.max(1) {
            // Drop the oldest nonce: it is the one closest to going stale anyway. A first use of a
            // nonce older than everything followed is refused instead of evicting a younger one.
            if let Some((&oldest, _)) = self.uses.first_key_value() {
                self.dropped += 1;
                if serial < oldest {
                    return Err(AuthFailure::Stale);
                }
                self.uses.remove(&oldest);
                self.floor = self.floor.max(oldest + 1);
            }
        }
        self.uses.insert(serial, NonceUse { issued, last_nc: nc });
        Ok(())
    }

    /// Forgets nonces past their lifetime: they answer stale on their age alone.
    fn purge(&mut self, now: Instant) {
        let age_now = now.saturating_duration_since(self.epoch);
        while let Some((&serial, entry)) = self.uses.first_key_value() {
            if age_now.saturating_sub(entry.issued) <= self.config.nonce_lifetime {
                break;
            }
            self.uses.remove(&serial);
            self.floor = self.floor.max(serial + 1);
        }
    }
}

/// A required credentials parameter.
fn need<'a>(value: Option<&'a str>, name: &'static str) -> Result<&'a str, AuthFailure> {
    value.ok_or(AuthFailure::BadRequest(BadCredentials::MissingParam(name)))
}

fn hmac_with(key: &[u8; 32]) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail; the fallback keeps the code panic-free.
    <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()))
}
