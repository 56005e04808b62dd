//! The registrar's bindings in SQLite, so that a restart keeps agents logged in (RFC 3261 §10.3
//! leaves storage to the registrar). Blocking I/O, called from the runtime's store thread.
//!
//! The registrar reports which agents' bindings changed; each change rewrites that agent's rows
//! in one transaction, so the file always holds a whole, consistent set per agent. Times are
//! stored as UNIX milliseconds and converted through a [`WallClock`] reading, since the core's
//! monotonic instants mean nothing to the next process.

use std::net::SocketAddr;

use rusqlite::{Connection, Transaction, params};

use super::{StoreError, WallClock, migrate};
use crate::sip::message::Uri;
use crate::sip::registrar::Binding;
use crate::sip::transport::{Flow, Transport};

/// The component name in `schema_versions`.
pub const COMPONENT: &str = "bindings";

/// The schema, one step per version (append-only).
const MIGRATIONS: &[&str] = &["CREATE TABLE bindings (
         agent TEXT NOT NULL,
         user TEXT NOT NULL,
         contact TEXT NOT NULL,
         transport TEXT NOT NULL,
         local_addr TEXT NOT NULL,
         remote_addr TEXT NOT NULL,
         expires_at_ms INTEGER NOT NULL,
         registered_at_ms INTEGER NOT NULL,
         instance TEXT,
         reg_id INTEGER,
         q INTEGER,
         call_id TEXT NOT NULL,
         cseq INTEGER NOT NULL
     );
     CREATE INDEX bindings_agent ON bindings (agent);"];

/// Creates or upgrades the bindings table.
pub fn prepare(conn: &mut Connection) -> Result<(), StoreError> {
    migrate(conn, COMPONENT, MIGRATIONS).map(|_| ())
}

/// Replaces every stored binding of `agent` with `bindings` (none: the agent is logged out).
pub fn replace_agent(
    tx: &Transaction<'_>,
    clock: &WallClock,
    agent: &str,
    bindings: &[Binding],
) -> Result<(), StoreError> {
    tx.execute("DELETE FROM bindings WHERE agent = ?1", params![agent])?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO bindings (agent, user, contact, transport, local_addr, remote_addr,
             expires_at_ms, registered_at_ms, instance, reg_id, q, call_id, cseq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?;
    for b in bindings {
        insert.execute(params![
            b.agent,
            b.user,
            b.contact.as_str(),
            b.flow.transport.via_name(),
            b.flow.local.to_string(),
            b.flow.remote.to_string(),
            clock.to_unix_ms(b.expires_at),
            clock.to_unix_ms(b.registered_at),
            b.instance,
            b.reg_id,
            b.q,
            b.call_id,
            b.cseq,
        ])?;
    }
    Ok(())
}

/// Every stored binding that still reads as one (a row a newer or damaged writer left that does
/// not parse is skipped: the softphone re-registers within its expiry anyway).
pub fn load(conn: &Connection, clock: &WallClock) -> Result<Vec<Binding>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT agent, user, contact, transport, local_addr, remote_addr, expires_at_ms,
             registered_at_ms, instance, reg_id, q, call_id, cseq
         FROM bindings ORDER BY agent, registered_at_ms",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Row {
            agent: r.get(0)?,
            user: r.get(1)?,
            contact: r.get(2)?,
            transport: r.get(3)?,
            local: r.get(4)?,
            remote: r.get(5)?,
            expires_at_ms: r.get(6)?,
            registered_at_ms: r.get(7)?,
            instance: r.get(8)?,
            reg_id: r.get(9)?,
            q: r.get(10)?,
            call_id: r.get(11)?,
            cseq: r.get(12)?,
        })
    })?;
    let mut out = Vec::new();
    for row in rows {
        if let Some(b) = row?.into_binding(clock) {
            out.push(b);
        }
    }
    Ok(out)
}

/// A row as stored, before it is checked.
struct Row {
    agent: String,
    user: String,
    contact: String,
    transport: String,
    local: String,
    remote: String,
    expires_at_ms: i64,
    registered_at_ms: i64,
    instance: Option<String>,
    reg_id: Option<u32>,
    q: Option<u16>,
    call_id: String,
    cseq: u32,
}

impl Row {
    fn into_binding(self, clock: &WallClock) -> Option<Binding> {
        let transport = match self.transport.as_str() {
            "UDP" => Transport::Udp,
            "TCP" => Transport::Tcp,
            _ => return None,
        };
        let local: SocketAddr = self.local.parse().ok()?;
        let remote: SocketAddr = self.remote.parse().ok()?;
        Some(Binding {
            agent: self.agent,
            user: self.user,
            contact: Uri::parse(&self.contact).ok()?,
            flow: Flow { transport, local, remote },
            expires_at: clock.from_unix_ms(self.expires_at_ms),
            registered_at: clock.from_unix_ms(self.registered_at_ms),
            instance: self.instance,
            reg_id: self.reg_id,
            q: self.q,
            call_id: self.call_id,
            cseq: self.cseq,
        })
    }
}
