-- Keys, wallets, signature requests and the presignature index (issue [2 of 6]).
-- Keep in step with ../postgres/0002_keys.sql.

CREATE TABLE keys (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES orgs(id),
    scheme       TEXT NOT NULL,
    curve        TEXT NOT NULL,
    public_key   BLOB NOT NULL,
    name         TEXT,
    status       TEXT NOT NULL,
    custodial    BOOLEAN NOT NULL,
    owner_id     TEXT NOT NULL,
    external_id  TEXT,
    created_at   BIGINT NOT NULL,
    deleted_at   BIGINT
);
CREATE UNIQUE INDEX keys_external_id ON keys (org_id, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX keys_list ON keys (org_id, created_at DESC, id DESC);

CREATE TABLE wallets (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES orgs(id),
    key_id       TEXT NOT NULL REFERENCES keys(id),
    network      TEXT NOT NULL,
    address      TEXT,
    name         TEXT,
    status       TEXT NOT NULL,
    external_id  TEXT,
    tags         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    deleted_at   BIGINT
);
CREATE UNIQUE INDEX wallets_external_id ON wallets (org_id, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX wallets_list ON wallets (org_id, created_at DESC, id DESC);
CREATE INDEX wallets_key ON wallets (key_id);

CREATE TABLE signatures (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES orgs(id),
    key_id          TEXT NOT NULL REFERENCES keys(id),
    wallet_id       TEXT,
    requester_id    TEXT NOT NULL,
    token_id        TEXT,
    kind            TEXT NOT NULL,
    request_body    TEXT NOT NULL,
    network         TEXT,
    status          TEXT NOT NULL,
    reason          TEXT,
    signature       TEXT,
    signed_data     TEXT,
    tx_hash         TEXT,
    external_id     TEXT,
    user_action_id  TEXT,
    created_at      BIGINT NOT NULL,
    signed_at       BIGINT
);
CREATE UNIQUE INDEX signatures_external_id ON signatures (org_id, key_id, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX signatures_key ON signatures (key_id, created_at DESC, id DESC);
CREATE INDEX signatures_executing ON signatures (created_at) WHERE status = 'Executing';

-- Which presignatures the signers hold (the secret parts stay on the signers). A row is
-- deleted when handed out: one presignature, one signature.
CREATE TABLE presignatures (
    id          TEXT PRIMARY KEY,
    key_id      TEXT NOT NULL REFERENCES keys(id),
    signers     TEXT NOT NULL,
    public      BLOB NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX presignatures_key ON presignatures (key_id, signers, created_at);
