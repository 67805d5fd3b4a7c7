//! README.md's commands, run as a new user pastes them, so the README cannot drift from
//! the code: every `sh` block of "A first scan" and of the custom-scanner example runs
//! unchanged with bash (`set -e`) against a fresh server started as "Two commands" says,
//! except that the server's address is the test's own port instead of 127.0.0.1:8080 and
//! its admin token the test's instead of `change-me`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use scanplane_store::Backend;

const README: &str = include_str!("../../../README.md");

/// The text of `heading` (a `## ` or `### ` line) up to the next heading of its level or
/// above.
fn section(heading: &str) -> &'static str {
    let start = README
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README.md has no {heading:?}"));
    let level = heading.split(' ').next().unwrap().len();
    let body = &README[start + heading.len() + 2..];
    // The next heading outside code blocks (a shell comment is not a heading).
    let mut in_code = false;
    let mut end = body.len();
    let mut offset = 0;
    for line in body.split_inclusive('\n') {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code {
            let hashes = line.chars().take_while(|c| *c == '#').count();
            if hashes > 0 && hashes <= level && line[hashes..].starts_with(' ') {
                end = offset;
                break;
            }
        }
        offset += line.len();
    }
    &body[..end]
}

/// The ```sh blocks of a section, in order.
fn sh_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("```sh\n") {
        let body = &rest[start + 6..];
        let end = body.find("```").expect("unterminated code block");
        blocks.push(body[..end].to_string());
        rest = &body[end + 3..];
    }
    blocks
}

/// Runs `block` as pasted into bash (`set -e`, background jobs stopped at the end) with the
/// server's address in place of 127.0.0.1:8080; returns its stdout.
fn paste(block: &str, server: &Server) -> String {
    let addr = server.url.trim_start_matches("http://");
    let script = format!(
        "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{}",
        block
            .replace("127.0.0.1:8080", addr)
            .replace("Bearer change-me", &format!("Bearer {ADMIN}"))
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "README block failed ({:?}):\n{block}\nstdout:\n{stdout}\nstderr:\n{}\nserver log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
    stdout
}

/// The server command of "Two commands", run as the built binary with the same env.
async fn serve_as_the_readme_says(env: &[(&str, &str)]) -> Server {
    let two = sh_blocks(section("## Two commands"));
    assert_eq!(
        two[0].trim(),
        "SCANPLANE_ADMIN_TOKEN=change-me cargo run --release -p scanplane -- serve",
        "the test starts the server this way; keep them in step"
    );
    // Its admin token is the test harness's (the blocks' `change-me` is replaced with it).
    Server::start(&fresh_db(Backend::Sqlite).await, env).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_scan_works_as_written() {
    let mut s = serve_as_the_readme_says(&[]).await;
    let blocks = sh_blocks(section("## A first scan"));
    assert_eq!(blocks.len(), 2, "a scan and a schedule");
    let scan = paste(&blocks[0], &s);
    assert!(scan.contains("\"status\":\"succeeded\""), "{scan}");
    assert!(scan.contains("\"rule_id\":\"open-port\""), "{scan}");
    assert!(scan.contains("\"location\":\"tcp/8000\""), "{scan}");
    let schedule = paste(&blocks[1], &s);
    let created: serde_json::Value = serde_json::from_str(&schedule).unwrap();
    assert_eq!(created["name"], "nightly", "{created}");
    assert_eq!(created["timezone"], "Europe/Berlin", "{created}");
    assert!(created["next_fire_at"].is_string(), "{created}");
    s.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_custom_scanner_example_works_as_written() {
    let blocks = sh_blocks(section("### Custom scanners"));
    assert_eq!(blocks.len(), 3, "write the scanner, start the server, scan");
    let dir = "/tmp/scanplane-demo";
    let _ = std::fs::remove_dir_all(dir);
    // The block writes the scanner and its configuration.
    let no_server = Server::start(&fresh_db(Backend::Sqlite).await, &[]).await;
    paste(&blocks[0], &no_server);
    drop(no_server);
    // The server block, as the built binary.
    assert!(
        blocks[1].contains("SCANPLANE_CONFIG=/tmp/scanplane-demo/scanplane.yaml")
            && blocks[1].contains("cargo run --release -p scanplane -- serve"),
        "the test starts the server this way; keep them in step:\n{}",
        blocks[1]
    );
    let mut s =
        serve_as_the_readme_says(&[("SCANPLANE_CONFIG", "/tmp/scanplane-demo/scanplane.yaml")])
            .await;
    let answer = paste(&blocks[2], &s);
    let accepted: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let id = accepted["scan_run_id"].as_str().unwrap();
    let scan = s
        .wait_scan(id, std::time::Duration::from_secs(60), terminal)
        .await;
    assert_eq!(scan["status"], "succeeded", "{scan}\n{}", s.log_text());
    let (_, findings) = s.get(&format!("/api/v1/scans/{id}/findings"), ADMIN).await;
    let items = findings["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{findings}");
    assert_eq!(items[0]["rule_id"], "world-writable");
    assert_eq!(items[0]["location"], "/tmp/scanplane-demo/open");
    s.terminate();
}
