//! `scanplane serve` on a fresh machine: zero-configuration start on SQLite, the same on
//! PostgreSQL, health endpoints, graceful shutdown, and one-line errors for bad
//! configuration.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;

use common::*;
use scanplane_store::Backend;

async fn starts_and_answers_health(backend: Backend) {
    let db = fresh_db(backend).await;
    let mut server = Server::start(&db, &[]).await;
    let (code, body) = server.get("/healthz", "").await;
    assert_eq!((code, body["status"].as_str()), (200, Some("ok")));
    let (code, body) = server.get("/readyz", "").await;
    assert_eq!(code, 200);
    assert_eq!(body["store"], backend.as_str());
    if backend == Backend::Sqlite {
        let path = db.trim_start_matches("sqlite://");
        assert!(
            std::path::Path::new(path).exists(),
            "the SQLite file is created"
        );
    }
    let status = server.terminate();
    assert!(
        status.success(),
        "SIGTERM shuts down cleanly: {status:?}\n{}",
        server.log_text()
    );
}

#[tokio::test]
async fn sqlite_starts_and_answers_health() {
    starts_and_answers_health(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_starts_and_answers_health() {
    starts_and_answers_health(Backend::Postgres).await;
}

#[tokio::test]
async fn zero_configuration_creates_scanplane_db_in_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_scanplane"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SCANPLANE_LISTEN", format!("127.0.0.1:{port}"))
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..300 {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
        {
            ready = r.status().is_success();
            if ready {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready, "serve with no configuration becomes ready");
    assert!(
        dir.path().join("scanplane.db").exists(),
        "./scanplane.db is the default store"
    );
}

/// Runs `serve` with bad configuration and returns its exit code and stderr.
fn run_bad(env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Server::command(
        &format!("sqlite://{}/x.db", dir.path().display()),
        free_port(),
        dir.path(),
        env,
    );
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn error_line(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in:\n{stderr}"))
}

#[test]
fn unreachable_database_is_a_one_line_error() {
    let port = free_port();
    let (code, err) = run_bad(&[(
        "SCANPLANE_DATABASE_URL",
        &format!("postgres://nobody@127.0.0.1:{port}/none"),
    )]);
    assert_ne!(code, 0);
    let line = error_line(&err);
    assert!(line.contains("database unreachable"), "{line}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

#[test]
fn malformed_database_url_is_a_one_line_error() {
    let (code, err) = run_bad(&[("SCANPLANE_DATABASE_URL", "mysql://x@y/z")]);
    assert_ne!(code, 0);
    assert!(error_line(&err).contains("invalid database URL"), "{err}");
    let (code, err) = run_bad(&[("SCANPLANE_DATABASE_URL", "postgres://u@h:notaport/db")]);
    assert_ne!(code, 0);
    assert!(error_line(&err).contains("invalid database URL"), "{err}");
}

#[test]
fn port_in_use_is_a_one_line_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, err) = run_bad(&[("SCANPLANE_LISTEN", &addr)]);
    assert_ne!(code, 0);
    let line = error_line(&err);
    assert!(
        line.contains(&format!("cannot listen on {addr}")) && line.contains("in use"),
        "{line}"
    );
}

#[test]
fn bad_config_file_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.yaml");
    std::fs::write(&file, "rate_limits:\n  aws: {scans: 5, per: soon}\n").unwrap();
    let (code, err) = run_bad(&[("SCANPLANE_CONFIG", file.to_str().unwrap())]);
    assert_eq!(code, 2);
    assert!(error_line(&err).contains("rate_limits.aws.per"), "{err}");
}

#[test]
fn kubernetes_executor_without_a_cluster_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Server::command(
        &format!("sqlite://{}/x.db", dir.path().display()),
        free_port(),
        dir.path(),
        &[("SCANPLANE_EXECUTOR", "kubernetes")],
    );
    // Neither a kubeconfig nor an in-cluster service account is reachable.
    cmd.env("KUBECONFIG", dir.path().join("missing-kubeconfig"))
        .env("HOME", dir.path());
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_ne!(out.status.code(), Some(0));
    let line = error_line(&err);
    assert!(line.contains("kubernetes executor"), "{line}");
    assert!(!err.contains("panicked"), "{err}");
}
