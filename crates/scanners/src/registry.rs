//! The scanner registry: every scanner scanplane can run, by name.

use std::collections::BTreeMap;
use std::sync::Arc;

use scanplane_core::scanner::ScannerDef;

use crate::custom::{CustomScanner, CustomScannerConfig};
use crate::error::ConfigError;
use crate::grype::GrypeScanner;
use crate::http::HttpScanner;
use crate::nmap::NmapScanner;
use crate::nuclei::NucleiScanner;
use crate::tcp::TcpScanner;
use crate::trivy::TrivyScanner;
use crate::Scanner;

/// Maps scanner names to adapters. Built-in and external scanners are always present;
/// external ones report `NotInstalled` when run without their program.
#[derive(Clone)]
pub struct Registry {
    scanners: BTreeMap<String, Arc<dyn Scanner>>,
}

impl Registry {
    /// The built-in (`tcp`, `http`) and external (`nmap`, `trivy`, `nuclei`, `grype`) scanners.
    pub fn builtin() -> Self {
        let list: [Arc<dyn Scanner>; 6] = [
            Arc::new(TcpScanner::new()),
            Arc::new(HttpScanner::new()),
            Arc::new(NmapScanner::new()),
            Arc::new(TrivyScanner::new()),
            Arc::new(NucleiScanner::new()),
            Arc::new(GrypeScanner::new()),
        ];
        Registry {
            scanners: list
                .into_iter()
                .map(|s| (s.definition().name.clone(), s))
                .collect(),
        }
    }

    /// The built-in scanners plus custom ones from the configuration file; a custom scanner
    /// may not reuse a name, because silently shadowing `nmap` would surprise everyone.
    pub fn with_custom(custom: Vec<CustomScannerConfig>) -> Result<Self, ConfigError> {
        let mut r = Self::builtin();
        for c in custom {
            let s = CustomScanner::new(c)?;
            let name = s.definition().name.clone();
            if r.scanners.contains_key(&name) {
                return Err(ConfigError::Duplicate(name));
            }
            r.scanners.insert(name, Arc::new(s));
        }
        Ok(r)
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Scanner>> {
        self.scanners.get(name).cloned()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str) -> CustomScannerConfig {
        serde_yaml::from_str(&format!("name: {name}\ncommand: [/bin/true]\n")).unwrap()
    }

    #[test]
    fn builtin_and_custom() {
        let r = Registry::builtin();
        let names: Vec<String> = r.definitions().into_iter().map(|d| d.name).collect();
        assert_eq!(names, ["grype", "http", "nmap", "nuclei", "tcp", "trivy"]);
        assert!(r.get("tcp").is_some());
        assert!(r.get("nope").is_none());
        let r = Registry::with_custom(vec![config("audit")]).unwrap();
        assert_eq!(r.get("audit").unwrap().definition().kind_str(), "custom");
        assert_eq!(
            Registry::with_custom(vec![config("nmap")]).unwrap_err(),
            ConfigError::Duplicate("nmap".into())
        );
        assert!(Registry::with_custom(vec![config("a"), config("a")]).is_err());
    }
}
