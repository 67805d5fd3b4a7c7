//! Loading many advisories: a directory of `.json` files, or an osv.dev `<Ecosystem>/all.zip`
//! export (one `<ID>.json` per entry). Synchronous I/O on files and readers.
//!
//! Like a real importer, a bad record is counted and reported without stopping the load; only
//! an unreadable archive/directory or a refused (bomb-like) archive fails the whole load.

use std::io::{Read, Seek};
use std::path::Path;

use crate::model::{parse, Advisory, MAX_DOCUMENT_BYTES};
use crate::OsvError;

/// A record that was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// File path (directory load) or entry name (zip load).
    pub source: String,
    /// The advisory id, from the file/entry name (`<ID>.json`).
    pub id: Option<String>,
    pub reason: String,
}

/// What a load produced.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub advisories: Vec<Advisory>,
    pub rejected: Vec<Rejected>,
}

/// Bounds of a zip load; [`ZipLimits::default`] is what osv.dev exports need with headroom
/// (the largest, Debian and Ubuntu, are a few hundred MB uncompressed and ~100k entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZipLimits {
    /// Largest uncompressed entry; bigger entries are rejected (not read).
    pub max_entry_bytes: u64,
    /// Most uncompressed bytes over the whole archive; past it the load is refused.
    pub max_total_bytes: u64,
    /// Most entries in the archive; more and the load is refused before reading any.
    pub max_entries: usize,
}

impl Default for ZipLimits {
    fn default() -> Self {
        ZipLimits {
            max_entry_bytes: MAX_DOCUMENT_BYTES as u64,
            max_total_bytes: 2 * 1024 * 1024 * 1024,
            max_entries: 2_000_000,
        }
    }
}

fn id_of(name: &str) -> Option<String> {
    let base = name.rsplit('/').next().unwrap_or(name);
    base.strip_suffix(".json")
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn io_err(path: &Path, source: std::io::Error) -> OsvError {
    OsvError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Loads every `*.json` file directly inside `dir` (not recursive: osv.dev exports are flat),
/// in file-name order so that reports are reproducible.
pub fn load_dir(dir: &Path) -> Result<LoadReport, OsvError> {
    let mut advisories = Vec::new();
    let rejected = visit_dir(dir, &mut |_, advisory| {
        advisories.push(advisory);
        true
    })?;
    Ok(LoadReport {
        advisories,
        rejected,
    })
}

/// Reads every `*.json` file directly inside `dir` one record at a time, in file-name order,
/// handing each parsed advisory to `on` with its bytes, as [`visit_zip`] does; `on` returns
/// false to stop early. Returns the records that were skipped.
pub fn visit_dir(
    dir: &Path,
    on: &mut dyn FnMut(Vec<u8>, Advisory) -> bool,
) -> Result<Vec<Rejected>, OsvError> {
    let limits = ZipLimits::default();
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "json") {
            paths.push(path);
            if paths.len() > limits.max_entries {
                return Err(OsvError::TooManyFiles {
                    path: dir.display().to_string(),
                    limit: limits.max_entries,
                });
            }
        }
    }
    paths.sort();
    let mut rejected = Vec::new();
    for path in paths {
        let source = path.display().to_string();
        let id = path.file_name().and_then(|n| n.to_str()).and_then(id_of);
        let reject = |reason: String| Rejected {
            source: source.clone(),
            id: id.clone(),
            reason,
        };
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                rejected.push(reject(e.to_string()));
                continue;
            }
        };
        // Read at most one byte past the limit: enough to tell "too large" without trusting
        // the file's reported size.
        let mut bytes = Vec::new();
        if let Err(e) = file
            .take(limits.max_entry_bytes + 1)
            .read_to_end(&mut bytes)
        {
            rejected.push(reject(e.to_string()));
            continue;
        }
        match parse(&bytes) {
            Ok(a) => {
                if !on(bytes, a) {
                    break;
                }
            }
            Err(e) => rejected.push(reject(e.to_string())),
        }
    }
    Ok(rejected)
}

/// Loads an osv.dev `all.zip` with the default [`ZipLimits`].
pub fn load_zip<R: Read + Seek>(reader: R) -> Result<LoadReport, OsvError> {
    load_zip_with_limits(reader, ZipLimits::default())
}

/// Loads an osv.dev `all.zip`: every `.json` entry is parsed; other entries are ignored.
pub fn load_zip_with_limits<R: Read + Seek>(
    reader: R,
    limits: ZipLimits,
) -> Result<LoadReport, OsvError> {
    let mut advisories = Vec::new();
    let rejected = visit_zip(reader, limits, &mut |_, advisory| {
        advisories.push(advisory);
        true
    })?;
    Ok(LoadReport {
        advisories,
        rejected,
    })
}

/// Reads an osv.dev `all.zip` one record at a time, handing each parsed advisory to `on`
/// with the bytes it was parsed from, so that an importer holds one record at a time (the
/// largest exports hold ~100k records). `on` returns false to stop early. Returns the
/// records that were skipped.
pub fn visit_zip<R: Read + Seek>(
    reader: R,
    limits: ZipLimits,
    on: &mut dyn FnMut(Vec<u8>, Advisory) -> bool,
) -> Result<Vec<Rejected>, OsvError> {
    let mut archive = zip::ZipArchive::new(reader).map_err(|e| OsvError::Zip(e.to_string()))?;
    if archive.len() > limits.max_entries {
        return Err(OsvError::ZipBomb(format!(
            "{} entries, over the {}-entry limit",
            archive.len(),
            limits.max_entries
        )));
    }
    let mut rejected = Vec::new();
    let mut total: u64 = 0;
    for index in 0..archive.len() {
        let mut file = match archive.by_index(index) {
            Ok(f) => f,
            Err(e) => {
                rejected.push(Rejected {
                    source: format!("entry #{index}"),
                    id: None,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let name = file.name().to_owned();
        if file.is_dir() || !name.ends_with(".json") {
            continue;
        }
        let reject = |reason: String| Rejected {
            source: name.clone(),
            id: id_of(&name),
            reason,
        };
        // The declared size is checked first so an oversized entry is not even inflated; the
        // bounded read below still guards against a header that lies.
        if file.size() > limits.max_entry_bytes {
            rejected.push(reject(format!(
                "{} bytes uncompressed, over the {}-byte limit",
                file.size(),
                limits.max_entry_bytes
            )));
            continue;
        }
        let mut bytes = Vec::new();
        let read = (&mut file)
            .take(limits.max_entry_bytes + 1)
            .read_to_end(&mut bytes);
        total = total.saturating_add(bytes.len() as u64);
        if total > limits.max_total_bytes {
            return Err(OsvError::ZipBomb(format!(
                "over {} bytes uncompressed",
                limits.max_total_bytes
            )));
        }
        if let Err(e) = read {
            rejected.push(reject(e.to_string()));
            continue;
        }
        if bytes.len() as u64 > limits.max_entry_bytes {
            rejected.push(reject(format!(
                "inflates past the {}-byte limit",
                limits.max_entry_bytes
            )));
            continue;
        }
        match parse(&bytes) {
            Ok(a) => {
                if !on(bytes, a) {
                    break;
                }
            }
            Err(e) => rejected.push(reject(e.to_string())),
        }
    }
    Ok(rejected)
}
