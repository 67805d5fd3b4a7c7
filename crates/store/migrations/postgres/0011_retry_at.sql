-- A re-queued scan whose attempt failed waits before the next one (exponential backoff):
-- admission leaves it in the queue until retry_at. NULL: admissible now.
ALTER TABLE scans ADD COLUMN retry_at BIGINT;
