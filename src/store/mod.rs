//! The SQLite store: opening the database file (WAL, foreign keys, a busy timeout) and versioned
//! migrations per component, which each table's owner declares as a list of SQL steps. Blocking
//! I/O: the runtime calls it from a blocking thread ([`crate::runtime::store`]), never from the
//! async core.
//!
//! Each component (registrar bindings here, call records later) keeps its own schema version in
//! one `schema_versions` row, so components migrate independently and a database written by a
//! newer tongdai is refused instead of being misread.

pub mod bindings;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

/// Why the store cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused an operation.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The folder for the database file could not be made.
    #[error("cannot create {path}: {source}")]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The database holds a schema newer than this build knows (a downgrade): refusing beats
    /// misreading it.
    #[error("{component} schema version {found} is newer than this build's {known}")]
    NewerSchema {
        /// The component.
        component: String,
        /// Its version in the file.
        found: u32,
        /// The last version this build knows.
        known: u32,
    },
}

/// Opens (creating it and its folder when missing) the database at `path`, in WAL mode so that
/// readers never wait for the writer, with a busy timeout for the rare concurrent opener.
pub fn open(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|source| StoreError::CreateDir { path: dir.to_path_buf(), source })?;
    }
    let conn = Connection::open(path)?;
    configure(&conn)?;
    Ok(conn)
}

/// An in-memory database with the same settings (tests).
pub fn open_in_memory() -> Result<Connection, StoreError> {
    let conn = Connection::open_in_memory()?;
    configure(&conn)?;
    Ok(conn)
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(Duration::from_secs(5))?;
    // `journal_mode` answers with a row, so it is read rather than executed.
    let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    // WAL with NORMAL loses at most the last transactions on power loss, never consistency.
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
    Ok(())
}

/// Brings `component`'s tables to the last of `steps` (step `i` makes version `i + 1`), each step
/// in its own transaction with the version it reaches. Returns the version now in force. Steps
/// are append-only: a released step is never edited, a change is a new step.
pub fn migrate(conn: &mut Connection, component: &str, steps: &[&str]) -> Result<u32, StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_versions (
             component TEXT PRIMARY KEY NOT NULL,
             version INTEGER NOT NULL
         )",
    )?;
    let known = u32::try_from(steps.len()).unwrap_or(u32::MAX);
    let found: u32 = conn
        .query_row(
            "SELECT version FROM schema_versions WHERE component = ?1",
            params![component],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
    if found > known {
        return Err(StoreError::NewerSchema { component: component.to_owned(), found, known });
    }
    for (i, step) in steps.iter().enumerate().skip(found as usize) {
        let version = i as u32 + 1;
        let tx = conn.transaction()?;
        tx.execute_batch(step)?;
        tx.execute(
            "INSERT INTO schema_versions (component, version) VALUES (?1, ?2)
             ON CONFLICT (component) DO UPDATE SET version = excluded.version",
            params![component, version],
        )?;
        tx.commit()?;
    }
    Ok(known)
}

/// A pair of readings of the monotonic and the wall clock taken together: converts the core's
/// `Instant`s to UNIX milliseconds for the file, and back after a restart. The runtime reads the
/// clocks; the store only converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallClock {
    /// The monotonic reading.
    pub instant: Instant,
    /// The wall-clock reading at the same moment.
    pub wall: SystemTime,
}

impl WallClock {
    /// `at` as milliseconds since the UNIX epoch.
    pub fn to_unix_ms(&self, at: Instant) -> i64 {
        let wall = if at >= self.instant {
            self.wall.checked_add(at - self.instant)
        } else {
            self.wall.checked_sub(self.instant - at)
        };
        let since = wall.unwrap_or(self.wall).duration_since(UNIX_EPOCH).unwrap_or_default();
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    }

    /// UNIX milliseconds as an `Instant` on this process's monotonic clock; times before what the
    /// clock can express (before boot) come out as the earliest it can.
    pub fn from_unix_ms(&self, ms: i64) -> Instant {
        let then = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
        match then.duration_since(self.wall) {
            Ok(ahead) => self.instant.checked_add(ahead).unwrap_or(self.instant),
            Err(behind) => self.instant.checked_sub(behind.duration()).unwrap_or(self.instant),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_run_once_in_order_and_refuse_newer_files() {
        let mut conn = open_in_memory().unwrap();
        let steps = ["CREATE TABLE t (a INTEGER)", "ALTER TABLE t ADD COLUMN b TEXT"];
        assert_eq!(migrate(&mut conn, "demo", &steps[..1]).unwrap(), 1);
        assert_eq!(migrate(&mut conn, "demo", &steps).unwrap(), 2);
        // Running again applies nothing (the ALTER would fail if it ran twice).
        assert_eq!(migrate(&mut conn, "demo", &steps).unwrap(), 2);
        conn.execute("INSERT INTO t (a, b) VALUES (1, 'x')", []).unwrap();
        // Another component has its own version.
        assert_eq!(migrate(&mut conn, "other", &["CREATE TABLE u (a)"]).unwrap(), 1);
        let err = migrate(&mut conn, "demo", &steps[..1]).unwrap_err();
        assert!(matches!(err, StoreError::NewerSchema { found: 2, known: 1, .. }), "{err}");
    }

    #[test]
    fn wall_clock_round_trips_to_the_millisecond() {
        let clock = WallClock {
            instant: crate::test_epoch() + Duration::from_secs(100_000),
            wall: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        };
        let later = clock.instant + Duration::from_millis(600_250);
        let ms = clock.to_unix_ms(later);
        assert_eq!(ms, 1_800_000_000_000 + 600_250);
        assert_eq!(clock.from_unix_ms(ms), later);
        let earlier = clock.instant - Duration::from_secs(30);
        assert_eq!(clock.from_unix_ms(clock.to_unix_ms(earlier)), earlier);
    }
}
