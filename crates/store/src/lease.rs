//! Leases: which process may request a certificate right now.
//!
//! On SQLite every process shares one data directory, whose lock files (taken by the caller)
//! already serialise requests, so a lease is granted at once. On PostgreSQL, hubs on other
//! machines share the database: a lease is a session-level advisory lock held on a connection
//! of its own, which the server releases when the lease is dropped, or when the process dies
//! and its connection goes with it.

use sqlx::AnyConnection;

use crate::{Backend, Error, Store};

/// The right to request one certificate, held until dropped.
#[derive(Debug)]
pub struct CertLease {
    // In a mutex only so a lease can be shared between threads; nothing locks it.
    _conn: std::sync::Mutex<Option<AnyConnection>>,
}

impl Store {
    /// Takes the lease on certificate `name`, or `None` while another holder has it.
    pub async fn try_lease_cert(&self, name: &str) -> Result<Option<CertLease>, Error> {
        if self.backend == Backend::Sqlite {
            return Ok(Some(CertLease { _conn: std::sync::Mutex::new(None) }));
        }
        // Taken out of the pool: the lock lives exactly as long as this connection.
        let mut conn = self.pool.acquire().await?.detach();
        let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(lock_key(name))
            .fetch_one(&mut conn)
            .await?;
        Ok(held.then_some(CertLease { _conn: std::sync::Mutex::new(Some(conn)) }))
    }
}

/// The advisory lock key of a certificate: FNV-1a of a prefixed name.
fn lock_key(name: &str) -> i64 {
    let hash = format!("certhub-cert:{name}")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    i64::from_ne_bytes(hash.to_ne_bytes())
}
