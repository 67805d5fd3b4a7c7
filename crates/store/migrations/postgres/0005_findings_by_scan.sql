-- A scan's findings in id order: exports page through them with `id > cursor`, one index
-- range per page, however many findings the scan and the table hold.
CREATE INDEX findings_scan ON findings (scan_id, id);
