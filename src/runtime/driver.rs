//! The core task: the one task that owns the sans-IO SIP endpoint and the call logic. Socket tasks
//! send it what arrived; it feeds the core with the current time, carries out what the core wants
//! sent, and sleeps until the core's next timeout. Runtime layer: no protocol decisions are made here.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use metrics::{counter, gauge, histogram};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::media::RuntimeMedia;
use crate::acd::b2bua::{MediaEvent, Report, Switchboard};
use crate::media::prompt::PromptSet;
use crate::metrics::{SIP_INVALID, SIP_MESSAGES};
use crate::sip::endpoint::{Endpoint, EndpointConfig, UaEvent};
use crate::sip::message::Frame;
use crate::sip::transaction::Transmit;
use crate::sip::transport::{Flow, Transport};

/// What socket tasks send the core task.
#[derive(Debug)]
pub enum CoreInput {
    /// A UDP datagram.
    Datagram(Flow, Bytes),
    /// A framed message (or keep-alive) from a TCP connection (boxed: messages are large, datagrams
    /// are the common case).
    Frame(Flow, Box<Frame>),
    /// A TCP stream that could not be framed; the connection task closed it.
    Unframable(Flow),
    /// A TCP connection opened; the core writes to it through the sender.
    Connected(Flow, mpsc::Sender<Bytes>),
    /// A TCP connection closed.
    Closed(Flow),
    /// A call's media task noticed something (a key press, a dead leg).
    Media(MediaEvent),
    /// The admin API asks for the board or a supervisor command.
    Admin(super::admin::AdminRequest),
}

/// The current time as the sans-IO core takes it: tokio's clock (so that paused-time tests reach the
/// core), as a std `Instant`.
pub fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// The endpoint settings from the configuration.
pub fn endpoint_config(config: &crate::config::Config) -> EndpointConfig {
    EndpointConfig {
        timers: config.sip.timers.into(),
        trunk_allow: config.trunk.allow.clone(),
        numbers: config.trunk.numbers.clone(),
        user_agent: config.sip.user_agent.clone(),
        retry_after: config.sip.retry_after,
        force_rport: config.sip.force_rport,
    }
}

/// The state the core task owns.
pub struct Core {
    endpoint: Endpoint,
    switchboard: Switchboard,
    media: RuntimeMedia,
    udp: HashMap<SocketAddr, Arc<UdpSocket>>,
    tcp: HashMap<(SocketAddr, SocketAddr), mpsc::Sender<Bytes>>,
    shared: Arc<Shared>,
    /// Where binding changes are saved (`[registrar] database`); `None`: memory only.
    store: Option<super::store::BindingStore>,
    /// Where call records go (`[records] path`); `None`: none kept.
    records: Option<crate::records::Records>,
    /// When the schedule is next applied (a shift change, or the periodic check for clock jumps).
    rota_check: std::time::Instant,
    /// What the admin API and wallboard show.
    board: super::admin::Board,
    /// The switchboard was told of the drain.
    drain_seen: bool,
    /// Call-back numbers read from the records for an operator's feature code (callback.rs).
    found_tx: mpsc::UnboundedSender<Found>,
    found_rx: Option<mpsc::UnboundedReceiver<Found>>,
}

/// The oldest pending call-backs read for one [`crate::acd::b2bua::CallbackLookup`].
type Found = (u64, Vec<crate::acd::b2bua::CallbackTarget>);

/// How many of the oldest pending call-backs a feature code's lookup reads (the switchboard takes
/// the first not in progress).
const LOOKUP_CANDIDATES: usize = 8;

/// The most inputs one pass of the core loop takes before it looks at timers, the other branches
/// and the gauges again (see `Core::run`).
const INPUT_BATCH: usize = 64;

