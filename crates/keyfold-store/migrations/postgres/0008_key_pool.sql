-- Keys the signer cluster generated ahead of time, not yet anyone's: creating a key or a
-- wallet takes one (deleting its row) instead of waiting for distributed key generation.
-- The signers hold the shares under `id`, which becomes the key's id.
CREATE TABLE key_pool (
    id          TEXT PRIMARY KEY,
    scheme      TEXT NOT NULL,
    public_key  BYTEA NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX key_pool_scheme ON key_pool (scheme, created_at);
