//! Fuzz target for the sarif parser: any input must parse or fail with an error that names
//! the scanner, and never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scanplane_scanners::sarif;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = sarif::parse(data) {
        let message = e.to_string();
        assert!(
            message.contains(sarif::NAME),
            "error does not name the scanner {:?}: {message}",
            sarif::NAME
        );
    }
});
