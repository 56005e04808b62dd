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

#[cfg(test)]
mod tests {
    use super::*;

    /// Records with three abandoned calls kept for a call-back (at 3, 1 and 2 s), the second
    /// from a caller with a pseudonym.
    fn records() -> Connection {
        let mut conn = crate::store::open_in_memory().unwrap();
        crate::store::migrate(
            &mut conn,
            super::super::schema::COMPONENT,
            super::super::schema::STEPS,
        )
        .unwrap();
        for (call, caller) in [(1, None), (2, Some("ab".repeat(32))), (3, None)] {
            conn.execute(
                "INSERT INTO calls (id, offered_ms, phase, lane, caller) VALUES (?1, 0, 'queue', 'normal', ?2)",
                params![call, caller],
            )
            .unwrap();
        }
        for (call, at, number) in
            [(1, 3_000, "+84901234567"), (2, 1_000, "+84912345678"), (3, 2_000, "+842963852123")]
        {
            conn.execute(
                "INSERT INTO callbacks (call, at_ms, number) VALUES (?1, ?2, ?3)",
                params![call, at, number],
            )
            .unwrap();
        }
        conn
    }

    #[test]
    fn pending_is_oldest_first_without_numbers_and_an_answered_one_is_no_longer_pending() {
        let conn = records();
        let list = pending(&conn, 10).unwrap();
        assert_eq!(list.iter().map(|v| v.id).collect::<Vec<_>>(), [2, 3, 1]);
        assert_eq!(list[0].caller.as_deref(), Some("#abababab"));
        assert_eq!(list[0].last_digits, "78");
        assert!(!format!("{list:?}").contains("912345678"));
        let next = next_to_call(&conn, 2).unwrap();
        assert_eq!(next.iter().map(|t| t.id).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(next[0].number.expose(), "+84912345678");
        // A busy attempt keeps it pending; an answered one (number blanked) takes it off.
        conn.execute(
            "UPDATE callbacks SET attempts = 1, outcome = 'busy', last_attempt_ms = 9 WHERE id = 2",
            [],
        )
        .unwrap();
        assert_eq!(pending(&conn, 10).unwrap()[0].outcome.as_deref(), Some("busy"));
        conn.execute("UPDATE callbacks SET outcome = 'answered', number = '' WHERE id = 3", [])
            .unwrap();
        assert_eq!(pending(&conn, 10).unwrap().iter().map(|v| v.id).collect::<Vec<_>>(), [2, 1]);
        assert!(target(&conn, 3).unwrap().is_none(), "answered: nothing to dial");
        assert!(target(&conn, 9).unwrap().is_none());
        assert_eq!(target(&conn, 1).unwrap().map(|t| t.id), Some(1));
    }
}
