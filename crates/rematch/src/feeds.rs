//! Advisory feeds: the sources of the configuration's `advisories.sources` (URLs serving an
//! OSV `all.zip`, local zips, directories of `.json` records), each checked every
//! `advisories.every` and imported when it changed; the import's rematch follows as for an
//! upload.
//!
//! A check costs one conditional request when nothing changed: the `ETag` and
//! `Last-Modified` of the last full response go back as `If-None-Match` and
//! `If-Modified-Since`, and a `304 Not Modified` ends it (a local source compares its size
//! and modification times instead). Replicas share the schedule through the store: a check
//! is claimed by moving the feed's next check forward in one statement, so one replica
//! checks a feed when it is due and the others skip it. A failed check is retried after
//! [`RETRY`] (or `every`, when shorter), with the reason kept as the feed's status.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use scanplane_core::clock::Clock;
use scanplane_core::secret::mask;
use scanplane_store::{FeedState, Store, StoreError};
use tokio::sync::watch;

use crate::import::{import, Records};

/// Wait before a failed check is tried again.
pub const RETRY: Duration = Duration::from_secs(300);
/// Largest feed download: osv.dev's largest per-ecosystem exports are a few hundred MB.
pub const MAX_FEED_BYTES: u64 = 1024 * 1024 * 1024;
/// Longest a feed request may take, download included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
/// Download progress is logged every this many bytes.
const PROGRESS_EVERY: u64 = 64 * 1024 * 1024;

/// Syncs the configured feeds.
pub struct FeedSync {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub sources: Vec<String>,
    /// How often each feed is checked.
    pub every: Duration,
    pub client: reqwest::Client,
}

/// What fetching a source found.
enum Fetched {
    NotModified,
    Changed {
        records: Records,
        etag: Option<String>,
        last_modified: Option<String>,
    },
}

fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

fn after(now: scanplane_core::Timestamp, wait: Duration) -> scanplane_core::Timestamp {
    now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX)
}

/// The client feeds are fetched with.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("scanplane/", env!("CARGO_PKG_VERSION")))
        .build()
}

