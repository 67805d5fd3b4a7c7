-- Vulnerability advisories (OSV records: public data, shared by every tenant) and their
-- imports. Every import is versioned: it records what it added, modified and withdrew, and
-- the (ecosystem, package) keys those advisories affect, before and after, so that a rematch
-- can find exactly the stored SBOMs an import changes. An advisory counts as modified when
-- its document's SHA-256 changes.

CREATE TABLE advisory_imports (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    records BIGINT NOT NULL DEFAULT 0,
    added BIGINT NOT NULL DEFAULT 0,
    modified BIGINT NOT NULL DEFAULT 0,
    withdrawn BIGINT NOT NULL DEFAULT 0,
    unchanged BIGINT NOT NULL DEFAULT 0,
    rejected BIGINT NOT NULL DEFAULT 0,
    -- JSON list of the first reasons records were refused.
    rejections TEXT NOT NULL DEFAULT '[]'
);

CREATE TABLE advisories (
    id TEXT PRIMARY KEY,
    modified TEXT NOT NULL,
    withdrawn TEXT,
    -- JSON list.
    aliases TEXT NOT NULL,
    -- gzip of the OSV JSON document as imported.
    document BYTEA NOT NULL,
    sha256 TEXT NOT NULL,
    import_id TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- What an advisory affects: the ecosystem without its release suffix ("Alpine" for
-- "Alpine:v3.19") and the package name as the ecosystem normalises it.
CREATE TABLE advisory_keys (
    advisory_id TEXT NOT NULL REFERENCES advisories(id) ON DELETE CASCADE,
    ecosystem TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (advisory_id, ecosystem, name)
);
CREATE INDEX advisory_keys_by_package ON advisory_keys (ecosystem, name);

CREATE TABLE advisory_aliases (
    alias TEXT NOT NULL,
    advisory_id TEXT NOT NULL REFERENCES advisories(id) ON DELETE CASCADE,
    PRIMARY KEY (alias, advisory_id)
);

-- The keys an import changed: those of every advisory it added, modified or withdrew, as
-- they were before and as they are after.
CREATE TABLE advisory_import_keys (
    import_id TEXT NOT NULL REFERENCES advisory_imports(id) ON DELETE CASCADE,
    ecosystem TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (import_id, ecosystem, name)
);

-- The advisory key of each indexed package (set when its SBOM is stored), so that the SBOMs
-- an import affects are found by index.
ALTER TABLE sbom_packages ADD COLUMN match_ecosystem TEXT;
ALTER TABLE sbom_packages ADD COLUMN match_name TEXT;
CREATE INDEX sbom_packages_by_match ON sbom_packages (match_ecosystem, match_name);

-- Vulnerability reports: an SBOM is matched once when it is stored (matched_at set in the
-- transaction that records its report), and again for every finished import that changed
-- one of its keys. An import's rematch resumes from its cursor (the last SBOM id done) after
-- a crash, and counts what it did.
ALTER TABLE sboms ADD COLUMN matched_at BIGINT;
CREATE INDEX sboms_unmatched ON sboms (matched_at, id);
ALTER TABLE advisory_imports ADD COLUMN rematch_cursor TEXT;
ALTER TABLE advisory_imports ADD COLUMN rematched_at BIGINT;
ALTER TABLE advisory_imports ADD COLUMN sboms_considered BIGINT NOT NULL DEFAULT 0;
ALTER TABLE advisory_imports ADD COLUMN sboms_rematched BIGINT NOT NULL DEFAULT 0;
ALTER TABLE advisory_imports ADD COLUMN findings_new BIGINT NOT NULL DEFAULT 0;
ALTER TABLE advisory_imports ADD COLUMN findings_fixed BIGINT NOT NULL DEFAULT 0;
