//! The HTTP server's limits over real TCP sockets on 127.0.0.1, with short timeouts: idle
//! and slow-header connections are closed, the connection limit holds and clears, a stalled
//! report stream is ended while a slow one that keeps sending succeeds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::Api;
use scanplane_api::server::ServerConfig;
use scanplane_store::Backend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config(header: u64, body: u64, max: usize) -> ServerConfig {
    ServerConfig {
        header_timeout: Duration::from_secs(header),
        body_timeout: Duration::from_secs(body),
        max_connections: max,
        shutdown_grace: Duration::from_secs(5),
    }
}

/// Reads until the server closes the connection; how long that took, or `None` if it was
/// still open after `limit`.
async fn closed_after(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((start + limit).into(), s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_connections_are_closed() {
    let api = Api::start(Backend::Sqlite, config(2, 60, 64)).await;
    let limit = Duration::from_secs(15);

    // A connection that never sends anything.
    let mut silent = TcpStream::connect(api.addr).await.unwrap();
    // A keep-alive connection idle after one request.
    let mut kept = TcpStream::connect(api.addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    // A client that sends its head one byte at a time, never finishing it.
    let mut slow = TcpStream::connect(api.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let dribble = tokio::spawn(async move {
        for _ in 0..40 {
            if slow.write_all(b"x").await.is_err() {
                return Some(slow);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Some(slow)
    });

    let silent_closed = closed_after(&mut silent, limit).await;
    assert!(
        silent_closed.is_some(),
        "a silent connection was still open after {limit:?}"
    );
    assert!(
        silent_closed.unwrap() >= Duration::from_millis(1500),
        "closed before the timeout: {silent_closed:?}"
    );
    assert!(
        closed_after(&mut kept, limit).await.is_some(),
        "an idle keep-alive connection was still open after {limit:?}"
    );
    let mut slow = dribble.await.unwrap().unwrap();
    assert!(
        closed_after(&mut slow, Duration::from_secs(1))
            .await
            .is_some(),
        "a slow-header client kept its connection for 10 s"
    );
    api.stop().await;
}

async fn healthz(api: &Api, within: Duration) -> Option<u16> {
    let client = reqwest::Client::builder().timeout(within).build().unwrap();
    match client.get(format!("{}/healthz", api.url)).send().await {
        Ok(r) => Some(r.status().as_u16()),
        Err(e) if e.is_timeout() => None,
        Err(e) => panic!("healthz: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_limit_holds_and_clears() {
    // Released by the clients.
    let api = Api::start(Backend::Sqlite, config(60, 60, 3)).await;
    assert_eq!(healthz(&api, Duration::from_secs(10)).await, Some(200));
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(api.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        healthz(&api, Duration::from_secs(1)).await,
        None,
        "a fourth connection was served beyond the limit of 3"
    );
    drop(held);
    assert_eq!(
        healthz(&api, Duration::from_secs(10)).await,
        Some(200),
        "/healthz after the connections were released"
    );
    api.stop().await;

    // Released by the server's idle timeout, the clients doing nothing.
    let api = Api::start(Backend::Sqlite, config(2, 60, 3)).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(api.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        healthz(&api, Duration::from_secs(15)).await,
        Some(200),
        "/healthz once idle connections timed out"
    );
    drop(held);
    api.stop().await;
}

fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

async fn report_connection(api: &Api, scan: &str, token: &str) -> TcpStream {
    let mut s = TcpStream::connect(api.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/scans/{scan}/report HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

async fn response(s: &mut TcpStream, limit: Duration) -> (u16, serde_json::Value) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline.into(), s.read(&mut buf)).await {
            Err(_) => panic!(
                "no complete response within {limit:?}: {}",
                String::from_utf8_lossy(&out)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
        let text = String::from_utf8_lossy(&out);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(|v| v.trim().parse::<usize>().unwrap())
            });
            if len.is_some_and(|l| body.len() >= l) {
                break;
            }
        }
    }
    common::parse_raw(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_report_is_ended_and_a_slow_one_succeeds() {
    let api = Api::start(Backend::Sqlite, config(60, 2, 64)).await;
    let tenant = api.state.default_tenant.id.clone();
    let scan = common::running_scan(api.store.as_ref(), &tenant, "rt-s").await;

    // One line, then silence.
    let mut s = report_connection(&api, &scan.id, "rt-s").await;
    s.write_all(&chunk(common::finding_lines(1, "first").as_bytes()))
        .await
        .unwrap();
    let start = Instant::now();
    let (code, body) = response(&mut s, Duration::from_secs(20)).await;
    assert_eq!(code, 408, "{body}");
    assert_eq!(body["error"], "timeout", "{body}");
    assert!(
        start.elapsed() >= Duration::from_millis(1500),
        "ended before the timeout"
    );

    // Eight lines 700 ms apart (5.6 s in all, with a 2 s silence limit), then the end.
    let mut s = report_connection(&api, &scan.id, "rt-s").await;
    let lines = common::finding_lines(8, "slow");
    for line in lines.lines() {
        s.write_all(&chunk(format!("{line}\n").as_bytes()))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    s.write_all(b"0\r\n\r\n").await.unwrap();
    let (code, body) = response(&mut s, Duration::from_secs(20)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["lines"], 8, "{body}");
    assert_eq!(body["rejected"], 0, "{body}");

    // A JSON body that stops half-way is ended the same way.
    let mut s = TcpStream::connect(api.addr).await.unwrap();
    s.write_all(format!("POST /scans/now HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"scanner\":", common::ADMIN).as_bytes()).await.unwrap();
    let (code, body) = response(&mut s, Duration::from_secs(20)).await;
    assert_eq!(code, 408, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("request body"),
        "{body}"
    );
    api.stop().await;
}
