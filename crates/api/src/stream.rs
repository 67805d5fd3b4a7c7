//! Response bodies written while they are sent: an export is produced by a task that pages
//! through the store and writes into a [`Sink`]; the sink hands the body ~64 KiB chunks
//! through a channel of two, so a slow client slows the producer down instead of making the
//! server buffer the export. Memory per export is one page of rows plus a few chunks,
//! whatever the export's size.
//!
//! A failure after the first byte cannot change the status any more: it is logged with the
//! request id and the body is aborted, so the client sees a broken transfer, never a
//! truncated document that looks complete.

use std::future::Future;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use scanplane_store::{DiffList, DiffSummary, FindingFilter, Store, StoredFinding};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::error::ApiError;

/// A chunk is sent once the buffer holds this much.
const CHUNK: usize = 64 * 1024;

/// Rows fetched from the store per query while exporting.
pub const PAGE: u32 = 1000;

/// The client went away: the producer stops.
#[derive(Debug)]
pub struct Gone;

/// Where a streamed body is written.
pub struct Sink {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl Sink {
    /// The buffer to write into; [`Sink::flush_if_full`] sends it on.
    pub fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Sends the buffer when it holds a chunk; waits while the client is behind.
    pub async fn flush_if_full(&mut self) -> Result<(), Gone> {
        if self.buf.len() >= CHUNK {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Gone> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(CHUNK + CHUNK / 4),
        ));
        self.tx.send(Ok(chunk)).await.map_err(|_| Gone)
    }
}

/// Why a producer stopped early.
pub enum Stop {
    Gone,
    Failed(ApiError),
}

impl From<Gone> for Stop {
    fn from(_: Gone) -> Self {
        Stop::Gone
    }
}

impl From<scanplane_store::StoreError> for Stop {
    fn from(e: scanplane_store::StoreError) -> Self {
        Stop::Failed(e.into())
    }
}

/// A `200` response of `content_type` whose body `produce` writes into its sink.
pub fn streamed<F>(content_type: &'static str, produce: impl FnOnce(Sink) -> F) -> Response
where
    F: Future<Output = Result<Sink, Stop>> + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    let failed = tx.clone();
    let request_id = crate::request_id::current();
    let work = produce(Sink {
        tx,
        buf: Vec::with_capacity(CHUNK + CHUNK / 4),
    });
    let task = async move {
        match work.await {
            Ok(mut sink) => {
                let _ = sink.flush().await;
            }
            Err(Stop::Gone) => tracing::debug!("client left during an export"),
            Err(Stop::Failed(e)) => {
                tracing::error!(
                    request_id = request_id.as_deref().unwrap_or("-"),
                    error = %e.message,
                    detail = ?e,
                    "export failed after its first byte; aborting the body"
                );
                let _ = failed
                    .send(Err(std::io::Error::other("export failed")))
                    .await;
            }
        }
    };
    tokio::spawn(task.instrument(tracing::Span::current()));
    let body = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    (
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(body),
    )
        .into_response()
}

/// The findings of one scan, page by page in id order, from a cursor on.
pub struct FindingPages {
    pub store: std::sync::Arc<dyn Store>,
    pub tenant: Option<String>,
    pub scan_id: String,
    pub filter: FindingFilter,
    /// Stop after this id (the last one an earlier pass saw), so that two passes over a
    /// scan that is still receiving findings see the same rows.
    pub until: Option<String>,
    done: bool,
}

impl FindingPages {
    pub fn new(
        store: std::sync::Arc<dyn Store>,
        tenant: Option<String>,
        scan_id: String,
        filter: FindingFilter,
    ) -> Self {
        FindingPages {
            store,
            tenant,
            scan_id,
            filter: FindingFilter {
                limit: PAGE,
                ..filter
            },
            until: None,
            done: false,
        }
    }

    /// The same pages again from the start, up to `until`.
    pub fn again(&self, start: Option<String>, until: Option<String>) -> Self {
        FindingPages {
            store: self.store.clone(),
            tenant: self.tenant.clone(),
            scan_id: self.scan_id.clone(),
            filter: FindingFilter {
                after: start,
                ..self.filter.clone()
            },
            until,
            done: false,
        }
    }

    /// The next page; empty when there is none.
    pub async fn next(&mut self) -> Result<Vec<StoredFinding>, scanplane_store::StoreError> {
        if self.done {
            return Ok(Vec::new());
        }
        let mut rows = self
            .store
            .list_findings(self.tenant.as_deref(), &self.scan_id, &self.filter)
            .await?;
        if rows.len() < self.filter.limit as usize {
            self.done = true;
        }
        if let Some(until) = &self.until {
            if let Some(pos) = rows.iter().position(|r| r.id.as_str() > until.as_str()) {
                rows.truncate(pos);
                self.done = true;
            }
        }
        match rows.last() {
            Some(last) => self.filter.after = Some(last.id.clone()),
            None => self.done = true,
        }
        Ok(rows)
    }
}

/// One list of a diff, page by page in id order (keyset pagination in the store).
pub struct DiffPages {
    store: std::sync::Arc<dyn Store>,
    diff: std::sync::Arc<DiffSummary>,
    list: DiffList,
    after: Option<String>,
    done: bool,
}

impl DiffPages {
    pub fn new(
        store: std::sync::Arc<dyn Store>,
        diff: std::sync::Arc<DiffSummary>,
        list: DiffList,
    ) -> Self {
        DiffPages {
            store,
            diff,
            list,
            after: None,
            done: false,
        }
    }

    /// The next page; empty when there is none.
    pub async fn next(&mut self) -> Result<Vec<StoredFinding>, scanplane_store::StoreError> {
        if self.done {
            return Ok(Vec::new());
        }
        let rows = self
            .store
            .diff_page(&self.diff, self.list, self.after.as_deref(), PAGE)
            .await?;
        if rows.len() < PAGE as usize {
            self.done = true;
        }
        match rows.last() {
            Some(last) => self.after = Some(last.id.clone()),
            None => self.done = true,
        }
        Ok(rows)
    }
}
