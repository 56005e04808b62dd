//! REGISTER for the registrar, behind digest authentication and the ban on password guessing, and
//! agent presence reaching the engine; the bindings the runtime saves and restores. Domain layer,
//! sans-IO.
//!
//! [`Switchboard::authenticate`] is the one path every agent request takes (REGISTER with 401,
//! feature-code calls with 407): a banned (source, user) pair is refused with 403 before any
//! digest work; a missing or stale credential is challenged and not counted (the first 401 of
//! every registration is part of the exchange); a wrong password and an unknown user get the same
//! challenge and are counted, and enough of them within the window start a ban.
//!
//! Two more duties hang off the registrations: OPTIONS keep-alives to every binding on its flow
//! ([`Keepalives`]; a flow that stops answering loses its bindings and the agent is logged out),
//! and tongdai's own registration to the provider when configured ([`TrunkRegistration`]).
//! Their transactions are recognised in [`Switchboard::access_event`] before any call logic
//! sees them.

use super::*;
use crate::sip::auth::{AuthBans, AuthFailure, VerifiedUser};
use crate::sip::keepalive::{KeepaliveConfig, Keepalives, ProbeOutcome};
use crate::sip::registrar::Binding;
use crate::sip::trunk_register::TrunkRegistration;

/// The digest server's settings from the configuration.
pub(super) fn digest_config(config: &Config) -> DigestServerConfig {
    let mut digest = DigestServerConfig::new(config.sip.realm.clone());
    // Answers without qop cannot be protected against replay beyond one use; no softphone we serve
    // needs them.
    digest.allow_rfc2069 = false;
    digest.algorithms = config.sip.digest_algorithms.clone();
    digest.md5_only_user_agents = config.sip.md5_only_user_agents.clone();
    digest.nonce_table_size = config.caps.max_nonces;
    digest
}

/// The registration side's own state: the ban table, the keep-alive schedule and our own
/// registration to the provider.
#[derive(Debug)]
pub(super) struct Access {
    pub(super) bans: AuthBans,
    keepalives: Keepalives,
    trunk: Option<TrunkRegistration>,
    /// Our UDP addresses, for requests we originate outside any flow (the trunk registration).
    pub(super) local_udp: Vec<SocketAddr>,
    /// Random material for Call-IDs, tags and client nonces of the trunk registration.
    seed: u64,
    /// The registrar's [`Registrar::membership`] the keep-alives last followed.
    synced: Option<u64>,
}

fn keepalive_config(config: &Config) -> Option<KeepaliveConfig> {
    let r = &config.registrar;
    r.keepalive_interval
        .map(|interval| KeepaliveConfig { interval, max_failures: r.keepalive_failures })
}

impl Access {
    pub(super) fn new(config: &Config) -> Access {
        Access {
            bans: AuthBans::new(config.registrar.bans.clone()),
            keepalives: Keepalives::new(keepalive_config(config)),
            trunk: None,
            local_udp: Vec::new(),
            seed: 0,
            synced: None,
        }
    }

    /// New settings (config reload). Bans in force are kept only when the settings did not
    /// change, so a loosened policy takes effect at once.
    pub(super) fn reload(&mut self, config: &Config) {
        if self.bans.config() != &config.registrar.bans {
            self.bans = AuthBans::new(config.registrar.bans.clone());
        }
        self.keepalives.set_config(keepalive_config(config));
        self.synced = None;
    }

    /// When something of ours is due.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        let trunk = self.trunk.as_ref().and_then(TrunkRegistration::poll_timeout);
        [self.keepalives.poll_timeout(), trunk].into_iter().flatten().min()
    }
}

impl Switchboard {
    /// Lets the keep-alives follow the bindings, when a binding appeared or went since last time:
    /// following them costs a pass over every binding, too much for each REGISTER refresh.
    fn sync_keepalives(&mut self, now: Instant) {
        let membership = self.registrar.membership();
        if self.access.synced != Some(membership) {
            self.access.keepalives.sync(now, self.registrar.bindings());
            self.access.synced = Some(membership);
        }
    }

