//! Well-known sensitive files at an origin's root (a Git repository, `.env`, `.htpasswd`,
//! status pages, ...), reported only when the body has the file's tell-tale content, so a
//! server answering 200 with a generic page is not reported.

use reqwest::Url;
use scanplane_core::finding::Severity;
use scanplane_core::secret;

use super::request::read_capped;
use super::{issue, Issue};

/// Characters of body kept as evidence.
const EVIDENCE_MAX: usize = 200;

/// A well-known sensitive path and how to recognize its real content.
pub struct SensitivePath {
    pub path: &'static str,
    pub rule_id: &'static str,
    pub severity: Severity,
    pub title: &'static str,
    matches: fn(&[u8]) -> bool,
}

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

fn looks_like_html(body: &[u8]) -> bool {
    let t = text(&body[..body.len().min(512)])
        .trim_start()
        .to_ascii_lowercase();
    t.starts_with('<') || t.contains("<html")
}

fn git_head(body: &[u8]) -> bool {
    let t = text(body);
    let t = t.trim();
    t.starts_with("ref: refs/") || (t.len() == 40 && t.chars().all(|c| c.is_ascii_hexdigit()))
}

fn git_config(body: &[u8]) -> bool {
    !looks_like_html(body) && text(body).contains("[core]")
}

fn env_file(body: &[u8]) -> bool {
    if looks_like_html(body) {
        return false;
    }
    let t = text(body);
    let mut assignments = 0;
    for line in t.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let is_assignment = line.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty()
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !k.starts_with(|c: char| c.is_ascii_digit())
        });
        if !is_assignment {
            return false;
        }
        assignments += 1;
    }
    assignments > 0
}

fn server_status(body: &[u8]) -> bool {
    let t = text(body);
    t.contains("Apache Server Status") || (t.contains("Server uptime") && t.contains("requests"))
}

fn ds_store(body: &[u8]) -> bool {
    body.len() >= 8 && body[..4] == [0, 0, 0, 1] && &body[4..8] == b"Bud1"
}

fn htpasswd(body: &[u8]) -> bool {
    if looks_like_html(body) {
        return false;
    }
    let t = text(body);
    let mut lines = t
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .peekable();
    lines.peek().is_some()
        && lines.all(|l| {
            l.split_once(':').is_some_and(|(user, hash)| {
                !user.is_empty()
                    && (hash.starts_with("$apr1$")
                        || hash.starts_with("$2y$")
                        || hash.starts_with("$2a$")
                        || hash.starts_with("{SHA}")
                        || hash.starts_with("$6$")
                        || hash.starts_with("$5$")
                        || (hash.len() == 13 && !hash.contains(' ')))
            })
        })
}

fn phpinfo(body: &[u8]) -> bool {
    let t = text(body);
    t.contains("<title>phpinfo()</title>") || (t.contains("PHP Version") && t.contains("phpinfo"))
}

fn actuator_env(body: &[u8]) -> bool {
    let t = text(body);
    t.contains("\"propertySources\"") && t.contains("\"activeProfiles\"")
}

/// The paths probed at each origin, with their matchers.
pub const SENSITIVE_PATHS: &[SensitivePath] = &[
    SensitivePath {
        path: "/.git/HEAD",
        rule_id: "exposed-git-repository",
        severity: Severity::High,
        title: "Git repository exposed (/.git/HEAD)",
        matches: git_head,
    },
    SensitivePath {
        path: "/.git/config",
        rule_id: "exposed-git-repository",
        severity: Severity::High,
        title: "Git repository exposed (/.git/config)",
        matches: git_config,
    },
    SensitivePath {
        path: "/.env",
        rule_id: "exposed-env-file",
        severity: Severity::High,
        title: "Environment file exposed (/.env)",
        matches: env_file,
    },
    SensitivePath {
        path: "/.htpasswd",
        rule_id: "exposed-htpasswd",
        severity: Severity::High,
        title: "Password file exposed (/.htpasswd)",
        matches: htpasswd,
    },
    SensitivePath {
        path: "/actuator/env",
        rule_id: "exposed-actuator-env",
        severity: Severity::High,
        title: "Spring Boot actuator environment exposed (/actuator/env)",
        matches: actuator_env,
    },
    SensitivePath {
        path: "/server-status",
        rule_id: "exposed-server-status",
        severity: Severity::Medium,
        title: "Apache server status exposed (/server-status)",
        matches: server_status,
    },
    SensitivePath {
        path: "/phpinfo.php",
        rule_id: "exposed-phpinfo",
        severity: Severity::Medium,
        title: "phpinfo() page exposed (/phpinfo.php)",
        matches: phpinfo,
    },
    SensitivePath {
        path: "/.DS_Store",
        rule_id: "exposed-ds-store",
        severity: Severity::Low,
        title: "macOS .DS_Store file exposed (/.DS_Store)",
        matches: ds_store,
    },
];

