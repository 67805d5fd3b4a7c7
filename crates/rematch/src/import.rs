//! Importing OSV advisories into the store, from an `all.zip` (an upload, a downloaded feed,
//! a local file) or a directory of `.json` records: what the upload endpoint and the feed
//! sync share.
//!
//! Records are read one at a time on a blocking thread and stored in batches of [`BATCH`],
//! each batch one transaction; the import is finished (and its rematch due) only after the
//! last batch committed. A crash mid-import leaves an unfinished import with the batches
//! stored so far; importing the same source again stores the rest and counts the others
//! unchanged.

use std::path::PathBuf;
use std::sync::Arc;

use scanplane_core::clock::Clock;
use scanplane_store::{AdvisoryImport, NewAdvisory, Store, StoreError};
use tokio::sync::mpsc;

/// Advisories stored per transaction.
pub const BATCH: usize = 500;

/// Where the records are.
pub enum Records {
    /// An OSV `all.zip` (a zip is read from its end, so it must be a file).
    Zip(std::fs::File),
    /// A directory of `<ID>.json` records (not recursive, as osv.dev exports are flat).
    Dir(PathBuf),
}

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The source as a whole cannot be read: not a zip, a zip bomb, a missing directory.
    #[error("{0}")]
    Unreadable(String),
    #[error("advisory reader stopped: {0}")]
    Reader(String),
}

/// The store's record of an advisory: its keys are what rematches look for.
pub fn new_advisory(bytes: Vec<u8>, a: &scanplane_osv::Advisory) -> NewAdvisory {
    let mut keys: Vec<(String, String)> = a
        .affected
        .iter()
        .filter_map(|af| af.package.as_ref())
        .map(|p| scanplane_vuln::key_of(&p.ecosystem, &p.name))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    NewAdvisory {
        id: a.id.clone(),
        modified: a.modified.clone(),
        withdrawn: a.withdrawn.clone(),
        aliases: a.aliases.clone(),
        document: bytes,
        keys,
    }
}

/// Imports every record of `records` as one import recorded under `source`; records that
/// are not OSV JSON are refused (counted, first reasons kept), not fatal.
pub async fn import(
    store: &Arc<dyn Store>,
    clock: &Arc<dyn Clock>,
    records: Records,
    source: &str,
) -> Result<AdvisoryImport, ImportError> {
    let import_id = store.begin_import(source, clock.now()).await?;
    tracing::info!(import_id = %import_id, source, "advisory import started");
    let (tx, mut rx) = mpsc::channel::<NewAdvisory>(BATCH * 2);
    let reader = tokio::task::spawn_blocking(move || {
        let mut on = |bytes, advisory| tx.blocking_send(new_advisory(bytes, &advisory)).is_ok();
        match records {
            Records::Zip(mut file) => {
                use std::io::Seek;
                file.rewind()
                    .map_err(|e| scanplane_osv::OsvError::Zip(e.to_string()))?;
                scanplane_osv::visit_zip(
                    std::io::BufReader::new(file),
                    scanplane_osv::ZipLimits::default(),
                    &mut on,
                )
            }
            Records::Dir(dir) => scanplane_osv::visit_dir(&dir, &mut on),
        }
    });
    let mut batch = Vec::with_capacity(BATCH);
    let mut stored: u64 = 0;
    while let Some(a) = rx.recv().await {
        batch.push(a);
        if batch.len() >= BATCH {
            store
                .import_advisories(&import_id, &batch, clock.now())
                .await?;
            stored += batch.len() as u64;
            batch.clear();
            tracing::info!(import_id = %import_id, stored, "advisory import progress");
        }
    }
    if !batch.is_empty() {
        store
            .import_advisories(&import_id, &batch, clock.now())
            .await?;
    }
    let rejected = match reader.await {
        Ok(Ok(rejected)) => rejected,
        Ok(Err(e)) => {
            let reasons = [e.to_string()];
            store
                .finish_import(&import_id, 1, &reasons, clock.now())
                .await?;
            return Err(ImportError::Unreadable(e.to_string()));
        }
        Err(e) => return Err(ImportError::Reader(e.to_string())),
    };
    let reasons: Vec<String> = rejected
        .iter()
        .map(|r| format!("{}: {}", r.source, r.reason))
        .collect();
    let done = store
        .finish_import(&import_id, rejected.len() as u64, &reasons, clock.now())
        .await?;
    tracing::info!(import_id = %import_id, added = done.counts.added, modified = done.counts.modified, unchanged = done.counts.unchanged, rejected = done.rejected, changed_keys = done.changed_keys, "advisory import finished");
    Ok(done)
}