/// Inputs waiting for the core task above which new calls are shed (480), and below which they
/// are taken again. A datagram costs the core about 10–30 µs, so 2,000 waiting is 20–60 ms
/// behind: enough that admitted calls' messages (ACKs, BYEs, retransmissions) are late, well
/// before SIP's 500 ms T1 makes every call retransmit and the daemon collapse under its own
/// retransmissions (benches/RESULTS.md, overload).
const SHED_ABOVE: usize = 2_000;
const SHED_BELOW: usize = 500;

/// The schedule is re-applied at least this often, so a wall clock that jumps (NTP step, suspend)
/// cannot leave agents on or off shift for long.
const ROTA_RECHECK: std::time::Duration = std::time::Duration::from_secs(60);

/// Random bytes from the operating system, for keys and seeds.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    if getrandom::fill(&mut buf).is_err() {
        // No OS randomness is a broken host; fall back to std's per-process hasher keys rather
        // than refusing to take calls.
        use std::hash::{BuildHasher, Hasher};
        for chunk in buf.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(chunk.as_ptr() as usize);
            let v = h.finish().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
    buf
}

impl Core {
    /// A core over the bound UDP sockets, with the prompts loaded at start-up.
    pub fn new(shared: Arc<Shared>, udp: Vec<Arc<UdpSocket>>, prompts: PromptSet) -> Core {
        let config = shared.config();
        let salt = u64::from_le_bytes(random_bytes());
        let endpoint = Endpoint::new(endpoint_config(&config), salt);
        let mut switchboard = Switchboard::new(&config, prompts, random_bytes(), now());
        switchboard
            .set_pseudonym_key(super::pseudonym_key::key_or_ephemeral(&config.privacy.key_file));
        let media = RuntimeMedia::new(&config);
        let udp: HashMap<SocketAddr, Arc<UdpSocket>> =
            udp.into_iter().filter_map(|s| Some((s.local_addr().ok()?, s))).collect();
        let mut endpoint = endpoint;
        endpoint.set_scanner_user_agents(config.registrar.scanner_user_agents.clone());
        endpoint.set_max_transactions(config.caps.max_transactions);
        let locals: Vec<SocketAddr> = udp.keys().copied().collect();
        let seed = u64::from_le_bytes(random_bytes());
        switchboard.start_originating(now(), &config, &locals, seed);
        let (found_tx, found_rx) = mpsc::unbounded_channel();
        Core {
            found_tx,
            found_rx: Some(found_rx),
            endpoint,
            switchboard,
            media,
            udp,
            tcp: HashMap::new(),
            shared,
            store: None,
            records: None,
            rota_check: now(),
            drain_seen: false,
            board: super::admin::Board::new(config.service_level),
        }
    }

    /// Saves binding changes to `store` from now on, after putting back `saved`, the bindings
    /// of the last run (see [`super::store::usable_after_restart`]).
    pub fn with_store(
        mut self,
        store: super::store::BindingStore,
        saved: Vec<crate::sip::registrar::Binding>,
    ) -> Core {
        let udp: Vec<SocketAddr> = self.udp.keys().copied().collect();
        let saved = super::store::usable_after_restart(saved, &udp);
        let t = now();
        self.switchboard.restore_bindings(t, saved, &mut self.endpoint, &mut self.media);
        self.store = Some(store);
        self.drain();
        self
    }

    /// Sends call records to `records` from now on.
    pub fn with_records(mut self, records: crate::records::Records) -> Core {
        self.records = Some(records);
        self
    }

