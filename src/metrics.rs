//! Every metric tongdai exports: its name, type, help text and labels, in one place (ARCHITECTURE.md
//! §10). Prometheus conventions: `_total` counters, `_seconds` units, bounded labels only — never a
//! caller number, Call-ID or address. Runtime layer: the core returns events, the runtime counts them.
//!
//! Later subsystems add their metrics to [`describe`] and name them with constants here, so that a
//! `grep` for a metric name lands on its definition.

use std::sync::OnceLock;

use metrics::{Unit, counter, describe_counter, describe_gauge, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Gauge, always 1, with a `version` label.
pub const BUILD_INFO: &str = "tongdai_build_info";
/// Counter of configuration reloads; label `result` = `applied` | `rejected`.
pub const CONFIG_RELOADS: &str = "tongdai_config_reloads_total";
/// Gauge, 1 while the daemon drains (SIGTERM received), else 0.
pub const DRAINING: &str = "tongdai_draining";
/// Counter of SIP messages; labels `direction` = `in` | `out`, `kind` = `request` | `response` |
/// `keepalive`.
pub const SIP_MESSAGES: &str = "tongdai_sip_messages_total";
/// Counter of SIP messages dropped as unusable; label `reason` (see the transport's reasons).
pub const SIP_INVALID: &str = "tongdai_sip_invalid_messages_total";

/// Gauge of live registrations (bindings) of agents' softphones.
pub const REGISTRATIONS: &str = "tongdai_registrations";
/// Gauge of agents by `state` (`logged_out`, `available`, `ringing`, `on_call`, `wrap_up`,
/// `paused`).
pub const AGENTS: &str = "tongdai_agents";
/// Gauge of agent lines in use (ringing or on a call).
pub const LINES_BUSY: &str = "tongdai_lines_busy";
/// Gauge of callers waiting (prompt or queue).
pub const QUEUE_WAITING: &str = "tongdai_queue_waiting_calls";
/// Gauge: how long the caller queued longest has waited, in seconds (0 with nobody queued).
pub const QUEUE_LONGEST_WAIT: &str = "tongdai_queue_longest_wait_seconds";
/// Counter of calls offered to the queue.
pub const CALLS_OFFERED: &str = "tongdai_calls_offered_total";
/// Counter of calls answered by an agent.
pub const CALLS_ANSWERED: &str = "tongdai_calls_answered_total";
/// Counter of calls the caller abandoned; label `phase` = `prompt` | `queue` | `ringing`.
pub const CALLS_ABANDONED: &str = "tongdai_calls_abandoned_total";
/// Counter of calls refused; label `reason`.
pub const CALLS_REFUSED: &str = "tongdai_calls_refused_total";
/// The `reason` labels of [`CALLS_OVERFLOWED`] (the engine's `OverflowReason`s), exported as 0
/// from the start.
pub const OVERFLOW_REASONS: &[&str] =
    &["no_agents", "max_wait", "queue_full", "predicted_wait", "draining"];
/// Histogram of queue waits of finished calls, in seconds; label `outcome` = `answered` |
/// `abandoned` | `overflowed` (an abandon in the welcome prompt, or an overflow on arrival,
/// waited 0). Observed when the call ends.
pub const QUEUE_WAIT: &str = "tongdai_queue_wait_seconds";
/// The buckets of [`QUEUE_WAIT`], for a hotline answering within 20 s: fine up to the answer
/// target (5 s is the default short-abandon time and 20 s the default target, so the service level
/// of any window can be computed from the buckets), then coarse up to the 10 minutes nobody should
/// ever wait.
pub const QUEUE_WAIT_BUCKETS: &[f64] =
    &[1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0];
/// Histogram of talk time of answered calls (bridged to agents), in seconds, observed at the end.
pub const TALK: &str = "tongdai_talk_seconds";
/// The buckets of [`TALK`]: a hotline call runs from a short question to an hour of counselling.
pub const TALK_BUCKETS: &[f64] =
    &[10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0];
/// Gauge: today's service level (local day of `[schedule] timezone`) as a ratio 0–1; label
/// `threshold` = the answer target in seconds (`[service_level] answer_within`). NaN before the
/// first judged call of the day (see `config::ServiceLevelConfig` for the formula).
pub const SERVICE_LEVEL: &str = "tongdai_service_level_ratio";
/// Counter of agents' feature codes carried out; label `code` = `pause` | `resume` |
/// `end_wrap_up` | `log_out` | `callback`.
pub const FEATURE_CODES: &str = "tongdai_feature_codes_total";
/// Counter of supervisions started (a supervisor joined an operator's call); label `mode` =
/// `listen` | `whisper` | `barge` (the mode it joined in).
pub const SUPERVISIONS: &str = "tongdai_supervisions_total";
/// Counter of call-back attempts by how they went; label `outcome` = `answered` | `busy` |
/// `no_answer` | `failed` | `operator_no_answer` | `cancelled`.
pub const CALLBACKS: &str = "tongdai_callbacks_total";
/// Counter of failed agent authentications; label `reason`.
pub const AUTH_FAILURES: &str = "tongdai_auth_failures_total";
/// Counter of RTP packets; label `direction` = `in` | `out`.
pub const RTP_PACKETS: &str = "tongdai_rtp_packets_total";
/// Counter of datagrams dropped at an RTP port; label `reason` (see [`RTP_DROP_REASONS`]).
pub const RTP_DROPPED: &str = "tongdai_rtp_dropped_packets_total";
/// The `reason` labels of [`RTP_DROPPED`].
pub const RTP_DROP_REASONS: &[&str] = &[
    "short",
    "version",
    "csrc_overflow",
    "extension_overflow",
    "padding",
    "unknown_payload_type",
    "stun",
    "dtls",
    "unknown",
    "foreign_source",
    "telephone_event_unsupported",
    "malformed_telephone_event",
    "before_start",
];
/// Counter of RTCP packets on the odd ports; label `result` = `received` | `malformed` | `sent`.
pub const RTCP_PACKETS: &str = "tongdai_rtcp_packets_total";
/// Histogram of how late paced prompt/hold-audio packets left, after their due time, in seconds.
pub const MEDIA_SEND_LATENESS: &str = "tongdai_media_send_lateness_seconds";
/// The buckets of [`MEDIA_SEND_LATENESS`]: fine below 5 ms (the target p99), coarse above.
pub const MEDIA_SEND_LATENESS_BUCKETS: &[f64] =
    &[0.0001, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.010, 0.020, 0.050, 0.100];
/// Counter of urgent-lane menu outcomes; label `choice` = `urgent` (pressed 1) | `timeout`.
pub const MENU_CHOICES: &str = "tongdai_menu_choices_total";
/// Counter of legs hung up as dead (no media for `rtp_timeout`); label `leg` = `caller` | `agent`.
pub const MEDIA_DEAD_LEGS: &str = "tongdai_media_dead_legs_total";
/// Counter of bans started on repeated authentication failures.
pub const AUTH_BANS: &str = "tongdai_auth_bans_total";
/// Gauge of bans in force (per (source, user) and per source).
pub const AUTH_BANS_ACTIVE: &str = "tongdai_auth_bans_active";
/// Gauge, 1 while tongdai's registration to the provider is in force, else 0.
pub const TRUNK_REGISTRATION_UP: &str = "tongdai_trunk_registration_up";
/// Counter of failed call-record writes (a batch lost: disk full, I/O error).
pub const RECORDS_WRITE_FAILURES: &str = "tongdai_records_write_failures_total";
/// Counter of call records dropped because the writer's queue was full.
pub const RECORDS_DROPPED: &str = "tongdai_records_dropped_total";
/// Gauge, 1 while the call-records database takes writes, 0 from a failed write (or a file that
/// cannot be opened) until the next write succeeds. Absent when no records are kept.
pub const RECORDS_WRITABLE: &str = "tongdai_records_writable";
/// Counter of calls offered, by `province`: one of the region's 19 ([`crate::acd::province`]) or
/// `unknown`, so the label is bounded by type.
pub const CALLS_OFFERED_BY_PROVINCE: &str = "tongdai_calls_offered_by_province_total";

/// Counter of calls an agent answered and then transferred (blind or attended transfer, or a
/// conference the operator left); they are counted in [`CALLS_ANSWERED`] too.
pub const CALLS_TRANSFERRED: &str = "tongdai_calls_transferred_total";
/// Counter of three-way conferences made from a consultation (`*3`).
pub const CONFERENCES: &str = "tongdai_conferences_total";
/// Counter of calls handed to the national centre; label `reason` = `no_agents` | `max_wait` |
/// `queue_full` | `predicted_wait` | `draining`.
pub const CALLS_OVERFLOWED: &str = "tongdai_calls_overflowed_total";
/// Gauge per overflow target (`target` = its configured name): 1 while OPTIONS probes find it up.
pub const OVERFLOW_TARGET_UP: &str = "tongdai_overflow_target_up";
/// Counter of hand-over attempts per target; labels `target`, `result` = `answered` |
/// `redirected` | `challenged` | `failed` | `timeout` | `no_channel`.
pub const OVERFLOW_ATTEMPTS: &str = "tongdai_overflow_attempts_total";

/// The agent states, as `tongdai_agents{state}` labels.
pub const AGENT_STATES: &[&str] =
    &["logged_out", "available", "ringing", "on_call", "wrap_up", "paused"];

/// Every histogram with its explicit buckets.
pub const HISTOGRAMS: &[(&str, &[f64])] = &[
    (MEDIA_SEND_LATENESS, MEDIA_SEND_LATENESS_BUCKETS),
    (QUEUE_WAIT, QUEUE_WAIT_BUCKETS),
    (TALK, TALK_BUCKETS),
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder (once; later calls return the same handle) and describes every
/// metric, so that a scrape shows HELP and TYPE lines from the first second.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let mut builder = PrometheusBuilder::new();
            for (name, buckets) in HISTOGRAMS {
                let matcher = metrics_exporter_prometheus::Matcher::Full((*name).into());
                // Only fails on an empty bucket list, which none of ours is.
                builder = match builder.set_buckets_for_metric(matcher, buckets) {
                    Ok(b) => b,
                    Err(_) => PrometheusBuilder::new(),
                };
            }
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Only fails when another recorder is already global: then the handle still renders ours,
            // which nothing records into; tests never install a second recorder.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

fn describe() {
    describe_gauge!(BUILD_INFO, "Build information; always 1.");
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    describe_counter!(CONFIG_RELOADS, Unit::Count, "Configuration reloads by result.");
    for result in ["applied", "rejected"] {
        counter!(CONFIG_RELOADS, "result" => result).increment(0);
    }
    describe_gauge!(DRAINING, "1 while the daemon drains before exiting.");
    gauge!(DRAINING).set(0.0);
    describe_counter!(SIP_MESSAGES, Unit::Count, "SIP messages by direction and kind.");
    describe_counter!(SIP_INVALID, Unit::Count, "SIP messages dropped as unusable, by reason.");
    describe_gauge!(REGISTRATIONS, "Live registrations of agents' softphones.");
    gauge!(REGISTRATIONS).set(0.0);
    describe_gauge!(AGENTS, "Agents by state.");
    describe_gauge!(LINES_BUSY, "Agent lines in use (ringing or on a call).");
    gauge!(LINES_BUSY).set(0.0);
    describe_gauge!(
        QUEUE_WAITING,
        "Callers queued for an agent (after the welcome prompt and menu)."
    );
    gauge!(QUEUE_WAITING).set(0.0);
    describe_gauge!(
        QUEUE_LONGEST_WAIT,
        Unit::Seconds,
        "How long the caller queued longest has waited (0 with nobody queued)."
    );
    gauge!(QUEUE_LONGEST_WAIT).set(0.0);
    describe_counter!(CALLS_OFFERED, Unit::Count, "Calls offered to the queue.");
    counter!(CALLS_OFFERED).increment(0);
    describe_counter!(CALLS_ANSWERED, Unit::Count, "Calls answered by an agent.");
    counter!(CALLS_ANSWERED).increment(0);
    describe_counter!(
        CALLS_TRANSFERRED,
        Unit::Count,
        "Calls an agent answered and then transferred (also counted answered)."
    );
    counter!(CALLS_TRANSFERRED).increment(0);
    describe_counter!(CONFERENCES, Unit::Count, "Three-way conferences made from a consultation.");
    counter!(CONFERENCES).increment(0);
    describe_counter!(
        CALLS_ABANDONED,
        Unit::Count,
        "Calls the caller left before an answer, by phase."
    );
    describe_counter!(CALLS_REFUSED, Unit::Count, "Calls refused, by reason.");
    metrics::describe_histogram!(
        QUEUE_WAIT,
        Unit::Seconds,
        "Queue wait of finished calls, by outcome (answered, abandoned, overflowed)."
    );
    metrics::describe_histogram!(TALK, Unit::Seconds, "Talk time of answered calls.");
    // Registered empty, so that dashboards and `promtool check metrics` see them from the start.
    for outcome in ["answered", "abandoned", "overflowed"] {
        let _ = metrics::histogram!(QUEUE_WAIT, "outcome" => outcome);
    }
    let _ = metrics::histogram!(TALK);
    describe_gauge!(
        SERVICE_LEVEL,
        "Today's service level: answered within threshold seconds / (answered + long abandons)."
    );
    describe_counter!(AUTH_FAILURES, Unit::Count, "Failed agent authentications, by reason.");
    describe_counter!(FEATURE_CODES, Unit::Count, "Agents' feature codes carried out, by code.");
    describe_counter!(SUPERVISIONS, Unit::Count, "Supervisions started, by the mode joined in.");
    for mode in crate::config::SupervisionMode::ALL {
        counter!(SUPERVISIONS, "mode" => mode.as_str()).increment(0);
    }
    describe_counter!(
        CALLBACKS,
        Unit::Count,
        "Call-back attempts of abandoned callers, by outcome."
    );
    for outcome in crate::acd::b2bua::CallbackOutcome::ALL {
        counter!(CALLBACKS, "outcome" => outcome.as_str()).increment(0);
    }
    describe_counter!(RTP_PACKETS, Unit::Count, "RTP packets by direction.");
    describe_counter!(RTP_DROPPED, Unit::Count, "Datagrams dropped at RTP ports, by reason.");
    for reason in RTP_DROP_REASONS {
        counter!(RTP_DROPPED, "reason" => *reason).increment(0);
    }
    describe_counter!(RTCP_PACKETS, Unit::Count, "RTCP packets received, malformed and sent.");
    metrics::describe_histogram!(
        MEDIA_SEND_LATENESS,
        Unit::Seconds,
        "Lateness of paced prompt and hold-audio packets after their due time."
    );
    describe_counter!(MENU_CHOICES, Unit::Count, "Urgent-lane menu outcomes.");
    describe_counter!(MEDIA_DEAD_LEGS, Unit::Count, "Legs hung up for lack of media, by leg.");
    describe_counter!(AUTH_BANS, Unit::Count, "Bans started on repeated authentication failures.");
    counter!(AUTH_BANS).increment(0);
    describe_gauge!(AUTH_BANS_ACTIVE, "Bans in force on password guessing.");
    gauge!(AUTH_BANS_ACTIVE).set(0.0);
    describe_gauge!(TRUNK_REGISTRATION_UP, "1 while the registration to the provider is in force.");
    describe_counter!(
        RECORDS_WRITE_FAILURES,
        Unit::Count,
        "Failed call-record writes (batches lost)."
    );
    describe_counter!(RECORDS_DROPPED, Unit::Count, "Call records dropped on a full writer queue.");
    describe_counter!(
        CALLS_OVERFLOWED,
        Unit::Count,
        "Calls handed to the national centre, by reason."
    );
    for reason in OVERFLOW_REASONS {
        counter!(CALLS_OVERFLOWED, "reason" => *reason).increment(0);
    }
    describe_gauge!(OVERFLOW_TARGET_UP, "1 while an overflow target answers OPTIONS probes.");
    describe_counter!(OVERFLOW_ATTEMPTS, Unit::Count, "Hand-over attempts, by target and result.");
    describe_gauge!(RECORDS_WRITABLE, "1 while the call-records database takes writes.");
    describe_counter!(
        CALLS_OFFERED_BY_PROVINCE,
        Unit::Count,
        "Calls offered, by the province the trunk or the number tells (else unknown)."
    );
    let provinces = crate::acd::province::Province::all().map(|p| p.as_str());
    for province in provinces.chain([crate::acd::province::UNKNOWN]) {
        counter!(CALLS_OFFERED_BY_PROVINCE, "province" => province).increment(0);
    }
    describe_limits();
}

/// Counter of SIP messages dropped by the per-source rate limit; label `transport` = `udp` | `tcp`.
pub const RATE_LIMITED: &str = "tongdai_rate_limited_total";
/// Counter of rate bans started (one stable log line each, target `tongdai::limits`).
pub const RATE_BANS: &str = "tongdai_rate_bans_total";
/// Gauge of sources banned by the rate limit.
pub const RATE_BANS_ACTIVE: &str = "tongdai_rate_bans_active";
/// Gauge of open SIP TCP connections.
pub const SIP_TCP_CONNECTIONS: &str = "tongdai_sip_tcp_connections";
/// Counter of SIP TCP connections refused at accept; label `reason` = `max_connections` |
/// `rate_banned`.
pub const SIP_TCP_REFUSED: &str = "tongdai_sip_tcp_refused_total";
/// Gauge of calls in progress, in any phase (prompt, queue, ringing, bridged, half-open).
pub const CALLS_ACTIVE: &str = "tongdai_calls_active";
/// Gauge of SIP dialogs alive in the endpoint.
pub const SIP_DIALOGS: &str = "tongdai_sip_dialogs";
/// Gauge of server transactions alive in the endpoint (capped by `[limits] max_transactions`).
pub const SIP_TRANSACTIONS: &str = "tongdai_sip_server_transactions";
/// Counter of new requests refused statelessly at the transaction cap; label `method` =
/// `invite` (480) | `other` (500 + Retry-After).
pub const SIP_TRANSACTIONS_REFUSED: &str = "tongdai_sip_transactions_refused_total";
/// Gauge of nonces the digest replay table follows (capped by `[limits] max_nonces`).
pub const AUTH_NONCES: &str = "tongdai_auth_nonces";
/// Counter of nonces a full replay table dropped; each answers `stale=true` when it comes back.
pub const AUTH_NONCES_DROPPED: &str = "tongdai_auth_nonces_dropped_total";

fn describe_limits() {
    describe_counter!(
        RATE_LIMITED,
        Unit::Count,
        "SIP messages dropped by the per-source rate limit."
    );
    for transport in ["udp", "tcp"] {
        counter!(RATE_LIMITED, "transport" => transport).increment(0);
    }
    describe_counter!(RATE_BANS, Unit::Count, "Sources banned for exceeding the rate limit.");
    counter!(RATE_BANS).increment(0);
    describe_gauge!(RATE_BANS_ACTIVE, "Sources banned by the rate limit now.");
    gauge!(RATE_BANS_ACTIVE).set(0.0);
    describe_gauge!(SIP_TCP_CONNECTIONS, "Open SIP TCP connections.");
    gauge!(SIP_TCP_CONNECTIONS).set(0.0);
    describe_counter!(
        SIP_TCP_REFUSED,
        Unit::Count,
        "SIP TCP connections refused at accept, by reason."
    );
    for reason in ["max_connections", "rate_banned"] {
        counter!(SIP_TCP_REFUSED, "reason" => reason).increment(0);
    }
    describe_gauge!(CALLS_ACTIVE, "Calls in progress, in any phase.");
    gauge!(CALLS_ACTIVE).set(0.0);
    describe_gauge!(SIP_DIALOGS, "SIP dialogs alive.");
    gauge!(SIP_DIALOGS).set(0.0);
    describe_gauge!(SIP_TRANSACTIONS, "SIP server transactions alive.");
    gauge!(SIP_TRANSACTIONS).set(0.0);
    describe_counter!(
        SIP_TRANSACTIONS_REFUSED,
        Unit::Count,
        "New SIP requests refused at the server-transaction cap, by method."
    );
    for method in ["invite", "other"] {
        counter!(SIP_TRANSACTIONS_REFUSED, "method" => method).increment(0);
    }
    describe_gauge!(AUTH_NONCES, "Nonces the digest replay table follows.");
    gauge!(AUTH_NONCES).set(0.0);
    describe_counter!(
        AUTH_NONCES_DROPPED,
        Unit::Count,
        "Nonces a full digest replay table dropped (they answer stale)."
    );
    counter!(AUTH_NONCES_DROPPED).increment(0);
}
