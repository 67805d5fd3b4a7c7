//! Loading a directory and an osv.dev-style all.zip: good records load, bad ones are reported
//! with their id and reason, and bomb-like archives are refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Cursor, Write};

use scanplane_osv::{load_dir, load_zip, load_zip_with_limits, OsvError, ZipLimits};
use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

fn data_files() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(common::data_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            (
                p.file_name().unwrap().to_str().unwrap().to_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn zip_of(entries: &[(&str, &[u8], CompressionMethod)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes, method) in entries {
        w.start_file(
            *name,
            SimpleFileOptions::default().compression_method(*method),
        )
        .unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

#[test]
fn loads_the_data_directory() {
    let report = load_dir(&common::data_dir()).unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    assert_eq!(report.advisories.len(), data_files().len());
    let ids: Vec<&str> = report.advisories.iter().map(|a| a.id.as_str()).collect();
    assert!(ids.contains(&"ALPINE-CVE-2024-0727"));
    assert!(ids.contains(&"GHSA-c2qf-rxjj-qqgw"));
}

#[test]
fn directory_with_bad_records_reports_them_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("GOOD-1.json"),
        br#"{"id":"GOOD-1","modified":"m"}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("BAD-1.json"),
        br#"{"id":"BAD-1","aliases":7}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("BAD-2.json"), b"\x00\xff not json").unwrap();
    let mut big = br#"{"id":"BIG-1","details":""#.to_vec();
    big.resize(scanplane_osv::MAX_DOCUMENT_BYTES + 10, b'a');
    std::fs::write(dir.path().join("BIG-1.json"), &big).unwrap();
    // Not .json: ignored, not rejected.
    std::fs::write(dir.path().join("README.md"), b"# hi").unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(
        dir.path().join("sub/NESTED-1.json"),
        br#"{"id":"N","modified":"m"}"#,
    )
    .unwrap();

    let report = load_dir(dir.path()).unwrap();
    assert_eq!(report.advisories.len(), 1);
    assert_eq!(report.advisories[0].id, "GOOD-1");
    let rejected: Vec<(Option<&str>, &str)> = report
        .rejected
        .iter()
        .map(|r| (r.id.as_deref(), r.reason.as_str()))
        .collect();
    assert_eq!(rejected.len(), 3, "{rejected:?}");
    assert_eq!(rejected[0].0, Some("BAD-1"));
    assert!(rejected[0].1.contains("aliases"), "{}", rejected[0].1);
    assert_eq!(rejected[1].0, Some("BAD-2"));
    assert_eq!(rejected[2].0, Some("BIG-1"));
    assert!(rejected[2].1.contains("limit"), "{}", rejected[2].1);
    assert!(report.rejected[0].source.ends_with("BAD-1.json"));

    assert!(matches!(
        load_dir(&dir.path().join("missing")),
        Err(OsvError::Io { .. })
    ));
}

#[test]
fn loads_an_all_zip_with_a_corrupt_record() {
    let files = data_files();
    let mut entries: Vec<(&str, &[u8], CompressionMethod)> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice(), CompressionMethod::Deflated))
        .collect();
    entries.push((
        "BROKEN-1.json",
        br#"{"id":"BROKEN-1","affected":{"x":1}}"#,
        CompressionMethod::Deflated,
    ));
    entries.push((
        "TRUNC-1.json",
        br#"{"id":"TRUNC-1","modi"#,
        CompressionMethod::Deflated,
    ));
    // A stored entry whose bytes are damaged after writing: its CRC no longer matches.
    let marker = br#"{"id":"CRC-1","modified":"ZZZZZZZZZZ"}"#;
    entries.push(("CRC-1.json", marker, CompressionMethod::Stored));
    entries.push(("not-a-record.txt", b"ignored", CompressionMethod::Deflated));
    let mut bytes = zip_of(&entries);
    let at = bytes.windows(10).position(|w| w == b"ZZZZZZZZZZ").unwrap();
    bytes[at] = b'Y';

    let report = load_zip(Cursor::new(bytes)).unwrap();
    assert_eq!(report.advisories.len(), files.len());
    let mut rejected: Vec<(String, Option<String>, String)> = report
        .rejected
        .iter()
        .map(|r| (r.source.clone(), r.id.clone(), r.reason.clone()))
        .collect();
    rejected.sort();
    assert_eq!(rejected.len(), 3, "{rejected:?}");
    assert_eq!(rejected[0].1.as_deref(), Some("BROKEN-1"));
    assert!(rejected[0].2.contains("affected"), "{}", rejected[0].2);
    assert_eq!(rejected[1].1.as_deref(), Some("CRC-1"));
    assert_eq!(rejected[2].0, "TRUNC-1.json");
}

#[test]
fn refuses_a_zip_bomb() {
    // Highly compressible, each entry within the per-entry limit, together over the total.
    let record = {
        let mut r = br#"{"id":"BOMB","modified":"m","details":""#.to_vec();
        r.resize(300 * 1024, b'a');
        r.extend_from_slice(br#""}"#);
        r
    };
    let names: Vec<String> = (0..8).map(|i| format!("BOMB-{i}.json")).collect();
    let entries: Vec<(&str, &[u8], CompressionMethod)> = names
        .iter()
        .map(|n| (n.as_str(), record.as_slice(), CompressionMethod::Deflated))
        .collect();
    let bytes = zip_of(&entries);
    assert!(
        bytes.len() < 100 * 1024,
        "the archive is small: {}",
        bytes.len()
    );
    let limits = ZipLimits {
        max_entry_bytes: 512 * 1024,
        max_total_bytes: 1024 * 1024,
        max_entries: 100,
    };
    let err = load_zip_with_limits(Cursor::new(bytes.clone()), limits).unwrap_err();
    assert!(matches!(err, OsvError::ZipBomb(_)), "{err:?}");
    // The same archive is fine within the default 2 GiB.
    assert_eq!(load_zip(Cursor::new(bytes)).unwrap().advisories.len(), 8);
}

#[test]
fn oversized_entries_are_rejected_not_inflated() {
    let mut big = br#"{"id":"BIG-1","modified":"m","details":""#.to_vec();
    big.resize(scanplane_osv::MAX_DOCUMENT_BYTES + 1, b' ');
    let bytes = zip_of(&[
        ("BIG-1.json", &big, CompressionMethod::Deflated),
        (
            "OK-1.json",
            br#"{"id":"OK-1","modified":"m"}"#,
            CompressionMethod::Deflated,
        ),
    ]);
    let report = load_zip(Cursor::new(bytes)).unwrap();
    assert_eq!(report.advisories.len(), 1);
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].id.as_deref(), Some("BIG-1"));
    assert!(report.rejected[0].reason.contains("limit"));
}

#[test]
fn refuses_too_many_entries_and_non_zips() {
    let bytes = zip_of(&[
        ("A.json", b"{}", CompressionMethod::Stored),
        ("B.json", b"{}", CompressionMethod::Stored),
        ("C.json", b"{}", CompressionMethod::Stored),
    ]);
    let limits = ZipLimits {
        max_entries: 2,
        ..ZipLimits::default()
    };
    assert!(matches!(
        load_zip_with_limits(Cursor::new(bytes), limits),
        Err(OsvError::ZipBomb(_))
    ));
    assert!(matches!(
        load_zip(Cursor::new(b"definitely not a zip".to_vec())),
        Err(OsvError::Zip(_))
    ));
    assert_eq!(ZipLimits::default().max_total_bytes, 2 * 1024 * 1024 * 1024);
    assert_eq!(ZipLimits::default().max_entries, 2_000_000);
}
