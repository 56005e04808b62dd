//! The switchboard's half of the periodic audit: every [`AUDIT_INTERVAL`] it tells the engine what
//! is really alive — the agents with a live binding in the registrar, the calls whose trunk dialog
//! the endpoint still holds, the agent legs with an INVITE in progress or a dialog still up — and
//! the engine repairs whatever it missed ([`Input::Audit`]). Domain layer, sans-IO.

use super::*;

/// How often the switchboard audits the engine against the endpoint and the registrar. Short
/// enough that an agent freed by it loses at most a call or two; long enough to cost nothing.
pub const AUDIT_INTERVAL: Duration = Duration::from_secs(30);

impl Switchboard {
    /// What is alive at `now`, as an [`Input::Audit`]: agents with an unexpired binding, calls
    /// whose trunk dialog the endpoint holds (or whose early-media INVITE is unanswered), and agent legs with an INVITE in progress or a
    /// dialog the endpoint holds. Tests compare it with the engine's agents after every step.
    pub fn audit_snapshot(&self, now: Instant, sip: &Endpoint) -> Input {
        let registered: BTreeSet<AgentId> = self
            .registrar
            .bindings()
            .filter(|b| b.expires_at > now)
            .map(|b| AgentId::new(&b.agent))
            .collect();
        let mut calls = Vec::new();
        let mut agent_legs = Vec::new();
        for (&call, c) in &self.calls {
            // An early-media call is up while its INVITE waits for an agent (a CANCEL ends it).
            let up = c.trunk_dialog.as_ref().is_some_and(|d| sip.dialog(d).is_some());
            if up || c.early_answer.is_some() {
                calls.push(call);
            }
            for leg in &c.agents {
                let alive = match &leg.dialog {
                    Some(d) => sip.dialog(d).is_some(),
                    None => self.by_agent_txn.contains_key(&leg.txn),
                };
                if alive {
                    agent_legs.push((call, leg.agent.clone()));
                }
            }
        }
        // A call-back's operator holds their line until it ends (callback.rs).
        agent_legs.extend(self.callbacks.legs());
        calls.sort_unstable();
        agent_legs.sort();
        Input::Audit { registered: registered.into_iter().collect(), calls, agent_legs }
    }

    /// Sends the engine one audit snapshot at `now`. Run it after `drive`, so every ring the
    /// engine asked for is on the wire and in the snapshot. What it repaired shows in
    /// `Engine::audit_repairs` and in the usual outputs.
    pub(super) fn audit(&mut self, now: Instant, sip: &Endpoint) {
        let snapshot = self.audit_snapshot(now, sip);
        let _ = self.engine.handle(now, snapshot);
    }
}