impl FeedSync {
    /// Checks due feeds until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let poll = self.every.min(Duration::from_secs(30));
        loop {
            if *shutdown.borrow() {
                return;
            }
            for source in &self.sources {
                if let Err(e) = self.check(source).await {
                    tracing::warn!(source = %mask(source), error = %e, "advisory feed check failed; retrying");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Checks `source` when it is due. Returns its state after the check, or `None` when it
    /// was not due (checked lately, by this replica or another).
    pub async fn check(&self, real: &str) -> Result<Option<FeedState>, StoreError> {
        let now = self.clock.now();
        // A mirror's URL may carry its credentials (`https://user:password@host/...`,
        // `?token=...`): they are used for the request only, and the feed is known, stored,
        // listed and logged by its masked form.
        let shown = mask(real).into_owned();
        let source = &shown;
        let Some(mut state) = self
            .store
            .claim_feed_check(source, after(now, self.every), now)
            .await?
        else {
            return Ok(None);
        };
        tracing::info!(source = %source, "checking advisory feed");
        let fetched = if is_url(source) {
            self.fetch(real, source, &state).await
        } else {
            local(real, &state).map_err(|e| mask(&e).into_owned())
        };
        state.checked_at = Some(now);
        let next = match fetched {
            Ok(Fetched::NotModified) => {
                tracing::info!(source = %source, "advisory feed not modified");
                state.status = Some("not modified".into());
                after(now, self.every)
            }
            Ok(Fetched::Changed {
                records,
                etag,
                last_modified,
            }) => {
                match import(&self.store, &self.clock, records, &format!("feed {source}")).await {
                    Ok(done) => {
                        state.status = Some(format!(
                            "imported: {} added, {} modified, {} unchanged, {} rejected",
                            done.counts.added,
                            done.counts.modified,
                            done.counts.unchanged,
                            done.rejected
                        ));
                        state.import_id = Some(done.id);
                        state.etag = etag;
                        state.last_modified = last_modified;
                        after(now, self.every)
                    }
                    Err(e) => {
                        tracing::warn!(source = %source, error = %e, "advisory feed import failed");
                        state.status = Some(format!("failed: {e}"));
                        after(now, self.every.min(RETRY))
                    }
                }
            }
            Err(why) => {
                tracing::warn!(source = %source, reason = %why, "advisory feed check failed");
                state.status = Some(format!("failed: {why}"));
                after(now, self.every.min(RETRY))
            }
        };
        self.store.record_feed_check(&state, next).await?;
        Ok(Some(state))
    }

    /// A conditional GET, the body spooled to a temporary file.
    /// `real` is the URL requested, `url` its masked form, the only one in messages (a
    /// client error's text names the URL it was for, so it is masked as well).
    async fn fetch(&self, real: &str, url: &str, state: &FeedState) -> Result<Fetched, String> {
        use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
        let mut request = self.client.get(real);
        if let Some(etag) = &state.etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        if let Some(last_modified) = &state.last_modified {
            request = request.header(IF_MODIFIED_SINCE, last_modified);
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| format!("GET {url}: {}", mask(&e.to_string())))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        if !status.is_success() {
            return Err(format!("GET {url}: HTTP {status}"));
        }
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(String::from)
        };
        let etag = header(ETAG);
        let last_modified = header(LAST_MODIFIED);
        let mut file = tempfile::tempfile().map_err(|e| format!("temporary file: {e}"))?;
        let mut size: u64 = 0;
        let mut logged: u64 = 0;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("GET {url}: body: {}", mask(&e.to_string())))?
        {
            size += chunk.len() as u64;
            if size > MAX_FEED_BYTES {
                return Err(format!(
                    "GET {url}: larger than the {} MiB limit of a feed",
                    MAX_FEED_BYTES / (1024 * 1024)
                ));
            }
            file.write_all(&chunk)
                .map_err(|e| format!("writing the download of {url}: {e}"))?;
            if size - logged >= PROGRESS_EVERY {
                logged = size;
                tracing::info!(source = %url, mib = size / (1024 * 1024), "advisory feed download progress");
            }
        }
        tracing::info!(source = %url, bytes = size, "advisory feed downloaded");
        Ok(Fetched::Changed {
            records: Records::Zip(file),
            etag,
            last_modified,
        })
    }
}

/// A local zip or directory, "modified" when its validator (size and modification time of
/// the file, or of every `.json` record of the directory) differs from the last one.
fn local(source: &str, state: &FeedState) -> Result<Fetched, String> {
    let path = Path::new(source);
    let meta = std::fs::metadata(path).map_err(|e| format!("{source}: {e}"))?;
    let stamp = |m: &std::fs::Metadata| {
        let modified = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        (m.len(), modified)
    };
    let validator = if meta.is_dir() {
        let mut count: u64 = 0;
        let mut bytes: u64 = 0;
        let mut newest: u128 = 0;
        for entry in std::fs::read_dir(path).map_err(|e| format!("{source}: {e}"))? {
            let entry = entry.map_err(|e| format!("{source}: {e}"))?;
            if entry.path().extension().is_some_and(|e| e == "json") {
                let m = entry.metadata().map_err(|e| format!("{source}: {e}"))?;
                let (len, modified) = stamp(&m);
                count += 1;
                bytes = bytes.saturating_add(len);
                newest = newest.max(modified);
            }
        }
        format!("dir:{count}:{bytes}:{newest}")
    } else {
        let (len, modified) = stamp(&meta);
        format!("file:{len}:{modified}")
    };
    if state.etag.as_deref() == Some(validator.as_str()) {
        return Ok(Fetched::NotModified);
    }
    let records = if meta.is_dir() {
        Records::Dir(path.to_path_buf())
    } else {
        Records::Zip(std::fs::File::open(path).map_err(|e| format!("{source}: {e}"))?)
    };
    Ok(Fetched::Changed {
        records,
        etag: Some(validator),
        last_modified: None,
    })
}
