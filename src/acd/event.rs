//! The engine's vocabulary: every [`Input`] the B2BUA, registrar, schedule and admin API feed it,
//! every [`Output`] it asks them to carry out, and the [`InputError`] for inputs it cannot apply.
//! Domain layer, sans-IO.

use super::agent::{AgentId, AgentState, PauseReason};
use super::call::{CallId, EndedBy, Lane, Outcome, OverflowReason, RefuseReason, RejectReason};
use super::settings::EngineConfig;

/// What the B2BUA (and the registrar, the schedule and the admin API) tells the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A caller's trunk leg is answered and the welcome prompt started: the call enters its prompt
    /// phase (or is refused when `max_queue` callers already wait).
    CallOffered {
        /// The B2BUA's id for the call (new).
        call: CallId,
        /// The lane it starts in (urgent when the trunk already marks it so).
        lane: Lane,
        /// The caller's province, when known from the trunk.
        province: Option<String>,
        /// False when the call already came overflowed from another centre (loop header, or
        /// Max-Forwards nearly spent): it is never overflowed again.
        may_overflow: bool,
    },
    /// The welcome prompt / menu finished: queue the caller and start the hold loop.
    PromptFinished {
        /// The call.
        call: CallId,
    },
    /// The caller chose in the menu; `urgent` moves them to the urgent lane (at its back), or back.
    MenuChoice {
        /// The call.
        call: CallId,
        /// Pressed 1: "a child is in danger now".
        urgent: bool,
    },
    /// The caller hung up (BYE or CANCEL from the trunk), in whatever phase.
    CallerHungUp {
        /// The call.
        call: CallId,
    },
    /// The agent has a live registration.
    AgentLoggedIn {
        /// The agent.
        agent: AgentId,
    },
    /// The agent's registration ended (expired, unregistered, dead flow). A ringing call is cancelled
    /// and offered to the next agent; a bridged call goes on.
    AgentLoggedOut {
        /// The agent.
        agent: AgentId,
    },
    /// The schedule's word: the agent's shift started (`true`) or ended (`false`). Agents are on
    /// shift until told otherwise; a shift change never cuts a call.
    AgentOnShift {
        /// The agent.
        agent: AgentId,
        /// On shift now.
        on_shift: bool,
    },
    /// Stop offering the agent calls: a ringing call is cancelled and offered to the next agent
    /// (no miss); a bridged call goes on.
    AgentPaused {
        /// The agent.
        agent: AgentId,
        /// Why.
        reason: PauseReason,
    },
    /// Offer the agent calls again; their miss count starts over.
    AgentResumed {
        /// The agent.
        agent: AgentId,
    },
    /// The agent's phone is alerting (180); informational.
    AgentRinging {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
    },
    /// The agent answered (2xx, ACK sent). If the engine no longer rings this agent for the call
    /// (another agent won, the ring was cancelled, the caller left), it answers with `HangUpAgent`:
    /// the 2xx crossed our CANCEL, so the B2BUA ACKs and BYEs that leg.
    AgentAnswered {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
    },
    /// The agent's INVITE failed; counts as a miss, and the call goes to the next agent.
    AgentRejected {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
        /// The failure's class.
        reason: RejectReason,
    },
    /// The agent leg died (no RTP, dialog lost): while bridged, the caller goes back to the front of
    /// their lane and the agent to wrap-up; while ringing, it counts as a refusal.
    AgentLegFailed {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
    },
    /// A bridged call ended normally.
    CallEnded {
        /// The call.
        call: CallId,
        /// Who hung up.
        by: EndedBy,
    },
    /// The agent ends wrap-up early (feature code or admin API).
    EndWrapUp {
        /// The agent.
        agent: AgentId,
    },
    /// The switchboard's periodic word on what is really alive, so that no agent can stay stuck
    /// on a lost event (a BYE, a registration expiry). Agents registered here but not in the
    /// engine log in, and the reverse log out; a call missing from `calls` ends as if its caller
    /// hung up; an agent ringing or bridged without a matching entry in `agent_legs` is freed
    /// (a bridged caller goes back to the front of their lane, as after `AgentLegFailed`).
    Audit {
        /// Agents with a live registration.
        registered: Vec<AgentId>,
        /// Calls whose caller leg is still up.
        calls: Vec<CallId>,
        /// Live agent legs: an INVITE still in progress, or a dialog still up.
        agent_legs: Vec<(CallId, AgentId)>,
    },
    /// Whether at least one overflow target is up (OPTIONS probing): overflow rules fire only
    /// then; otherwise callers stay in the regional queue.
    OverflowAvailable {
        /// Some target is up.
        up: bool,
    },
    /// The national centre took the call handed over by [`Output::Overflow`] (its INVITE was
    /// answered, or a 302 went to the trunk): the call is finished as overflowed.
    OverflowAnswered {
        /// The call.
        call: CallId,
    },
    /// Every target failed for [`Output::Overflow`]: the caller returns to their place in the
    /// queue (hold audio again) and overflow is tried again after `retry_interval`.
    OverflowFailed {
        /// The call.
        call: CallId,
    },
    /// The daemon is draining (SIGTERM): new and waiting calls are overflowed while a target is
    /// up; bridged calls go on.
    Drain,
    /// The agent bridged to `call` transferred it (blind transfer, REFER): the agent goes to
    /// wrap-up, the caller waits at the front of their lane, rung for nobody, for the target.
    TransferStarted {
        /// The call.
        call: CallId,
        /// The agent transferring it.
        agent: AgentId,
    },
    /// The transfer target answered: the call is finished as transferred.
    TransferAnswered {
        /// The call.
        call: CallId,
    },
    /// The transfer target failed: the caller is served by the next free agent, first in line.
    TransferFailed {
        /// The call.
        call: CallId,
    },
    /// The switchboard places an outbound call for `agent` (a call-back, [`crate::acd::b2bua`]):
    /// the agent takes a line and is not rung by the queue until [`Input::OutboundEnded`].
    /// Refused while the agent is absent (not registered, off shift), ringing or on a call, or
    /// when every line is in use; a paused agent or one in wrap-up may call back.
    OutboundStarted {
        /// The switchboard's id for the outbound call (never offered to the queue).
        call: CallId,
        /// The agent.
        agent: AgentId,
    },
    /// The outbound call ended: the agent goes to wrap-up when they talked with someone
    /// (`talked`), else straight back to what they were (available, or paused).
    OutboundEnded {
        /// The outbound call.
        call: CallId,
        /// The agent.
        agent: AgentId,
        /// The called party answered and talked with the agent.
        talked: bool,
    },
    /// A reload: new tunables and the configured agents in priority order. New agents start logged
    /// out; removed agents ringing are cancelled, removed agents on a call keep it to its end. A lower
    /// line cap cuts no call; it only holds back new rings.
    ConfigChanged {
        /// The new tunables.
        config: EngineConfig,
        /// The configured agent ids, in priority order.
        agents: Vec<AgentId>,
    },
}

