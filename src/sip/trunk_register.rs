//! tongdai's own registration to the provider (RFC 3261 §10.2, client side), sans-IO: many
//! Vietnamese trunks route the hotline only to a PBX that is registered to them.
//!
//! ```text
//!            due / retry timer
//!   Idle ──────────────────────► Trying ──2xx──► Registered ──refresh timer──► Trying …
//!    ▲                            │  ▲ 401/407 for our realm: answer once more
//!    │                            │  │ 423: ask again with Min-Expires
//!    └── Backoff ◄── other final, timeout, a challenge we will not answer
//! ```
//!
//! One Call-ID for the life of the process and a CSeq that rises with each REGISTER (§10.2.4). A
//! refresh goes out well before the granted expiry; a failure waits `retry_min`, doubling up to
//! `retry_max`, and a success resets the wait. Digest is answered only for the configured realm
//! ([`authorization_for_realm`]), and a second challenge for the same attempt that is not
//! `stale=true` means the password is wrong: that is a failure, not a loop. The registration is
//! "up" while a granted expiry lies ahead, refreshes in flight included.

use std::time::{Duration, Instant};

use super::auth::{ClientAnswer, answer_challenge};
use super::message::{Contacts, Method, Request, Response, Uri, UriError, name};
use super::transaction::TxnId;
use crate::config::TrunkRegistrationConfig;

/// Where the registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationState {
    /// Nothing sent yet, or waiting for the next refresh at the given time.
    Idle {
        /// When the next REGISTER goes.
        next: Instant,
    },
    /// A REGISTER is in flight.
    Trying {
        /// Its client transaction.
        txn: TxnId,
        /// Challenges answered in this attempt.
        challenges: u32,
    },
    /// The last attempt failed; the next one goes at `retry`.
    Backoff {
        /// When to try again.
        retry: Instant,
    },
}

/// What a response did to the registration, for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationEvent {
    /// Registered (or refreshed) for this long.
    Registered {
        /// The expiry the provider granted.
        expires: Duration,
    },
    /// The attempt failed; the next one waits this long.
    Failed {
        /// A bounded reason label.
        reason: &'static str,
        /// The wait before the next attempt.
        retry_in: Duration,
    },
}

/// The client registration (see the module docs).
#[derive(Debug, Clone)]
pub struct TrunkRegistration {
    config: TrunkRegistrationConfig,
    /// `sip:<domain>`: the Request-URI and the digest `uri=`.
    request_uri: Uri,
    call_id: String,
    from_tag: String,
    /// The host:port our Contact names.
    contact_host: String,
    cseq: u32,
    state: RegistrationState,
    /// The expiry asked for (raised by a 423).
    asking: u32,
    /// Failures in a row.
    failures: u32,
    /// When the current registration lapses.
    valid_until: Option<Instant>,
    /// The credentials for the next REGISTER of this attempt.
    authorization: Option<(&'static str, String)>,
    cnonce_seed: u64,
}

impl TrunkRegistration {
    /// A registration that sends its first REGISTER at `now`. `call_id`, `from_tag` and `seed`
    /// (for client nonces) come from the caller's randomness; `contact_host` is our address as
    /// the provider reaches it. Fails when the domain makes no SIP URI.
    pub fn new(
        now: Instant,
        config: TrunkRegistrationConfig,
        call_id: String,
        from_tag: String,
        contact_host: String,
        seed: u64,
    ) -> Result<TrunkRegistration, UriError> {
        let asking = u32::try_from(config.expires.as_secs()).unwrap_or(u32::MAX);
        let request_uri = Uri::parse(&format!("sip:{}", config.domain))?;
        Ok(TrunkRegistration {
            config,
            request_uri,
            call_id,
            from_tag,
            contact_host,
            cseq: 0,
            state: RegistrationState::Idle { next: now },
            asking,
            failures: 0,
            valid_until: None,
            authorization: None,
            cnonce_seed: seed,
        })
    }

    /// The settings.
    pub fn config(&self) -> &TrunkRegistrationConfig {
        &self.config
    }

    /// The state.
    pub fn state(&self) -> RegistrationState {
        self.state
    }

    /// True while a granted registration has not lapsed.
    pub fn is_up(&self, now: Instant) -> bool {
        self.valid_until.is_some_and(|t| now < t)
    }

