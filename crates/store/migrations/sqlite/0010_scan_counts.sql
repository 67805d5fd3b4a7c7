-- How many scans reached each terminal status, by tenant and scanner: what
-- scanplane_scans_total reports. Counted by triggers in the same transaction as the
-- status change, so every path to a terminal status is counted exactly once, by whichever
-- replica made it, and the count survives restarts. Retention deleting old scans does not
-- lower it: it is a counter.
CREATE TABLE scan_counts (
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    scanner TEXT NOT NULL,
    status TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, scanner, status)
);

INSERT INTO scan_counts (tenant_id, scanner, status, n)
SELECT tenant_id, scanner, status, COUNT(*) FROM scans
WHERE status IN ('succeeded', 'failed', 'timed_out', 'cancelled', 'skipped')
GROUP BY tenant_id, scanner, status;

CREATE TRIGGER scans_count_terminal_update AFTER UPDATE OF status ON scans
WHEN NEW.status IN ('succeeded', 'failed', 'timed_out', 'cancelled', 'skipped')
  AND OLD.status NOT IN ('succeeded', 'failed', 'timed_out', 'cancelled', 'skipped')
BEGIN
    INSERT INTO scan_counts (tenant_id, scanner, status, n)
    VALUES (NEW.tenant_id, NEW.scanner, NEW.status, 1)
    ON CONFLICT (tenant_id, scanner, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER scans_count_terminal_insert AFTER INSERT ON scans
WHEN NEW.status IN ('succeeded', 'failed', 'timed_out', 'cancelled', 'skipped')
BEGIN
    INSERT INTO scan_counts (tenant_id, scanner, status, n)
    VALUES (NEW.tenant_id, NEW.scanner, NEW.status, 1)
    ON CONFLICT (tenant_id, scanner, status) DO UPDATE SET n = n + 1;
END;
