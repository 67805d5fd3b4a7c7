//! The HTTP server's limits in the real binary: the timeout flags reach the server, a bad
//! value is a one-line error, and running out of file descriptors (`EMFILE` on accept)
//! makes the server back off rather than spin, and recover once descriptors free up.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, Server};
use scanplane_store::Backend;

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn ticks_per_second() -> u64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(100)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_timeout_flag_closes_idle_connections() {
    let db = common::fresh_db(Backend::Sqlite).await;
    let s = Server::start(&db, &[("SCANPLANE_HTTP_HEADER_TIMEOUT", "2s")]).await;
    let addr = format!("127.0.0.1:{}", s.port);
    let closed = tokio::task::spawn_blocking(move || {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let start = Instant::now();
        let mut buf = [0u8; 16];
        let n = c.read(&mut buf);
        (matches!(n, Ok(0)) || n.is_err(), start.elapsed())
    })
    .await
    .unwrap();
    assert!(
        closed.0 && closed.1 < Duration::from_secs(15),
        "an idle connection was kept {closed:?}"
    );
}

#[test]
fn a_zero_timeout_is_a_one_line_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_scanplane"))
        .arg("serve")
        .env_clear()
        .env("SCANPLANE_HTTP_BODY_TIMEOUT", "0s")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--http-body-timeout"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_backs_off_and_recovers() {
    let db = common::fresh_db(Backend::Sqlite).await;
    let port = free_port();
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("serve.log");
    let mut child = Command::new("bash")
        .args([
            "-c",
            "ulimit -n 64 && exec \"$0\" serve",
            env!("CARGO_BIN_EXE_scanplane"),
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SCANPLANE_DATABASE_URL", &db)
        .env("SCANPLANE_LISTEN", format!("127.0.0.1:{port}"))
        .env("SCANPLANE_ADMIN_TOKEN", common::ADMIN)
        .env("SCANPLANE_WORK_DIR", work.path().join("units"))
        .env("SCANPLANE_HTTP_HEADER_TIMEOUT", "120s")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !client
        .get(format!("{url}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            Instant::now() < deadline,
            "serve did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Far more idle connections than the server has descriptors.
    let mut held = Vec::new();
    for _ in 0..120 {
        held.push(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap(),
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = cpu_ticks(child.id());
    let wall = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let used = cpu_ticks(child.id()) - before;
    let budget = wall.elapsed().as_secs() * ticks_per_second() / 4;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("accept failed; backing off"),
        "no accept error was hit: {text}"
    );
    assert!(
        used < budget,
        "the server used {used} ticks in {:?} while out of descriptors (spinning)",
        wall.elapsed()
    );

    drop(held);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{url}/healthz")).send().await {
            assert_eq!(r.status(), 200);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/healthz never answered after the connections closed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}
