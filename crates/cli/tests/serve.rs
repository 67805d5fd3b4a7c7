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
fn serve_help_describes_every_flag_and_logging() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scanplane"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("SCANPLANE_LOG "), "{help}");
    let lines: Vec<&str> = help.lines().collect();
    let mut flags = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.trim_start().starts_with("--") || line.trim_start().starts_with("-h,") {
            flags += 1;
            let doc = lines.get(i + 1).map_or("", |l| l.trim());
            assert!(
                !doc.is_empty() && !doc.starts_with('-') && !doc.starts_with('['),
                "{line} has no description:\n{help}"
            );
        }
    }
    assert!(flags > 20, "{help}");
}

#[test]
fn config_that_names_nothing_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "limits:\n  per_scanner: {nmapp: 2}\n",
            "limits.per_scanner.nmapp",
        ),
        (
            "rate_limits:\n  aws: {scans: 5, per: 1m}\n",
            "rate_limits.aws",
        ),
        (
            "scanners:\n  - {name: inv, command: [scanplane-no-such-tool]}\n",
            "scanners[0] (inv): command",
        ),
        (
            "scanners:\n  - {name: inv, command: [./missing.sh]}\n",
            "missing.sh is not an executable file",
        ),
    ];
    for (i, (yaml, want)) in cases.into_iter().enumerate() {
        let file = dir.path().join(format!("c{i}.yaml"));
        std::fs::write(&file, yaml).unwrap();
        let (code, err) = run_bad(&[("SCANPLANE_CONFIG", file.to_str().unwrap())]);
        assert_eq!(code, 2, "{yaml}: {err}");
        let line = error_line(&err);
        assert!(line.contains(want), "{yaml}: {line}");
        assert_eq!(
            err.lines().filter(|l| l.starts_with("error")).count(),
            1,
            "{err}"
        );
    }
}

/// A custom scanner configured as a new user does it: `serve --config config.yaml` from the
/// directory holding the file and a relative `./scan.sh`. The unit of work runs in its own
/// directory and reads no file: it gets the definition, its command made absolute.
#[tokio::test]
async fn a_relative_config_and_command_work_from_the_servers_directory() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("scan.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho '{\"target\":\"127.0.0.1\",\"rule_id\":\"inventory-item\",\"severity\":\"low\",\"title\":\"found\",\"location\":\"x\"}'\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        dir.path().join("config.yaml"),
        "scanners:\n  - name: inventory\n    command: [./scan.sh]\n    accepts: [host]\n",
    )
    .unwrap();
    let db = fresh_db(Backend::Sqlite).await;
    let cwd = dir.path().to_path_buf();
    let mut s = Server::start_customized(&db, free_port(), &[], |cmd| {
        cmd.arg("--config").arg("config.yaml").current_dir(&cwd);
    })
    .await;
    let (code, a) = s
        .post(
            "/scans/now",
            ADMIN,
            serde_json::json!({"scanner": "inventory", "targets": ["127.0.0.1"]}),
        )
        .await;
    assert_eq!(code, 202, "{a}");
    let id = a["scan_run_id"].as_str().unwrap();
    let scan = s
        .wait_scan(id, std::time::Duration::from_secs(60), terminal)
        .await;
    assert_eq!(scan["status"], "succeeded", "{scan}\n{}", s.log_text());
    assert_eq!(scan["attempts"], 1, "{scan}");
    assert_eq!(scan["findings_count"], 1, "{scan}");
    s.terminate();
}

/// Runs `serve` with `env` where neither a kubeconfig nor an in-cluster service account is
/// reachable, and returns its one error line (it must fail without panicking).
fn error_without_a_cluster(env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Server::command(
        &format!("sqlite://{}/x.db", dir.path().display()),
        free_port(),
        dir.path(),
        env,
    );
    cmd.env("KUBECONFIG", dir.path().join("missing-kubeconfig"))
        .env("HOME", dir.path());
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_ne!(out.status.code(), Some(0));
    assert!(!err.contains("panicked"), "{err}");
    error_line(&err).to_string()
}

#[test]
fn kubernetes_executor_without_a_cluster_is_a_one_line_error() {
    let line = error_without_a_cluster(&[("SCANPLANE_EXECUTOR", "kubernetes")]);
    assert!(line.contains("kubernetes executor"), "{line}");
}

#[test]
fn the_operator_without_a_cluster_is_a_one_line_error() {
    let line = error_without_a_cluster(&[("SCANPLANE_OPERATOR", "true")]);
    assert!(
        line.contains("operator: no Kubernetes API") && line.contains("KUBECONFIG"),
        "{line}"
    );
}

#[test]
fn operator_namespaces_and_all_namespaces_exclude_each_other() {
    let (code, err) = run_bad(&[
        ("SCANPLANE_OPERATOR", "true"),
        ("SCANPLANE_OPERATOR_NAMESPACES", "a,b"),
        ("SCANPLANE_OPERATOR_ALL_NAMESPACES", "true"),
    ]);
    assert_ne!(code, 0);
    assert!(
        error_line(&err).contains("--operator-namespaces and --operator-all-namespaces"),
        "{err}"
    );
}

#[test]
fn bad_operator_defaults_are_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.yaml");
    std::fs::write(&file, "operator:\n  defaults: {schedule: whenever}\n").unwrap();
    let (code, err) = run_bad(&[("SCANPLANE_CONFIG", file.to_str().unwrap())]);
    assert_eq!(code, 2);
    assert!(
        error_line(&err).contains("operator.defaults.schedule"),
        "{err}"
    );
}