    /// When [`TrunkRegistration::poll_request`] has something to send.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            RegistrationState::Idle { next } => Some(next),
            RegistrationState::Backoff { retry } => Some(retry),
            RegistrationState::Trying { .. } => None,
        }
    }

    /// The REGISTER to send now, if one is due (without Via: the endpoint adds it). Report its
    /// transaction with [`TrunkRegistration::sent`].
    pub fn poll_request(&mut self, now: Instant) -> Option<Request> {
        let due = self.poll_timeout().is_some_and(|t| t <= now);
        due.then(|| {
            self.authorization = None;
            self.request()
        })
    }

    /// The REGISTER just built went out as `txn`; `None` means it could not be sent.
    pub fn sent(&mut self, now: Instant, txn: Option<TxnId>) -> Option<RegistrationEvent> {
        let challenges = match self.state {
            RegistrationState::Trying { challenges, .. } => challenges,
            _ => 0,
        };
        match txn {
            Some(txn) => {
                self.state = RegistrationState::Trying { txn, challenges };
                None
            }
            None => Some(self.fail(now, "send")),
        }
    }

    /// True when `txn` is ours.
    pub fn owns(&self, txn: TxnId) -> bool {
        matches!(self.state, RegistrationState::Trying { txn: t, .. } if t == txn)
    }

    /// A response to our REGISTER: the event, and a new REGISTER to send at once (the answer to
    /// a challenge, or a longer expiry after 423), reported with [`TrunkRegistration::sent`].
    pub fn on_response(
        &mut self,
        now: Instant,
        response: &Response,
    ) -> (Option<RegistrationEvent>, Option<Request>) {
        let RegistrationState::Trying { challenges, .. } = self.state else {
            return (None, None);
        };
        match response.status {
            100..=199 => (None, None),
            200..=299 => {
                let granted = self.granted(response);
                self.failures = 0;
                self.valid_until = Some(now + granted);
                self.state = RegistrationState::Idle { next: now + refresh_after(granted) };
                (Some(RegistrationEvent::Registered { expires: granted }), None)
            }
            401 | 407 => {
                let stale = challenges_of(response).iter().any(|c| c.stale());
                // A second challenge without stale=true: the password was refused.
                if challenges >= 2 || (challenges >= 1 && !stale) {
                    return (Some(self.fail(now, "credentials refused")), None);
                }
                match self.answer(response) {
                    Some(auth) => {
                        self.authorization = Some(auth);
                        self.state = RegistrationState::Trying {
                            txn: match self.state {
                                RegistrationState::Trying { txn, .. } => txn,
                                _ => return (None, None),
                            },
                            challenges: challenges + 1,
                        };
                        (None, Some(self.request()))
                    }
                    None => (Some(self.fail(now, "challenge not for our realm")), None),
                }
            }
            423 => match response.headers.min_expires().ok().flatten() {
                Some(min) if min > self.asking => {
                    self.asking = min;
                    self.authorization = None;
                    (None, Some(self.request()))
                }
                _ => (Some(self.fail(now, "interval too brief")), None),
            },
            _ => (Some(self.fail(now, "refused")), None),
        }
    }

    /// Our REGISTER got no final response.
    pub fn on_timeout(&mut self, now: Instant) -> RegistrationEvent {
        self.fail(now, "timeout")
    }

    fn fail(&mut self, now: Instant, reason: &'static str) -> RegistrationEvent {
        self.failures = self.failures.saturating_add(1);
        let doubling = 1u32 << (self.failures - 1).min(16);
        let retry_in = self.config.retry_min.saturating_mul(doubling).min(self.config.retry_max);
        self.state = RegistrationState::Backoff { retry: now + retry_in };
        self.authorization = None;
        RegistrationEvent::Failed { reason, retry_in }
    }

    /// The expiry the 2xx grants our contact: its `expires` parameter, else Expires, else what we
    /// asked.
    fn granted(&self, response: &Response) -> Duration {
        let ours = format!("@{}", self.contact_host);
        let from_contact = match response.headers.contacts() {
            Ok(Contacts::List(list)) => {
                list.iter().find(|c| c.addr.uri.as_str().contains(&ours)).and_then(|c| c.expires)
            }
            _ => None,
        };
        let secs = from_contact
            .or(response.headers.expires().ok().flatten())
            .unwrap_or(self.asking)
            .min(self.asking.max(60));
        Duration::from_secs(u64::from(secs.max(1)))
    }

    fn answer(&mut self, response: &Response) -> Option<(&'static str, String)> {
        self.cnonce_seed = self.cnonce_seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        let cnonce = format!("{:016x}", self.cnonce_seed);
        let uri = self.request_uri.clone();
        let answer = ClientAnswer {
            user: &self.config.auth_user,
            password: self.config.password.expose(),
            method: &Method::Register,
            uri: uri.as_str(),
            cnonce: &cnonce,
            nc: 1,
        };
        answer_challenge(response, &self.config.realm, &answer)
    }

    fn request(&mut self) -> Request {
        self.cseq += 1;
        let c = &self.config;
        let mut r = Request::new(Method::Register, self.request_uri.clone());
        let h = &mut r.headers;
        let aor = format!("<sip:{}@{}>", c.user, c.domain);
        h.push(name::FROM, format!("{aor};tag={}", self.from_tag));
        h.push(name::TO, aor);
        h.push(name::CALL_ID, self.call_id.clone());
        h.push(name::CSEQ, format!("{} REGISTER", self.cseq));
        h.push(name::CONTACT, format!("<sip:{}@{}>", c.user, self.contact_host));
        h.push(name::EXPIRES, self.asking.to_string());
        if let Some((header, value)) = &self.authorization {
            h.push(*header, value.clone());
        }
        r
    }
}

fn challenges_of(response: &Response) -> Vec<super::message::Challenge> {
    let parsed = if response.status == 407 {
        response.headers.proxy_authenticate()
    } else {
        response.headers.www_authenticate()
    };
    parsed.unwrap_or_default()
}

/// When to refresh a registration granted for `granted`: a minute before it lapses, or half way
/// for short ones, so one lost REGISTER and its retransmissions still fit.
fn refresh_after(granted: Duration) -> Duration {
    if granted > Duration::from_secs(120) { granted - Duration::from_secs(60) } else { granted / 2 }
}
