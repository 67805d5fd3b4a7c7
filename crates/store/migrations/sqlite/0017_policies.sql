-- Scan execution policies: one row per policy of a tenant's document, in the document's
-- order. PUT /api/v1/policies replaces a tenant's rows in one transaction, so a rejected or
-- interrupted write leaves the previous set whole; rows a ScanPolicy resource declared
-- (`declared`) are the operator's and a PUT leaves them alone.
CREATE TABLE policies (
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    position BIGINT NOT NULL,
    enabled BOOLEAN NOT NULL,
    declared BOOLEAN NOT NULL DEFAULT FALSE,
    -- The policy (its entry of the document) as JSON.
    document TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
