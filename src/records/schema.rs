//! The call-records tables and their versioned migrations ([`crate::store::migrate`]). Storage
//! layer.
//!
//! No column ever holds a caller's number, a SIP Call-ID or an IP address: a caller is their
//! pseudonym (HMAC-SHA256 hex, `NULL` when withheld) and a call is a row number.

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
];
