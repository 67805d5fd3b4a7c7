-- When each API token was last used, so that admins can tell a live token from a forgotten
-- one before revoking it. Written at most once a minute per token (see `touch_token`).
ALTER TABLE api_tokens ADD COLUMN last_used_at BIGINT;
