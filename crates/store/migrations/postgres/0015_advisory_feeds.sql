-- Advisory feeds named in the configuration, synced on a schedule. A replica claims a check
-- by moving next_check_at forward (one UPDATE: only one replica wins it); the validators of
-- the last response (ETag, Last-Modified) make an unchanged feed cost one conditional request.
CREATE TABLE advisory_feeds (
    source TEXT PRIMARY KEY,
    etag TEXT,
    last_modified TEXT,
    next_check_at BIGINT NOT NULL,
    checked_at BIGINT,
    -- What the last check did: "imported", "not modified", "failed: ...".
    status TEXT,
    import_id TEXT
);