/// Checks a probed path's body; `None` when it is not the sensitive file.
pub fn check_path(p: &SensitivePath, status: u16, body: &[u8]) -> Option<Issue> {
    if status != 200 || !(p.matches)(body) {
        return None;
    }
    let shown = &body[..body.len().min(EVIDENCE_MAX)];
    let evidence = if body.iter().take(EVIDENCE_MAX).any(|b| *b == 0) {
        format!(
            "Binary content starting with {:02x?}",
            &shown[..shown.len().min(16)]
        )
    } else {
        // The evidence is masked here, before the report leaves the job: the file is
        // reported, its secrets are not copied (a `.env`'s every value may be one).
        let shown = String::from_utf8_lossy(shown);
        let shown = if p.rule_id == "exposed-env-file" {
            secret::mask_all_values(&shown)
        } else {
            shown.into_owned()
        };
        format!(
            "HTTP 200, body starts with: {}",
            crate::tcp::printable_banner(secret::mask(&shown).as_bytes())
        )
    };
    Some(issue(p.rule_id, p.severity, p.title, evidence))
}

/// Probes every sensitive path at `url`'s origin and returns each exposed one with the URL
/// it was found at. A path that cannot be fetched is not exposed as far as anyone can tell,
/// so it is skipped rather than failing the target.
pub(super) async fn probe(url: &Url, client: &reqwest::Client) -> Vec<(Url, Issue)> {
    let mut found = Vec::new();
    for p in SENSITIVE_PATHS {
        let mut probe_url = url.clone();
        probe_url.set_path(p.path);
        probe_url.set_query(None);
        probe_url.set_fragment(None);
        let Ok(resp) = client.get(probe_url.clone()).send().await else {
            continue;
        };
        let status = resp.status().as_u16();
        if status != 200 {
            continue;
        }
        let Ok(body) = read_capped(resp).await else {
            continue;
        };
        if let Some(i) = check_path(p, status, &body) {
            found.push((probe_url, i));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_matchers_need_real_content() {
        let find = |p: &str| SENSITIVE_PATHS.iter().find(|s| s.path == p).unwrap();
        assert!(check_path(find("/.git/HEAD"), 200, b"ref: refs/heads/main\n").is_some());
        assert!(check_path(find("/.git/HEAD"), 200, b"<html>Welcome</html>").is_none());
        assert!(check_path(find("/.git/HEAD"), 404, b"ref: refs/heads/main\n").is_none());
        assert!(check_path(
            find("/.env"),
            200,
            b"# db\nDB_PASSWORD=hunter2\nexport API_KEY=x\n"
        )
        .is_some());
        assert!(check_path(find("/.env"), 200, b"<!doctype html><p>a=b</p>").is_none());
        assert!(check_path(find("/.env"), 200, b"Not found, sorry").is_none());
        assert!(check_path(find("/.DS_Store"), 200, b"\x00\x00\x00\x01Bud1\x00\x00").is_some());
        assert!(check_path(find("/.DS_Store"), 200, b"Bud1").is_none());
        assert!(check_path(
            find("/server-status"),
            200,
            b"<h1>Apache Server Status for x</h1>"
        )
        .is_some());
        assert!(check_path(find("/.htpasswd"), 200, b"admin:$apr1$abc$def\n").is_some());
        assert!(check_path(find("/.htpasswd"), 200, b"hello: world").is_none());
    }

    #[test]
    fn evidence_never_holds_the_secrets() {
        let find = |p: &str| SENSITIVE_PATHS.iter().find(|s| s.path == p).unwrap();
        let env = check_path(
            find("/.env"),
            200,
            b"DB_PASSWORD=hunter2\nAPI_KEY=abc\nHOST=db\n",
        )
        .unwrap();
        assert!(
            env.evidence.contains("DB_PASSWORD=*****"),
            "{}",
            env.evidence
        );
        for secret in ["hunter2", "abc", "=db"] {
            assert!(!env.evidence.contains(secret), "{}", env.evidence);
        }
        let htpasswd = check_path(find("/.htpasswd"), 200, b"admin:$apr1$xyz$0123\n").unwrap();
        assert!(!htpasswd.evidence.contains("xyz"), "{}", htpasswd.evidence);
        let git = check_path(
            find("/.git/config"),
            200,
            b"[core]\n[remote \"origin\"]\n\turl = https://bob:ghp_tok@github.com/x\n",
        )
        .unwrap();
        assert!(!git.evidence.contains("ghp_tok"), "{}", git.evidence);
    }
}
