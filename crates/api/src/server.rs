//! The HTTP/1.1 server in front of the router, built so that idle or hostile clients cannot
//! hold the server: a bounded number of connections per listener, a time limit on reading a
//! request head that also closes idle keep-alive connections, a limit on silence while a
//! request body is read (every endpoint, the report stream included: a slow report that
//! keeps sending is fine, a stalled one is ended with a 408), accept errors such as
//! `EMFILE` backed off instead of retried in a busy loop, and a bounded graceful shutdown.
//!
//! `axum::serve` has no header-read timeout and no connection bound, hence this accept loop
//! over hyper's HTTP/1 connection builder. The automatic responses hyper writes itself for
//! requests it cannot parse (400, 414, 431) get a JSON body like every other error (see
//! [`ErrorBodies`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use axum::Router;
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// Limits of the server. The defaults suit a public listener.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Longest time to receive a complete request head, counted from when the server starts
    /// waiting for one (a new connection, or the end of the previous response): it closes
    /// slow-header clients and idle keep-alive connections alike.
    pub header_timeout: Duration,
    /// Longest silence while a request body is read; the request then ends with a 408.
    pub body_timeout: Duration,
    /// Most connections served at once; further clients wait in the listen backlog until
    /// one closes.
    pub max_connections: usize,
    /// How long a graceful shutdown waits for open requests before giving up on them.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
            max_connections: 512,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting, lets open
/// requests finish (at most [`ServerConfig::shutdown_grace`]) and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let max = config.max_connections.max(1);
    let permits = Arc::new(Semaphore::new(max));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    let mut backoff = MIN_BACKOFF;
    let mut at_limit_logged = false;
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => {
                at_limit_logged = false;
                p
            }
            Err(_) => {
                if !at_limit_logged {
                    tracing::warn!(
                        max_connections = max,
                        "connection limit reached; new clients wait until one closes"
                    );
                    at_limit_logged = true;
                }
                tokio::select! {
                    _ = &mut shutdown => break,
                    p = permits.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                }
            }
        };
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    backoff = MIN_BACKOFF;
                    stream
                }
                Err(e) if per_connection(&e) => continue,
                Err(e) => {
                    // Out of file descriptors or memory: retrying at once would spin.
                    tracing::warn!(error = %e, retry_in = ?backoff, "accept failed; backing off");
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let config = config.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            connection(stream, app, &config, stop).await;
            drop(permit);
        });
    }
    let _ = stop_tx.send(true);
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(config.shutdown_grace, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(grace = ?config.shutdown_grace, "requests still open after the shutdown grace period; leaving them");
    }
    Ok(())
}

/// Accept errors about one connection (the client gave up before it was accepted); the
/// listener itself is fine.
fn per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

async fn connection(
    stream: TcpStream,
    app: Router,
    config: &ServerConfig,
    mut stop: watch::Receiver<bool>,
) {
    let body_timeout = config.body_timeout;
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let app = app.clone();
        async move {
            let req = req.map(|b| axum::body::Body::new(IdleTimeoutBody::new(b, body_timeout)));
            app.oneshot(req).await
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(ErrorBodies::new(stream)), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// The error a request body yields after [`ServerConfig::body_timeout`] without data.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub Duration);

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "nothing received for {}s; the request is ended",
            self.0.as_secs()
        )
    }
}

impl std::error::Error for BodyTimeout {}

impl BodyTimeout {
    /// The timeout somewhere in `e`'s chain of sources.
    pub fn find<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyTimeout> {
        let mut next = Some(e);
        while let Some(err) = next {
            if let Some(t) = err.downcast_ref::<BodyTimeout>() {
                return Some(t);
            }
            next = err.source();
        }
        None
    }
}

/// A request body that fails with [`BodyTimeout`] when the client sends nothing for the
/// timeout while the handler waits for it. The clock runs only while the handler waits, so
/// a handler busy storing a batch does not count against the client.
pub struct IdleTimeoutBody {
    inner: Incoming,
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
    waiting: bool,
    failed: bool,
}

