//! [`RetentionStore`]: deletes expired data in bounded batches, each statement its own short
//! transaction, so the API is never locked out for longer than one batch.

use async_trait::async_trait;
use scanplane_core::scan::ScanStatus;
use scanplane_core::Timestamp;

use super::{status_list, SqlStore};
use crate::rows::ms;
use crate::{RetentionStore, StoreError};

/// Ended scans older than their tenant's retention; `$1` now, `$2` the default retention.
fn expired_scans_sql() -> String {
    let terminal: Vec<ScanStatus> = ScanStatus::ALL
        .into_iter()
        .filter(|s| s.is_terminal())
        .collect();
    format!(
        "SELECT s.id FROM scans s JOIN tenants t ON t.id = s.tenant_id
         WHERE s.status IN ({})
           AND s.created_at < $1 - COALESCE(t.retention_days * 86400000, $2)",
        status_list(&terminal)
    )
}

/// Identities fixed before their tenant's retention cutoff, `$3` at a time.
const EXPIRED_IDENTITIES: &str = "DELETE FROM finding_identities WHERE id IN (
       SELECT i.id FROM finding_identities i JOIN tenants t ON t.id = i.tenant_id
       WHERE i.status = 'fixed'
         AND i.fixed_at < $1 - COALESCE(t.retention_days * 86400000, $2)
       LIMIT $3)";

#[async_trait]
impl RetentionStore for SqlStore {
    async fn clean_expired_batch(
        &self,
        now: Timestamp,
        default_retention: std::time::Duration,
        batch: u32,
    ) -> Result<u64, StoreError> {
        let default_ms = i64::try_from(default_retention.as_millis()).unwrap_or(i64::MAX);
        let expired = expired_scans_sql();
        let findings = format!(
            "DELETE FROM findings WHERE id IN (
               SELECT f.id FROM findings f WHERE f.scan_id IN ({expired}) LIMIT $3)"
        );
        let scans = format!("DELETE FROM scans WHERE id IN ({expired} LIMIT $3)");
        let limit = i64::from(batch.max(1));
        // Findings first, then their scans, then identities: each step only once the one
        // before has nothing left.
        for sql in [findings.as_str(), scans.as_str(), EXPIRED_IDENTITIES] {
            let n = in_tx!(self, |tx| {
                let n = sqlx::query(sql)
                    .bind(ms(now))
                    .bind(default_ms)
                    .bind(limit)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                Ok(n)
            })?;
            if n > 0 {
                return Ok(n);
            }
        }
        Ok(0)
    }
}