    /// Authenticates an agent's `request` that arrived on `flow`: the verified user, or the
    /// response to send (challenge, 400, or 403 while the pair is banned). Failures and bans are
    /// reported for metrics and the fail2ban log line.
    pub(super) fn authenticate(
        &mut self,
        now: Instant,
        request: &Request,
        flow: Flow,
        kind: ChallengeKind,
    ) -> Result<VerifiedUser, Response> {
        let source = flow.remote.ip();
        let tag = crate::sip::registrar::to_tag(request);
        // The pair is keyed by the digest username when there is one, else the To user.
        let to_user = request.headers.to().ok().and_then(|to| to.uri.user().map(str::to_string));
        let claimed = self.digest.claimed_user(request, kind).or(to_user.clone());
        if let Some(user) = &claimed
            && self.access.bans.is_banned(now, source, user)
        {
            self.reports.push(Report::AuthFailure { reason: "banned", source: flow.remote });
            return Err(Response::for_request(request, 403, Some(&tag)));
        }
        let agents = &self.agents;
        let lookup = |user: &str| -> Option<&Credential> {
            agents.iter().find(|a| a.user.eq_ignore_ascii_case(user)).map(|a| &a.credential)
        };
        let failure = match self.digest.verify_request(now, request, kind, lookup) {
            Ok(user) => {
                self.access.bans.record_success(now, source, &user.user);
                return Ok(user);
            }
            Err(failure) => failure,
        };
        if !matches!(failure, AuthFailure::Missing) {
            self.reports
                .push(Report::AuthFailure { reason: failure.reason(), source: flow.remote });
        }
        if let Some(user) = &claimed {
            for ban in self.access.bans.record_failure(now, source, user, &failure) {
                self.reports.push(Report::AuthBan(ban));
            }
        }
        let response = match failure.answer() {
            AuthAnswer::Challenge { stale } => {
                // Unknown users are offered every algorithm, like a user with a password: the
                // challenge tells nothing about who exists.
                let credential = to_user.and_then(|u| {
                    self.agents
                        .iter()
                        .find(|a| a.user.eq_ignore_ascii_case(&u))
                        .map(|a| a.credential.clone())
                });
                let algorithms = self.digest.algorithms_for_request(request, credential.as_ref());
                self.digest.challenge_response(now, request, kind, &algorithms, stale, Some(&tag))
            }
            AuthAnswer::BadRequest => Response::for_request(request, 400, Some(&tag)),
        };
        Err(response)
    }

    pub(super) fn register(
        &mut self,
        now: Instant,
        txn: TxnId,
        request: &Request,
        flow: Flow,
        sip: &mut Endpoint,
    ) {
        let user = match self.authenticate(now, request, flow, ChallengeKind::Www) {
            Ok(user) => user,
            Err(response) => return sip.respond(now, txn, response),
        };
        let result = self.registrar.handle_register(now, request, flow, &user);
        sip.respond(now, txn, result.response);
        for presence in result.events {
            self.presence(now, presence);
        }
        self.sync_keepalives(now);
    }

    /// Our UDP addresses and random material for the requests we originate; starts the trunk
    /// registration when `[trunk_registration]` is configured. The runtime calls this once.
    pub fn start_originating(
        &mut self,
        now: Instant,
        config: &Config,
        udp: &[SocketAddr],
        seed: u64,
    ) {
        self.access.local_udp = udp.to_vec();
        self.access.seed = seed;
        self.access.trunk = config.trunk_registration.clone().and_then(|c| {
            let local = self.local_for(c.registrar)?;
            let host = crate::sip::endpoint::via_host(local);
            let call_id = format!("{seed:016x}-reg@tongdai");
            let tag = format!("{:x}", seed.rotate_left(29));
            TrunkRegistration::new(now, c, call_id, tag, host, seed).ok()
        });
    }

    pub(super) fn local_for(&self, remote: SocketAddr) -> Option<SocketAddr> {
        self.access.local_udp.iter().find(|a| a.is_ipv4() == remote.is_ipv4()).copied()
    }

    /// True while our registration to the provider is in force; `None` when none is configured.
    pub fn trunk_registration_up(&self, now: Instant) -> Option<bool> {
        self.access.trunk.as_ref().map(|t| t.is_up(now))
    }

    /// Keep-alives and the trunk registration due at `now`.
    pub(super) fn access_due(&mut self, now: Instant, sip: &mut Endpoint) {
        self.sync_keepalives(now);
        for target in self.access.keepalives.due(now) {
            let tag = sip.new_from_tag();
            let call_id = sip.new_call_id();
            let host = crate::sip::endpoint::via_host(target.flow.local);
            let options = target.options(&host, &tag, &call_id);
            let txn = sip.send_request(now, target.flow, options);
            if let ProbeOutcome::Dead(target) = self.access.keepalives.sent(now, &target, txn) {
                self.flow_lost(now, target.flow);
            }
        }
        if let Some(trunk) = &mut self.access.trunk
            && let Some(request) = trunk.poll_request(now)
        {
            let registrar = trunk.config().registrar;
            self.send_trunk_register(now, registrar, request, sip);
        }
    }

