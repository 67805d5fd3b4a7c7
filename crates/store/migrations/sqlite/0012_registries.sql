-- Registries and what their pipeline finds: images (one per registry, repository, tag and
-- platform, pointing at a digest), one SBOM per tenant and digest (compressed) with its
-- package index, the SBOM generations asked for (one per digest at a time), and what each
-- discovery run found. Interval schedules (registries' `every`) keep their period in
-- schedules.every_ms, anchored at once_at.

ALTER TABLE schedules ADD COLUMN every_ms BIGINT;

CREATE TABLE registries (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    -- The public definition (url, catalog, TLS, repositories, platforms, schedules) as JSON.
    definition TEXT NOT NULL,
    -- Credentials as JSON; never returned by the API.
    auth TEXT,
    discovery_schedule_id TEXT,
    scan_schedule_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE images (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    registry_id TEXT NOT NULL REFERENCES registries(id) ON DELETE CASCADE,
    repository TEXT NOT NULL,
    tag TEXT NOT NULL,
    -- os/arch[/variant], or '' for a single-platform manifest without one.
    platform TEXT NOT NULL,
    digest TEXT NOT NULL,
    index_digest TEXT,
    media_type TEXT NOT NULL,
    config_digest TEXT NOT NULL,
    layers TEXT NOT NULL,
    size BIGINT NOT NULL,
    created TEXT,
    first_seen_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    last_seen_scan_id TEXT NOT NULL,
    -- Set when a complete discovery no longer found the tag; kept for history.
    removed_at BIGINT,
    UNIQUE (registry_id, repository, tag, platform)
);
CREATE INDEX images_by_digest ON images (tenant_id, digest);
CREATE INDEX images_by_tenant ON images (tenant_id, id);

CREATE TABLE sboms (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    digest TEXT NOT NULL,
    format TEXT NOT NULL,
    generator TEXT NOT NULL,
    -- gzip of the document as generated.
    document BLOB NOT NULL,
    document_bytes BIGINT NOT NULL,
    package_count BIGINT NOT NULL,
    os TEXT,
    scan_id TEXT,
    created_at BIGINT NOT NULL,
    UNIQUE (tenant_id, digest)
);

CREATE TABLE sbom_packages (
    sbom_id TEXT NOT NULL REFERENCES sboms(id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT,
    purl TEXT,
    -- The purl without qualifiers and subpath, and without its version too: what a purl
    -- query without qualifiers (or without a version) matches.
    purl_base TEXT,
    purl_name TEXT,
    ecosystem TEXT,
    distro TEXT,
    source_name TEXT,
    source_version TEXT,
    layer_diff_id TEXT,
    PRIMARY KEY (sbom_id, seq)
);
CREATE INDEX sbom_packages_by_purl ON sbom_packages (tenant_id, purl_base);
CREATE INDEX sbom_packages_by_purl_name ON sbom_packages (tenant_id, purl_name);
CREATE INDEX sbom_packages_by_name ON sbom_packages (tenant_id, name, version);

-- The SBOM generation asked for each digest: at most one at a time per tenant and digest.
CREATE TABLE sbom_requests (
    tenant_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    scan_id TEXT NOT NULL,
    PRIMARY KEY (tenant_id, digest)
);

CREATE TABLE discoveries (
    scan_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    registry_id TEXT NOT NULL REFERENCES registries(id) ON DELETE CASCADE,
    stats TEXT,
    images_seen BIGINT NOT NULL DEFAULT 0,
    images_removed BIGINT NOT NULL DEFAULT 0,
    sboms_queued BIGINT NOT NULL DEFAULT 0,
    finished_at BIGINT
);
CREATE INDEX discoveries_by_registry ON discoveries (registry_id, scan_id);