    /// Runs until `stop` is cancelled or every input sender is gone.
    pub async fn run(mut self, mut inputs: mpsc::Receiver<CoreInput>, stop: CancellationToken) {
        let mut config = self.shared.config.subscribe();
        let mut media_events = self.media.take_events();
        let mut found = self.found_rx.take();
        // The day's service level exists from the first scrape (NaN before a judged call).
        self.export_service_level(self.today());
        loop {
            // Each pass costs scans over every call, agent, binding and dialog (the deadlines
            // below, the gauges in `drain`), so a pass takes every input already queued (up to
            // INPUT_BATCH) rather than one: under load the scans are paid per batch, not per
            // datagram, and a quiet daemon still answers each message at once.
            let next = [
                self.endpoint.poll_timeout(),
                self.switchboard.poll_timeout(),
                Some(self.rota_check),
            ];
            let due = next.into_iter().flatten().min();
            let wake = due.map(tokio::time::Instant::from_std).unwrap_or_else(|| {
                tokio::time::Instant::now() + std::time::Duration::from_secs(3600)
            });
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                input = inputs.recv() => match input {
                    Some(input) => {
                        self.input(input);
                        for _ in 1..INPUT_BATCH {
                            // What each input produced is carried out before the next one is
                            // read, as when they came one pass each.
                            self.drain_io();
                            match inputs.try_recv() {
                                Ok(input) => self.input(input),
                                Err(_) => break,
                            }
                        }
                    }
                    None => break,
                },
                Some(event) = recv_media(&mut media_events) => self.input(CoreInput::Media(event)),
                Some((lookup, targets)) = recv_found(&mut found) => {
                    let (sip, media) = (&mut self.endpoint, &mut self.media);
                    self.switchboard.callback_candidates(now(), lookup, targets, sip, media);
                }
                () = self.shared.drain_started.notified(), if !self.drain_seen => {}
                changed = config.changed() => {
                    if changed.is_ok() {
                        let c = config.borrow_and_update().clone();
                        self.endpoint.set_config(endpoint_config(&c));
                        self.endpoint
                            .set_scanner_user_agents(c.registrar.scanner_user_agents.clone());
                        self.endpoint.set_max_transactions(c.caps.max_transactions);
                        self.media.reload(&c, &mut self.switchboard);
                        self.switchboard.reload(now(), &c, &mut self.endpoint, &mut self.media);
                        // The new schedule applies at once.
                        self.rota_check = now();
                    }
                }
                _ = tokio::time::sleep_until(wake) => {}
            }
            // Timers run when they are due whichever branch won: with `biased` and a steady
            // stream of datagrams the sleep branch would never be picked, and every timer (a
            // prompt's end that queues the caller, retransmissions) would wait for a quiet moment.
            let t = now();
            if due.is_some_and(|due| due <= t) {
                self.drain_io();
                self.endpoint.handle_timeout(t);
                self.switchboard.handle_timeout(t, &mut self.endpoint, &mut self.media);
                self.check_rota(t);
            }
            // Overload: shed new calls while the backlog is long (with hysteresis).
            let backlog = inputs.len();
            if backlog > SHED_ABOVE {
                self.endpoint.set_overloaded(true);
            } else if backlog < SHED_BELOW {
                self.endpoint.set_overloaded(false);
            }
            let draining = self.shared.is_draining();
            if draining && !self.drain_seen {
                self.drain_seen = true;
                self.switchboard.drain(now(), &mut self.endpoint, &mut self.media);
            }
            // While a national-centre target is up, new calls reach the switchboard and are
            // overflowed; otherwise the endpoint answers them 503 + Retry-After.
            self.endpoint.set_draining(draining && !self.switchboard.overflow_available());
            self.drain();
            self.shared
                .active_calls
                .store(self.switchboard.calls(), std::sync::atomic::Ordering::Release);
        }
        // Stopped (the grace period is over, or the daemon is shutting down): hang up what is
        // left rather than leave phones holding dead calls.
        self.switchboard.hang_up_all(now(), &mut self.endpoint, &mut self.media);
        self.drain();
    }

    /// Applies the schedule when it is due and plans the next check: the next shift change, or
    /// [`ROTA_RECHECK`] from now, whichever is sooner.
    fn check_rota(&mut self, t: std::time::Instant) {
        if t < self.rota_check {
            return;
        }
        let wall = jiff::Timestamp::now();
        self.switchboard.apply_schedule(t, wall, &mut self.endpoint, &mut self.media);
        let until_change = self
            .switchboard
            .next_shift_change(wall)
            .and_then(|at| std::time::Duration::try_from(wall.duration_until(at)).ok());
        self.rota_check = t + until_change.map_or(ROTA_RECHECK, |d| d.min(ROTA_RECHECK));
        // A new day starts a new service level even when no call comes.
        let today = self.today();
        self.board.roll(today);
        self.export_service_level(today);
    }

    /// Sets `tongdai_service_level_ratio` from the board's figures for `today` (NaN before the
    /// day's first judged call).
    fn export_service_level(&self, today: jiff::civil::Date) {
        let ratio = self.board.service_level(today).unwrap_or(f64::NAN);
        let threshold = self.board.service_level_config().threshold_label();
        gauge!(crate::metrics::SERVICE_LEVEL, "threshold" => threshold).set(ratio);
    }

    /// Today's local date in the configured zone.
    fn today(&self) -> jiff::civil::Date {
        self.shared.config().schedule.zone.to_datetime(jiff::Timestamp::now()).date()
    }

    fn admin(&mut self, request: super::admin::AdminRequest) {
        use super::admin::AdminRequest;
        match request {
            AdminRequest::Board(reply) => {
                let config = self.shared.config();
                let wall = jiff::Timestamp::now();
                let date = config.schedule.zone.to_datetime(wall).date();
                let draining = self.shared.is_draining();
                let view = self.board.view(
                    now(),
                    wall.as_millisecond(),
                    date,
                    &config,
                    &self.switchboard,
                    draining,
                );
                let _ = reply.send(view);
            }
            AdminRequest::StartCallback { agent, target, reply } => {
                let (sip, media) = (&mut self.endpoint, &mut self.media);
                let started = self.switchboard.start_callback(now(), &agent, target, sip, media);
                let _ = reply.send(started);
            }
            AdminRequest::SetPaused { agent, pause, reply } => {
                let done = self.switchboard.admin_set_paused(
                    now(),
                    &agent,
                    pause,
                    &mut self.endpoint,
                    &mut self.media,
                );
                let _ = reply.send(done);
            }
            AdminRequest::Supervise { operator, supervisor, mode, reply } => {
                let started = self.switchboard.admin_supervise(
                    now(),
                    &operator,
                    &supervisor,
                    mode,
                    &mut self.endpoint,
                    &mut self.media,
                );
                let _ = reply.send(started);
            }
        }
    }

    fn input(&mut self, input: CoreInput) {
        match input {
            CoreInput::Admin(request) => self.admin(request),
            CoreInput::Datagram(flow, bytes) => self.endpoint.handle_datagram(now(), flow, bytes),
            CoreInput::Frame(flow, frame) => self.endpoint.handle_frame(now(), flow, *frame),
            CoreInput::Unframable(_) => self.endpoint.count_unframable(),
            CoreInput::Media(event) => {
                self.switchboard.media_event(now(), event, &mut self.endpoint, &mut self.media)
            }
            CoreInput::Connected(flow, tx) => {
                self.tcp.insert((flow.local, flow.remote), tx);
            }
            CoreInput::Closed(flow) => {
                self.tcp.remove(&(flow.local, flow.remote));
                self.switchboard.flow_closed(now(), flow, &mut self.endpoint, &mut self.media);
            }
        }
    }

    /// Carries out everything the core produced, then exports the gauges and hands the reports
    /// and binding changes on.
    fn drain(&mut self) {
        self.drain_io();
        self.export_stats();
    }

    /// Sends what the endpoint wants sent and lets the switchboard take the endpoint's events,
    /// until neither has anything left.
    fn drain_io(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(t) = self.endpoint.poll_transmit() {
                self.transmit(t);
                progressed = true;
            }
            while let Some(e) = self.endpoint.poll_event() {
                self.event(e);
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
    }

    fn event(&mut self, event: UaEvent) {
        self.switchboard.handle_ua_event(now(), event, &mut self.endpoint, &mut self.media);
    }

    fn transmit(&mut self, t: Transmit) {
        match t.flow.transport {
            Transport::Udp => {
                let Some(socket) = self.udp.get(&t.flow.local) else {
                    tracing::warn!(flow = %t.flow, "no UDP socket for flow");
                    return;
                };
                if let Err(e) = socket.try_send_to(&t.bytes, t.flow.remote) {
                    tracing::debug!(flow = %t.flow, error = %e, "SIP UDP send failed");
                }
            }
            Transport::Tcp => match self.tcp.get(&(t.flow.local, t.flow.remote)) {
                Some(tx) => {
                    if tx.try_send(t.bytes).is_err() {
                        tracing::warn!(flow = %t.flow, "SIP TCP write queue full; message dropped");
                    }
                }
                None => {
                    tracing::debug!(flow = %t.flow, "no TCP connection for flow; message dropped")
                }
            },
        }
    }

    /// Reads the oldest pending call-backs for each feature code waiting for one, off the core
    /// task; the answer comes back through `found` (empty when none are kept or on error).
    fn look_up_callbacks(&mut self) {
        let lookups = self.switchboard.take_callback_lookups();
        if lookups.is_empty() {
            return;
        }
        let config = self.shared.config();
        let path = config.records.path.clone().filter(|_| config.records.callbacks);
        for lookup in lookups {
            let tx = self.found_tx.clone();
            let Some(path) = path.clone() else {
                let _ = tx.send((lookup.lookup, Vec::new()));
                continue;
            };
            tokio::task::spawn_blocking(move || {
                let read = crate::records::callbacks::open_reader(&path).and_then(|conn| {
                    crate::records::callbacks::next_to_call(&conn, LOOKUP_CANDIDATES)
                });
                let targets = read.unwrap_or_else(|e| {
                    tracing::error!(error = %e, "reading call-backs failed");
                    Vec::new()
                });
                let _ = tx.send((lookup.lookup, targets));
            });
        }
    }

    fn export_stats(&mut self) {
        self.look_up_callbacks();
        let reports = self.switchboard.take_reports();
        let (t, today) = match reports.is_empty() {
            true => (now(), None),
            false => (now(), Some(self.today())),
        };
        for report in reports {
            if let Some(today) = today {
                self.board.observe(t, today, &report);
            }
            report_metrics(&report);
            log_report(&report);
            if let Some(records) = &mut self.records {
                // `[records] callbacks`: the number rides along until the call ends (see records).
                if let Report::CallStarted { call, .. } = &report
                    && records.keeps_callbacks()
                    && let Some(number) = self.switchboard.caller_number(*call)
                {
                    records.caller_number(call.0, number.clone());
                }
                records.report(&report);
            }
        }
        if let Some(today) = today {
            self.export_service_level(today);
        }
        let engine = self.switchboard.engine();
        let mut by_state: HashMap<&'static str, usize> = HashMap::new();
        for (_, state) in engine.agents() {
            *by_state.entry(state.label()).or_default() += 1;
        }
        for state in crate::metrics::AGENT_STATES {
            let n = by_state.get(state).copied().unwrap_or(0);
            gauge!(crate::metrics::AGENTS, "state" => *state).set(n as f64);
        }
        gauge!(crate::metrics::LINES_BUSY).set(engine.lines_busy() as f64);
        gauge!(crate::metrics::QUEUE_WAITING).set(engine.waiting() as f64);
        let t = now();
        let longest = engine.queued().map(|(_, _, since)| t.saturating_duration_since(since)).max();
        gauge!(crate::metrics::QUEUE_LONGEST_WAIT).set(longest.unwrap_or_default().as_secs_f64());
        gauge!(crate::metrics::REGISTRATIONS)
            .set(self.switchboard.registrar().binding_count() as f64);
        gauge!(crate::metrics::AUTH_BANS_ACTIVE).set(self.switchboard.active_bans(now()) as f64);
        gauge!(crate::metrics::CALLS_ACTIVE).set(self.switchboard.calls() as f64);
        gauge!(crate::metrics::SIP_DIALOGS).set(self.endpoint.dialog_count() as f64);
        gauge!(crate::metrics::SIP_TRANSACTIONS).set(self.endpoint.server_transactions() as f64);
        let (nonces, dropped) = self.switchboard.take_nonce_stats();
        gauge!(crate::metrics::AUTH_NONCES).set(nonces as f64);
        if dropped > 0 {
            counter!(crate::metrics::AUTH_NONCES_DROPPED).increment(dropped);
        }
        if let Some(up) = self.switchboard.trunk_registration_up(now()) {
            gauge!(crate::metrics::TRUNK_REGISTRATION_UP).set(f64::from(u8::from(up)));
        }
        let changes = self.switchboard.take_binding_changes();
        if let Some(store) = &self.store {
            store.save(changes);
        }
        let s = self.endpoint.take_stats();
        let count = |direction: &'static str, kind: &'static str, n: u64| {
            if n > 0 {
                counter!(SIP_MESSAGES, "direction" => direction, "kind" => kind).increment(n);
            }
        };
        count("in", "request", s.requests_in);
        count("in", "response", s.responses_in);
        count("in", "keepalive", s.keepalives_in);
        count("out", "request", s.requests_out);
        count("out", "response", s.responses_out);
        for (reason, n) in s.invalid {
            counter!(SIP_INVALID, "reason" => reason).increment(n);
        }
        if s.invites_shed > 0 {
            counter!(crate::metrics::CALLS_REFUSED, "reason" => "overload")
                .increment(s.invites_shed);
        }
        for (method, n) in [("invite", s.invites_over_cap), ("other", s.requests_over_cap)] {
            if n > 0 {
                counter!(crate::metrics::SIP_TRANSACTIONS_REFUSED, "method" => method).increment(n);
            }
        }
    }
}