impl IdleTimeoutBody {
    pub fn new(inner: Incoming, timeout: Duration) -> Self {
        IdleTimeoutBody {
            inner,
            timeout,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            waiting: false,
            failed: false,
        }
    }
}

impl http_body::Body for IdleTimeoutBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        if !self.waiting {
            let deadline = Instant::now() + self.timeout;
            self.sleep.as_mut().reset(deadline);
            self.waiting = true;
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                self.waiting = false;
                Poll::Ready(frame.map(|r| r.map_err(Into::into)))
            }
            Poll::Pending => {
                ready!(self.sleep.as_mut().poll(cx));
                self.failed = true;
                Poll::Ready(Some(Err(Box::new(BodyTimeout(self.timeout)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The connection's byte stream, unchanged except for one thing: the automatic error
/// responses hyper writes itself, before the router sees a request, have no body (a request
/// line it cannot parse: 400, a target over its 64 KiB limit: 414, too many or too large
/// headers: 431). Those are recognized (an error status with `content-length: 0` and no
/// content type, which no scanplane handler ever answers) and replaced by the same status
/// with a JSON error body, so that every error a client gets is JSON.
pub struct ErrorBodies<T> {
    inner: T,
    pending: Vec<u8>,
    sent: usize,
}

impl<T> ErrorBodies<T> {
    pub fn new(inner: T) -> Self {
        ErrorBodies {
            inner,
            pending: Vec::new(),
            sent: 0,
        }
    }
}

impl<T: AsyncWrite + Unpin> ErrorBodies<T> {
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.pending.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.pending.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

/// The JSON replacement of one of hyper's automatic error responses, if `buf` is one.
pub fn json_error_response(buf: &[u8]) -> Option<Vec<u8>> {
    let head = buf.strip_suffix(b"\r\n\r\n")?;
    if head.windows(4).any(|w| w == b"\r\n\r\n") {
        return None;
    }
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let code: u16 = status_line
        .strip_prefix("HTTP/1.")?
        .get(2..5)?
        .parse()
        .ok()?;
    if !(400..600).contains(&code) {
        return None;
    }
    let headers: Vec<&str> = lines.collect();
    let header = |name: &str| {
        headers.iter().find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    };
    if header("content-length") != Some("0") || header("content-type").is_some() {
        return None;
    }
    let (error, message) = match code {
        414 => (
            "uri_too_long",
            "request target: longer than the server accepts",
        ),
        431 => ("too_large", "request headers: too many or too large"),
        _ => ("malformed", "request: not a valid HTTP/1.1 request"),
    };
    let body = serde_json::json!({"error": error, "message": message}).to_string();
    let mut out = format!("{status_line}\r\n");
    for h in headers.iter().filter(|h| {
        let name = h.split(':').next().unwrap_or_default().trim();
        !name.eq_ignore_ascii_case("content-length") && !name.eq_ignore_ascii_case("connection")
    }) {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str(&format!(
        "content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ));
    Some(out.into_bytes())
}

impl<T: AsyncRead + Unpin> AsyncRead for ErrorBodies<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ErrorBodies<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if buf.len() < 512 && buf.starts_with(b"HTTP/1.") {
            if let Some(replacement) = json_error_response(buf) {
                self.pending = replacement;
                // The bytes are ours now; they go out with the next write, flush or shutdown.
                let _ = self.poll_pending(cx)?;
                return Poll::Ready(Ok(buf.len()));
            }
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    // Unvectored, so that hyper writes each response head in one buffer this type can
    // recognize.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_bodiless_errors_get_json_bodies() {
        let canned = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: Thu, 01 Jan 2026 00:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(json_error_response(canned).unwrap()).unwrap();
        assert!(out.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{out}");
        assert!(out.contains("date: Thu"), "{out}");
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.contains("content-type: application/json"), "{out}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{out}"
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"], "uri_too_long");

        // Responses of the router are never touched.
        for other in [
            &b"HTTP/1.1 204 No Content\r\ndate: x\r\n\r\n"[..],
            b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}",
            b"not http",
        ] {
            assert_eq!(json_error_response(other), None, "{:?}", String::from_utf8_lossy(other));
        }
    }
}