    fn send_trunk_register(
        &mut self,
        now: Instant,
        registrar: SocketAddr,
        request: Request,
        sip: &mut Endpoint,
    ) {
        let txn = self.local_for(registrar).and_then(|local| {
            let flow =
                Flow { transport: crate::sip::transport::Transport::Udp, local, remote: registrar };
            sip.send_request(now, flow, request)
        });
        let Some(trunk) = &mut self.access.trunk else { return };
        if let Some(event) = trunk.sent(now, txn) {
            self.reports.push(Report::TrunkRegistration(event));
        }
    }

    /// Takes the endpoint events that belong to keep-alives or the trunk registration; returns
    /// every other event for the call logic.
    pub(super) fn access_event(
        &mut self,
        now: Instant,
        event: UaEvent,
        sip: &mut Endpoint,
    ) -> Option<UaEvent> {
        match &event {
            UaEvent::Response { txn, response, .. } => {
                let txn = *txn;
                if self.access.keepalives.owns(txn) {
                    if response.status >= 200 {
                        self.access.keepalives.on_response(now, txn);
                    }
                    return None;
                }
                let Some(trunk) = self.access.trunk.as_mut().filter(|t| t.owns(txn)) else {
                    return Some(event);
                };
                let (report, again) = trunk.on_response(now, response);
                let registrar = trunk.config().registrar;
                if let Some(r) = report {
                    self.reports.push(Report::TrunkRegistration(r));
                }
                if let Some(request) = again {
                    self.send_trunk_register(now, registrar, request, sip);
                }
                None
            }
            UaEvent::Timeout { txn } => {
                let txn = *txn;
                match self.access.keepalives.on_timeout(now, txn) {
                    ProbeOutcome::NotOurs => {}
                    ProbeOutcome::Alive => return None,
                    ProbeOutcome::Dead(target) => {
                        self.flow_lost(now, target.flow);
                        return None;
                    }
                }
                let Some(trunk) = self.access.trunk.as_mut().filter(|t| t.owns(txn)) else {
                    return Some(event);
                };
                let report = trunk.on_timeout(now);
                self.reports.push(Report::TrunkRegistration(report));
                None
            }
            _ => Some(event),
        }
    }

    /// Keep-alives on `flow` went unanswered: its bindings go, agents left with none log out.
    fn flow_lost(&mut self, now: Instant, flow: Flow) {
        for presence in self.registrar.remove_flow(flow) {
            self.presence(now, presence);
        }
        self.sync_keepalives(now);
    }

    pub(super) fn presence(&mut self, now: Instant, presence: Presence) {
        let input = match &presence {
            Presence::LoggedIn { agent } => Input::AgentLoggedIn { agent: AgentId::new(agent) },
            Presence::LoggedOut { agent, .. } => {
                Input::AgentLoggedOut { agent: AgentId::new(agent) }
            }
        };
        let _ = self.engine.handle(now, input);
        self.reports.push(Report::Presence(presence));
    }

    /// Puts bindings saved before a restart back (see [`Registrar::restore`]); their agents log
    /// in.
    pub fn restore_bindings(
        &mut self,
        now: Instant,
        saved: Vec<Binding>,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        for presence in self.registrar.restore(now, saved) {
            self.presence(now, presence);
        }
        self.sync_keepalives(now);
        self.drive(now, sip, media);
    }

    /// The agents whose bindings changed since the last call, with their bindings now: what the
    /// runtime saves.
    pub fn take_binding_changes(&mut self) -> Vec<(String, Vec<Binding>)> {
        self.registrar.take_changes()
    }

    /// A connection closed (TCP): its bindings can no longer be reached (we do not connect out
    /// to agents), so they go and agents left with none are logged out.
    pub fn flow_closed(
        &mut self,
        now: Instant,
        flow: Flow,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        for presence in self.registrar.remove_flow(flow) {
            self.presence(now, presence);
        }
        self.sync_keepalives(now);
        self.drive(now, sip, media);
    }

    /// How many (source, user) and source records the ban table holds.
    pub fn ban_records(&self) -> usize {
        self.access.bans.len()
    }

    /// Bans in force at `now` (the `tongdai_auth_bans_active` gauge).
    pub fn active_bans(&self, now: Instant) -> usize {
        self.access.bans.active(now)
    }

    /// The digest replay table: nonces followed now, and nonces dropped from it for room since
    /// the last call (the `tongdai_auth_nonces` gauge and `…_dropped_total` counter).
    pub fn take_nonce_stats(&mut self) -> (usize, u64) {
        (self.digest.nonces_followed(), self.digest.take_dropped())
    }
}
