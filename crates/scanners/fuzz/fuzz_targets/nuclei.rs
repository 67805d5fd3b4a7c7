//! Fuzz target for the nuclei parser: any input must parse or fail with an error that names
//! the scanner, and never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scanplane_scanners::nuclei;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = nuclei::parse(data) {
        let message = e.to_string();
        assert!(
            message.contains(nuclei::NAME),
            "error does not name the scanner {:?}: {message}",
            nuclei::NAME
        );
    }
});
