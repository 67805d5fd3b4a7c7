//! The scanner registry: every scanner scanplane can run, by name.
//!
//! A built-in scanner is a [`Component`] its module exports; [`crate::BUILTIN`] lists them,
//! one line each. Custom scanners from the configuration file are registered after them.
//! [`parsers`] lists the pure parsers of the components and of the custom scanners' report
//! formats: each is tested against its fixtures in `tests/data/<name>/` and fuzzed.

use std::collections::BTreeMap;
use std::sync::Arc;

use scanplane_core::scanner::ScannerDef;

use crate::custom::{CustomScanner, CustomScannerConfig};
use crate::error::{ConfigError, ParseError, UnknownScanner};
use crate::parsed::Parsed;
use crate::Scanner;

/// A built-in scanner as its module exports it: how to build the adapter and, when it
/// reads a tool's output, the pure parser of that output.
#[derive(Clone, Copy)]
pub struct Component {
    pub build: fn() -> Arc<dyn Scanner>,
    pub parser: Option<Parser>,
}

/// A pure parser of captured output.
#[derive(Clone, Copy)]
pub struct Parser {
    /// The name its errors start with; also the name of its fixtures directory
    /// (`tests/data/<name>/`) and of its fuzz target.
    pub name: &'static str,
    pub parse: fn(&[u8]) -> Result<Parsed, ParseError>,
}

/// Every parser: the built-in components' and the custom scanners' report formats'.
pub fn parsers() -> Vec<Parser> {
    crate::BUILTIN
        .iter()
        .filter_map(|c| c.parser)
        .chain(crate::custom::FORMATS.iter().copied())
        .collect()
}

/// Maps scanner names to adapters. Built-in and external scanners are always present;
/// external ones report `NotInstalled` when run without their program.
#[derive(Clone, Default)]
pub struct Registry {
    scanners: BTreeMap<String, Arc<dyn Scanner>>,
}

impl Registry {
    /// A registry without any scanner.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Every scanner in [`crate::BUILTIN`].
    pub fn builtin() -> Self {
        let mut r = Self::empty();
        for c in crate::BUILTIN {
            // Built-in names are distinct (a test checks it), so this cannot fail; a
            // duplicate would only lose the later one.
            let _ = r.register((c.build)());
        }
        r
    }

    /// The built-in scanners plus custom ones from the configuration file; a custom scanner
    /// may not reuse a name, because silently shadowing `nmap` would surprise everyone.
    pub fn with_custom(custom: Vec<CustomScannerConfig>) -> Result<Self, ConfigError> {
        let mut r = Self::builtin();
        for c in custom {
            r.register(Arc::new(CustomScanner::new(c)?))?;
        }
        Ok(r)
    }

    /// Adds a scanner under its definition's name; a name may be registered once.
    pub fn register(&mut self, scanner: Arc<dyn Scanner>) -> Result<(), ConfigError> {
        let name = scanner.definition().name.clone();
        if self.scanners.contains_key(&name) {
            return Err(ConfigError::Duplicate {
                name,
                registered: self.names(),
            });
        }
        self.scanners.insert(name, scanner);
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Scanner>> {
        self.scanners.get(name).cloned()
    }

    /// Like [`Registry::get`], with an error that lists what is registered.
    pub fn lookup(&self, name: &str) -> Result<Arc<dyn Scanner>, UnknownScanner> {
        self.get(name).ok_or_else(|| UnknownScanner {
            name: name.to_string(),
            registered: self.names(),
        })
    }

    /// Every registered name, sorted.
    /// The canonical JSON (keys sorted) of the options of a scan of `scanner` that are scope
    /// (see [`ScannerDef::scope_options`]): `{}` when there are none. An unknown scanner
    /// counts every option.
    pub fn scope_options(&self, scanner: &str, options: &serde_json::Value) -> String {
        let scanner = self.get(scanner);
        scope_options(scanner.as_ref().map(|s| s.definition()), options)
    }

    pub fn names(&self) -> Vec<String> {
        self.scanners.keys().cloned().collect()
    }

    /// Every scanner's definition, sorted by name.
    pub fn definitions(&self) -> Vec<ScannerDef> {
        self.scanners
            .values()
            .map(|s| s.definition().clone())
            .collect()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.scanners.keys()).finish()
    }
}