/// Counts what the switchboard reports.
fn report_metrics(report: &Report) {
    use crate::acd::{Outcome, Output};
    use crate::metrics as m;
    match report {
        Report::Engine(Output::CallFinished { outcome, .. }) => match outcome {
            Outcome::Answered { wait, talk, .. } | Outcome::Transferred { wait, talk, .. } => {
                if matches!(outcome, Outcome::Transferred { .. }) {
                    counter!(m::CALLS_TRANSFERRED).increment(1);
                }
                counter!(m::CALLS_ANSWERED).increment(1);
                histogram!(m::QUEUE_WAIT, "outcome" => "answered").record(wait.as_secs_f64());
                histogram!(m::TALK).record(talk.as_secs_f64());
            }
            Outcome::Abandoned { phase, wait } => {
                counter!(m::CALLS_ABANDONED, "phase" => phase.as_str()).increment(1);
                histogram!(m::QUEUE_WAIT, "outcome" => "abandoned").record(wait.as_secs_f64());
            }
            Outcome::Rejected { reason } => {
                counter!(m::CALLS_REFUSED, "reason" => reason.as_str()).increment(1)
            }
            Outcome::Overflowed { reason, wait } => {
                counter!(m::CALLS_OVERFLOWED, "reason" => reason.as_str()).increment(1);
                histogram!(m::QUEUE_WAIT, "outcome" => "overflowed").record(wait.as_secs_f64());
            }
        },
        Report::CallStarted { province, .. } => {
            // Only the 19 names of `acd::province` (a `&'static str` from its table) or unknown.
            let province = province.unwrap_or(crate::acd::province::UNKNOWN);
            counter!(m::CALLS_OFFERED_BY_PROVINCE, "province" => province).increment(1)
        }
        Report::Engine(_) | Report::Presence(_) => {}
        Report::Offered => counter!(m::CALLS_OFFERED).increment(1),
        Report::FeatureCode { code, .. } => {
            counter!(m::FEATURE_CODES, "code" => *code).increment(1)
        }
        Report::MenuChoice { urgent, .. } => {
            let choice = if *urgent { "urgent" } else { "timeout" };
            counter!(m::MENU_CHOICES, "choice" => choice).increment(1)
        }
        Report::LegDead { leg } => {
            let leg = match leg {
                crate::acd::b2bua::MediaLeg::Caller => "caller",
                crate::acd::b2bua::MediaLeg::Agent => "agent",
            };
            counter!(m::MEDIA_DEAD_LEGS, "leg" => leg).increment(1)
        }
        Report::AuthFailure { reason, .. } => {
            counter!(m::AUTH_FAILURES, "reason" => *reason).increment(1)
        }
        Report::AuthBan(_) => counter!(m::AUTH_BANS).increment(1),
        Report::Conference { .. } => counter!(m::CONFERENCES).increment(1),
        Report::TrunkRegistration(_) => {}
        Report::Refused { reason } => counter!(m::CALLS_REFUSED, "reason" => *reason).increment(1),
        Report::OverflowTarget { target, up } => {
            let up = if *up { 1.0 } else { 0.0 };
            metrics::gauge!(m::OVERFLOW_TARGET_UP, "target" => target.clone()).set(up)
        }
        Report::OverflowAttempt { target, result } => {
            counter!(m::OVERFLOW_ATTEMPTS, "target" => target.clone(), "result" => *result)
                .increment(1)
        }
        Report::Supervision { mode, event, .. } => {
            if *event == "started" {
                counter!(m::SUPERVISIONS, "mode" => mode.as_str()).increment(1)
            }
        }
        Report::Callback { outcome, .. } => {
            counter!(m::CALLBACKS, "outcome" => outcome.as_str()).increment(1)
        }
    }
}