/// What the engine asks the B2BUA (and the metrics and records) to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send an INVITE for `call` to the agent's registered contact.
    RingAgent {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
    },
    /// Cancel that INVITE (CANCEL; or ACK+BYE if its 2xx crosses, reported as `AgentAnswered`).
    CancelRing {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
    },
    /// The agent answered: connect the caller's and the agent's media (stop hold audio).
    Bridge {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
    },
    /// The caller is queued (again): play the hold loop.
    StartHold {
        /// The call.
        call: CallId,
    },
    /// Tell the waiting caller their 1-based position (never a larger number than last time).
    AnnouncePosition {
        /// The call.
        call: CallId,
        /// The position, urgent callers counted first.
        position: u32,
    },
    /// End the agent's leg (BYE): the caller left, or the leg is dead, or a late 2xx crossed.
    HangUpAgent {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
    },
    /// End the caller's trunk leg (BYE): the agent hung up first.
    HangUpCaller {
        /// The call.
        call: CallId,
    },
    /// Turn the caller away (the B2BUA plays a notice or answers 486/480 and hangs up).
    Refuse {
        /// The call.
        call: CallId,
        /// Why.
        reason: RefuseReason,
    },
    /// Hand the call to the national centre: play the transfer prompt, then INVITE the targets
    /// in order (or 302 while the trunk leg is unanswered), and report `OverflowAnswered` or
    /// `OverflowFailed`. Rings for the call were cancelled.
    Overflow {
        /// The call.
        call: CallId,
        /// Why (records, metrics, and which prompt the caller hears).
        reason: OverflowReason,
    },
    /// The call is over: exactly one per offered call, for records and metrics.
    CallFinished {
        /// The call.
        call: CallId,
        /// How it ended.
        outcome: Outcome,
    },
    /// An agent's public state changed (metrics, wallboard, queue log).
    AgentState {
        /// The agent.
        agent: AgentId,
        /// The new state.
        state: AgentState,
    },
}

/// An input the engine could not apply; the engine's state is unchanged by it. These are races the
/// B2BUA may log at debug level (a late response for a finished call), never reasons to panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// No call in progress has this id (already finished, or never offered).
    #[error("no call {0} in progress")]
    UnknownCall(CallId),
    /// `CallOffered` with an id already in use.
    #[error("call {0} was already offered")]
    DuplicateCall(CallId),
    /// No configured agent has this id.
    #[error("no agent `{0}`")]
    UnknownAgent(AgentId),
    /// The agent is not being rung for the call.
    #[error("agent `{agent}` is not ringing for {call}")]
    NotRinging {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
    },
    /// The call is not being handed to the national centre.
    #[error("{call} is not being overflowed")]
    NotOverflowing {
        /// The call.
        call: CallId,
    },
    /// The call is not being transferred.
    #[error("{call} is not being transferred")]
    NotTransferring {
        /// The call.
        call: CallId,
    },
    /// The agent cannot take an outbound call now (absent, ringing or on a call).
    #[error("agent `{0}` cannot take an outbound call now")]
    AgentUnavailable(AgentId),
    /// Every line is in use.
    #[error("no free line")]
    NoFreeLine,
    /// The agent is not on this outbound call.
    #[error("agent `{agent}` is not on outbound {call}")]
    NotOutbound {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
    },
    /// The call is not bridged (to this agent).
    #[error("{call} is not bridged")]
    NotBridged {
        /// The call.
        call: CallId,
    },
}
