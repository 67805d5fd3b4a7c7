//! Helpers shared by the parser robustness tests.

/// Deterministic pseudo-random inputs (xorshift), mixing raw bytes with JSON- and XML-ish
/// punctuation so parsers get past their first byte now and then.
pub(crate) fn random_inputs(count: usize) -> Vec<Vec<u8>> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    const ALPHABET: &[u8] = b"{}[]<>/\":,=\\ \n\tabcnrtuxyz0123456789.-+eE";
    (0..count)
        .map(|i| {
            let len = (next() % 200) as usize;
            (0..len)
                .map(|_| {
                    let r = next();
                    if i % 2 == 0 {
                        (r & 0xff) as u8
                    } else {
                        ALPHABET[(r as usize) % ALPHABET.len()]
                    }
                })
                .collect()
        })
        .collect()
}

/// Feeds every prefix of `fixture` (and some random inputs) to `parse` and checks each
/// result is either Ok or an error whose message starts with `"<scanner>: "`, and that every
/// dropped record's error names the scanner too.
pub(crate) fn assert_robust(
    scanner: &str,
    fixture: &[u8],
    parse: impl Fn(&[u8]) -> Result<crate::Parsed, crate::ParseError>,
) {
    let prefix = format!("{scanner}: ");
    let check = |what: &str, result: Result<crate::Parsed, crate::ParseError>| match result {
        Err(e) => assert!(e.to_string().starts_with(&prefix), "{what}: {e}"),
        Ok(p) => {
            for e in &p.rejected {
                assert!(e.to_string().starts_with(&prefix), "{what}: rejected {e}");
            }
        }
    };
    // Large fixtures are cut at a stride so the test stays fast; every cut near the start
    // and end is still tried because that is where parsers are most fragile.
    let stride = (fixture.len() / 2000).max(1);
    let cuts = (0..fixture.len()).filter(|c| c % stride == 0 || *c < 64 || fixture.len() - c < 64);
    for cut in cuts {
        check(&format!("cut {cut}"), parse(&fixture[..cut]));
    }
    assert!(
        parse(&fixture[..0]).is_err(),
        "{scanner}: empty input must be an error"
    );
    for bytes in random_inputs(300) {
        check("random input", parse(&bytes));
    }
}
