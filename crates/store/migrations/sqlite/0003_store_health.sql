-- One heartbeat row. `check_writable` updates and commits it: only a committed write proves
-- that the database can take writes now (a rolled-back one never reaches the disk).
CREATE TABLE store_health (
    id INTEGER PRIMARY KEY,
    checked_at BIGINT NOT NULL
);
INSERT INTO store_health (id, checked_at) VALUES (1, 0);
