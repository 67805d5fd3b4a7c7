-- Replicas of `serve` sharing this database, each with a lease it renews, and the owner of
-- every scan's current attempt with the facts its lifecycle needs (launched, exited
-- cleanly, attempts lost with a replica), so that any replica can take over the attempts
-- of one whose lease expired: memory is a cache of these rows, never the only copy.
CREATE TABLE replicas (
    id TEXT PRIMARY KEY,
    hostname TEXT NOT NULL,
    executor TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    lease_until BIGINT NOT NULL,
    stopped_at BIGINT,
    stop_reason TEXT
);
ALTER TABLE scans ADD COLUMN owner TEXT;
ALTER TABLE scans ADD COLUMN launched_at BIGINT;
ALTER TABLE scans ADD COLUMN exited_at BIGINT;
ALTER TABLE scans ADD COLUMN lost_attempts BIGINT NOT NULL DEFAULT 0;
-- Attempts by owner: a replica's own attempts each round, a lost replica's at takeover.
CREATE INDEX scans_owner ON scans (owner, status) WHERE owner IS NOT NULL;
