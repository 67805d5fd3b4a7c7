//! Fuzz target for the grype parser: any input must parse or fail with an error that names
//! the scanner, and never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scanplane_scanners::grype;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = grype::parse(data, "image://fuzz:latest") {
        let message = e.to_string();
        assert!(
            message.contains(grype::NAME),
            "error does not name the scanner {:?}: {message}",
            grype::NAME
        );
    }
});
