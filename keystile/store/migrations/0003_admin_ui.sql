-- keystile schema, version 3: what the admin UI and LiteLLM's admin API need.
--   spend_logs.call_type      which client API a request came in on (LiteLLM's call_type)
--   spend_logs.request_tags   the request's tags (JSON array), from x-keystile-tags / x-litellm-tags / metadata.tags
--   spend_tags                one row per (request, tag), so spend by tag is a GROUP BY on both databases
--   models                    deployments added at run time (/model/new), read by every instance
--   ui_sessions               admin UI sign-ins: only the SHA-256 of the session cookie is stored

ALTER TABLE spend_logs ADD COLUMN call_type TEXT;
ALTER TABLE spend_logs ADD COLUMN request_tags TEXT;

CREATE TABLE spend_tags (
    request_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    ts DOUBLE PRECISION NOT NULL,
    cost DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (request_id, tag)
);
CREATE INDEX spend_tags_tag ON spend_tags (tag, ts);
CREATE INDEX spend_tags_ts ON spend_tags (ts);

CREATE TABLE models (
    model_id TEXT PRIMARY KEY,
    model_name TEXT NOT NULL,
    litellm_params TEXT NOT NULL,
    model_info TEXT NOT NULL DEFAULT '{}',
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE ui_sessions (
    session_hash TEXT PRIMARY KEY,
    csrf_token TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION NOT NULL,
    user_agent TEXT
);
CREATE INDEX ui_sessions_last_seen ON ui_sessions (last_seen);