/// The canonical JSON (keys sorted, whatever order they came in) of the options that are
/// scope for `def` (see [`ScannerDef::scope_options`]); `{}` when there are none. Without a
/// definition every option counts.
pub fn scope_options(def: Option<&ScannerDef>, options: &serde_json::Value) -> String {
    let Some(map) = options.as_object() else {
        return "{}".to_string();
    };
    let scope: BTreeMap<&String, &serde_json::Value> = map
        .iter()
        .filter(|(k, _)| def.is_none_or(|d| d.is_scope_option(k)))
        .collect();
    serde_json::to_string(&scope).unwrap_or_else(|_| "{}".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str) -> CustomScannerConfig {
        serde_yaml::from_str(&format!("name: {name}\ncommand: [/bin/true]\n")).unwrap()
    }

    /// The built-in scanners when this test was written; a new one joins them without an
    /// edit here (its line in BUILTIN is what registers it).
    const BUILTIN_NAMES: [&str; 6] = ["grype", "http", "nmap", "nuclei", "tcp", "trivy"];

    #[test]
    fn builtin_and_custom() {
        let r = Registry::builtin();
        let names: Vec<String> = r.definitions().into_iter().map(|d| d.name).collect();
        for name in BUILTIN_NAMES {
            assert!(
                names.iter().any(|n| n == name),
                "{name} missing from {names:?}"
            );
        }
        assert_eq!(
            names.len(),
            crate::BUILTIN.len(),
            "exactly what BUILTIN lists: {names:?}"
        );
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "definitions come sorted by name");
        assert!(r.get("tcp").is_some());
        assert!(r.get("nope").is_none());
        let r = Registry::with_custom(vec![config("audit")]).unwrap();
        assert_eq!(r.get("audit").unwrap().definition().kind_str(), "custom");
        assert_eq!(
            Registry::with_custom(vec![config("nmap")]).unwrap_err(),
            ConfigError::Duplicate {
                name: "nmap".into(),
                registered: names,
            }
        );
        assert!(Registry::with_custom(vec![config("a"), config("a")]).is_err());
    }

    #[test]
    fn every_builtin_component_has_its_own_name() {
        assert_eq!(Registry::builtin().names().len(), crate::BUILTIN.len());
        let mut names: Vec<&str> = parsers().iter().map(|p| p.name).collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(
            names.len(),
            count,
            "parser names must be distinct: {names:?}"
        );
    }

    /// Every parser has captured output in its fixtures directory, and reads all of it
    /// without dropping a record.
    #[test]
    fn every_parser_reads_its_fixtures() {
        let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let names: Vec<&str> = parsers().iter().map(|p| p.name).collect();
        for name in [
            "nmap",
            "trivy",
            "nuclei",
            "grype",
            "scanplane-json",
            "sarif",
        ] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
        for p in parsers() {
            let dir = data.join(p.name);
            let fixtures: Vec<_> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|e| e.unwrap().path())
                .filter(|f| f.file_name().is_some_and(|n| n != "README.md"))
                .collect();
            assert!(!fixtures.is_empty(), "{} has no fixtures", dir.display());
            for f in fixtures {
                let bytes = std::fs::read(&f).unwrap();
                if let Err(e) = (p.parse)(&bytes).and_then(Parsed::strict) {
                    panic!("{}: {e}", f.display());
                }
            }
        }
    }

    #[test]
    fn errors_list_the_registered_names() {
        let mut r = Registry::empty();
        assert_eq!(
            r.lookup("tcp").err().unwrap().to_string(),
            "unknown scanner \"tcp\"; registered scanners: none"
        );
        r.register((crate::tcp::COMPONENT.build)()).unwrap();
        r.register(Arc::new(CustomScanner::new(config("audit")).unwrap()))
            .unwrap();
        assert!(r.lookup("tcp").is_ok());
        let e = r.lookup("nmapp").err().unwrap();
        assert_eq!(
            e.to_string(),
            "unknown scanner \"nmapp\"; registered scanners: audit, tcp"
        );
        let e = r
            .register(Arc::new(CustomScanner::new(config("audit")).unwrap()))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "scanner name \"audit\" is defined more than once (registered scanners: audit, tcp)"
        );
        let e = Registry::builtin().lookup("nmapp").err().unwrap();
        assert_eq!(e.registered, Registry::builtin().names());
    }
}
