//! Agent legs: ringing an agent at its registered flow, its responses, and ending the leg.
//! Domain layer, sans-IO.

use super::*;

impl Switchboard {
    pub(super) fn leg_agent(&self, call: CallId, txn: TxnId) -> Option<AgentId> {
        self.calls.get(&call)?.agents.iter().find(|l| l.txn == txn).map(|l| l.agent.clone())
    }

    pub(super) fn agent_response(
        &mut self,
        now: Instant,
        txn: TxnId,
        response: &Response,
        dialog: Option<DialogId>,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let Some(call) = self.by_agent_txn.get(&txn).copied() else {
            // A 2xx for a leg nobody wants any more (its call ended): hang it up.
            if let Some(d) = dialog
                && (200..300).contains(&response.status)
            {
                sip.bye(now, &d);
            }
            return;
        };
        let Some(agent) = self.leg_agent(call, txn) else { return };
        match response.status {
            180 | 183 => {
                let _ = self.engine.handle(now, Input::AgentRinging { call, agent });
            }
            100..=199 => {}
            200..=299 => {
                self.by_agent_txn.remove(&txn);
                let audio = answer_in(&response.body);
                if let Some(d) = &dialog {
                    self.by_dialog.insert(d.clone(), call);
                    if let Some(leg) = self
                        .calls
                        .get_mut(&call)
                        .and_then(|c| c.agents.iter_mut().find(|l| l.txn == txn))
                    {
                        leg.dialog = Some(d.clone());
                        leg.format = audio.map(|a| a.leg_format());
                    }
                }
                match audio {
                    Some(a) => {
                        media.agent_answered(call, a.remote, a.leg_format());
                        let _ = self.engine.handle(now, Input::AgentAnswered { call, agent });
                    }
                    None => {
                        // An answer we cannot use is a failed leg: hang it up, try the next agent.
                        if let Some(d) = &dialog {
                            sip.bye(now, d);
                            self.by_dialog.remove(d);
                        }
                        self.remove_leg(call, txn);
                        media.drop_agent(call);
                        let _ = self.engine.handle(
                            now,
                            Input::AgentRejected { call, agent, reason: RejectReason::Error },
                        );
                    }
                }
            }
            status => {
                self.by_agent_txn.remove(&txn);
                self.remove_leg(call, txn);
                media.drop_agent(call);
                let reason = match status {
                    486 | 600 => RejectReason::Busy,
                    603 => RejectReason::Declined,
                    480 | 408 | 487 => RejectReason::Unavailable,
                    404 => RejectReason::NotFound,
                    _ => RejectReason::Error,
                };
                let _ = self.engine.handle(now, Input::AgentRejected { call, agent, reason });
            }
        }
    }

    pub(super) fn remove_leg(&mut self, call: CallId, txn: TxnId) {
        if let Some(c) = self.calls.get_mut(&call) {
            c.agents.retain(|l| l.txn != txn);
        }
    }

    pub(super) fn ring(
        &mut self,
        now: Instant,
        call: CallId,
        agent: &AgentId,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let reject = |engine: &mut Engine| {
            let _ = engine.handle(
                now,
                Input::AgentRejected { call, agent: agent.clone(), reason: RejectReason::NotFound },
            );
        };
        let Some(caller_format) = self.calls.get(&call).map(|c| c.caller_format) else {
            return reject(&mut self.engine);
        };
        let Some(binding) =
            self.registrar.lookup(agent.as_str()).first().map(|b| (b.contact.clone(), b.flow))
        else {
            return reject(&mut self.engine);
        };
        let Some(port) = media.open_agent(call) else {
            let _ = self.engine.handle(
                now,
                Input::AgentRejected { call, agent: agent.clone(), reason: RejectReason::Error },
            );
            return;
        };
        let other = match caller_format.codec {
            Codec::Pcmu => Codec::Pcma,
            Codec::Pcma => Codec::Pcmu,
        };
        let offer =
            sdp::offer(media.address(), port, &[caller_format.codec, other], Direction::SendRecv);
        let (contact, flow) = binding;
        // What the agent sees of the caller: the configured display and pseudonym; the number
        // only where `[privacy] show_number_to_agents` allows it.
        let host = via_host(flow.local);
        let from = match self.calls.get(&call) {
            Some(c) => self.policy.agent_from(&c.identity, self.engine.province(call), &host),
            None => format!("\"111\" <sip:111@{host}>"),
        };
        self.next_leg += 1;
        let leg = LegSdp::first(session_id(agent.as_str().as_bytes(), self.next_leg), offer, port);
        let body = Bytes::from(leg.last.to_string());
        let max_forwards = self.calls.get(&call).map_or(69, |c| c.max_forwards);
        let extra = [(crate::sip::message::name::MAX_FORWARDS, max_forwards.to_string())];
        match sip.invite(now, flow, contact, &from, body, &extra) {
            Some(txn) => {
                self.by_agent_txn.insert(txn, call);
                if let Some(c) = self.calls.get_mut(&call) {
                    c.agents.push(AgentLeg {
                        agent: agent.clone(),
                        txn,
                        dialog: None,
                        sdp: leg,
                        format: None,
                        held: false,
                    });
                }
            }
            None => {
                media.drop_agent(call);
                let _ = self.engine.handle(
                    now,
                    Input::AgentRejected {
                        call,
                        agent: agent.clone(),
                        reason: RejectReason::Error,
                    },
                );
            }
        }
    }

    pub(super) fn end_agent_leg(
        &mut self,
        now: Instant,
        call: CallId,
        agent: &AgentId,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let Some(c) = self.calls.get_mut(&call) else { return };
        let legs: Vec<AgentLeg> = {
            let (gone, keep): (Vec<_>, Vec<_>) =
                c.agents.drain(..).partition(|l| &l.agent == agent);
            c.agents = keep;
            gone
        };
        for leg in legs {
            match &leg.dialog {
                Some(d) => {
                    self.by_dialog.remove(d);
                    sip.bye(now, d);
                }
                // Not answered yet: CANCEL. A 2xx crossing it arrives for a txn no call owns any
                // more and is hung up in `agent_response` (RFC 5407).
                None => {
                    self.by_agent_txn.remove(&leg.txn);
                    sip.cancel(now, leg.txn);
                }
            }
        }
        media.drop_agent(call);
    }
}
