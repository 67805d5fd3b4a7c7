-- scanplane's initial schema (PostgreSQL). Timestamps are Unix milliseconds (BIGINT) so that
-- both backends share every query; ids are UUIDv7 text, which sorts by creation time.

CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    retention_days BIGINT,
    created_at BIGINT NOT NULL
);

CREATE TABLE projects (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE schedules (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    project_id TEXT,
    name TEXT NOT NULL,
    cron_exp TEXT,
    timezone TEXT NOT NULL,
    once_at BIGINT,
    scanner TEXT NOT NULL,
    targets TEXT NOT NULL,
    billing BOOLEAN NOT NULL,
    options TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    status TEXT NOT NULL,
    missed_tick_policy TEXT NOT NULL,
    starting_deadline_ms BIGINT,
    jitter_ms BIGINT,
    on_maintenance TEXT NOT NULL,
    next_tick BIGINT,
    next_fire_at BIGINT,
    last_fired_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- The scheduler asks only for due schedules (next_fire_at is NULL when a schedule is
-- disabled or completed): cost follows due work, not the number of schedules.
CREATE INDEX schedules_due ON schedules (next_fire_at);
CREATE INDEX schedules_tenant ON schedules (tenant_id, id);

CREATE TABLE scans (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    project_id TEXT,
    schedule_id TEXT,
    fire_time BIGINT,
    trigger TEXT NOT NULL,
    priority BIGINT NOT NULL,
    scanner TEXT NOT NULL,
    provider TEXT,
    targets TEXT NOT NULL,
    billing BOOLEAN NOT NULL,
    options TEXT NOT NULL,
    on_maintenance TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    admitted_at BIGINT,
    started_at BIGINT,
    finished_at BIGINT,
    executor_ref TEXT,
    error TEXT,
    targets_scanned TEXT NOT NULL,
    findings_count BIGINT NOT NULL,
    report_token_hash TEXT,
    -- Exactly once per tick: at most one scan per (schedule, fire time).
    UNIQUE (schedule_id, fire_time)
);
CREATE INDEX scans_status ON scans (status, priority, created_at);
CREATE INDEX scans_tenant ON scans (tenant_id, id);

CREATE TABLE findings (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    scan_id TEXT NOT NULL REFERENCES scans(id) ON DELETE CASCADE,
    scanner TEXT NOT NULL,
    target TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    severity TEXT NOT NULL,
    title TEXT NOT NULL,
    location TEXT NOT NULL,
    detail TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- A retried report chunk never duplicates a finding.
    UNIQUE (scan_id, fingerprint)
);
CREATE INDEX findings_tenant ON findings (tenant_id, severity, id);

CREATE TABLE maintenance_windows (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    admin BOOLEAN NOT NULL,
    name TEXT NOT NULL,
    start_at BIGINT,
    cron_exp TEXT,
    timezone TEXT NOT NULL,
    duration_ms BIGINT NOT NULL,
    scope TEXT NOT NULL,
    action TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE rate_buckets (
    provider TEXT PRIMARY KEY,
    tokens DOUBLE PRECISION NOT NULL,
    updated_at BIGINT NOT NULL
);
