-- A signer node's own database (never shared with the API or other signers). Every secret
-- column holds bytes sealed by the node's keystore (AEAD bound to purpose, key, signer and
-- version): reading this database reveals nothing, and moving a row breaks its seal.
-- Keep in step with ../node-postgres/0001_node.sql.

CREATE TABLE node_meta (
    name   TEXT PRIMARY KEY,
    value  BLOB NOT NULL
);

CREATE TABLE node_shares (
    key_id      TEXT PRIMARY KEY,
    version     BIGINT NOT NULL,
    scheme      TEXT NOT NULL,
    sealed      BLOB NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE node_aux (
    group_id    TEXT PRIMARY KEY,
    sealed      BLOB NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE node_primes (
    id          TEXT PRIMARY KEY,
    sealed      BLOB NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE node_presignatures (
    id          TEXT PRIMARY KEY,
    key_id      TEXT NOT NULL,
    sealed      BLOB NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX node_presignatures_key ON node_presignatures (key_id);

CREATE TABLE node_requests (
    session_id  TEXT PRIMARY KEY,
    key_id      TEXT NOT NULL,
    protocol    TEXT NOT NULL,
    evidence    TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX node_requests_key ON node_requests (key_id, created_at);
