//! The nuclei, grype and trivy adapters end to end against stand-in programs: small shell
//! scripts named like the real tools that record their arguments and replay the checked-in
//! fixtures. The real nuclei and grype cannot be installed here; these tests prove the
//! adapters' argument lists, streaming and program lookup (including `TRIVY_BIN`). All tests
//! of this binary share one `PATH`, set once, because the environment is process-wide.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use scanplane_scanners::grype::GrypeScanner;
use scanplane_scanners::nuclei::NucleiScanner;
use scanplane_scanners::trivy::TrivyScanner;
use scanplane_scanners::Scanner;

struct Fakes {
    _dir: tempfile::TempDir,
    args: PathBuf,
}

fn write_script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    common::must(std::fs::write(path, body), "writing a fake tool");
    common::must(
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)),
        "making a fake tool executable",
    );
}

fn fakes() -> &'static Fakes {
    static FAKES: OnceLock<Fakes> = OnceLock::new();
    FAKES.get_or_init(|| {
        let dir = common::must(tempfile::tempdir(), "creating the fake tool directory");
        let bin = dir.path().join("bin");
        let hidden = dir.path().join("elsewhere");
        let args = dir.path().join("args");
        for d in [&bin, &hidden, &args] {
            common::must(std::fs::create_dir_all(d), "creating a directory");
        }
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let a = args.display();
        // nuclei prints its first result, pauses, then the rest, so the test can see that
        // findings arrive while the program is still running.
        write_script(
            &bin.join("nuclei"),
            &format!(
                "#!/bin/sh\nprintf '%s\\n' \"$*\" > {a}/nuclei\nhead -n 1 {f}\nsleep 3\ntail -n +2 {f}\n",
                f = data.join("nuclei/results.jsonl").display()
            ),
        );
        write_script(
            &bin.join("grype"),
            &format!(
                "#!/bin/sh\nprintf '%s\\n' \"$*\" > {a}/grype\ncat {}\n",
                data.join("grype/image-alpine.json").display()
            ),
        );
        // trivy lives outside PATH so only TRIVY_BIN can find it.
        let trivy = hidden.join("trivy-from-wheel");
        write_script(
            &trivy,
            &format!(
                "#!/bin/sh\nprintf '%s\\n' \"$*\" > {a}/trivy\ncat {}\n",
                data.join("trivy/image-vulns.json").display()
            ),
        );
        std::env::set_var("PATH", format!("{}:/usr/bin:/bin", bin.display()));
        std::env::set_var("TRIVY_BIN", &trivy);
        Fakes { _dir: dir, args }
    })
}

fn recorded_args(tool: &str) -> String {
    let path = fakes().args.join(tool);
    common::must(std::fs::read_to_string(&path), "reading recorded arguments")
        .trim_end()
        .to_string()
}

#[tokio::test]
async fn nuclei_results_stream_while_it_runs() {
    fakes();
    let work = common::must(tempfile::tempdir(), "work dir");
    let target = "https://app.example.com/";
    let req = common::request(
        &[target],
        serde_json::json!({"severity": "medium,high"}),
        work.path(),
    );
    let scanner = NucleiScanner::new();
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let run = tokio::spawn(async move { scanner.run(&req, tx).await });
    let first = tokio::time::timeout(Duration::from_millis(2500), rx.recv())
        .await
        .expect("the first finding must arrive before nuclei exits")
        .expect("a finding");
    assert_eq!(first.rule_id, "git-config");
    assert_eq!(first.target, target);
    let mut rest = Vec::new();
    while let Some(f) = rx.recv().await {
        rest.push(f);
    }
    assert_eq!(rest.len(), 2);
    assert_eq!(run.await.unwrap().unwrap().targets_scanned, [target]);
    assert_eq!(
        recorded_args("nuclei"),
        "-jsonl -silent -severity medium,high -u https://app.example.com/"
    );
}

#[tokio::test]
async fn grype_scans_an_image() {
    fakes();
    let work = common::must(tempfile::tempdir(), "work dir");
    let req = common::request(
        &["image://alpine:3.19.0"],
        serde_json::json!({"only_fixed": true}),
        work.path(),
    );
    let (outcome, found) = common::run(&GrypeScanner::new(), &req).await;
    assert_eq!(outcome.unwrap().targets_scanned, ["image://alpine:3.19.0"]);
    assert_eq!(found.len(), 3);
    assert!(found.iter().all(|f| f.target == "image://alpine:3.19.0"));
    assert_eq!(
        recorded_args("grype"),
        "alpine:3.19.0 -o json -q --only-fixed"
    );
}

#[tokio::test]
async fn trivy_is_found_through_trivy_bin() {
    fakes();
    let work = common::must(tempfile::tempdir(), "work dir");
    let req = common::request(&["alpine:3.19.0"], serde_json::Value::Null, work.path());
    let (outcome, found) = common::run(&TrivyScanner::new(), &req).await;
    outcome.unwrap();
    assert_eq!(found.len(), 4);
    assert_eq!(
        recorded_args("trivy"),
        "image --format json --quiet --skip-db-update --skip-java-db-update --offline-scan --skip-check-update --skip-version-check -- alpine:3.19.0"
    );
}
