//! The runtime side of the switchboard's [`MediaControl`]: binds each leg's RTP/RTCP ports from the
//! configured range and runs one media task per call ([`MediaSession`]); what the tasks notice
//! (key presses, dead legs) comes back to the core task as [`MediaEvent`]s. Runtime layer.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::sync::mpsc;

use super::driver::random_bytes;
use super::rtp_io::{MediaCommand, MediaSession, PortPool, SessionContext};
use crate::acd::CallId;
use crate::acd::b2bua::{Join, MediaControl, MediaEvent, MediaLeg, Switchboard};
use crate::config::Config;
use crate::media::mix::MixMode;
use crate::media::pacing::Playlist;
use crate::media::prompt::PromptSet;
use crate::media::relay::LegFormat;

/// Binds RTP sockets and runs one media task per call.
pub struct RuntimeMedia {
    pool: PortPool,
    sessions: HashMap<CallId, MediaSession>,
    seed: u64,
    rtp_timeout: Duration,
    events: mpsc::UnboundedSender<MediaEvent>,
    receiver: Option<mpsc::UnboundedReceiver<MediaEvent>>,
}

impl RuntimeMedia {
    /// Media over the `[media]` port range of `config`.
    pub fn new(config: &Config) -> RuntimeMedia {
        let (events, receiver) = mpsc::unbounded_channel();
        RuntimeMedia {
            pool: PortPool::new(
                config.media.address,
                config.media.rtp_port_min,
                config.media.rtp_port_max,
            ),
            sessions: HashMap::new(),
            seed: u64::from_le_bytes(random_bytes()),
            rtp_timeout: config.media.rtp_timeout,
            events,
            receiver: Some(receiver),
        }
    }

    /// The events of every call's media, for the core task (taken once, when it starts).
    pub fn take_events(&mut self) -> Option<mpsc::UnboundedReceiver<MediaEvent>> {
        self.receiver.take()
    }

    /// Applies a reloaded `[media]` section to calls started from now on, and gives the
    /// switchboard the prompt folder as it is now (a real recording replacing a generated file
    /// takes effect here). The folder was decoded when the new config was validated; should it
    /// fail now (changed in between), the prompts in use stay. Calls in progress keep what they
    /// play: their playlists hold their own `Arc`s of the old audio.
    pub fn reload(&mut self, config: &Config, switchboard: &mut Switchboard) {
        self.rtp_timeout = config.media.rtp_timeout;
        match PromptSet::load_dir(&config.media.prompts) {
            Ok(prompts) => switchboard.set_prompts(prompts),
            Err(e) => tracing::warn!(error = %e, "prompts not reloaded; the previous set stays"),
        }
    }
}

impl MediaControl for RuntimeMedia {
    fn address(&self) -> IpAddr {
        self.pool.address()
    }

    fn open_caller(
        &mut self,
        call: CallId,
        remote: Option<SocketAddr>,
        format: LegFormat,
    ) -> Option<u16> {
        let leg = self.pool.bind().ok()?;
        self.seed = self.seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let context =
            SessionContext { call, events: self.events.clone(), rtp_timeout: self.rtp_timeout };
        let session = MediaSession::start(leg, remote, format, self.seed, context);
        let port = session.caller_port();
        self.sessions.insert(call, session);
        Some(port)
    }

    fn open_agent(&mut self, call: CallId) -> Option<u16> {
        let session = self.sessions.get(&call)?;
        let leg = self.pool.bind().ok()?;
        let port = leg.port();
        session.send(MediaCommand::AgentLeg(leg));
        Some(port)
    }

    fn agent_answered(&mut self, call: CallId, remote: Option<SocketAddr>, format: LegFormat) {
        if let Some(s) = self.sessions.get(&call) {
            s.send(MediaCommand::AgentAnswered { remote, format });
        }
    }

    fn caller_answered(&mut self, call: CallId, remote: Option<SocketAddr>, format: LegFormat) {
        if let Some(s) = self.sessions.get(&call) {
            s.send(MediaCommand::CallerAnswered { remote, format });
        }
    }

    fn play(&mut self, call: CallId, playlist: Playlist) {
        if let Some(s) = self.sessions.get(&call) {
            s.send(MediaCommand::Play(playlist));
        }
    }

    fn bridge(&mut self, call: CallId) {
        if let Some(s) = self.sessions.get(&call) {
            s.send(MediaCommand::Bridge);
        }
    }

    fn drop_agent(&mut self, call: CallId) {
        if let Some(s) = self.sessions.get(&call) {
            s.send(MediaCommand::DropAgent);
        }
    }

    fn close(&mut self, call: CallId) {
        self.sessions.remove(&call);
    }

    fn join(&mut self, from: CallId, to: CallId, join: Join) {
        let Some(to) = self.sessions.get(&to).map(MediaSession::commands) else { return };
        if let Some(from) = self.sessions.remove(&from) {
            from.send(MediaCommand::HandOver { to, join });
        }
    }

    /// Binds a third leg for `call` (a transfer target, a supervisor) and returns its RTP port for
    /// our offer; None when the call has no media or the port range is exhausted.
    fn open_third(&mut self, call: CallId) -> Option<u16> {
        let session = self.sessions.get(&call)?;
        let leg = self.pool.bind().ok()?;
        let port = leg.port();
        session.send(MediaCommand::ThirdLeg(leg));
        Some(port)
    }

    /// The third leg answered: where its RTP goes and what it speaks.
    fn third_answered(&mut self, call: CallId, remote: Option<SocketAddr>, format: LegFormat) {
        if let Some(s) = self.sessions.get(&call) {
            s.send(MediaCommand::ThirdAnswered { remote, format });
        }
    }

    /// Mixes caller, agent and third leg of `call` in `mode` (or switches the mode of a mixed
    /// call: listen to whisper to barge). Needs the agent and third legs.
    fn set_mix(&mut self, call: CallId, mode: MixMode) {
        if let Some(s) = self.sessions.get(&call) {
            s.send(MediaCommand::Mix(mode));
        }
    }

    /// The third leg of `call` is gone: its ports are freed and caller and agent are bridged again.
    fn drop_third(&mut self, call: CallId) {
        if let Some(s) = self.sessions.get(&call) {
            s.send(MediaCommand::DropThird);
        }
    }

    fn update_leg(
        &mut self,
        call: CallId,
        leg: MediaLeg,
        remote: Option<SocketAddr>,
        on_hold: bool,
    ) {
        if let Some(s) = self.sessions.get(&call) {
            s.send(MediaCommand::UpdateLeg { leg, remote, on_hold });
        }
    }
}

/// How often the histograms' samples are folded into their buckets.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Folds recorded histogram samples into their buckets every few seconds until `stop`. The send
/// lateness histogram takes a sample per paced packet (40,000/s for 800 callers on hold); the
/// exporter keeps them until folded, so without this a daemon nobody scrapes would grow.
pub async fn metrics_upkeep(
    handle: metrics_exporter_prometheus::PrometheusHandle,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => handle.run_upkeep(),
        }
    }
}
