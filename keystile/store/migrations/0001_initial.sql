-- keystile schema, version 1. Written in the SQL both SQLite and PostgreSQL accept.
-- Times are Unix seconds (DOUBLE PRECISION); JSON is stored as TEXT; booleans as INTEGER 0/1.

CREATE TABLE meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE keys (
    token_hash TEXT PRIMARY KEY,
    key_name TEXT NOT NULL,
    key_alias TEXT,
    models TEXT NOT NULL DEFAULT '[]',
    max_budget DOUBLE PRECISION,
    soft_budget DOUBLE PRECISION,
    budget_duration TEXT,
    budget_reset_at DOUBLE PRECISION,
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    rpm_limit BIGINT,
    tpm_limit BIGINT,
    max_parallel_requests BIGINT,
    model_rpm_limit TEXT NOT NULL DEFAULT '{}',
    model_tpm_limit TEXT NOT NULL DEFAULT '{}',
    expires_at DOUBLE PRECISION,
    blocked INTEGER NOT NULL DEFAULT 0,
    metadata TEXT NOT NULL DEFAULT '{}',
    user_id TEXT,
    team_id TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX keys_user_id ON keys (user_id);
CREATE INDEX keys_team_id ON keys (team_id);
CREATE UNIQUE INDEX keys_alias ON keys (key_alias);

CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    user_alias TEXT,
    user_email TEXT,
    models TEXT NOT NULL DEFAULT '[]',
    max_budget DOUBLE PRECISION,
    soft_budget DOUBLE PRECISION,
    budget_duration TEXT,
    budget_reset_at DOUBLE PRECISION,
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    rpm_limit BIGINT,
    tpm_limit BIGINT,
    max_parallel_requests BIGINT,
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE teams (
    team_id TEXT PRIMARY KEY,
    team_alias TEXT,
    models TEXT NOT NULL DEFAULT '[]',
    max_budget DOUBLE PRECISION,
    soft_budget DOUBLE PRECISION,
    budget_duration TEXT,
    budget_reset_at DOUBLE PRECISION,
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    rpm_limit BIGINT,
    tpm_limit BIGINT,
    max_parallel_requests BIGINT,
    blocked INTEGER NOT NULL DEFAULT 0,
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE team_members (
    team_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT 'user',
    PRIMARY KEY (team_id, user_id)
);

CREATE TABLE spend_logs (
    request_id TEXT PRIMARY KEY,
    ts DOUBLE PRECISION NOT NULL,
    token_hash TEXT,
    key_alias TEXT,
    user_id TEXT,
    team_id TEXT,
    model TEXT NOT NULL,
    model_group TEXT,
    deployment TEXT,
    provider TEXT,
    input_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens BIGINT NOT NULL DEFAULT 0,
    cache_write_tokens BIGINT NOT NULL DEFAULT 0,
    cost DOUBLE PRECISION NOT NULL DEFAULT 0,
    status INTEGER NOT NULL,
    latency_ms DOUBLE PRECISION NOT NULL DEFAULT 0,
    stream INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 1,
    request_content TEXT,
    response_content TEXT
);
CREATE INDEX spend_logs_ts ON spend_logs (ts);
CREATE INDEX spend_logs_token_hash ON spend_logs (token_hash, ts);
CREATE INDEX spend_logs_user_id ON spend_logs (user_id, ts);
CREATE INDEX spend_logs_team_id ON spend_logs (team_id, ts);
