-- The report chunks whose refused lines were counted on their scan, by attempt: a chunk sent
-- again because its answer was lost is recognised and not counted twice.
CREATE TABLE report_chunks (
    scan_id TEXT NOT NULL REFERENCES scans(id) ON DELETE CASCADE,
    attempt BIGINT NOT NULL,
    chunk BIGINT NOT NULL,
    PRIMARY KEY (scan_id, attempt, chunk)
);
