//! Which driver errors mean the database is full or unavailable: both are answered as
//! retriable by the API, and neither may be mistaken for a bug in a query.

use std::io::ErrorKind;

use sqlx::sqlite::SqliteError;

use crate::StoreError;

/// What a database error code says about the database rather than about the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Full,
    Unavailable,
}

/// SQLite reports (extended) result codes as decimal numbers.
fn sqlite_fault(code: &str) -> Option<Fault> {
    let extended = code.parse::<i32>().ok()?;
    // The primary result code is the low byte of an extended one.
    match extended & 0xff {
        13 => Some(Fault::Full), // SQLITE_FULL
        // SQLITE_BUSY, SQLITE_LOCKED (after the busy timeout), SQLITE_NOMEM,
        // SQLITE_READONLY, SQLITE_IOERR, SQLITE_CANTOPEN.
        5 | 6 | 7 | 8 | 10 | 14 => Some(Fault::Unavailable),
        _ => None,
    }
}

/// PostgreSQL reports SQLSTATEs.
fn postgres_fault(code: &str) -> Option<Fault> {
    match code {
        "53100" => Some(Fault::Full), // disk_full
        // Insufficient resources other than disk (memory, connections, limits), and a
        // read-only transaction (a standby, or `default_transaction_read_only`).
        c if c.starts_with("53") => Some(Fault::Unavailable),
        "25006" => Some(Fault::Unavailable),
        // Connection exceptions; operator intervention (shutdown, cannot connect now).
        c if c.starts_with("08") || c.starts_with("57P") => Some(Fault::Unavailable),
        _ => None,
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        let fault = match &e {
            sqlx::Error::Database(db) => {
                let sqlite = db.try_downcast_ref::<SqliteError>().is_some();
                db.code().and_then(|code| {
                    if sqlite {
                        sqlite_fault(&code)
                    } else {
                        postgres_fault(&code)
                    }
                })
            }
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
                Some(Fault::Unavailable)
            }
            sqlx::Error::Io(io) if io.kind() == ErrorKind::StorageFull => Some(Fault::Full),
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) => Some(Fault::Unavailable),
            _ => None,
        };
        match fault {
            Some(Fault::Full) => StoreError::StorageFull(e.to_string()),
            Some(Fault::Unavailable) => StoreError::Unavailable(e.to_string()),
            None => StoreError::Database(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_codes() {
        assert_eq!(sqlite_fault("13"), Some(Fault::Full));
        assert_eq!(sqlite_fault("8"), Some(Fault::Unavailable));
        // SQLITE_READONLY_DBMOVED, SQLITE_IOERR_WRITE, SQLITE_BUSY_SNAPSHOT: extended codes.
        assert_eq!(sqlite_fault("1032"), Some(Fault::Unavailable));
        assert_eq!(sqlite_fault("778"), Some(Fault::Unavailable));
        assert_eq!(sqlite_fault("517"), Some(Fault::Unavailable));
        // SQLITE_CONSTRAINT_UNIQUE and SQLITE_ERROR are about the query.
        assert_eq!(sqlite_fault("2067"), None);
        assert_eq!(sqlite_fault("1"), None);
    }

    #[test]
    fn postgres_codes() {
        assert_eq!(postgres_fault("53100"), Some(Fault::Full));
        assert_eq!(postgres_fault("53300"), Some(Fault::Unavailable));
        assert_eq!(postgres_fault("53200"), Some(Fault::Unavailable));
        assert_eq!(postgres_fault("25006"), Some(Fault::Unavailable));
        assert_eq!(postgres_fault("08006"), Some(Fault::Unavailable));
        assert_eq!(postgres_fault("57P01"), Some(Fault::Unavailable));
        assert_eq!(postgres_fault("23505"), None);
        assert_eq!(postgres_fault("22021"), None);
        assert_eq!(postgres_fault("42P01"), None);
    }

    #[test]
    fn pool_and_connection_failures_are_unavailable() {
        assert!(matches!(
            StoreError::from(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
        let refused = std::io::Error::from(ErrorKind::ConnectionRefused);
        assert!(matches!(
            StoreError::from(sqlx::Error::Io(refused)),
            StoreError::Unavailable(_)
        ));
        let full = std::io::Error::from(ErrorKind::StorageFull);
        assert!(matches!(
            StoreError::from(sqlx::Error::Io(full)),
            StoreError::StorageFull(_)
        ));
        assert!(matches!(
            StoreError::from(sqlx::Error::RowNotFound),
            StoreError::Database(_)
        ));
    }
}
