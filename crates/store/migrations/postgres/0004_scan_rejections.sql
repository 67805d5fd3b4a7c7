-- Findings a scan's report dropped (malformed or oversized), and the first reasons (a JSON
-- list of at most five strings): a scan with a bad record keeps its valid findings and
-- says what it dropped.
ALTER TABLE scans ADD COLUMN findings_rejected BIGINT NOT NULL DEFAULT 0;
ALTER TABLE scans ADD COLUMN rejections TEXT NOT NULL DEFAULT '[]';
