//! Fuzz target for the trivy parser: any input must parse or fail with an error that names
//! the scanner, and never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scanplane_scanners::trivy;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = trivy::parse(data, "fs://fuzz") {
        let message = e.to_string();
        assert!(
            message.contains(trivy::NAME),
            "error does not name the scanner {:?}: {message}",
            trivy::NAME
        );
    }
});
