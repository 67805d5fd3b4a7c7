//! Fuzz target for every parser of scanplane-scanners (`registry::parsers()`): the one named
//! by `SCANPLANE_FUZZ_PARSER` must, for any input, either fail with an error naming it, or
//! return findings and dropped records whose errors name it, never "success" with nothing
//! but dropped records, and never panic. With `SCANPLANE_FUZZ_LIST` set it prints the
//! parser names, one a line, and exits; `scripts/fuzz.sh` runs it once per name.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use scanplane_scanners::registry::{parsers, Parser};

fn parser() -> Parser {
    static PARSER: OnceLock<Parser> = OnceLock::new();
    *PARSER.get_or_init(|| {
        let all = parsers();
        if std::env::var_os("SCANPLANE_FUZZ_LIST").is_some() {
            for p in &all {
                println!("{}", p.name);
            }
            std::process::exit(0);
        }
        let name = std::env::var("SCANPLANE_FUZZ_PARSER").unwrap_or_default();
        match all.into_iter().find(|p| p.name == name) {
            Some(p) => p,
            None => {
                // Not a finding of the fuzzer, so not a panic (which would be saved as a crash).
                eprintln!(
                    "SCANPLANE_FUZZ_PARSER={name:?} names no parser; SCANPLANE_FUZZ_LIST=1 lists them"
                );
                std::process::exit(2);
            }
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let p = parser();
    let prefix = format!("{}: ", p.name);
    match (p.parse)(data) {
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.starts_with(&prefix),
                "error does not name the parser: {message}"
            );
        }
        Ok(parsed) => {
            for e in &parsed.rejected {
                let message = e.to_string();
                assert!(
                    message.starts_with(&prefix),
                    "dropped record does not name the parser: {message}"
                );
            }
            assert!(
                !parsed.findings.is_empty() || parsed.rejected.is_empty(),
                "output without one usable record must be an error"
            );
            let all_good = parsed.rejected.is_empty();
            assert_eq!(parsed.strict().is_ok(), all_good);
        }
    }
});
