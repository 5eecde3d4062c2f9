-- Security groups, per-user exceptions, sign-in sessions, API tokens, the lockout
-- counter and idempotency keys. Same tables and names as migrations/postgres.

CREATE TABLE security_groups (
    id INTEGER PRIMARY KEY,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT,
    name TEXT NOT NULL UNIQUE,
    description TEXT,
    permissions TEXT
);

ALTER TABLE users ADD COLUMN permissions TEXT;

-- Browser sessions. The cookie holds a random secret; only its SHA-256 is kept here.
CREATE TABLE auth_sessions (
    id_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at BIGINT,
    ip TEXT,
    user_agent TEXT
);
CREATE INDEX auth_sessions_user ON auth_sessions (user_id);

-- Bearer tokens for integrations, stored hashed; shown once when made.
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

-- Failed sign-ins and override attempts, counted for the lockout whether or not the
-- User Authentication category is logged.
CREATE TABLE sign_in_failures (
    id INTEGER PRIMARY KEY,
    ts BIGINT NOT NULL,
    username TEXT NOT NULL,
    ip TEXT NOT NULL
);
CREATE INDEX sign_in_failures_username ON sign_in_failures (username, ts);
CREATE INDEX sign_in_failures_ip ON sign_in_failures (ip, ts);

-- A money record created under an Idempotency-Key, so a retry answers the first result.
CREATE TABLE idempotency_keys (
    user_id BIGINT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    record_type TEXT NOT NULL,
    record_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, key)
);
