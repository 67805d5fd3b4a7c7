//! Shared test helpers: the captured trivy documents and the CycloneDX 1.5 schema validator.

// Helpers panic on purpose: in a test, a panic is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use jsonschema::{Draft, Retrieve, Uri, Validator};
use serde_json::Value;

pub const ALPINE_ROOTFS: &str = "alpine-rootfs.spdx.json";
pub const DEBIAN_ROOTFS: &str = "debian-rootfs.spdx.json";
pub const ALPINE_IMAGE: &str = "alpine-image.spdx.json";
pub const ALL: [&str; 3] = [ALPINE_ROOTFS, DEBIAN_ROOTFS, ALPINE_IMAGE];

pub fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

/// A captured trivy document (see tests/data/trivy/README.md for how each was made).
pub fn fixture(name: &str) -> Vec<u8> {
    let path = data(&format!("trivy/{name}"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

pub fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("valid JSON")
}

/// Serves the schemas bom-1.5 refers to (spdx, jsf) from tests/data/cyclonedx, so that
/// validation needs no network and cannot silently skip a referenced schema.
struct LocalSchemas;

impl Retrieve for LocalSchemas {
    fn retrieve(
        &self,
        uri: &Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let file = uri
            .as_str()
            .strip_prefix("http://cyclonedx.org/schema/")
            .ok_or_else(|| format!("no local copy of {uri}"))?;
        let text = std::fs::read_to_string(data(&format!("cyclonedx/{file}")))?;
        Ok(serde_json::from_str(&text)?)
    }
}

pub fn cyclonedx_validator() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| {
        let text = std::fs::read_to_string(data("cyclonedx/bom-1.5.SNAPSHOT.schema.json"))
            .expect("the CycloneDX 1.5 schema is in tests/data/cyclonedx");
        let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
        // A different file here would make every validation meaningless.
        assert_eq!(
            schema["$id"],
            "http://cyclonedx.org/schema/bom-1.5.schema.json"
        );
        jsonschema::options()
            .with_draft(Draft::Draft7)
            .should_validate_formats(true)
            .with_retriever(LocalSchemas)
            .build(&schema)
            .expect("the CycloneDX 1.5 schema compiles")
    })
}

/// Every schema error, with where it is, for an assertion message.
pub fn schema_errors(doc: &Value) -> Vec<String> {
    cyclonedx_validator()
        .iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}
