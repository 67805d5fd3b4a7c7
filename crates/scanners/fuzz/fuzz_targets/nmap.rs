//! Fuzz target for the nmap parser: any input must parse or fail with an error that names
//! the scanner, and never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scanplane_scanners::nmap;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = nmap::parse(data) {
        let message = e.to_string();
        assert!(
            message.contains(nmap::NAME),
            "error does not name the scanner {:?}: {message}",
            nmap::NAME
        );
    }
});
