-- One identity per (tenant, fingerprint): the current state of a finding across runs.
-- `scope_key` names the comparable runs (same tenant, scanner and targets): a complete,
-- successful run marks fixed what its scope had open and it did not see.

ALTER TABLE scans ADD COLUMN scope_key TEXT;
CREATE INDEX scans_scope ON scans (scope_key, status, created_at);

CREATE TABLE finding_identities (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    fingerprint TEXT NOT NULL,
    scope_key TEXT NOT NULL,
    scanner TEXT NOT NULL,
    target TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    severity TEXT NOT NULL,
    title TEXT NOT NULL,
    location TEXT NOT NULL,
    detail TEXT NOT NULL,
    status TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    introduced_by TEXT NOT NULL,
    last_scan TEXT NOT NULL,
    fixed_by TEXT,
    fixed_at BIGINT,
    triage TEXT NOT NULL,
    triage_comment TEXT,
    triaged_by TEXT,
    triaged_at BIGINT,
    UNIQUE (tenant_id, fingerprint)
);
CREATE INDEX finding_identities_scope ON finding_identities (scope_key, status);
CREATE INDEX finding_identities_query ON finding_identities (tenant_id, severity, status, id);
CREATE INDEX finding_identities_status ON finding_identities (tenant_id, status, id);
