//! Test harness: starts the real `scanplane` binary on a free loopback port against a fresh
//! SQLite file or PostgreSQL database, and talks to it over HTTP.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use scanplane_store::Backend;
use serde_json::Value;

pub const ADMIN: &str = "test-admin-token";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub async fn fresh_db(backend: Backend) -> String {
    scanplane_store::testing::fresh_url(backend)
        .await
        .unwrap_or_else(|m| panic!("{m}"))
}

pub struct Server {
    pub child: Child,
    pub url: String,
    pub db: String,
    pub port: u16,
    pub work_dir: PathBuf,
    pub log: PathBuf,
    pub client: reqwest::Client,
}

impl Server {
    pub fn command(
        db: &str,
        port: u16,
        work_dir: &std::path::Path,
        env: &[(&str, &str)],
    ) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_scanplane"));
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SCANPLANE_DATABASE_URL", db)
            .env("SCANPLANE_LISTEN", format!("127.0.0.1:{port}"))
            .env("SCANPLANE_ADMIN_TOKEN", ADMIN)
            .env("SCANPLANE_WORK_DIR", work_dir)
            .env("SCANPLANE_LOG", "info,sqlx=warn")
            // Retries back off 10s by default; tests that retry need not wait for it (the
            // backoff test sets its own).
            .env("SCANPLANE_RETRY_DELAY", "100ms");
        if let Ok(t) = std::env::var("TRIVY_BIN") {
            cmd.env("TRIVY_BIN", t);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Starts `serve` on `db` and waits until it is ready.
    pub async fn start(db: &str, env: &[(&str, &str)]) -> Server {
        let port = free_port();
        Self::start_on(db, port, env).await
    }

    pub async fn start_on(db: &str, port: u16, env: &[(&str, &str)]) -> Server {
        Self::start_customized(db, port, env, |_| {}).await
    }

    /// Like [`Server::start_on`], with the command changed first (arguments, directory).
    pub async fn start_customized(
        db: &str,
        port: u16,
        env: &[(&str, &str)],
        customize: impl FnOnce(&mut Command),
    ) -> Server {
        let work_dir =
            std::env::temp_dir().join(format!("scanplane-it-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&work_dir).unwrap();
        let log = work_dir.with_extension("log");
        let log_file = std::fs::File::create(&log).unwrap();
        let mut cmd = Self::command(db, port, &work_dir, env);
        customize(&mut cmd);
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("start scanplane");
        let server = Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
            db: db.to_string(),
            port,
            work_dir,
            log,
            client: reqwest::Client::new(),
        };
        server.wait_ready().await;
        server
    }

    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self.client.get(format!("{}/readyz", self.url)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!("server did not become ready; log:\n{}", self.log_text());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        self.child.wait().unwrap()
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    /// Polls a scan until `done(status)` or the timeout.
    pub async fn wait_scan(
        &self,
        id: &str,
        timeout: Duration,
        done: impl Fn(&str) -> bool,
    ) -> Value {
        self.wait_scan_view(id, timeout, |scan| {
            done(scan["status"].as_str().unwrap_or(""))
        })
        .await
    }

    /// Polls a scan until `done(view)` holds for its whole JSON view, or the timeout.
    pub async fn wait_scan_view(
        &self,
        id: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (code, scan) = self.get(&format!("/api/v1/scans/{id}"), ADMIN).await;
            assert_eq!(code, 200, "{scan}");
            if done(&scan) {
                return scan;
            }
            if Instant::now() > deadline {
                panic!(
                    "scan {id} still {} after {timeout:?}: {scan}\nlog:\n{}",
                    scan["status"],
                    self.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.work_dir);
    }
}

pub fn terminal(status: &str) -> bool {
    matches!(
        status,
        "succeeded" | "failed" | "timed_out" | "cancelled" | "skipped"
    )
}

/// Pids whose `/proc/<pid>/<file>` (`environ`, `cmdline`) satisfies `pred`.
pub fn pids_where(file: &str, pred: impl Fn(&[u8]) -> bool) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if let Ok(bytes) = std::fs::read(format!("/proc/{pid}/{file}")) {
            if pred(&bytes) {
                out.push(pid);
            }
        }
    }
    out
}

/// Pids whose environment says they run scan `scan_id`.
pub fn pids_of_scan(scan_id: &str) -> Vec<i32> {
    let needle = format!("SCANPLANE_SCAN_ID={scan_id}");
    pids_where("environ", |env| {
        env.split(|b| *b == 0).any(|v| v == needle.as_bytes())
    })
}

/// Writes `body` as the shell script of custom scanner `name` (scanplane-json output) and a
/// config file declaring it; returns the config path.
pub fn custom_scanner(dir: &std::path::Path, name: &str, body: &str) -> PathBuf {
    let sh = dir.join(format!("{name}.sh"));
    std::fs::write(&sh, format!("#!/bin/sh\n{body}\n")).unwrap();
    let mut perm = std::fs::metadata(&sh).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&sh, perm).unwrap();
    let cfg = dir.join("scanplane.yaml");
    std::fs::write(
        &cfg,
        format!(
            "scanners:\n  - name: {name}\n    command: [\"{}\"]\n    output: scanplane-json\n",
            sh.display()
        ),
    )
    .unwrap();
    cfg
}
