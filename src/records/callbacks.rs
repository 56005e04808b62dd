//! Reading the opt-in call-back list back (`[records] callbacks`): the pending call-backs as the
//! admin API shows them (never a number: the caller's short pseudonym and at most the number's
//! last two digits), and the numbers to dial as the switchboard takes them ([`CallbackTarget`]).
//! Storage layer: blocking SQLite reads on a read-only connection, next to the writer's.
//!
//! A call-back is pending while its number is kept (the retention has not purged it) and no
//! attempt was answered; oldest first.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::Serialize;

use crate::acd::b2bua::CallbackTarget;
use crate::acd::identity::CallerNumber;
use crate::store::StoreError;

/// The condition of a pending row of `callbacks`.
const PENDING: &str = "cb.number != '' AND (cb.outcome IS NULL OR cb.outcome != 'answered')";

/// One pending call-back, as the admin API lists it: no number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallbackView {
    /// The `callbacks` row id (what `POST /api/v1/callbacks/{id}/start` takes).
    pub id: i64,
    /// When the caller hung up, UNIX milliseconds.
    pub at_ms: i64,
    /// The caller's short pseudonym (`#` and 8 hex digits), as agents see it.
    pub caller: Option<String>,
    /// The number's last two digits, to tell two call-backs apart on the phone.
    pub last_digits: String,
    /// The call's province, when known.
    pub province: String,
    /// Attempts made so far.
    pub attempts: i64,
    /// When the last attempt ended, UNIX milliseconds.
    pub last_attempt_ms: Option<i64>,
    /// How the last attempt went (`busy`, `no_answer`, …); `None` before the first.
    pub outcome: Option<String>,
}

/// A read-only connection to the records at `path` (the writer keeps its own).
pub fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(2))?;
    Ok(conn)
}

/// The pending call-backs, oldest first, at most `limit`.
pub fn pending(conn: &Connection, limit: usize) -> Result<Vec<CallbackView>, StoreError> {
    let sql = format!(
        "SELECT cb.id, cb.at_ms, c.caller, cb.number, c.province, cb.attempts,
                cb.last_attempt_ms, cb.outcome
         FROM callbacks cb JOIN calls c ON c.id = cb.call
         WHERE {PENDING} ORDER BY cb.at_ms, cb.id LIMIT ?1"
    );
    let mut stmt = conn.prepare(&sql)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![limit], |r| {
        let caller: Option<String> = r.get(2)?;
        let number: String = r.get(3)?;
        let digits: Vec<char> = number.chars().filter(char::is_ascii_digit).collect();
        let last_digits = digits[digits.len().saturating_sub(2)..].iter().collect();
        Ok(CallbackView {
            id: r.get(0)?,
            at_ms: r.get(1)?,
            caller: caller.map(|hex| format!("#{}", hex.get(..8).unwrap_or(&hex))),
            last_digits,
            province: r.get(4)?,
            attempts: r.get(5)?,
            last_attempt_ms: r.get(6)?,
            outcome: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The numbers of the oldest pending call-backs, at most `limit`, oldest first.
pub fn next_to_call(conn: &Connection, limit: usize) -> Result<Vec<CallbackTarget>, StoreError> {
    let sql = format!(
        "SELECT cb.id, cb.number FROM callbacks cb WHERE {PENDING} ORDER BY cb.at_ms, cb.id LIMIT ?1"
    );
    let mut stmt = conn.prepare(&sql)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows =
        stmt.query_map(params![limit], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (id, number) = row?;
        if let Some(number) = CallerNumber::normalise(&number) {
            out.push(CallbackTarget { id, number });
        }
    }
    Ok(out)
}

/// The pending call-back `id` with its number; `None` when there is none such (unknown, purged,
/// or answered already).
pub fn target(conn: &Connection, id: i64) -> Result<Option<CallbackTarget>, StoreError> {
    let sql = format!("SELECT cb.number FROM callbacks cb WHERE cb.id = ?1 AND {PENDING}");
    let number: Option<String> = conn.query_row(&sql, params![id], |r| r.get(0)).optional()?;
    Ok(number.and_then(|n| CallerNumber::normalise(&n)).map(|number| CallbackTarget { id, number }))
}
