-- How many scans reached each terminal status, by tenant and scanner: what
-- scanplane_scans_total reports. Counted by a trigger in the same transaction as the
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

CREATE FUNCTION scanplane_count_terminal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IN ('succeeded', 'failed', 'timed_out', 'cancelled', 'skipped')
       AND (TG_OP = 'INSERT' OR OLD.status NOT IN ('succeeded', 'failed', 'timed_out', 'cancelled', 'skipped')) THEN
        INSERT INTO scan_counts (tenant_id, scanner, status, n)
        VALUES (NEW.tenant_id, NEW.scanner, NEW.status, 1)
        ON CONFLICT (tenant_id, scanner, status) DO UPDATE SET n = scan_counts.n + 1;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER scans_count_terminal AFTER INSERT OR UPDATE OF status ON scans
FOR EACH ROW EXECUTE FUNCTION scanplane_count_terminal();
