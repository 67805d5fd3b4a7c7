//! Fuzz target for the scanplane_json parser: any input must parse or fail with an error that names
//! the scanner, and never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scanplane_scanners::scanplane_json;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = scanplane_json::parse(data) {
        let message = e.to_string();
        assert!(
            message.contains(scanplane_json::NAME),
            "error does not name the scanner {:?}: {message}",
            scanplane_json::NAME
        );
    }
});
