//! Helpers shared by the integration tests: building requests and collecting findings.

use std::path::Path;
use std::time::Duration;

use scanplane_core::finding::Finding;
use scanplane_core::target::Target;
use scanplane_scanners::{RunRequest, ScanError, ScanOutcome, Scanner};

// Not every test binary uses every helper.
#[allow(dead_code)]
pub fn request(targets: &[&str], options: serde_json::Value, work_dir: &Path) -> RunRequest {
    RunRequest {
        scan_id: "scan-test-1".to_string(),
        targets: targets
            .iter()
            .map(|t| Target::parse(t).unwrap_or_else(|e| panic!("target {t:?}: {e}")))
            .collect(),
        billing: false,
        options,
        work_dir: work_dir.to_path_buf(),
        timeout: Duration::from_secs(120),
    }
}

/// Runs a scan to completion and returns its outcome with every finding it sent.
// Not every test binary uses every helper.
#[allow(dead_code)]
pub async fn run(
    scanner: &dyn Scanner,
    req: &RunRequest,
) -> (Result<ScanOutcome, ScanError>, Vec<Finding>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let collect = async {
        let mut v = Vec::new();
        while let Some(f) = rx.recv().await {
            v.push(f);
        }
        v
    };
    let scan = async move { scanner.run(req, tx).await };
    tokio::join!(scan, collect)
}

/// Fails the test with an installation hint when `program` is missing, because a skipped
/// test would hide that the external scanner was never exercised.
// Not every test binary uses every helper.
#[allow(dead_code)]
pub fn require_program(program: &str, install: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()));
    assert!(found, "{program} not found: {install}");
}

/// Unwraps a setup step's result, panicking with what failed; setup helpers are not `#[test]`
/// functions, so they say why they fail instead of calling `unwrap`.
// Not every test binary uses every helper.
#[allow(dead_code)]
pub fn must<T, E: std::fmt::Debug>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e:?}"),
    }
}

/// Binds a listener on an ephemeral port of 127.0.0.1.
// Not every test binary uses every helper.
#[allow(dead_code)]
pub async fn bind_local() -> (tokio::net::TcpListener, u16) {
    let l = must(
        tokio::net::TcpListener::bind("127.0.0.1:0").await,
        "binding 127.0.0.1:0",
    );
    let port = must(l.local_addr(), "reading the local address").port();
    (l, port)
}
