-- keystile schema, version 2.
-- A key's spend, budget, limits and spend-log rows follow a stable id instead of the hash of
-- its current secret, so regenerating a key (new secret, new hash) keeps its history and the
-- requests in flight land on it. An existing key's id is its hash as of this migration: the
-- spend-log rows already written under that hash stay under the key.

ALTER TABLE keys ADD COLUMN key_id TEXT NOT NULL DEFAULT '';
UPDATE keys SET key_id = token_hash;
CREATE UNIQUE INDEX keys_key_id ON keys (key_id);

ALTER TABLE spend_logs RENAME COLUMN token_hash TO key_id;
DROP INDEX spend_logs_token_hash;
CREATE INDEX spend_logs_key_id ON spend_logs (key_id, ts);

-- A key being refused gets one sampled row now and then, carrying how many refusals it stands for.
ALTER TABLE spend_logs ADD COLUMN requests BIGINT NOT NULL DEFAULT 1;
