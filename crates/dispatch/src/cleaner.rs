//! The retention cleaner: deletes data older than each tenant's retention (default 90
//! days) in small batches, pausing between them so that the API is never locked out.

use std::sync::Arc;
use std::time::Duration;

use scanplane_core::clock::Clock;
use scanplane_store::RetentionStore;
use tokio::sync::watch;

/// Tunables of the cleaner.
#[derive(Debug, Clone)]
pub struct CleanerConfig {
    /// Retention of tenants without their own (`SCANPLANE_RETENTION`).
    pub default_retention: Duration,
    /// How often a cleaning pass starts.
    pub interval: Duration,
    /// Rows per batch.
    pub batch: u32,
    /// Pause between batches.
    pub pause: Duration,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        Self {
            default_retention: Duration::from_secs(90 * 86_400),
            interval: Duration::from_secs(3600),
            batch: 5000,
            pause: Duration::from_millis(50),
        }
    }
}

/// Runs cleaning passes until `shutdown` turns true.
pub async fn run(
    store: Arc<dyn RetentionStore>,
    clock: Arc<dyn Clock>,
    config: CleanerConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let mut removed = 0u64;
        loop {
            if *shutdown.borrow() {
                return;
            }
            match store
                .clean_expired_batch(clock.now(), config.default_retention, config.batch)
                .await
            {
                Ok(0) => break,
                Ok(n) => {
                    removed += n;
                    tokio::time::sleep(config.pause).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cleaning batch failed; retrying next pass");
                    break;
                }
            }
        }
        if removed > 0 {
            tracing::info!(removed, "expired scans and findings deleted");
        }
        tokio::select! {
            _ = tokio::time::sleep(config.interval) => {}
            _ = shutdown.changed() => {}
        }
    }
}
