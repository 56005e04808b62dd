//! The call-records tables and their versioned migrations ([`crate::store::migrate`]). Storage
//! layer.
//!
//! No column ever holds a SIP Call-ID or an IP address, and none but `callbacks.number` a caller's
//! number: a caller is their pseudonym (HMAC-SHA256 hex, `NULL` when withheld) and a call is a row
//! number. `callbacks` (version 2) is written only when `[records] callbacks` is on, and only for
//! abandoned calls from a known number; it is purged after `callbacks_retention`. Version 3 adds
//! each call-back's attempts, last attempt time and outcome; an answered call-back keeps its row
//! (the outcome) but not its number.

/// The component name in `schema_versions`.
pub const COMPONENT: &str = "records";

/// Append-only migration steps: step `i` makes version `i + 1`.
pub const STEPS: &[&str] = &[
    // 1: calls, the queue log and agent events.
    "CREATE TABLE calls (
         id INTEGER PRIMARY KEY,
         offered_ms INTEGER NOT NULL,
         queued_ms INTEGER,
         answered_ms INTEGER,
         ended_ms INTEGER,
         outcome TEXT,
         phase TEXT NOT NULL,
         reason TEXT,
         agent TEXT,
         wait_ms INTEGER,
         talk_ms INTEGER,
         lane TEXT NOT NULL,
         province TEXT NOT NULL DEFAULT 'unknown',
         caller TEXT
     );
     CREATE INDEX calls_offered ON calls (offered_ms);
     CREATE INDEX calls_open ON calls (outcome) WHERE outcome IS NULL;
     CREATE TABLE call_events (
         id INTEGER PRIMARY KEY,
         call INTEGER NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
         at_ms INTEGER NOT NULL,
         kind TEXT NOT NULL,
         agent TEXT,
         detail TEXT
     );
     CREATE INDEX call_events_call ON call_events (call);
     CREATE TABLE agent_events (
         id INTEGER PRIMARY KEY,
         agent TEXT NOT NULL,
         at_ms INTEGER NOT NULL,
         kind TEXT NOT NULL,
         detail TEXT
     );
     CREATE INDEX agent_events_at ON agent_events (at_ms);",
    // 2: the opt-in call-back list: the clear number (E.164) of an abandoned call, with its row.
    "CREATE TABLE callbacks (
         id INTEGER PRIMARY KEY,
         call INTEGER NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
         at_ms INTEGER NOT NULL,
         number TEXT NOT NULL
     );
     CREATE INDEX callbacks_at ON callbacks (at_ms);
     CREATE INDEX callbacks_call ON callbacks (call);",
    // 3: call-back attempts: how the last one went, how many, when. An answered call-back's
    // number is blanked ('') at once: it is not needed any more.
    "ALTER TABLE callbacks ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE callbacks ADD COLUMN last_attempt_ms INTEGER;
     ALTER TABLE callbacks ADD COLUMN outcome TEXT;",
];