/// Logs what the switchboard reports. Caller numbers never reach a report.
fn log_report(report: &Report) {
    match report {
        Report::Engine(output) => tracing::debug!(?output, "acd"),
        Report::Presence(p) => tracing::info!(presence = ?p, "agent presence"),
        Report::AuthFailure { reason, source } => {
            // One stable line per failure, with the source address, for fail2ban.
            tracing::warn!(target: "tongdai::auth", %source, reason, "authentication failure");
        }
        // One stable line per ban with the source address, for fail2ban.
        Report::AuthBan(ban) => tracing::warn!(target: "tongdai::auth", "{}", ban.log_line()),
        Report::TrunkRegistration(event) => tracing::info!(?event, "trunk registration"),
        Report::Refused { reason } => tracing::info!(reason, "call refused"),
        Report::Offered => tracing::info!("call offered"),
        Report::CallStarted { call, .. } => tracing::debug!(%call, "call record opened"),
        Report::FeatureCode { agent, code } => {
            tracing::info!(agent = agent.as_str(), code, "feature code")
        }
        Report::MenuChoice { urgent, .. } => tracing::info!(urgent, "urgent-lane menu"),
        Report::LegDead { leg } => tracing::warn!(?leg, "no media from leg; hung up"),
        Report::Conference { call } => tracing::info!(%call, "three-way conference"),
        Report::OverflowTarget { target, up } => {
            tracing::warn!(target = target.as_str(), up, "overflow target health changed")
        }
        Report::OverflowAttempt { target, result } => {
            tracing::info!(target = target.as_str(), result, "overflow attempt")
        }
        Report::Supervision { supervisor, operator, mode, event } => tracing::info!(
            supervisor = supervisor.as_str(),
            operator = operator.as_str(),
            mode = mode.as_str(),
            event,
            "supervision"
        ),
        // The row id and the operator: the number stays in the records.
        Report::Callback { id, agent, outcome } => {
            tracing::info!(id, agent = agent.as_str(), outcome = outcome.as_str(), "call-back")
        }
    }
}

/// The next call-backs read for a feature code (never, once the receiver is gone).
async fn recv_found(found: &mut Option<mpsc::UnboundedReceiver<Found>>) -> Option<Found> {
    match found {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The next event from the calls' media (never, once the receiver is gone).
async fn recv_media(
    events: &mut Option<mpsc::UnboundedReceiver<MediaEvent>>,
) -> Option<MediaEvent> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
