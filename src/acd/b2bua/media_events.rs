//! What a call's media reports back to the switchboard: key presses (RFC 4733 events on the
//! caller's RTP, or SIP INFO) and dead legs (no RTP or RTCP for `rtp_timeout`). Domain layer,
//! sans-IO.
//!
//! The urgent-lane menu: after the welcome, the caller hears "if a child is in danger now, press
//! 1" and has `menu_timeout` to press it. A `1` in that window puts the call in the urgent lane and
//! queues it at once; no key (a trunk that sends neither RFC 4733 nor INFO) queues it in the normal
//! lane when the window closes. A `1` pressed later, while queued, still moves the caller to the
//! urgent lane (at its back), since a child's danger does not wait for the menu.
//!
//! A dead caller leg ends the call (BYE to the trunk); a dead agent leg is hung up and reported to
//! the engine as [`Input::AgentLegFailed`], which sends the caller back to the front of the queue.

use super::*;

/// Which leg of a call a media event concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaLeg {
    /// The caller's trunk leg.
    Caller,
    /// The agent leg that is ringing or bridged.
    Agent,
}

/// What a call's media task reports to the switchboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaEvent {
    /// The caller pressed a key (RFC 4733 event, reported once per press).
    Dtmf {
        /// The call.
        call: CallId,
        /// `0`–`9`, `*`, `#`, `A`–`D`.
        digit: char,
    },
    /// Nothing arrived from the leg's peer for `rtp_timeout` while it was not on hold.
    LegDead {
        /// The call.
        call: CallId,
        /// The dead leg.
        leg: MediaLeg,
    },
}

/// The key that asks for the urgent lane.
pub const URGENT_KEY: char = '1';

impl Switchboard {
    /// Takes one event from a call's media.
    pub fn media_event(
        &mut self,
        now: Instant,
        event: MediaEvent,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        // A consultation's media is consult.rs's.
        if let MediaEvent::Dtmf { call, .. } | MediaEvent::LegDead { call, .. } = &event
            && self.is_consult(*call)
        {
            self.consult_media_event(now, event, sip, media);
            return self.drive(now, sip, media);
        }
        // A conference's caller or operator went silent: as if they had hung up.
        if let MediaEvent::LegDead { call, leg } = &event
            && let Some(c) = self.calls.get(call).filter(|c| c.conference)
        {
            let dialog = match leg {
                MediaLeg::Caller => c.trunk_dialog.clone(),
                MediaLeg::Agent => c.agents.iter().find_map(|l| l.dialog.clone()),
            };
            self.reports.push(Report::LegDead { leg: *leg });
            if let Some(d) = dialog {
                sip.bye(now, &d);
                let _ = self.consult_event(now, UaEvent::Bye { dialog: d }, sip, media);
            }
            return self.drive(now, sip, media);
        }
        // Call-backs' media are callback.rs's.
        if let MediaEvent::LegDead { call, .. } | MediaEvent::Dtmf { call, .. } = event
            && self.callbacks.owns(call)
        {
            self.callback_media_event(now, event, sip, media);
            return self.drive(now, sip, media);
        }
        // Either leg of a call bridged to the national centre died: end both (overflow.rs).
        if let MediaEvent::LegDead { call, leg } = &event
            && self.calls.get(call).is_some_and(|c| c.outside.is_some())
        {
            self.reports.push(Report::LegDead { leg: *leg });
            self.end_overflowed(now, *call, None, sip, media);
            return self.drive(now, sip, media);
        }
        match event {
            MediaEvent::Dtmf { call, digit } => self.caller_dtmf(now, call, digit),
            MediaEvent::LegDead { call, leg: MediaLeg::Caller } => {
                self.reports.push(Report::LegDead { leg: MediaLeg::Caller });
                if let Some(d) = self.calls.get_mut(&call).and_then(|c| c.trunk_dialog.take()) {
                    self.by_dialog.remove(&d);
                    sip.bye(now, &d);
                }
                self.caller_left(now, call);
            }
            MediaEvent::LegDead { call, leg: MediaLeg::Agent } => {
                self.reports.push(Report::LegDead { leg: MediaLeg::Agent });
                let Some(c) = self.calls.get_mut(&call) else { return };
                // The bridged (answered) leg; a leg still ringing has no media to watch.
                let Some(pos) = c.agents.iter().position(|l| l.dialog.is_some()) else { return };
                let leg = c.agents.remove(pos);
                if let Some(d) = &leg.dialog {
                    self.by_dialog.remove(d);
                    sip.bye(now, d);
                }
                media.drop_agent(call);
                let _ = self.engine.handle(now, Input::AgentLegFailed { call, agent: leg.agent });
            }
        }
        self.drive(now, sip, media);
    }

    /// A SIP INFO key press (`application/dtmf-relay`) on `dialog`: only the caller's count.
    pub(super) fn info_dtmf(&mut self, now: Instant, dialog: &DialogId, digit: char) {
        let Some(call) = self.by_dialog.get(dialog).copied() else { return };
        if self.calls.get(&call).is_some_and(|c| c.trunk_dialog.as_ref() == Some(dialog)) {
            self.caller_dtmf(now, call, digit);
        }
    }

    /// A key pressed by the caller of `call`, from either path.
    pub(super) fn caller_dtmf(&mut self, now: Instant, call: CallId, digit: char) {
        if digit != URGENT_KEY || !self.calls.contains_key(&call) {
            return;
        }
        self.reports.push(Report::MenuChoice { call, urgent: true });
        let _ = self.engine.handle(now, Input::MenuChoice { call, urgent: true });
        // Still in the menu: queue now rather than at the end of the window.
        let pending: Vec<_> =
            self.prompt_ends.iter().filter(|(_, c)| *c == call).copied().collect();
        if !pending.is_empty() {
            for p in pending {
                self.prompt_ends.remove(&p);
            }
            let _ = self.engine.handle(now, Input::PromptFinished { call });
        }
    }
}
